//! `dcnet tariff bill` and `dcnet tariff diff`: exact time-of-use bills.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result};
use lock::Tariff;
use lock::billing::{self, Bill, BillDiff, Reading};
use serde::Serialize;

use crate::cli::{ReadingsConfig, TariffBillConfig, TariffDiffConfig};
use crate::cmd::files::read_text;

/// Reads and validates a tariff file.
pub fn load_tariff(path: &Path) -> Result<Tariff> {
    let text = read_text(path, "tariff")?;
    Tariff::from_toml(&text).with_context(|| format!("tariff {}", path.display()))
}

fn load_readings(config: &ReadingsConfig) -> Result<(Vec<Reading>, u32)> {
    let path = &config.path;
    let file =
        File::open(path).with_context(|| format!("cannot read readings {}", path.display()))?;
    let readings = billing::parse_readings(BufReader::new(file))
        .with_context(|| format!("readings {}", path.display()))?;
    let interval = match config.interval {
        Some(interval) => interval,
        None => billing::infer_interval(&readings)
            .with_context(|| format!("readings {}: pass --interval", path.display()))?,
    };
    Ok((readings, interval))
}

pub fn bill(config: TariffBillConfig) -> Result<()> {
    let tariff = load_tariff(&config.tariff)?;
    let (readings, interval) = load_readings(&config.readings)?;
    let bill = billing::bill(&tariff, &readings, interval)
        .with_context(|| format!("readings {}", config.readings.path.display()))?;
    if config.readings.json {
        println!("{}", serde_json::to_string_pretty(&BillJson::from(&bill))?);
    } else {
        print!("{}", bill_table(&bill));
    }
    Ok(())
}

pub fn diff(config: TariffDiffConfig) -> Result<()> {
    let before = load_tariff(&config.before)?;
    let after = load_tariff(&config.after)?;
    let (readings, interval) = load_readings(&config.readings)?;
    let diff = billing::diff(&before, &after, &readings, interval)
        .with_context(|| format!("readings {}", config.readings.path.display()))?;
    if config.readings.json {
        let value = DiffJson {
            currency: &diff.before.currency,
            before: BillJson::from(&diff.before),
            after: BillJson::from(&diff.after),
            moved: diff
                .moved
                .iter()
                .map(|m| MovedJson {
                    from: &m.from,
                    to: &m.to,
                    kwh: m.kwh.to_string(),
                })
                .collect(),
            change: diff.change.to_string(),
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("before: {}", config.before.display());
        print!("{}", bill_table(&diff.before));
        println!("\nafter: {}", config.after.display());
        print!("{}", bill_table(&diff.after));
        println!();
        print!("{}", diff_summary(&diff));
    }
    Ok(())
}

/// `{"currency", "periods": [{"name", "kwh", "cost"}], "total"}` with exact decimal strings
/// (strings, because a JSON number would be read back as a binary float).
#[derive(Serialize)]
struct BillJson<'a> {
    currency: &'a str,
    periods: Vec<PeriodJson<'a>>,
    total: String,
}

#[derive(Serialize)]
struct PeriodJson<'a> {
    name: &'a str,
    kwh: String,
    cost: String,
}

#[derive(Serialize)]
struct MovedJson<'a> {
    from: &'a str,
    to: &'a str,
    kwh: String,
}

#[derive(Serialize)]
struct DiffJson<'a> {
    currency: &'a str,
    before: BillJson<'a>,
    after: BillJson<'a>,
    moved: Vec<MovedJson<'a>>,
    change: String,
}

impl<'a> From<&'a Bill> for BillJson<'a> {
    fn from(bill: &'a Bill) -> Self {
        Self {
            currency: &bill.currency,
            periods: bill
                .periods
                .iter()
                .map(|line| PeriodJson {
                    name: &line.name,
                    kwh: line.kwh.to_string(),
                    cost: line.cost.to_string(),
                })
                .collect(),
            total: bill.total.to_string(),
        }
    }
}

fn bill_table(bill: &Bill) -> String {
    let mut rows = vec![[
        "period".to_string(),
        "kWh".to_string(),
        "price/kWh".to_string(),
        format!("cost ({})", bill.currency),
    ]];
    for line in &bill.periods {
        rows.push([
            line.name.clone(),
            line.kwh.to_string(),
            line.price.to_string(),
            line.cost.to_string(),
        ]);
    }
    rows.push([
        "total".into(),
        bill.total_kwh.to_string(),
        String::new(),
        bill.total.to_string(),
    ]);
    let width = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2), width(3)];
    let mut out = String::new();
    for row in &rows {
        out.push_str(&format!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}\n",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        ));
    }
    out
}

fn diff_summary(diff: &BillDiff) -> String {
    let currency = &diff.before.currency;
    let mut out = String::new();
    if diff.moved.is_empty() {
        out.push_str("no energy changes period\n");
    }
    for moved in &diff.moved {
        out.push_str(&format!(
            "moved {} kWh from {} to {}\n",
            moved.kwh, moved.from, moved.to
        ));
    }
    let verdict = if diff.change.is_sign_positive() && !diff.change.is_zero() {
        format!(
            "the customer pays {} {currency} more; the provider gains it",
            diff.change
        )
    } else if diff.change.is_zero() {
        "neither side gains".to_string()
    } else {
        format!(
            "the customer pays {} {currency} less; the provider loses it",
            -diff.change
        )
    };
    out.push_str(&format!(
        "total {} -> {} {currency} (change {}{}): {verdict}\n",
        diff.before.total,
        diff.after.total,
        if diff.change.is_sign_positive() && !diff.change.is_zero() {
            "+"
        } else {
            ""
        },
        diff.change
    ));
    out
}
