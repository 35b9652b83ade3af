//! Audit log lines: any text is a parsed entry or an error naming the line, and a chain of
//! arbitrary lines verifies or names its first bad entry, never panics.
#![no_main]

use engine::protocol::audit::{parse_entry, verify_chain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (index, line) in text.lines().enumerate() {
        let _ = parse_entry(line, index + 1);
    }
    let _ = verify_chain(text.lines(), None);
});
