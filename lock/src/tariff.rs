//! Time-of-use tariffs: named periods, each with a price per kWh and the local hours it covers.
//!
//! A tariff file is TOML:
//!
//! ```toml
//! currency = "CNY"
//! utc_offset = "+08:00"   # the hours below are local to this offset; default "+00:00"
//! [[period]]
//! name = "peak"
//! price = "1.14460"       # per kWh, a decimal string so that no binary float rounds it
//! hours = ["15:00-19:00"] # half-open local ranges; "22:00-06:00" wraps past midnight
//! ```
//!
//! Parsing checks that the periods cover every minute of the day exactly once, so every
//! metered interval has exactly one price. Whoever controls these hours controls the bill,
//! which is why a meter keeps its tariff under the program lock (see [`crate::flow`]).

use std::fmt;

use rust_decimal::Decimal;
use serde::Deserialize;
use time::UtcOffset;

use crate::encoding::toml_error_line;

/// Minutes in a day; tariff hours have minute resolution.
pub const MINUTES_PER_DAY: u16 = 1440;

/// Why a tariff file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TariffError {
    /// The file is not valid TOML or has fields of the wrong type or name.
    #[error("{0}")]
    Syntax(String),
    /// `currency` is empty.
    #[error("currency must not be empty")]
    EmptyCurrency,
    /// `utc_offset` is not `+HH:MM` / `-HH:MM`.
    #[error("utc_offset {0:?} is not of the form +HH:MM or -HH:MM")]
    BadOffset(String),
    /// There is no `[[period]]` table.
    #[error("the tariff has no [[period]] tables")]
    NoPeriods,
    /// A period name is empty.
    #[error("period #{0} has an empty name")]
    EmptyName(usize),
    /// Two periods share a name, so bills could not tell them apart.
    #[error("period name {0:?} appears twice")]
    DuplicateName(String),
    /// A price is not a decimal number.
    #[error("period {period:?}: price {value:?} is not a decimal number like \"1.21567\"")]
    BadPrice {
        /// The period.
        period: String,
        /// The text found.
        value: String,
    },
    /// A price is below zero.
    #[error("period {period:?}: price {value} is negative")]
    NegativePrice {
        /// The period.
        period: String,
        /// The price.
        value: Decimal,
    },
    /// A period lists no hours.
    #[error("period {0:?} has no hours")]
    NoHours(String),
    /// An hour range is malformed.
    #[error("period {period:?}: hours {value:?} are not a range HH:MM-HH:MM (00:00 to 24:00)")]
    BadHours {
        /// The period.
        period: String,
        /// The text found.
        value: String,
    },
    /// An hour range starts and ends at the same time.
    #[error("period {period:?}: hours {range} are empty")]
    EmptyRange {
        /// The period.
        period: String,
        /// The range.
        range: HourRange,
    },
    /// Two ranges claim the same minutes.
    #[error(
        "hours {first_range} of period {first:?} and {second_range} of period {second:?} \
         overlap at {overlap}"
    )]
    Overlap {
        /// The period whose range came first in the file.
        first: String,
        /// Its range.
        first_range: HourRange,
        /// The later period.
        second: String,
        /// Its range.
        second_range: HourRange,
        /// The minutes both claim (the first contiguous stretch).
        overlap: HourRange,
    },
    /// Some minutes of the day have no period, so they would have no price.
    #[error("hours {} are not covered by any period", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Gap(Vec<HourRange>),
}

/// A half-open range of local minutes of the day, `[start, end)`; when `end <= start` it wraps
/// past midnight (`22:00-06:00`). `end` may be 1440 (`24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourRange {
    start: u16,
    end: u16,
}

impl HourRange {
    /// A range from minute `start` (0..1440) to minute `end` (0..=1440).
    pub fn new(start: u16, end: u16) -> Option<Self> {
        (start < MINUTES_PER_DAY && end <= MINUTES_PER_DAY).then_some(Self { start, end })
    }

    /// First minute of the range.
    pub fn start(self) -> u16 {
        self.start
    }

    /// End minute (exclusive).
    pub fn end(self) -> u16 {
        self.end
    }

