//! Every file of the program lock: identities, lock records, share files, requests and
//! approvals parse to a typed value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = lock::SecretIdentity::from_toml(text);
    let _ = lock::PublicIdentity::from_toml(text);
    let _ = lock::LockRecord::from_toml(text);
    let _ = lock::ShareEnvelope::from_toml(text);
    let _ = lock::Request::from_toml(text);
    let _ = lock::Approval::from_toml(text);
    if let Ok(p) = text.parse::<lock::Probability>() {
        let _ = lock::security::security_degrees(20, &p);
    }
});
