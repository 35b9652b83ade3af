//! The BDEW H25 standard household load profile and the calendar arithmetic to look it up.
//!
//! The profile (`data/h25.csv`, see `data/README.md` for its source) gives kWh per quarter hour
//! for an annual consumption of 1,000,000 kWh, per month and day type. Simulated households and
//! simulated meters scale it to their own annual consumption. The table is compiled in, so
//! looking it up does no I/O.

use std::sync::OnceLock;

const H25_CSV: &str = include_str!("../../data/h25.csv");

/// Quarter hours in a day.
pub const QUARTERS_PER_DAY: usize = 96;
/// Seconds in one metering interval (a quarter hour).
pub const QUARTER_SECONDS: u64 = 900;

/// The day types of the BDEW profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayType {
    /// Saturday (`SA`).
    Saturday = 0,
    /// Sunday or public holiday (`FT`).
    Sunday = 1,
    /// Working day (`WT`).
    Workday = 2,
}

/// The H25 table: `[month 0..12][day type][quarter 0..96]` in thousandths of a kWh per
/// 1,000,000 kWh a year (the published values have three decimals, so this is exact).
pub struct H25 {
    milli: Box<[[[u32; QUARTERS_PER_DAY]; 3]; 12]>,
}

/// Why the embedded profile failed to parse; only a corrupted build can produce this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The table does not have the expected shape or a value is not a decimal.
    #[error("data/h25.csv line {line}: {message}")]
    Malformed { line: usize, message: String },
}

impl H25 {
    /// The embedded profile, parsed once.
    pub fn get() -> &'static H25 {
        static PROFILE: OnceLock<H25> = OnceLock::new();
        PROFILE.get_or_init(|| match Self::parse(H25_CSV) {
            Ok(profile) => profile,
            // The table is compiled in and covered by tests, so this cannot happen at run time.
            Err(error) => panic!("embedded load profile is corrupt: {error}"),
        })
    }

    /// Parses the table in the layout `scripts/fetch_h25.py` writes.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let malformed = |line: usize, message: String| ProfileError::Malformed { line, message };
        let mut lines = text.lines();
        let header = lines.next().ok_or_else(|| malformed(1, "empty".into()))?;
        let columns: Vec<(usize, usize)> = header
            .split(',')
            .skip(1)
            .map(|name| {
                let (month, day) = name
                    .split_once('-')
                    .ok_or_else(|| malformed(1, format!("column {name}")))?;
                let month: usize = month
                    .parse()
                    .map_err(|_| malformed(1, format!("column {name}")))?;
                let day = match day {
                    "SA" => 0,
                    "FT" => 1,
                    "WT" => 2,
                    _ => return Err(malformed(1, format!("column {name}"))),
                };
                if !(1..=12).contains(&month) {
                    return Err(malformed(1, format!("column {name}")));
                }
                Ok((month - 1, day))
            })
            .collect::<Result<_, _>>()?;
        if columns.len() != 36 {
            return Err(malformed(
                1,
                format!("{} columns, expected 36", columns.len()),
            ));
        }
        let mut milli = Box::new([[[0u32; QUARTERS_PER_DAY]; 3]; 12]);
        let mut quarters = 0;
        for (index, line) in lines.enumerate() {
            let line_no = index + 2;
            if index >= QUARTERS_PER_DAY {
                return Err(malformed(line_no, "more than 96 quarter hours".into()));
            }
            let values: Vec<&str> = line.split(',').skip(1).collect();
            if values.len() != columns.len() {
                return Err(malformed(
                    line_no,
                    format!("{} values, expected 36", values.len()),
                ));
            }
            for (&(month, day), value) in columns.iter().zip(values) {
                milli[month][day][index] = parse_milli(value)
                    .ok_or_else(|| malformed(line_no, format!("value {value:?}")))?;
            }
            quarters += 1;
        }
        if quarters != QUARTERS_PER_DAY {
            return Err(malformed(
                quarters + 1,
                format!("{quarters} quarter hours, expected 96"),
            ));
        }
        Ok(Self { milli })
    }

    /// Wh drawn in quarter `quarter` (0..96) of a day of `month` (1..=12) and `day_type` by a
    /// household consuming `annual_kwh` a year.
    pub fn wh(&self, month: u32, day_type: DayType, quarter: usize, annual_kwh: f64) -> f64 {
        let month = (month.clamp(1, 12) - 1) as usize;
        let milli = self.milli[month][day_type as usize][quarter % QUARTERS_PER_DAY];
        // value kWh per 1e6 kWh/a  ->  value · annual / 1e6 kWh = value · annual / 1000 Wh.
        f64::from(milli) / 1000.0 * annual_kwh / 1000.0
    }

    /// Wh drawn in the quarter hour starting at `unix_seconds` (UTC) by a household consuming
    /// `annual_kwh` a year.
    pub fn wh_at(&self, unix_seconds: u64, annual_kwh: f64) -> f64 {
        let civil = Civil::from_unix_seconds(unix_seconds);
        self.wh(civil.month, civil.day_type(), civil.quarter, annual_kwh)
    }
}

