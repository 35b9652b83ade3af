//! Billing a meter's readings under a time-of-use tariff, exactly.
//!
//! Readings are CSV `start,wh`: the start of each metering interval in RFC 3339 and the energy
//! in Wh consumed during it. Every interval must lie inside one tariff period; an interval that
//! crosses a period boundary could only be split by guessing how the energy was spread, and a
//! guess is not a bill, so it is refused with the boundary named. All arithmetic is decimal
//! and exact: amounts that cannot be represented exactly are an error, never rounded.

use std::collections::BTreeMap;
use std::io::Read;

use rust_decimal::Decimal;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::tariff::{MINUTES_PER_DAY, Tariff};

/// Seconds in a day; the interval length must divide it.
pub const SECONDS_PER_DAY: u32 = 86_400;

/// Why readings could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadingsError {
    /// The CSV layer failed (bad quoting, wrong field count, I/O).
    #[error("line {line}: {message}")]
    Csv {
        /// 1-based line.
        line: u64,
        /// What the CSV reader reported.
        message: String,
    },
    /// The header row is not `start,wh`.
    #[error("line 1: header must be `start,wh`, found `{0}`")]
    Header(String),
    /// A start is not RFC 3339.
    #[error(
        "line {line}: start {value:?} is not an RFC 3339 timestamp like 2024-05-01T19:00:00+08:00"
    )]
    BadStart {
        /// 1-based line.
        line: u64,
        /// The text found.
        value: String,
    },
    /// An energy value is not a non-negative decimal.
    #[error("line {line}: wh {value:?} is not a non-negative decimal number of watt-hours")]
    BadEnergy {
        /// 1-based line.
        line: u64,
        /// The text found.
        value: String,
    },
    /// Two readings claim the same interval.
    #[error("line {line}: a reading for {start} already appeared on line {first_line}")]
    Duplicate {
        /// 1-based line of the repeat.
        line: u64,
        /// 1-based line of the first.
        first_line: u64,
        /// The start both give.
        start: String,
    },
}

/// Why a bill could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BillingError {
    /// The interval length cannot be inferred from fewer than two readings.
    #[error("cannot infer the interval length from fewer than two readings; give it explicitly")]
    IntervalUnknown,
    /// The interval length does not divide the day.
    #[error("interval of {0} s does not divide the day (86400 s)")]
    IntervalNotDividingDay(u32),
    /// A reading's interval crosses from one period into another.
    #[error(
        "line {line}: the interval starting {start} runs {from} into {to} at {boundary} local \
         time; bill it with readings of a shorter interval"
    )]
    CrossesBoundary {
        /// 1-based line of the reading.
        line: u64,
        /// Its start as written.
        start: String,
        /// Period at the start.
        from: String,
        /// Period it runs into.
        to: String,
        /// Local `HH:MM` of the boundary.
        boundary: String,
    },
    /// Two readings overlap: the second starts before the first's interval ends.
    #[error("line {line}: the interval starting {start} overlaps the one on line {previous_line}")]
    Overlapping {
        /// 1-based line of the later reading.
        line: u64,
        /// Its start as written.
        start: String,
        /// The earlier reading's line.
        previous_line: u64,
    },
    /// An amount outgrew exact decimal arithmetic (28 significant digits).
    #[error("amounts too large to compute exactly")]
    Overflow,
    /// The two tariffs of a comparison price in different currencies.
    #[error("the tariffs use different currencies ({0} and {1}); a bill difference needs one")]
    CurrencyMismatch(String, String),
}

/// One metering interval's energy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Start of the interval.
    pub start: OffsetDateTime,
    /// Energy during the interval in Wh, exact.
    pub wh: Decimal,
    /// 1-based CSV line the reading came from, for errors.
    pub line: u64,
}

