//! The round-log reader on arbitrary bytes: it must never panic, must account for every byte
//! after the header, and reading the log in morsels (as the parallel pipeline does, each morsel
//! started where the previous one stopped) must give exactly the frames and rejects of one
//! sequential scan; so must reading it in windows (as the pipeline reads logs of interleaved
//! nets), whose partition holds exactly the accepted frames. The first input byte picks the
//! morsel size.
#![no_main]

use ingest::FrameScanner;
use ingest::columnar::{FrameColumns, read_morsel};
use ingest::log::LOG_HEADER_LEN;
use ingest::window::{WindowFrames, read_window};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, log)) = data.split_first() else {
        return;
    };
    let Ok(scanner) = FrameScanner::new(log) else {
        return;
    };
    let header = scanner.header();
    let mut frames = Vec::new();
    let mut rejects = Vec::new();
    let mut consumed = 0;
    for item in scanner {
        consumed += item.len;
        match item.frame {
            Ok(frame) => frames.push((item.offset, frame.as_bytes().to_vec())),
            Err(error) => rejects.push((item.offset, ingest::RejectReason::from(error))),
        }
    }
    assert_eq!(consumed, log.len() - LOG_HEADER_LEN);

    let lanes = usize::from(header.lanes);
    let step = (usize::from(pick % 8) + 1) * header.frame_len();
    let mut columns = FrameColumns::new(lanes, 8);
    let mut morsel_rejects = Vec::new();
    let mut offsets = Vec::new();
    let mut pos = LOG_HEADER_LEN;
    while pos < log.len() {
        let end = (pos + step).min(log.len());
        let stop = read_morsel(log, header, pos, end, &mut columns, &mut morsel_rejects);
        assert!(stop >= end || stop == log.len());
        let batch = columns.finish(0).expect("a batch of the frame schema");
        offsets.extend_from_slice(&batch.offsets);
        columns.recycle(batch);
        pos = stop;
    }
    let scanned: Vec<u64> = frames.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(offsets, scanned);
    assert_eq!(morsel_rejects, rejects);

    let mut window = WindowFrames::new();
    let mut window_rejects = Vec::new();
    let mut order = Vec::new();
    let mut kept = Vec::new();
    let mut pos = LOG_HEADER_LEN;
    while pos < log.len() {
        let end = (pos + step).min(log.len());
        let stop = read_window(log, header, pos, end, 0, &mut window, &mut window_rejects);
        assert!(stop >= end || stop == log.len());
        window.partition(&mut order);
        assert_eq!(order.len(), window.len());
        order.sort_unstable();
        kept.extend_from_slice(&order);
        pos = stop;
    }
    assert_eq!(kept, scanned);
    assert_eq!(window_rejects, rejects);
});