fn parse_milli(value: &str) -> Option<u32> {
    let (whole, frac) = value.trim().split_once('.').unwrap_or((value.trim(), ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let frac: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().ok()?
    };
    whole.checked_mul(1000)?.checked_add(frac)
}

/// A UTC calendar position, enough to look up a load profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month, 1..=31.
    pub day: u32,
    /// Day of the week, 0 = Monday .. 6 = Sunday.
    pub weekday: u32,
    /// Quarter hour of the day, 0..96.
    pub quarter: usize,
}

impl Civil {
    /// The calendar position of `unix_seconds` in UTC.
    pub fn from_unix_seconds(unix_seconds: u64) -> Self {
        let days = (unix_seconds / 86_400) as i64;
        let quarter = ((unix_seconds % 86_400) / QUARTER_SECONDS) as usize;
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        let weekday = ((days + 3).rem_euclid(7)) as u32;
        Self {
            year,
            month,
            day,
            weekday,
            quarter,
        }
    }

    /// The BDEW day type (public holidays are not modelled: only Sundays count as `FT`).
    pub fn day_type(&self) -> DayType {
        match self.weekday {
            5 => DayType::Saturday,
            6 => DayType::Sunday,
            _ => DayType::Workday,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_values_match_the_published_table() {
        let h25 = H25::get();
        // data/h25.csv row "00:00-00:15": January SA 22.152, FT 23.148, WT 20.126.
        assert_eq!(h25.milli[0][0][0], 22_152);
        assert_eq!(h25.milli[0][1][0], 23_148);
        assert_eq!(h25.milli[0][2][0], 20_126);
        // Row "23:45-00:00", December WT: 21.911.
        assert_eq!(h25.milli[11][2][95], 21_911);
        // 3,500 kWh a year at 22.152 kWh per 1e6 kWh: 22.152 · 3.5 = 77.532 Wh.
        assert!((h25.wh(1, DayType::Saturday, 0, 3500.0) - 77.532).abs() < 1e-9);
    }

    #[test]
    fn a_year_of_the_profile_is_about_one_gigawatt_hour() {
        // The published profile is normalised to 1,000,000 kWh a year; summed over a real
        // calendar year without holidays it must land within a few percent.
        let h25 = H25::get();
        let start = days_from_civil(2025, 1, 1) as u64 * 86_400;
        let total_wh: f64 = (0..365 * 96)
            .map(|q| h25.wh_at(start + q * 900, 1_000_000.0))
            .sum();
        let total_kwh = total_wh / 1000.0;
        assert!((total_kwh - 1_000_000.0).abs() < 30_000.0, "{total_kwh}");
    }

    #[test]
    fn calendar_conversions() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2023-11-14 22:13:20 UTC is 1,700,000,000 s: a Tuesday.
        let civil = Civil::from_unix_seconds(1_700_000_000);
        assert_eq!(
            (civil.year, civil.month, civil.day, civil.weekday),
            (2023, 11, 14, 1)
        );
        assert_eq!(civil.quarter, 22 * 4);
        for days in [-800_000i64, -1, 0, 59, 11_016, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // 2026-01-10 is a Saturday, 2026-01-11 a Sunday.
        let sat = Civil::from_unix_seconds(days_from_civil(2026, 1, 10) as u64 * 86_400);
        assert_eq!(sat.day_type(), DayType::Saturday);
        let sun = Civil::from_unix_seconds(days_from_civil(2026, 1, 11) as u64 * 86_400);
        assert_eq!(sun.day_type(), DayType::Sunday);
    }

    #[test]
    fn malformed_tables_are_errors() {
        assert!(H25::parse("").is_err());
        assert!(H25::parse("interval,01-SA\n00:00,1.0\n").is_err());
        assert!(parse_milli("1.2345").is_none());
        assert_eq!(parse_milli("1.2"), Some(1200));
    }
}
