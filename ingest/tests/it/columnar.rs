//! The columnar pipeline against the straightforward aggregator: identical rounds, reject
//! counts and reject positions on logs with dropouts, duplicates, late and stray frames and
//! random byte damage, for any thread count, morsel size and file order.

use std::collections::BTreeMap;
use std::path::PathBuf;

use engine::KeyGraph;
use ingest::batch::{BatchOutcome, aggregate_files};
use ingest::fast::DEFAULT_REGROUP_BELOW;
use ingest::pipeline::{
    DEFAULT_WINDOW_BUDGET, DEFAULT_WINDOW_MORSELS, PipelineOptions, Progress,
    aggregate_files_columnar,
};
use ingest::{AggregateOptions, Frame, LogWriter, Nets, Notification, RejectReason};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const PERIOD: u64 = 1000;
const GRACE: u64 = 200;

fn options(deadline: bool) -> AggregateOptions {
    AggregateOptions {
        epoch_ms: 5_000,
        period_ms: PERIOD,
        deadline_ms: deadline.then_some(GRACE),
        ..AggregateOptions::default()
    }
}

/// How the frames of a population are laid out in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// In no particular order.
    Shuffled,
    /// As a collector writes them: by net and round, transmits in client order, then the
    /// resends, with a few frames out of place. Rosters are larger than the chunk the ordered
    /// fast path takes at once.
    Ordered,
    /// [`Layout::Ordered`] with the nets taking turns frame by frame, as a collector that
    /// writes frames as they arrive would: read in windows partitioned by net.
    Interleaved,
}

