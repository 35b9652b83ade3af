//! The log reader against damaged input: no panic, correct counts, and every valid frame
//! still aggregated.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use engine::KeyGraph;
use ingest::batch::aggregate_files;
use ingest::{
    AggregateOptions, Frame, FrameScanner, LogWriter, Notification, RejectReason, RoundStatus,
};
use proptest::prelude::*;

const LANES: u8 = 2;
const FRAME_LEN: usize = 32 + 8 * LANES as usize;

/// Net 1: clients 1..=4 in a 4-cycle. The frames carry plain readings `client · 10 + round`:
/// with nobody missing no resends are needed, and the sum is easy to compute by hand.
fn nets() -> ingest::Nets {
    BTreeMap::from([(
        1,
        KeyGraph::from_edges(1, [(1, 2), (2, 3), (3, 4), (1, 4)]).unwrap(),
    )])
}

fn frame(client: u32, round: u32) -> Frame {
    Frame {
        notification: Notification::Transmit,
        transmission: true,
        dc_net_id: 1,
        client_id: client,
        round,
        timestamp_ms: 1_700_000_000_000,
        lanes: vec![u64::from(client * 10 + round), 1],
    }
}

/// A log of `rounds` rounds of clients 1..=4, in round order.
fn log(rounds: u32) -> Vec<u8> {
    let mut writer = LogWriter::new(Vec::new(), LANES, 0).unwrap();
    for round in 0..rounds {
        for client in 1..=4 {
            writer.write_frame(&frame(client, round)).unwrap();
        }
    }
    writer.finish().unwrap()
}

fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

fn valid_frames(bytes: &[u8]) -> usize {
    FrameScanner::new(bytes)
        .map(|s| s.filter(|x| x.frame.is_ok()).count())
        .unwrap_or(0)
}

#[test]
fn truncated_log_counts_every_whole_frame_and_reports_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = log(3);
    let path = write_temp(&dir, "t.dclog", &bytes[..bytes.len() - 10]);
    let outcome = aggregate_files(&[path], &nets(), AggregateOptions::default()).unwrap();
    let report = outcome.report;
    assert_eq!(report.counts.get(RejectReason::Truncated), 1);
    assert_eq!(report.counts.total(), 1);
    // Round 2 lost client 4's frame: client 4 is missing, so neighbours 1 and 3 needed resends.
    assert_eq!(report.rounds[2].status, RoundStatus::Unrecoverable);
    // Rounds 0 and 1 are whole: sum of client·10 + round over 1..=4 = 100 + 4·round.
    assert_eq!(report.rounds[0].sum, Some(vec![100, 4]));
    assert_eq!(report.rounds[1].sum, Some(vec![104, 4]));
    let tail = report
        .rejects
        .in_memory()
        .unwrap()
        .iter()
        .find(|r| r.reason == RejectReason::Truncated)
        .unwrap();
    assert_eq!(tail.source.offset, (64 + 11 * FRAME_LEN) as u64);
}

#[test]
fn flipped_bits_reject_exactly_the_damaged_frames() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = log(4);
    // Damage frames 1 (data), 6 (header field: round) and 7 (CRC field): three rejects.
    bytes[64 + FRAME_LEN + 40] ^= 0x10;
    bytes[64 + 6 * FRAME_LEN + 16] ^= 0x01;
    bytes[64 + 7 * FRAME_LEN + 21] ^= 0x80;
    let path = write_temp(&dir, "f.dclog", &bytes);
    let report = aggregate_files(&[path], &nets(), AggregateOptions::default())
        .unwrap()
        .report;
    assert_eq!(report.counts.get(RejectReason::CrcMismatch), 3);
    assert_eq!(report.counts.total(), 3);
    assert_eq!(report.frames_kept, 13);
    let offsets: Vec<u64> = report
        .rejects
        .to_vec()
        .unwrap()
        .iter()
        .map(|r| r.source.offset)
        .collect();
    assert_eq!(
        offsets,
        vec![
            (64 + FRAME_LEN) as u64,
            (64 + 6 * FRAME_LEN) as u64,
            (64 + 7 * FRAME_LEN) as u64
        ]
    );
    // Rounds 2 and 3 are untouched: 100 + 4·round.
    assert_eq!(report.rounds[2].sum, Some(vec![108, 4]));
    assert_eq!(report.rounds[3].sum, Some(vec![112, 4]));
}

