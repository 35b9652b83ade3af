//! RTU response decoding: whatever bytes come back on the line for a register read, the bus
//! client returns exactly the registers asked for or an error, and never panics; the words it
//! returns decode under any built-in profile without panicking.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use meter_io::profile::{BUILT_IN, Function, Timing, built_in};
use meter_io::reading::{BlockWords, decode_all};
use meter_io::rtu::{LineFault, classify};
use meter_io::{Bus, ReadRequest, UnitId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let [selector, count, answer @ ..] = data else {
        return;
    };
    let function = if selector & 1 == 0 { Function::Holding } else { Function::Input };
    let count = u16::from(*count % 125) + 1;
    let profile_index = usize::from(selector >> 1) % BUILT_IN.len();
    let answer = answer.to_vec();
    // Paused time: timeouts fire as soon as both sides are idle.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (client, mut meter) = tokio::io::duplex(4096);
        let line = answer.clone();
        let _meter = tokio::spawn(async move {
            let mut request = [0u8; 8];
            if meter.read_exact(&mut request).await.is_ok() {
                let _ = meter.write_all(&line).await;
            }
            // Keep the line open and silent.
            std::future::pending::<()>().await;
        });
        let bus = Bus::spawn(client, Duration::from_micros(1750));
        let result = bus
            .read(ReadRequest {
                unit: UnitId::try_from(1).expect("unit"),
                function,
                address: 0,
                count,
                timing: Timing {
                    timeout: Duration::from_millis(100),
                    delay: Duration::ZERO,
                    recovery: Duration::ZERO,
                    retries: 0,
                },
            })
            .await;
        if let Ok(words) = result {
            assert_eq!(words.len(), usize::from(count));
            assert!(matches!(classify(1, function.code(), &answer), LineFault::Valid { .. }));
            let profile = built_in(BUILT_IN[profile_index].0).expect("built-in profile");
            let mut blocks = BlockWords::new(&profile);
            for (index, block) in profile.blocks.iter().enumerate() {
                let mut block_words = words.clone();
                block_words.resize(usize::from(block.count), 0);
                let _ = blocks.insert(&profile, index, block_words);
            }
            let _ = decode_all(&profile, &blocks);
        }
    });
});
