//! Tariff files: any text parses to a tariff covering the day or to an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(tariff) = lock::Tariff::from_toml(text) {
        for minute in 0..lock::tariff::MINUTES_PER_DAY {
            assert!(tariff.period_index_at(minute) < tariff.periods().len());
        }
    }
});