    /// Whether minute `minute` of the day lies in the range.
    pub fn contains(self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// The minutes of the range, in order from its start (wrapping past midnight).
    fn minutes(self) -> impl Iterator<Item = u16> {
        let len = self.len();
        (0..len).map(move |offset| (self.start + offset) % MINUTES_PER_DAY)
    }

    /// Number of minutes covered.
    pub fn len(self) -> u16 {
        if self.start < self.end {
            self.end - self.start
        } else {
            MINUTES_PER_DAY - self.start + self.end
        }
    }

    /// Whether the range covers no minute (never true for a parsed tariff).
    pub fn is_empty(self) -> bool {
        self.start == self.end % MINUTES_PER_DAY && self.end != MINUTES_PER_DAY
    }

    fn parse(text: &str) -> Option<Self> {
        let (start, end) = text.trim().split_once('-')?;
        let start = parse_clock(start.trim())?;
        let end = parse_clock(end.trim())?;
        Self::new(start, end).filter(|_| start < MINUTES_PER_DAY)
    }
}

impl fmt::Display for HourRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", Clock(self.start), Clock(self.end))
    }
}

/// A minute of the day shown as `HH:MM`.
struct Clock(u16);

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// `HH:MM` with 00:00 <= value <= 24:00, as minutes.
fn parse_clock(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    let total = hours.checked_mul(60)?.checked_add(minutes)?;
    (minutes < 60 && total <= MINUTES_PER_DAY).then_some(total)
}

/// One tariff period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    name: String,
    price: Decimal,
    hours: Vec<HourRange>,
}

impl Period {
    /// The period's name, e.g. `peak`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Price per kWh, exact.
    pub fn price(&self) -> Decimal {
        self.price
    }

    /// The local hour ranges the period covers.
    pub fn hours(&self) -> &[HourRange] {
        &self.hours
    }
}