/// Parses readings CSV (`start,wh` header, then one row per interval).
pub fn parse_readings(input: impl Read) -> Result<Vec<Reading>, ReadingsError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let csv_error = |err: csv::Error| ReadingsError::Csv {
        line: err.position().map_or(0, csv::Position::line),
        message: err.to_string(),
    };
    let header = reader.headers().map_err(csv_error)?.clone();
    if header.len() != 2 || &header[0] != "start" || &header[1] != "wh" {
        return Err(ReadingsError::Header(
            header.iter().collect::<Vec<_>>().join(","),
        ));
    }
    let mut readings = Vec::new();
    let mut seen = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, csv::Position::line);
        let start_text = &record[0];
        let start =
            OffsetDateTime::parse(start_text, &Rfc3339).map_err(|_| ReadingsError::BadStart {
                line,
                value: start_text.to_string(),
            })?;
        let wh = Decimal::from_str_exact(&record[1])
            .ok()
            .filter(|wh| !wh.is_sign_negative() || wh.is_zero())
            .ok_or_else(|| ReadingsError::BadEnergy {
                line,
                value: record[1].to_string(),
            })?;
        if let Some(first_line) = seen.insert(start, line) {
            return Err(ReadingsError::Duplicate {
                line,
                first_line,
                start: start_text.to_string(),
            });
        }
        readings.push(Reading { start, wh, line });
    }
    Ok(readings)
}

/// The interval length in seconds: the smallest gap between consecutive starts.
pub fn infer_interval(readings: &[Reading]) -> Result<u32, BillingError> {
    let mut starts: Vec<OffsetDateTime> = readings.iter().map(|r| r.start).collect();
    starts.sort_unstable();
    starts
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).whole_seconds())
        .filter(|gap| *gap > 0)
        .min()
        .map(|gap| u32::try_from(gap).unwrap_or(u32::MAX))
        .ok_or(BillingError::IntervalUnknown)
}

/// Energy and cost of one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodLine {
    /// Period name.
    pub name: String,
    /// Price per kWh.
    pub price: Decimal,
    /// Energy in kWh, exact.
    pub kwh: Decimal,
    /// `price * kwh`, exact.
    pub cost: Decimal,
}

/// A bill: per-period lines in tariff order and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    /// Currency of the costs.
    pub currency: String,
    /// One line per tariff period, including periods with no consumption.
    pub periods: Vec<PeriodLine>,
    /// Total energy in kWh.
    pub total_kwh: Decimal,
    /// Total cost.
    pub total: Decimal,
}

/// Bills `readings` (each covering `interval` seconds) under `tariff`.
pub fn bill(tariff: &Tariff, readings: &[Reading], interval: u32) -> Result<Bill, BillingError> {
    let periods = classify(tariff, readings, interval)?;
    let mut wh = vec![Decimal::ZERO; tariff.periods().len()];
    for (reading, period) in readings.iter().zip(&periods) {
        wh[*period] = exact_add(wh[*period], reading.wh)?;
    }
    let mut lines = Vec::with_capacity(wh.len());
    let mut total_kwh = Decimal::ZERO;
    let mut total = Decimal::ZERO;
    for (period, wh) in tariff.periods().iter().zip(wh) {
        let kwh = wh_to_kwh(wh)?;
        let cost = exact_mul(period.price(), kwh)?;
        total_kwh = exact_add(total_kwh, kwh)?;
        total = exact_add(total, cost)?;
        lines.push(PeriodLine {
            name: period.name().to_string(),
            price: period.price(),
            kwh: kwh.normalize(),
            cost: cost.normalize(),
        });
    }
    Ok(Bill {
        currency: tariff.currency().to_string(),
        periods: lines,
        total_kwh: total_kwh.normalize(),
        total: total.normalize(),
    })
}

/// Energy that a change of tariff moves from one period name to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Period under the old tariff.
    pub from: String,
    /// Period under the new tariff.
    pub to: String,
    /// Energy moved, kWh.
    pub kwh: Decimal,
}

/// The same readings billed under two tariffs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillDiff {
    /// Bill under the old tariff.
    pub before: Bill,
    /// Bill under the new tariff.
    pub after: Bill,
    /// Energy whose period name changes, largest first.
    pub moved: Vec<Moved>,
    /// `after.total - before.total`: what the customer pays more (the provider gains) when
    /// positive, what the customer saves when negative.
    pub change: Decimal,
}

