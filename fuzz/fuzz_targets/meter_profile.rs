//! Device profile parsing: any text is a checked profile or an error naming the problem.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meter_io::profile::Profile;
use meter_io::reading::{BlockWords, decode_all};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(profile) = Profile::from_toml("fuzz.toml", text) {
        // A checked profile decodes any block contents without panicking.
        let mut blocks = BlockWords::new(&profile);
        for (index, block) in profile.blocks.iter().enumerate() {
            let words = vec![0x8000; usize::from(block.count)];
            let _ = blocks.insert(&profile, index, words);
        }
        let _ = decode_all(&profile, &blocks);
    }
});
