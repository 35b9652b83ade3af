//! The columnar engine against the straightforward reference on logs the fuzzer composes:
//! for every input both must give the same rounds, the same reject counts and positions and
//! the same frames kept, whatever the thread count, morsel size, group budget, regrouping or
//! windows, and neither may panic.
//!
//! A log whose frames are random bytes is nearly all bad CRCs, which the `log_reader` target
//! covers; the rules between frames (duplicates, resends, late and stray frames, rounds spread
//! over morsels and files) are only reached by frames that pass the checks. So the input
//! describes frames (8 bytes each), which are written with correct CRCs, and the bytes left
//! over flip bits of the written logs afterwards.
//!
//! Input: byte 0 picks the settings, byte 1 the morsel size, then 8 bytes a frame: kind, net,
//! client, round, timestamp (2 bytes), lane value (2 bytes); the last `len % 8` bytes are
//! (position, mask) pairs of damage.
#![no_main]

use std::path::PathBuf;

use engine::KeyGraph;
use ingest::batch::{BatchOutcome, aggregate_files};
use ingest::pipeline::{PipelineOptions, Progress, aggregate_files_columnar};
use ingest::{AggregateOptions, Frame, LogWriter, Nets, Notification};
use libfuzzer_sys::fuzz_target;

const CLIENTS: u32 = 20;
const EPOCH: u64 = 5_000;
const PERIOD: u64 = 1_000;

/// Two nets of 20 clients each (ids 10 i + net), every client keyed with the next two.
fn nets() -> Nets {
    let mut nets = Nets::new();
    for net in 1..=2u32 {
        let id = |i: u32| 10 * (i % CLIENTS) + net;
        let edges = (0..CLIENTS).flat_map(|i| [(id(i), id(i + 1)), (id(i), id(i + 2))]);
        nets.insert(
            net,
            KeyGraph::from_edges(net, edges).expect("a ring is a key graph"),
        );
    }
    nets
}

fn frame(bytes: &[u8], lanes: usize) -> Frame {
    let [kind, net, client, round, t0, t1, v0, v1] = bytes.try_into().expect("8 bytes");
    let round = u32::from(round % 4);
    let value = u64::from(u16::from_le_bytes([v0, v1]));
    Frame {
        // Mostly transmits and resends, sometimes a control frame.
        notification: match kind % 8 {
            0..=3 => Notification::Transmit,
            4..=5 => Notification::Resend,
            k => Notification::ALL[usize::from(k - 6)],
        },
        transmission: kind & 0x08 == 0,
        // Net 3 and clients 20..23 are unknown.
        dc_net_id: u32::from(net % 3) + 1,
        client_id: 10 * u32::from(client % 24) + u32::from(net % 3) + 1,
        round,
        // From the round's start to well past its deadline.
        timestamp_ms: EPOCH
            + u64::from(round) * PERIOD
            + u64::from(u16::from_le_bytes([t0, t1])) % 3_000,
        lanes: (0..lanes as u64)
            .map(|l| value.rotate_left(13 * l as u32))
            .collect(),
    }
}

fn same(reference: &BatchOutcome, columnar: &BatchOutcome) {
    assert_eq!(columnar.lanes, reference.lanes);
    assert_eq!(columnar.report.rounds, reference.report.rounds);
    assert_eq!(columnar.report.counts, reference.report.counts);
    assert_eq!(
        columnar.report.rejects.to_vec().expect("rejects in memory"),
        reference
            .report
            .rejects
            .to_vec()
            .expect("rejects in memory")
    );
    assert_eq!(columnar.report.frames_kept, reference.report.frames_kept);
}

fuzz_target!(|data: &[u8]| {
    let Some((&[settings, morsel], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let lanes = if settings & 0x80 != 0 { 2 } else { 1 };
    let (described, damage) = rest.split_at(rest.len() / 8 * 8);
    let frames: Vec<Frame> = described.chunks_exact(8).map(|b| frame(b, lanes)).collect();
    // One log, or two with the frames dealt out alternately.
    let files = if settings & 0x40 != 0 { 2 } else { 1 };
    let mut logs = Vec::new();
    for file in 0..files {
        let mut writer = LogWriter::new(Vec::new(), lanes as u8, 0).expect("a log in memory");
        for frame in frames.iter().skip(file).step_by(files) {
            writer.write_frame(frame).expect("a log in memory");
        }
        logs.push(writer.finish().expect("a log in memory"));
    }
    for pair in damage.chunks_exact(2) {
        let log = &mut logs[usize::from(pair[0]) % files];
        let at = usize::from(pair[0]) * 7 % log.len();
        log[at] ^= pair[1];
    }
    let dir = std::env::temp_dir();
    let paths: Vec<PathBuf> = (0..files)
        .map(|file| dir.join(format!("dcnet-fuzz-{}-{file}.dclog", std::process::id())))
        .collect();
    for (path, log) in paths.iter().zip(&logs) {
        std::fs::write(path, log).expect("a temporary file");
    }

    let nets = nets();
    let options = AggregateOptions {
        epoch_ms: EPOCH,
        period_ms: PERIOD,
        deadline_ms: (settings & 0x01 != 0).then_some(200),
        ..AggregateOptions::default()
    };
    let pipeline = PipelineOptions {
        threads: 1 + usize::from(settings & 0x02 != 0),
        morsel_frames: usize::from(morsel % 16) + 1,
        collect_rejects: true,
        // A budget this small settles rounds early, to be read again at the end.
        group_budget: if settings & 0x04 != 0 { 1 } else { 64 << 20 },
        regroup_below: [0, 4, 32, 1_000][usize::from(settings >> 3 & 0x03)],
        window_morsels: [0, 1, 4, 256]
            [usize::from(settings >> 5 & 0x01) * 2 + usize::from(morsel >> 7)],
        ..PipelineOptions::default()
    };
    let reference = aggregate_files(&paths, &nets, options);
    let columnar = aggregate_files_columnar(&paths, &nets, options, pipeline, &Progress::default());
    match (reference, columnar) {
        (Ok(reference), Ok(columnar)) => same(&reference, &columnar),
        (Err(_), Err(_)) => {}
        (reference, columnar) => panic!(
            "one engine failed: reference {:?}, columnar {:?}",
            reference.err(),
            columnar.err()
        ),
    }
    for path in &paths {
        let _ = std::fs::remove_file(path);
    }
});