/// Bills `readings` under `before` and `after` and shows where energy moved between periods.
pub fn diff(
    before: &Tariff,
    after: &Tariff,
    readings: &[Reading],
    interval: u32,
) -> Result<BillDiff, BillingError> {
    if before.currency() != after.currency() {
        return Err(BillingError::CurrencyMismatch(
            before.currency().to_string(),
            after.currency().to_string(),
        ));
    }
    let old_periods = classify(before, readings, interval)?;
    let new_periods = classify(after, readings, interval)?;
    let mut moved: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for ((reading, old), new) in readings.iter().zip(old_periods).zip(new_periods) {
        let from = before.periods()[old].name();
        let to = after.periods()[new].name();
        if from != to {
            let slot = moved
                .entry((from.to_string(), to.to_string()))
                .or_insert(Decimal::ZERO);
            *slot = exact_add(*slot, reading.wh)?;
        }
    }
    let mut moved = moved
        .into_iter()
        .map(|((from, to), wh)| {
            Ok(Moved {
                from,
                to,
                kwh: wh_to_kwh(wh)?.normalize(),
            })
        })
        .collect::<Result<Vec<_>, BillingError>>()?;
    moved.sort_by_key(|moved| std::cmp::Reverse(moved.kwh));
    let before_bill = bill(before, readings, interval)?;
    let after_bill = bill(after, readings, interval)?;
    let change = exact_add(after_bill.total, -before_bill.total)?.normalize();
    Ok(BillDiff {
        before: before_bill,
        after: after_bill,
        moved,
        change,
    })
}

/// The period index of every reading, checking the interval and that no interval crosses a
/// period boundary or overlaps the next.
fn classify(
    tariff: &Tariff,
    readings: &[Reading],
    interval: u32,
) -> Result<Vec<usize>, BillingError> {
    if interval == 0 || !SECONDS_PER_DAY.is_multiple_of(interval) {
        return Err(BillingError::IntervalNotDividingDay(interval));
    }
    let mut order: Vec<&Reading> = readings.iter().collect();
    order.sort_unstable_by_key(|reading| reading.start);
    for pair in order.windows(2) {
        if (pair[1].start - pair[0].start).whole_seconds() < i64::from(interval) {
            return Err(BillingError::Overlapping {
                line: pair[1].line,
                start: show(pair[1].start),
                previous_line: pair[0].line,
            });
        }
    }
    let offset = tariff.utc_offset();
    readings
        .iter()
        .map(|reading| {
            let local = reading.start.to_offset(offset);
            let second_of_day = u32::from(local.hour()) * 3600
                + u32::from(local.minute()) * 60
                + u32::from(local.second());
            let first_minute = second_of_day / 60;
            // The last minute the interval touches (the interval is half-open).
            let last_minute = (second_of_day + interval - 1) / 60;
            let period = tariff.period_index_at(minute_of_day(first_minute));
            for minute in first_minute + 1..=last_minute {
                let next = tariff.period_index_at(minute_of_day(minute));
                if next != period {
                    let boundary = minute_of_day(minute);
                    return Err(BillingError::CrossesBoundary {
                        line: reading.line,
                        start: show(reading.start),
                        from: tariff.periods()[period].name().to_string(),
                        to: tariff.periods()[next].name().to_string(),
                        boundary: format!("{:02}:{:02}", boundary / 60, boundary % 60),
                    });
                }
            }
            Ok(period)
        })
        .collect()
}

fn minute_of_day(minute: u32) -> u16 {
    // `minute % 1440` is below 1440, so it fits.
    u16::try_from(minute % u32::from(MINUTES_PER_DAY)).unwrap_or(0)
}

