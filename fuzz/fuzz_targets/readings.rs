//! Readings CSV, then billing under a fixed tariff: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

const TARIFF: &str = "currency = \"X\"\nutc_offset = \"+05:45\"\n\
    [[period]]\nname = \"a\"\nprice = \"0.123\"\nhours = [\"07:00-19:30\"]\n\
    [[period]]\nname = \"b\"\nprice = \"9.5\"\nhours = [\"19:30-07:00\"]\n";

fuzz_target!(|data: &[u8]| {
    let Ok(readings) = lock::billing::parse_readings(data) else {
        return;
    };
    let Ok(tariff) = lock::Tariff::from_toml(TARIFF) else {
        return;
    };
    for interval in [60, 900, 3600] {
        let _ = lock::billing::bill(&tariff, &readings, interval);
    }
    let _ = lock::billing::infer_interval(&readings);
});