/// A validated time-of-use tariff: its periods cover the local day exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    currency: String,
    utc_offset: UtcOffset,
    periods: Vec<Period>,
    /// The index into `periods` of each local minute of the day.
    period_of_minute: Vec<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTariff {
    currency: String,
    utc_offset: Option<String>,
    #[serde(default, rename = "period")]
    periods: Vec<RawPeriod>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeriod {
    name: String,
    price: String,
    hours: Vec<String>,
}

impl Tariff {
    /// Parses and validates a tariff file's text.
    pub fn from_toml(text: &str) -> Result<Self, TariffError> {
        let raw: RawTariff =
            toml::from_str(text).map_err(|err| TariffError::Syntax(toml_error_line(text, &err)))?;
        let currency = raw.currency.trim().to_string();
        if currency.is_empty() {
            return Err(TariffError::EmptyCurrency);
        }
        let utc_offset = match raw.utc_offset {
            None => UtcOffset::UTC,
            Some(text) => parse_offset(&text).ok_or(TariffError::BadOffset(text))?,
        };
        if raw.periods.is_empty() {
            return Err(TariffError::NoPeriods);
        }
        let mut periods = Vec::with_capacity(raw.periods.len());
        for (position, raw) in raw.periods.into_iter().enumerate() {
            let name = raw.name.trim().to_string();
            if name.is_empty() {
                return Err(TariffError::EmptyName(position + 1));
            }
            if periods.iter().any(|period: &Period| period.name == name) {
                return Err(TariffError::DuplicateName(name));
            }
            let price =
                Decimal::from_str_exact(raw.price.trim()).map_err(|_| TariffError::BadPrice {
                    period: name.clone(),
                    value: raw.price.clone(),
                })?;
            if price.is_sign_negative() && !price.is_zero() {
                return Err(TariffError::NegativePrice {
                    period: name,
                    value: price,
                });
            }
            if raw.hours.is_empty() {
                return Err(TariffError::NoHours(name));
            }
            let mut hours = Vec::with_capacity(raw.hours.len());
            for text in &raw.hours {
                let range = HourRange::parse(text).ok_or_else(|| TariffError::BadHours {
                    period: name.clone(),
                    value: text.clone(),
                })?;
                if range.is_empty() {
                    return Err(TariffError::EmptyRange {
                        period: name.clone(),
                        range,
                    });
                }
                hours.push(range);
            }
            periods.push(Period { name, price, hours });
        }
        let period_of_minute = cover_day(&periods)?;
        Ok(Self {
            currency,
            utc_offset,
            periods,
            period_of_minute,
        })
    }

    /// The currency code or name prices are given in.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The offset the hours are local to.
    pub fn utc_offset(&self) -> UtcOffset {
        self.utc_offset
    }

    /// The periods in file order.
    pub fn periods(&self) -> &[Period] {
        &self.periods
    }

    /// Index of the period that covers local minute `minute` (taken modulo a day).
    pub fn period_index_at(&self, minute: u16) -> usize {
        usize::from(self.period_of_minute[usize::from(minute % MINUTES_PER_DAY)])
    }
}

/// `+HH:MM` / `-HH:MM` (also `Z`), at most 23:59 away from UTC.
fn parse_offset(text: &str) -> Option<UtcOffset> {
    let text = text.trim();
    if text == "Z" {
        return Some(UtcOffset::UTC);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1i8, &text[1..]),
        b'-' => (-1i8, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: i8 = hours.parse().ok()?;
    let minutes: i8 = minutes.parse().ok()?;
    if !(0..24).contains(&hours) || !(0..60).contains(&minutes) {
        return None;
    }
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

/// Assigns each minute of the day to its period, rejecting overlaps and gaps with the hours
/// involved, so a tariff author can see exactly which ranges to fix.
fn cover_day(periods: &[Period]) -> Result<Vec<u16>, TariffError> {
    const FREE: (u16, u16) = (u16::MAX, u16::MAX);
    let mut owner = vec![FREE; usize::from(MINUTES_PER_DAY)];
    let too_many = || TariffError::Syntax("a tariff may have at most 65534 periods".into());
    for (period_index, period) in periods.iter().enumerate() {
        let period_index = u16::try_from(period_index).map_err(|_| too_many())?;
        for (range_index, range) in period.hours.iter().enumerate() {
            let range_index = u16::try_from(range_index).map_err(|_| too_many())?;
            for minute in range.minutes() {
                let slot = &mut owner[usize::from(minute)];
                if *slot != FREE {
                    let (first_period, first_range) = *slot;
                    let first = &periods[usize::from(first_period)];
                    let first_hours = first.hours[usize::from(first_range)];
                    // The overlap runs from here while both ranges keep claiming the minutes.
                    let mut end = minute;
                    let mut steps = 0;
                    while steps < MINUTES_PER_DAY
                        && first_hours.contains(end % MINUTES_PER_DAY)
                        && range.contains(end % MINUTES_PER_DAY)
                    {
                        end += 1;
                        steps += 1;
                    }
                    let overlap = HourRange {
                        start: minute,
                        end: if end > MINUTES_PER_DAY {
                            end % MINUTES_PER_DAY
                        } else {
                            end
                        },
                    };
                    return Err(TariffError::Overlap {
                        first: first.name.clone(),
                        first_range: first_hours,
                        second: period.name.clone(),
                        second_range: *range,
                        overlap,
                    });
                }
                *slot = (period_index, range_index);
            }
        }
    }
    let mut gaps = Vec::new();
    let mut minute = 0u16;
    while minute < MINUTES_PER_DAY {
        if owner[usize::from(minute)] == FREE {
            let start = minute;
            while minute < MINUTES_PER_DAY && owner[usize::from(minute)] == FREE {
                minute += 1;
            }
            gaps.push(HourRange { start, end: minute });
        } else {
            minute += 1;
        }
    }
    if !gaps.is_empty() {
        return Err(TariffError::Gap(gaps));
    }
    Ok(owner.into_iter().map(|(period, _)| period).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHINA: &str = r#"
currency = "CNY"
utc_offset = "+08:00"
[[period]]
name = "sharp"
price = "1.21567"
hours = ["19:00-22:00"]
[[period]]
name = "peak"
price = "1.14460"
hours = ["15:00-19:00", "08:00-11:00"]
[[period]]
name = "flat"
price = "0.64370"
hours = ["11:00-15:00", "07:00-08:00", "22:00-23:00"]
[[period]]
name = "valley"
price = "0.30820"
hours = ["23:00-07:00"]
"#;

    fn minute(clock: &str) -> u16 {
        parse_clock(clock).unwrap()
    }

    #[test]
    fn parses_prices_exactly_and_maps_minutes_to_periods() {
        let tariff = Tariff::from_toml(CHINA).unwrap();
        assert_eq!(tariff.currency(), "CNY");
        assert_eq!(tariff.utc_offset(), UtcOffset::from_hms(8, 0, 0).unwrap());
        assert_eq!(tariff.periods()[0].price().to_string(), "1.21567");
        let name = |clock| tariff.periods()[tariff.period_index_at(minute(clock))].name();
        assert_eq!(name("00:00"), "valley");
        assert_eq!(name("06:59"), "valley");
        assert_eq!(name("07:00"), "flat");
        assert_eq!(name("08:00"), "peak");
        assert_eq!(name("18:59"), "peak");
        assert_eq!(name("19:00"), "sharp");
        assert_eq!(name("21:59"), "sharp");
        assert_eq!(name("22:00"), "flat");
        assert_eq!(name("23:59"), "valley");
    }

    #[test]
    fn default_offset_is_utc_and_24_00_closes_the_day() {
        let tariff = Tariff::from_toml(
            "currency = \"EUR\"\n[[period]]\nname = \"all\"\nprice = \"0.3\"\nhours = [\"00:00-24:00\"]\n",
        )
        .unwrap();
        assert_eq!(tariff.utc_offset(), UtcOffset::UTC);
        assert_eq!(tariff.period_index_at(minute("23:59")), 0);
    }

    #[test]
    fn overlap_is_rejected_naming_both_ranges_and_the_shared_hours() {
        let text = CHINA.replace("\"15:00-19:00\"", "\"14:00-19:00\"");
        let err = Tariff::from_toml(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hours 14:00-19:00 of period \"peak\" and 11:00-15:00 of period \"flat\" \
             overlap at 14:00-15:00"
        );
    }

    #[test]
    fn gaps_are_rejected_listing_every_uncovered_stretch() {
        let text = CHINA
            .replace("\"23:00-07:00\"", "\"00:00-06:00\"")
            .replace("\"22:00-23:00\"", "\"22:00-22:30\"");
        let err = Tariff::from_toml(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hours 06:00-07:00, 22:30-24:00 are not covered by any period"
        );
    }

    #[test]
    fn wrapping_ranges_and_overlap_across_midnight() {
        let text = "currency = \"X\"\n[[period]]\nname = \"night\"\nprice = \"1\"\nhours = [\"22:00-06:00\"]\n\
                    [[period]]\nname = \"day\"\nprice = \"2\"\nhours = [\"05:00-22:00\"]\n";
        let err = Tariff::from_toml(text).unwrap_err();
        assert!(err.to_string().ends_with("overlap at 05:00-06:00"), "{err}");
    }

    #[test]
    fn malformed_fields_are_named() {
        let cases = [
            (CHINA.replace("\"1.21567\"", "\"1,2\""), "price \"1,2\""),
            (CHINA.replace("\"1.21567\"", "1.21567"), "line 6"),
            (
                CHINA.replace("\"19:00-22:00\"", "\"19:00-25:00\""),
                "19:00-25:00",
            ),
            (
                CHINA.replace("\"19:00-22:00\"", "\"19:00-19:00\""),
                "are empty",
            ),
            (CHINA.replace("+08:00", "8h"), "utc_offset \"8h\""),
            (CHINA.replace("\"1.21567\"", "\"-1\""), "negative"),
            (
                CHINA.replace("name = \"peak\"", "name = \"sharp\""),
                "appears twice",
            ),
            (CHINA.replace("currency", "curency"), "line 2"),
        ];
        for (text, expected) in cases {
            let err = Tariff::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
            assert!(!err.contains('\n'), "{err:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,200}") {
            let _ = Tariff::from_toml(&text);
        }

        #[test]
        fn any_cut_of_the_day_into_ranges_parses(cuts in proptest::collection::btree_set(1u16..1440, 0..8)) {
            let mut bounds = vec![0u16];
            bounds.extend(cuts);
            bounds.push(1440);
            let mut text = String::from("currency = \"X\"\n");
            for (index, pair) in bounds.windows(2).enumerate() {
                let range = HourRange { start: pair[0], end: pair[1] };
                text.push_str(&format!(
                    "[[period]]\nname = \"p{index}\"\nprice = \"{index}.5\"\nhours = [\"{range}\"]\n"
                ));
            }
            let tariff = Tariff::from_toml(&text).unwrap();
            for (index, pair) in bounds.windows(2).enumerate() {
                proptest::prop_assert_eq!(tariff.period_index_at(pair[0]), index);
                proptest::prop_assert_eq!(tariff.period_index_at(pair[1] - 1), index);
            }
        }
    }
}