/// A random population and its frames: transmits of present clients, resends of their
/// neighbours, and every kind of frame the rules reject. Lanes carry random values: both engines
/// must add the same frames, whatever they hold.
fn population(seed: u64, lanes: usize, layout: Layout) -> (Nets, Vec<Frame>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut nets = Nets::new();
    let mut frames = Vec::new();
    for net in 1..=rng.gen_range(1..=3u32) {
        let n = match layout {
            Layout::Shuffled => rng.gen_range(5..=14usize),
            Layout::Ordered | Layout::Interleaved => rng.gen_range(17..=90usize),
        };
        let clients: Vec<u32> = (0..n as u32).map(|i| 10 * i + net).collect();
        let graph = KeyGraph::random(net, &clients, 3, &mut rng).unwrap();
        for round in 0..rng.gen_range(1..=4u32) {
            let start = 5_000 + u64::from(round) * PERIOD;
            let missing: Vec<bool> = clients.iter().map(|_| rng.gen_bool(0.15)).collect();
            let frame = |rng: &mut ChaCha8Rng, notification, client, ts| Frame {
                notification,
                transmission: true,
                dc_net_id: net,
                client_id: client,
                round,
                timestamp_ms: ts,
                lanes: (0..lanes)
                    .map(|_| rng.r#gen::<u64>() >> rng.gen_range(0..64))
                    .collect(),
            };
            for (i, &client) in clients.iter().enumerate() {
                if missing[i] {
                    // Sometimes a missing client's transmit arrives late.
                    if rng.gen_bool(0.3) {
                        let ts = start + PERIOD + GRACE + rng.gen_range(1..500);
                        frames.push(frame(&mut rng, Notification::Transmit, client, ts));
                    }
                    continue;
                }
                let ts = start + rng.gen_range(0..PERIOD + GRACE);
                frames.push(frame(&mut rng, Notification::Transmit, client, ts));
                let needs = graph
                    .neighbours(client)
                    .unwrap()
                    .iter()
                    .any(|n| missing[graph.index_of(*n).unwrap()]);
                if (needs && rng.gen_bool(0.9)) || rng.gen_bool(0.05) {
                    let ts = start + PERIOD + rng.gen_range(0..3 * PERIOD);
                    frames.push(frame(&mut rng, Notification::Resend, client, ts));
                }
            }
        }
        nets.insert(net, graph);
    }
    match layout {
        Layout::Shuffled => {}
        Layout::Ordered => frames.sort_by_key(|f| {
            let resend = f.notification == Notification::Resend;
            (f.dc_net_id, f.round, resend, f.client_id)
        }),
        // A client's roster index is its id / 10 (see above).
        Layout::Interleaved => frames.sort_by_key(|f| {
            let resend = f.notification == Notification::Resend;
            (f.round, resend, f.client_id / 10, f.dc_net_id)
        }),
    }
    // Duplicates: exact copies, and copies with another timestamp or other data; in an
    // ordered log, right after the original or a little later.
    for _ in 0..rng.gen_range(0..6) {
        if frames.is_empty() {
            break;
        }
        let at = rng.gen_range(0..frames.len());
        let mut copy = frames[at].clone();
        match rng.gen_range(0..3) {
            0 => {}
            1 => copy.timestamp_ms = copy.timestamp_ms.wrapping_add(rng.gen_range(0..3)),
            _ => copy.lanes[0] = copy.lanes[0].wrapping_add(rng.gen_range(0..2)),
        }
        match layout {
            Layout::Shuffled => frames.push(copy),
            Layout::Ordered | Layout::Interleaved => {
                let after = (at + rng.gen_range(1..40)).min(frames.len());
                frames.insert(after, copy);
            }
        }
    }
    if layout != Layout::Shuffled {
        // A few frames out of place.
        for _ in 0..rng.gen_range(0..4) {
            if frames.len() >= 2 {
                let at = rng.gen_range(0..frames.len() - 1);
                frames.swap(at, at + 1);
            }
        }
    }
    // Frames the rules reject one by one.
    let template = frames.first().cloned().unwrap_or(Frame {
        notification: Notification::Transmit,
        transmission: true,
        dc_net_id: 1,
        client_id: 1,
        round: 0,
        timestamp_ms: 5_000,
        lanes: vec![0; lanes],
    });
    for _ in 0..rng.gen_range(0..5) {
        let mut odd = template.clone();
        match rng.gen_range(0..4) {
            0 => odd.notification = Notification::ALL[rng.gen_range(0..3)],
            1 => odd.transmission = false,
            2 => odd.dc_net_id = 99,
            _ => odd.client_id = 7_777,
        }
        match layout {
            Layout::Shuffled => frames.push(odd),
            Layout::Ordered | Layout::Interleaved => {
                let at = rng.gen_range(0..=frames.len());
                frames.insert(at, odd);
            }
        }
    }
    if layout == Layout::Shuffled {
        frames.shuffle(&mut rng);
    }
    (nets, frames)
}

fn encode(frames: &[Frame], lanes: usize) -> Vec<u8> {
    let mut writer = LogWriter::new(Vec::new(), lanes as u8, 0).unwrap();
    for frame in frames {
        writer.write_frame(frame).unwrap();
    }
    writer.finish().unwrap()
}

/// Damage: bit flips, inserted garbage, a cut-off tail, a frame of another lane count.
fn damage(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng, lanes: usize) {
    if bytes.len() <= 64 {
        return;
    }
    for _ in 0..rng.gen_range(0..4) {
        let at = rng.gen_range(64..bytes.len());
        bytes[at] ^= 1 << rng.gen_range(0..8);
    }
    if rng.gen_bool(0.3) {
        let at = rng.gen_range(64..=bytes.len());
        let garbage: Vec<u8> = (0..rng.gen_range(1..60)).map(|_| rng.r#gen()).collect();
        bytes.splice(at..at, garbage);
    }
    if rng.gen_bool(0.2) {
        let mut other = Frame {
            notification: Notification::Transmit,
            transmission: true,
            dc_net_id: 1,
            client_id: 1,
            round: 0,
            timestamp_ms: 5_000,
            lanes: vec![1; lanes + 1],
        };
        other.lanes.truncate(lanes % 32 + 1);
        let at =
            64 + (32 + 8 * lanes) * rng.gen_range(0..(bytes.len() - 64) / (32 + 8 * lanes) + 1);
        let at = at.min(bytes.len());
        bytes.splice(at..at, other.to_bytes().unwrap());
    }
    if rng.gen_bool(0.2) {
        let cut = rng.gen_range(1..40).min(bytes.len() - 64);
        bytes.truncate(bytes.len() - cut);
    }
}

struct Case {
    _dir: tempfile::TempDir,
    nets: Nets,
    paths: Vec<PathBuf>,
}

fn case(seed: u64, lanes: usize, files: usize, damaged: bool) -> Case {
    case_of(seed, lanes, files, damaged, Layout::Shuffled)
}

fn case_of(seed: u64, lanes: usize, files: usize, damaged: bool, layout: Layout) -> Case {
    let (nets, frames) = population(seed, lanes, layout);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xDA3A6E);
    let dir = tempfile::tempdir().unwrap();
    let mut parts: Vec<Vec<Frame>> = vec![Vec::new(); files];
    match layout {
        Layout::Shuffled => {
            for frame in frames {
                parts[rng.gen_range(0..files)].push(frame);
            }
        }
        // Consecutive stretches, so that each file stays in order.
        Layout::Ordered | Layout::Interleaved => {
            let per_file = frames.len().div_ceil(files).max(1);
            for (i, frame) in frames.into_iter().enumerate() {
                parts[i / per_file].push(frame);
            }
        }
    }
    let paths = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut bytes = encode(part, lanes);
            if damaged {
                damage(&mut bytes, &mut rng, lanes);
            }
            let path = dir.path().join(format!("part-{i}.dclog"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    Case {
        _dir: dir,
        nets,
        paths,
    }
}

/// How the columnar engine spreads and shapes the work (rejects always listed).
struct Shape {
    threads: usize,
    morsel_frames: usize,
    group_budget: u64,
    regroup_below: usize,
    window_morsels: usize,
    window_budget: u64,
}

fn columnar(
    case: &Case,
    paths: &[PathBuf],
    options: AggregateOptions,
    shape: Shape,
) -> BatchOutcome {
    let Shape {
        threads,
        morsel_frames,
        group_budget,
        regroup_below,
        window_morsels,
        window_budget,
    } = shape;
    aggregate_files_columnar(
        paths,
        &case.nets,
        options,
        PipelineOptions {
            threads,
            morsel_frames,
            collect_rejects: true,
            group_budget,
            regroup_below,
            window_morsels,
            window_budget,
            ..PipelineOptions::default()
        },
        &Progress::default(),
    )
    .unwrap()
}

fn assert_same(reference: &BatchOutcome, columnar: &BatchOutcome) {
    assert_eq!(columnar.lanes, reference.lanes);
    assert_eq!(columnar.report.rounds, reference.report.rounds);
    assert_eq!(columnar.report.counts, reference.report.counts);
    assert_eq!(
        columnar.report.rejects.to_vec().unwrap(),
        reference.report.rejects.to_vec().unwrap()
    );
    assert_eq!(columnar.report.frames_kept, reference.report.frames_kept);
    let records = |o: &BatchOutcome| o.files.iter().map(|f| f.records).collect::<Vec<_>>();
    assert_eq!(records(columnar), records(reference));
}

/// The columnar engine with these settings gives exactly the straightforward engine's results.
fn equals_reference(
    case: &Case,
    deadline: bool,
    threads: usize,
    morsel_frames: usize,
    group_budget: u64,
    regroup_below: usize,
    window_morsels: usize,
) {
    let options = options(deadline);
    let reference = aggregate_files(&case.paths, &case.nets, options).unwrap();
    let shape = Shape {
        threads,
        morsel_frames,
        group_budget,
        regroup_below,
        window_morsels,
        window_budget: DEFAULT_WINDOW_BUDGET,
    };
    let got = columnar(case, &case.paths, options, shape);
    assert_same(&reference, &got);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn columnar_equals_straightforward_on_damaged_logs(
        seed: u64,
        lanes in 1usize..=3,
        files in 1usize..=3,
        threads in 1usize..=3,
        morsel_frames in 1usize..=9,
        deadline: bool,
        // 0 settles every group after each morsel, so frames of one round spread over several
        // morsels or files make it dirty and it is aggregated again from its byte ranges.
        group_budget in prop_oneof![Just(0u64), 0u64..2000, Just(u64::MAX)],
        // Morsels aggregated as read, sorted by (net, round, client) first, or as the
        // engine decides from their run lengths.
        regroup_below in prop_oneof![Just(0usize), Just(usize::MAX), Just(DEFAULT_REGROUP_BELOW), 1usize..4],
        // Logs the engine takes for interleaved read in plain morsels, or in windows.
        window_morsels in prop_oneof![Just(0usize), Just(DEFAULT_WINDOW_MORSELS), 1usize..=3],
    ) {
        let case = case(seed, lanes, files, true);
        equals_reference(&case, deadline, threads, morsel_frames, group_budget, regroup_below, window_morsels);
    }

    /// Logs in client order take the ordered fast path; duplicates, frames out of place,
    /// strangers and damage inside those stretches must not change a result. With the nets
    /// interleaved, such a log is read in windows and decoded net by net; with regrouping off
    /// or below the runs a window's nets make, a net's frames are aggregated in log order (the
    /// ordered fast path across the other nets' frames), else sorted first.
    #[test]
    fn columnar_equals_straightforward_on_logs_in_client_order(
        seed: u64,
        lanes in 1usize..=2,
        files in 1usize..=2,
        threads in 1usize..=2,
        morsel_frames in prop_oneof![Just(4096usize), 7usize..=64],
        deadline: bool,
        damaged: bool,
        group_budget in prop_oneof![Just(u64::MAX), Just(0u64)],
        regroup_below in prop_oneof![Just(DEFAULT_REGROUP_BELOW), Just(usize::MAX), 2usize..=4],
        window_morsels in prop_oneof![Just(0usize), Just(DEFAULT_WINDOW_MORSELS), 1usize..=3],
        layout in prop_oneof![Just(Layout::Ordered), Just(Layout::Interleaved)],
    ) {
        let case = case_of(seed, lanes, files, damaged, layout);
        equals_reference(&case, deadline, threads, morsel_frames, group_budget, regroup_below, window_morsels);
    }

    #[test]
    fn results_do_not_depend_on_file_order_or_threads(
        seed: u64,
        files in 2usize..=4,
        deadline: bool,
    ) {
        let case = case(seed, 1, files, false);
        let options = options(deadline);
        let single = Shape {
            threads: 1,
            morsel_frames: 4096,
            group_budget: u64::MAX,
            regroup_below: 0,
            window_morsels: 0,
            window_budget: DEFAULT_WINDOW_BUDGET,
        };
        let one = columnar(&case, &case.paths, options, single);
        let mut reversed = case.paths.clone();
        reversed.reverse();
        // More workers than this machine has cores, so that workers often find the limit
        // of tasks in flight reached and wait; windows cut down to a morsel by their budget.
        let spread = Shape {
            threads: 8,
            morsel_frames: 2,
            group_budget: 0,
            regroup_below: usize::MAX,
            window_morsels: 2,
            window_budget: 1,
        };
        let other = columnar(&case, &reversed, options, spread);
        prop_assert_eq!(&one.report.rounds, &other.report.rounds);
        prop_assert_eq!(&one.report.counts, &other.report.counts);
        prop_assert_eq!(one.report.frames_kept, other.report.frames_kept);
        // The reference agrees with the reversed order too.
        let reference = aggregate_files(&reversed, &case.nets, options).unwrap();
        assert_same(&reference, &other);
    }

    /// With a tiny in-memory bound, workers write their rejects to temporary files after
    /// nearly every morsel and the end merges many runs (in several passes when there are
    /// many): the list is exactly the one kept in memory, in the same order. Also for logs
    /// whose every frame comes twice, and for rounds aggregated again (group budget 0), whose
    /// duplicates the workers reported and spilled before the end withdrew them.
    #[test]
    fn a_spilled_reject_list_equals_the_one_kept_in_memory(
        seed: u64,
        lanes in 1usize..=2,
        files in 1usize..=3,
        threads in 1usize..=2,
        morsel_frames in 1usize..=9,
        deadline: bool,
        twice: bool,
        group_budget in prop_oneof![Just(0u64), Just(u64::MAX)],
        rejects_in_memory in 0usize..=4,
    ) {
        let case = case(seed, lanes, files, true);
        if twice {
            for path in &case.paths {
                let mut bytes = std::fs::read(path).unwrap();
                let body = bytes[64.min(bytes.len())..].to_vec();
                bytes.extend_from_slice(&body);
                std::fs::write(path, bytes).unwrap();
            }
        }
        let options = options(deadline);
        let run = |rejects_in_memory| {
            aggregate_files_columnar(
                &case.paths,
                &case.nets,
                options,
                PipelineOptions {
                    threads,
                    morsel_frames,
                    collect_rejects: true,
                    group_budget,
                    rejects_in_memory,
                    ..PipelineOptions::default()
                },
                &Progress::default(),
            )
            .unwrap()
        };
        let in_memory = run(usize::MAX);
        prop_assert!(!in_memory.report.rejects.is_spilled());
        let spilled = run(rejects_in_memory);
        let listed = in_memory.report.rejects.to_vec().unwrap();
        prop_assert_eq!(listed.len() as u64, in_memory.report.counts.total());
        // The end spills too once it holds the bound: any list that long went to a file
        // (a shorter one may have, when a worker spilled duplicates that were withdrawn).
        if listed.len() >= rejects_in_memory.max(1) {
            prop_assert!(spilled.report.rejects.is_spilled());
        }
        prop_assert_eq!(&spilled.report.rejects.to_vec().unwrap(), &listed);
        let reference = aggregate_files(&case.paths, &case.nets, options).unwrap();
        assert_same(&reference, &spilled);
    }
}

/// A log with one frame for each reason a frame can be rejected, at known offsets.
#[test]
fn every_reject_reason_is_reported_at_the_offset_of_its_frame() {
    let lanes = 1;
    let graph = KeyGraph::from_edges(1, [(1, 2), (2, 3), (3, 4), (1, 4), (1, 3)]).unwrap();
    let nets: Nets = BTreeMap::from([(1, graph)]);
    let transmit = |client: u32, round: u32, ts: u64| Frame {
        notification: Notification::Transmit,
        transmission: true,
        dc_net_id: 1,
        client_id: client,
        round,
        timestamp_ms: ts,
        lanes: vec![u64::from(client)],
    };
    let round0 = 5_000;
    let mut planted: Vec<(Option<RejectReason>, Vec<u8>)> = Vec::new();
    let mut add = |reason: Option<RejectReason>, bytes: Vec<u8>| planted.push((reason, bytes));
    let good = |f: &Frame| f.to_bytes().unwrap();
    // Round 0: clients 1, 2, 3 present; 4 is missing (its transmit is late), so 1 and 3 must
    // resend. 2 resends without need, and a resend comes from 4, which sent no usable transmit.
    for client in 1..=3 {
        add(None, good(&transmit(client, 0, round0 + 10)));
    }
    add(
        Some(RejectReason::Late),
        good(&transmit(4, 0, round0 + PERIOD + GRACE + 1)),
    );
    for (client, reason) in [
        (1, None),
        (3, None),
        (2, Some(RejectReason::ResendWithoutMissingNeighbour)),
        (4, Some(RejectReason::ResendWithoutTransmit)),
    ] {
        let mut resend = transmit(client, 0, round0 + PERIOD + 50);
        resend.notification = Notification::Resend;
        add(reason, good(&resend));
    }
    add(
        Some(RejectReason::Duplicate),
        good(&transmit(2, 0, round0 + 11)),
    );
    let mut f = transmit(1, 1, round0);
    f.notification = Notification::Register;
    add(Some(RejectReason::ControlFrame), good(&f));
    let mut f = transmit(1, 1, round0);
    f.transmission = false;
    add(Some(RejectReason::NoTransmissionBit), good(&f));
    let mut f = transmit(1, 1, round0);
    f.dc_net_id = 2;
    add(Some(RejectReason::UnknownNet), good(&f));
    add(
        Some(RejectReason::UnknownClient),
        good(&transmit(9, 1, round0)),
    );
    // Byte-level damage, each on an otherwise valid frame.
    let damaged = |at: usize, value: u8, fix_crc: bool| {
        let mut frame = transmit(2, 1, round0);
        frame.client_id = 2;
        let mut bytes = good(&frame);
        bytes[at] = value;
        if fix_crc {
            let crc = ingest::frame::frame_crc(&bytes);
            bytes[20..24].copy_from_slice(&crc.to_le_bytes());
        }
        bytes
    };
    add(Some(RejectReason::BadMagic), damaged(0, b'X', true));
    add(Some(RejectReason::BadVersion), damaged(2, 9, true));
    add(Some(RejectReason::ReservedBits), damaged(4, 0x80, true));
    add(Some(RejectReason::UnknownNotification), damaged(3, 6, true));
    add(Some(RejectReason::CrcMismatch), damaged(33, 0xEE, false));
    let mut two_lanes = transmit(3, 1, round0);
    two_lanes.lanes = vec![1, 2];
    add(Some(RejectReason::BadLanes), good(&two_lanes));
    add(Some(RejectReason::StrayBytes), vec![0xAB; 7]);
    add(None, good(&transmit(4, 1, round0)));
    let mut tail = good(&transmit(1, 2, round0));
    tail.truncate(30);
    add(Some(RejectReason::Truncated), tail);

    let mut log = encode(&[], lanes);
    let mut expected = Vec::new();
    for (reason, bytes) in &planted {
        if let Some(reason) = reason {
            expected.push((log.len() as u64, *reason, bytes.clone()));
        }
        log.extend_from_slice(bytes);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reasons.dclog");
    std::fs::write(&path, &log).unwrap();
    let options = options(true);
    let columnar = |group_budget| {
        aggregate_files_columnar(
            std::slice::from_ref(&path),
            &nets,
            options,
            PipelineOptions {
                threads: 2,
                morsel_frames: 3,
                collect_rejects: true,
                group_budget,
                ..PipelineOptions::default()
            },
            &Progress::default(),
        )
        .unwrap()
    };
    for outcome in [
        aggregate_files(std::slice::from_ref(&path), &nets, options).unwrap(),
        columnar(u64::MAX),
        columnar(0),
    ] {
        let report = &outcome.report;
        for reason in RejectReason::ALL {
            assert_eq!(report.counts.get(reason), 1, "{reason}");
        }
        let got: Vec<(u64, RejectReason)> = report
            .rejects
            .to_vec()
            .unwrap()
            .iter()
            .map(|r| (r.source.offset, r.reason))
            .collect();
        let want: Vec<(u64, RejectReason)> = expected.iter().map(|(o, r, _)| (*o, *r)).collect();
        assert_eq!(got, want);
        // Each offset points at the planted bytes.
        for (offset, _, bytes) in &expected {
            let at = *offset as usize;
            assert_eq!(&log[at..at + bytes.len()], bytes.as_slice());
        }
        // Round 0 is settled with the resends of 1 and 3; its sum is 2 + 1 + 3 (the resends
        // carry the client id as their value, like the transmits).
        let round0 = &report.rounds[0];
        assert_eq!((round0.present, round0.resent), (3, 2));
        assert_eq!(round0.sum, Some(vec![6]));
    }
}

/// Twenty nets of eight clients, each written whole before the next: three rounds of every
/// client's transmit in client order (lane: the client id times 3 plus the round).
fn net_by_net_log(seed: u64) -> (Nets, Vec<Frame>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut nets = Nets::new();
    let mut frames = Vec::new();
    for net in 1..=20u32 {
        let clients: Vec<u32> = (0..NET_BY_NET_ROSTER)
            .map(|i| 100 * net + i as u32)
            .collect();
        nets.insert(net, KeyGraph::random(net, &clients, 3, &mut rng).unwrap());
        for round in 0..3u32 {
            for &client in &clients {
                frames.push(Frame {
                    notification: Notification::Transmit,
                    transmission: true,
                    dc_net_id: net,
                    client_id: client,
                    round,
                    timestamp_ms: 5_000 + u64::from(round) * PERIOD,
                    lanes: vec![u64::from(client) * 3 + u64::from(round)],
                });
            }
        }
    }
    (nets, frames)
}

const NET_BY_NET_ROSTER: usize = 8;

/// Aggregates `frames` as one log with `pipeline`, checks the result against the reference
/// and returns how many rounds were read again.
fn rounds_reread(nets: &Nets, frames: &[Frame], pipeline: PipelineOptions) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ordered.dclog");
    std::fs::write(&path, encode(frames, 1)).unwrap();
    let columnar = aggregate_files_columnar(
        std::slice::from_ref(&path),
        nets,
        options(false),
        pipeline,
        &Progress::default(),
    )
    .unwrap();
    let reference = aggregate_files(std::slice::from_ref(&path), nets, options(false)).unwrap();
    assert_same(&reference, &columnar);
    assert_eq!(columnar.report.rounds.len(), 60);
    columnar.report.rounds_reread
}

/// A log whose rounds each lie in one stretch, net after net: under a budget of a few open
/// rounds, the columnar engine settles each round once and never reads one again; only a
/// round that gets a frame after it was settled is read again. Results match the reference
/// either way.
#[test]
fn a_round_is_read_again_only_when_a_frame_comes_after_it_was_settled() {
    let (nets, mut frames) = net_by_net_log(7);
    // Room for four open rounds of 8 clients: bitmap word, transmit sources, fixed part.
    let footprint = NET_BY_NET_ROSTER as u64 * 8 + 8 + 64;
    let pipeline = PipelineOptions {
        threads: 1,
        morsel_frames: 5,
        collect_rejects: true,
        group_budget: 4 * footprint,
        // Morsels as read: what is settled early follows the log's order.
        regroup_below: 0,
        ..PipelineOptions::default()
    };
    assert_eq!(rounds_reread(&nets, &frames, pipeline), 0);
    // The first round's last transmit moves to the end of the log.
    let straggler = frames.remove(NET_BY_NET_ROSTER - 1);
    frames.push(straggler);
    assert_eq!(rounds_reread(&nets, &frames, pipeline), 1);
}

/// A round that spans two morsels is settled as soon as both are aggregated, even with no
/// memory pressure: the morsel it ends in began with it and went on to a later round of the
/// same net. A frame that comes for it after that (here, a second copy of one of its
/// transmits at the end of the log) makes it be read again, and the results match the
/// reference on any thread count.
#[test]
fn a_round_spanning_morsels_is_settled_once_both_are_aggregated() {
    let (nets, mut frames) = net_by_net_log(11);
    let pipeline = |threads| PipelineOptions {
        threads,
        // Five frames a morsel: net 1's round 0 (frames 0 to 7) begins in the first morsel
        // and ends in the second, which goes on to round 1.
        morsel_frames: 5,
        collect_rejects: true,
        group_budget: u64::MAX,
        regroup_below: 0,
        ..PipelineOptions::default()
    };
    assert_eq!(rounds_reread(&nets, &frames, pipeline(1)), 0);
    // Net 1's round 0 gets a second copy of its last transmit at the end of the log: the
    // round was settled when the second morsel was done, so the copy makes it be read again.
    // Without the budget forcing anything out, only settling at the morsel boundary can have
    // done that.
    let copy = frames[NET_BY_NET_ROSTER - 1].clone();
    frames.push(copy);
    assert_eq!(rounds_reread(&nets, &frames, pipeline(1)), 1);
    // On two threads, when the copy's morsel is aggregated relative to the first two is up
    // to the workers; the results are not.
    rounds_reread(&nets, &frames, pipeline(2));
}

/// When the rejects cannot be written out (no usable temporary directory), the run fails with
/// that error and stops claiming morsels at once instead of reading the rest of its input.
/// The temporary directory is the process's, so the test runs itself again with `TMPDIR`
/// pointing nowhere and checks there, on one thread, that only the first morsel was read.
#[test]
fn a_failed_spill_stops_the_run_early() {
    // Set in the second run: the directory (made by the first run) to write the log to.
    const CHILD: &str = "DCNET_TEST_FAILED_SPILL";
    let Some(dir) = std::env::var_os(CHILD) else {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "columnar::a_failed_spill_stops_the_run_early"])
            .args(["--nocapture", "--test-threads", "1"])
            .env(CHILD, dir.path())
            .env("TMPDIR", dir.path().join("no-such-dir"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The child ran the test rather than finding none by that name.
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    };
    let (nets, frames) = net_by_net_log(3);
    // Every frame of an unknown net: each morsel lists five rejects.
    let frames: Vec<Frame> = frames
        .into_iter()
        .map(|frame| Frame {
            dc_net_id: frame.dc_net_id + 1_000,
            ..frame
        })
        .collect();
    let path = PathBuf::from(dir).join("unknown.dclog");
    std::fs::write(&path, encode(&frames, 1)).unwrap();
    let progress = Progress::default();
    let result = aggregate_files_columnar(
        std::slice::from_ref(&path),
        &nets,
        options(false),
        PipelineOptions {
            threads: 1,
            morsel_frames: 5,
            collect_rejects: true,
            rejects_in_memory: 0,
            ..PipelineOptions::default()
        },
        &progress,
    );
    let error = result.expect_err("the spill cannot succeed").to_string();
    assert!(error.contains("temporary file"), "{error}");
    use std::sync::atomic::Ordering;
    assert_eq!(progress.records_done.load(Ordering::Relaxed), 5);
    assert!(progress.bytes_total.load(Ordering::Relaxed) > 100 * 40);
}

/// The same log given twice: every frame of the second copy is a duplicate, and under a
/// budget of a few open rounds every round is settled before its copy comes and aggregated
/// again at the end. Far more rounds than the end settles at once, so that their duplicates
/// pass through the list of rejects in several chunks: rounds, counts and the list (each
/// duplicate once, at the copy's offset) are the reference engine's, in round order, on any
/// thread count.
#[test]
fn the_same_log_twice_lists_every_copy_once_in_round_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let clients: Vec<u32> = (1..=6).collect();
    let mut nets = Nets::new();
    nets.insert(1, KeyGraph::random(1, &clients, 3, &mut rng).unwrap());
    let rounds = 700u32;
    let frames: Vec<Frame> = (0..rounds)
        .flat_map(|round| {
            clients.iter().map(move |&client| Frame {
                notification: Notification::Transmit,
                transmission: true,
                dc_net_id: 1,
                client_id: client,
                round,
                timestamp_ms: 5_000 + u64::from(round) * PERIOD,
                lanes: vec![u64::from(client) << 32 | u64::from(round)],
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("day.dclog");
    std::fs::write(&path, encode(&frames, 1)).unwrap();
    let paths = vec![path.clone(), path];
    let reference = aggregate_files(&paths, &nets, options(false)).unwrap();
    assert_eq!(reference.report.rounds.len(), rounds as usize);
    assert_eq!(
        reference.report.counts.get(RejectReason::Duplicate),
        frames.len() as u64
    );
    for threads in [1, 2] {
        let columnar = aggregate_files_columnar(
            &paths,
            &nets,
            options(false),
            PipelineOptions {
                threads,
                morsel_frames: 64,
                collect_rejects: true,
                group_budget: 1,
                // Runs of six frames would make the log one window: plain morsels keep it
                // settling and re-reading rounds morsel by morsel.
                window_morsels: 0,
                ..PipelineOptions::default()
            },
            &Progress::default(),
        )
        .unwrap();
        assert_same(&reference, &columnar);
        // Every round is settled before its copy comes, so all 700 are read again, in
        // several of the end's chunks of 256. On two threads that held only once a worker
        // finding the open groups at twice the budget waits for another one's eviction:
        // before, a worker descheduled while it evicted left the other's evictions skipped,
        // and with both workers on one core (`taskset -c 0`) 64 to 700 rounds were read again
        // in a hundred runs; since, 700 in a hundred.
        let reread = columnar.report.rounds_reread;
        if threads == 1 {
            assert_eq!(reread, u64::from(rounds));
        } else {
            assert!(
                reread > 256,
                "{threads} threads: {reread} rounds read again"
            );
        }
        let keys: Vec<(u32, u32)> = columnar
            .report
            .rounds
            .iter()
            .map(|r| (r.dc_net_id, r.round))
            .collect();
        assert!(keys.is_sorted(), "{threads} threads");
    }
}