fn show(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

/// Wh to kWh: a shift of the decimal point, exact.
fn wh_to_kwh(wh: Decimal) -> Result<Decimal, BillingError> {
    exact(wh.mantissa(), wh.scale() + 3)
}

/// `a + b` exactly, or an error where `Decimal` would round.
///
/// `rust_decimal` rounds silently when a sum or product needs more than 28 digits; a bill must
/// never be rounded behind the reader's back, so both operations go through `i128` and are
/// checked.
pub fn exact_add(a: Decimal, b: Decimal) -> Result<Decimal, BillingError> {
    let scale = a.scale().max(b.scale());
    let widen = |d: Decimal| -> Result<i128, BillingError> {
        10i128
            .checked_pow(scale - d.scale())
            .and_then(|factor| d.mantissa().checked_mul(factor))
            .ok_or(BillingError::Overflow)
    };
    let sum = widen(a)?
        .checked_add(widen(b)?)
        .ok_or(BillingError::Overflow)?;
    exact(sum, scale)
}

/// `a * b` exactly, or an error where `Decimal` would round.
pub fn exact_mul(a: Decimal, b: Decimal) -> Result<Decimal, BillingError> {
    let product = a
        .mantissa()
        .checked_mul(b.mantissa())
        .ok_or(BillingError::Overflow)?;
    exact(product, a.scale() + b.scale())
}

/// A decimal from mantissa and scale, dropping trailing zeros only when needed to fit.
fn exact(mut mantissa: i128, mut scale: u32) -> Result<Decimal, BillingError> {
    loop {
        if let Ok(value) = Decimal::try_from_i128_with_scale(mantissa, scale) {
            return Ok(value);
        }
        if scale == 0 || mantissa % 10 != 0 {
            return Err(BillingError::Overflow);
        }
        mantissa /= 10;
        scale -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// Two periods: day 07:00-19:00 at 0.25 and night at 0.1 (UTC+01:00 hours).
    const DAY_NIGHT: &str = r#"
currency = "EUR"
utc_offset = "+01:00"
[[period]]
name = "day"
price = "0.25"
hours = ["07:00-19:00"]
[[period]]
name = "night"
price = "0.1"
hours = ["19:00-07:00"]
"#;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn readings(csv: &str) -> Vec<Reading> {
        parse_readings(csv.as_bytes()).unwrap()
    }

    #[test]
    fn consumption_straddling_a_boundary_is_billed_per_interval() {
        // A 1.5 kWh load from 18:30 to 19:30 local (17:30-18:30 UTC), metered every 15 min:
        // 18:30 and 18:45 fall in "day", 19:00 and 19:15 in "night".
        // Hand computation: day 0.4 + 0.35 = 0.75 kWh * 0.25 = 0.1875;
        // night 0.4 + 0.35 = 0.75 kWh * 0.1 = 0.075; total 0.2625 EUR.
        let csv = "start,wh\n\
                   2024-03-01T17:30:00Z,400\n\
                   2024-03-01T17:45:00Z,350\n\
                   2024-03-01T18:00:00Z,400\n\
                   2024-03-01T18:15:00Z,350\n";
        let tariff = Tariff::from_toml(DAY_NIGHT).unwrap();
        let readings = readings(csv);
        let interval = infer_interval(&readings).unwrap();
        assert_eq!(interval, 900);
        let bill = bill(&tariff, &readings, interval).unwrap();
        assert_eq!(bill.periods[0].kwh, dec("0.75"));
        assert_eq!(bill.periods[0].cost, dec("0.1875"));
        assert_eq!(bill.periods[1].kwh, dec("0.75"));
        assert_eq!(bill.periods[1].cost, dec("0.075"));
        assert_eq!(bill.total_kwh, dec("1.5"));
        assert_eq!(bill.total, dec("0.2625"));
    }

    #[test]
    fn offsets_in_readings_are_converted_to_tariff_local_time() {
        // 18:00+00:00 is 19:00 at +01:00: night, although the UTC clock says 18:00.
        let csv = "start,wh\n2024-03-01T18:00:00+00:00,1000\n2024-03-01T21:00:00+02:00,1000\n";
        let tariff = Tariff::from_toml(DAY_NIGHT).unwrap();
        let bill = bill(&tariff, &readings(csv), 3600).unwrap();
        // 21:00+02:00 = 19:00Z = 20:00+01:00: night too.
        assert_eq!(bill.periods[1].kwh, dec("2"));
        assert_eq!(bill.total, dec("0.2"));
    }

    #[test]
    fn an_interval_crossing_a_boundary_is_refused_with_the_boundary() {
        let csv = "start,wh\n2024-03-01T17:30:00Z,400\n2024-03-01T18:30:00Z,350\n";
        let tariff = Tariff::from_toml(DAY_NIGHT).unwrap();
        let err = bill(&tariff, &readings(csv), 3600).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: the interval starting 2024-03-01T17:30:00Z runs day into night at 19:00 \
             local time; bill it with readings of a shorter interval"
        );
    }

    #[test]
    fn changing_the_period_hours_moves_energy_and_money() {
        // The provider stretches "day" to 07:00-20:00. Readings: 1 kWh at 19:00 local and
        // 2 kWh at 12:00 local, hourly. Before: night 1 kWh (0.1) + day 2 kWh (0.5) = 0.6.
        // After: day 3 kWh = 0.75. The customer pays 0.15 more; 1 kWh moved night -> day.
        let stretched = DAY_NIGHT
            .replace("07:00-19:00", "07:00-20:00")
            .replace("19:00-07:00", "20:00-07:00");
        let csv = "start,wh\n2024-03-01T18:00:00Z,1000\n2024-03-01T11:00:00Z,2000\n";
        let before = Tariff::from_toml(DAY_NIGHT).unwrap();
        let after = Tariff::from_toml(&stretched).unwrap();
        let diff = diff(&before, &after, &readings(csv), 3600).unwrap();
        assert_eq!(diff.before.total, dec("0.6"));
        assert_eq!(diff.after.total, dec("0.75"));
        assert_eq!(diff.change, dec("0.15"));
        assert_eq!(
            diff.moved,
            vec![Moved {
                from: "night".into(),
                to: "day".into(),
                kwh: dec("1")
            }]
        );
    }

    #[test]
    fn bad_rows_are_named_by_line() {
        let cases = [
            ("start,kwh\n", "line 1: header must be `start,wh`"),
            (
                "start,wh\n2024-03-01 17:30,1\n",
                "line 2: start \"2024-03-01 17:30\"",
            ),
            ("start,wh\n2024-03-01T17:30:00Z,-1\n", "line 2: wh \"-1\""),
            (
                "start,wh\n2024-03-01T17:30:00Z,1\n2024-03-01T18:30:00+01:00,2\n",
                "line 3: a reading",
            ),
            ("start,wh\n2024-03-01T17:30:00Z\n", "line 2:"),
        ];
        for (csv, expected) in cases {
            let err = parse_readings(csv.as_bytes()).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{expected:?} vs {err:?}");
        }
    }

    #[test]
    fn overlapping_intervals_and_bad_lengths_are_refused() {
        let tariff = Tariff::from_toml(DAY_NIGHT).unwrap();
        let rows = readings("start,wh\n2024-03-01T10:00:00Z,1\n2024-03-01T10:15:00Z,1\n");
        assert!(matches!(
            bill(&tariff, &rows, 3600),
            Err(BillingError::Overlapping { line: 3, .. })
        ));
        assert_eq!(
            bill(&tariff, &rows, 7 * 60),
            Err(BillingError::IntervalNotDividingDay(420))
        );
        assert_eq!(
            infer_interval(&rows[..1]),
            Err(BillingError::IntervalUnknown)
        );
    }

    #[test]
    fn exact_arithmetic_refuses_to_round() {
        let big = Decimal::from_str("79228162514264337593543950335").unwrap();
        assert_eq!(exact_add(big, Decimal::ONE), Err(BillingError::Overflow));
        let tiny = Decimal::from_str("0.000000000000001").unwrap();
        assert_eq!(exact_mul(tiny, tiny), Err(BillingError::Overflow));
        assert_eq!(exact_add(dec("0.1"), dec("0.2")).unwrap(), dec("0.3"));
        assert_eq!(
            exact_mul(dec("1.14460"), dec("0.75")).unwrap(),
            dec("0.858450")
        );
    }

    proptest::proptest! {
        #[test]
        fn readings_parser_never_panics(text in "\\PC{0,200}") {
            let _ = parse_readings(text.as_bytes());
        }

        #[test]
        fn period_costs_sum_to_the_total(whs in proptest::collection::vec(0u32..100_000, 1..96)) {
            let tariff = Tariff::from_toml(DAY_NIGHT).unwrap();
            let start = OffsetDateTime::from_unix_timestamp(1_709_251_200).unwrap();
            let rows: Vec<Reading> = whs.iter().enumerate().map(|(i, wh)| Reading {
                start: start + time::Duration::minutes(15 * i as i64),
                wh: Decimal::from(*wh),
                line: i as u64 + 2,
            }).collect();
            let bill = bill(&tariff, &rows, 900).unwrap();
            let sum: Decimal = bill.periods.iter().map(|line| line.cost).sum();
            proptest::prop_assert_eq!(sum, bill.total);
            let wh: u64 = whs.iter().map(|wh| u64::from(*wh)).sum();
            proptest::prop_assert_eq!(bill.total_kwh * Decimal::from(1000), Decimal::from(wh));
        }
    }
}