#[test]
fn wrong_header_and_empty_file_are_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = log(1);
    bad[..8].copy_from_slice(b"NOTALOG!");
    let bad = write_temp(&dir, "bad.dclog", &bad);
    let empty = write_temp(&dir, "empty.dclog", &[]);
    let good = write_temp(&dir, "good.dclog", &log(1));
    let outcome = aggregate_files(
        &[bad.clone(), empty, good],
        &nets(),
        AggregateOptions::default(),
    )
    .unwrap();
    let errors: Vec<String> = outcome
        .files
        .iter()
        .filter_map(|f| f.error.clone())
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0].contains("bad.dclog") && errors[0].contains("not a dcnet round log"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("empty.dclog") && errors[1].contains("empty file"),
        "{}",
        errors[1]
    );
    assert_eq!(outcome.report.rounds[0].sum, Some(vec![100, 4]));
    let only_bad = aggregate_files(&[bad], &nets(), AggregateOptions::default()).unwrap_err();
    assert!(
        only_bad.to_string().contains("no readable round log"),
        "{only_bad}"
    );
}

#[test]
fn frames_of_another_lane_count_are_rejected_and_the_rest_counts() {
    let mut bytes = log(1);
    let mut odd = frame(2, 0);
    odd.lanes = vec![5, 6, 7];
    let at = 64 + FRAME_LEN;
    bytes.splice(at..at, odd.to_bytes().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "lanes.dclog", &bytes);
    let report = aggregate_files(&[path], &nets(), AggregateOptions::default())
        .unwrap()
        .report;
    assert_eq!(report.counts.get(RejectReason::BadLanes), 1);
    assert_eq!(report.counts.total(), 1);
    assert_eq!(report.rounds[0].sum, Some(vec![100, 4]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        if let Ok(scanner) = FrameScanner::new(&bytes) {
            let consumed: usize = scanner.map(|s| s.len).sum();
            prop_assert_eq!(consumed, bytes.len() - 64);
        }
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut bytes = log(0);
        bytes.extend(tail);
        let consumed: usize = FrameScanner::new(&bytes).unwrap().map(|s| s.len).sum();
        prop_assert_eq!(consumed, bytes.len() - 64);
    }

    #[test]
    fn corruption_never_costs_an_undamaged_frame(
        flips in proptest::collection::vec((0usize..16 * FRAME_LEN, 0u8..8), 1..6)
    ) {
        let original = log(4);
        let mut bytes = original.clone();
        for (at, bit) in flips {
            bytes[64 + at] ^= 1 << bit;
        }
        // A bit flipped twice is restored: a frame is damaged only if its bytes differ.
        let damaged: Vec<usize> = (0..16)
            .filter(|i| {
                let range = 64 + i * FRAME_LEN..64 + (i + 1) * FRAME_LEN;
                bytes[range.clone()] != original[range]
            })
            .collect();
        // Every frame whose bytes were not touched is still found.
        let undamaged = 16 - damaged.len();
        prop_assert!(valid_frames(&bytes) >= undamaged);
        let items: Vec<_> = FrameScanner::new(&bytes).unwrap().collect();
        prop_assert_eq!(items.iter().filter(|s| s.frame.is_err()).count(), damaged.len());
        let consumed: usize = items.iter().map(|s| s.len).sum();
        prop_assert_eq!(consumed, bytes.len() - 64);
    }
}
