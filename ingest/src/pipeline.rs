//! Round logs to results on every core: files are cut into morsels, numbered across all files
//! in file order, and rayon workers claim the next number from a shared cursor, read that
//! morsel into an Arrow batch and aggregate it at once, while it is still in cache. Morsels
//! committed by one worker for another wait in a lock-free crossbeam queue.
//!
//! A morsel is cut at a frame boundary of an undamaged log (64 + k·frame length) and read as if
//! a frame ended there. Damage can shift the true frame boundaries (the reader resynchronises
//! byte by byte), so a morsel is only aggregated once the morsel before it, in the same file,
//! is known to have stopped exactly where this one started; otherwise it is read again from the
//! true position. This check happens under a per-file lock and costs a comparison for an
//! undamaged log.
//!
//! Morsels read ahead of their file's commit point wait, decoded, until the morsels before them
//! are in. A worker that is not scheduled for a while (a loaded machine, more threads than
//! cores) would let the others read on without bound, so the tasks claimed and not yet
//! aggregated are capped ([`in_flight_limit`]): a worker that meets the cap aggregates what is
//! ready or waits. That is the only place workers wait for each other.
//!
//! A log whose nets are interleaved is cut into windows of many morsels instead, each checked
//! by one worker and decoded net by net when it is aggregated ([`crate::window`]); the commit
//! step treats a window as a morsel.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use crossbeam::queue::SegQueue;
use crossbeam::utils::CachePadded;

use crate::aggregate::{AggregateOptions, Nets};
use crate::batch::{BatchError, BatchOutcome, OpenedInputs, open_inputs};
use crate::columnar::{
    DEFAULT_MORSEL_FRAMES, FrameBatch, FrameColumns, ScanReject, read_morsel_ahead,
};
use crate::fast::{
    ColumnarAggregator, HeadRound, Inputs, MAX_FILE_BYTES, MAX_FILES, Regroup, Tally, lock,
};
use crate::frame::RawHeader;
use crate::log::{LOG_HEADER_LEN, LogHeader};
use crate::window::{WindowFrames, read_window};

/// How the work is spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineOptions {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Frames per morsel (at least 1).
    pub morsel_frames: usize,
    /// List every rejected frame in the report (counts are always kept).
    pub collect_rejects: bool,
    /// Heap bytes of open (net, round) groups before the least recently used are settled early.
    pub group_budget: u64,
    /// Listed rejects a worker keeps in memory before it sorts them and writes them to a
    /// temporary file (0 writes them after every morsel); the list does not depend on it.
    pub rejects_in_memory: usize,
    /// Bytes of log the CPU is asked to load ahead of the frames being checked
    /// ([`crate::columnar::READ_AHEAD`]; 0 gives no hints). Only the speed depends on it.
    pub read_ahead: usize,
    /// Morsels whose runs of one (net, round) average fewer frames than this are sorted by
    /// net, round and client before they are aggregated
    /// ([`crate::fast::DEFAULT_REGROUP_BELOW`]; 0 never, `usize::MAX` always). Only the speed
    /// depends on it.
    pub regroup_below: usize,
    /// Morsels in a window of a log whose nets are interleaved (as `regroup_below` tells from
    /// its first frames): such a log is checked a window at a time and its frames decoded net
    /// by net ([`crate::window`]); 0 reads it morsel by morsel like any other log
    /// ([`DEFAULT_WINDOW_MORSELS`]). Only the speed depends on it.
    pub window_morsels: usize,
    /// Bytes the windows may take together, whatever the thread count
    /// ([`DEFAULT_WINDOW_BUDGET`]): windows are made shorter than `window_morsels` when all
    /// that may be in flight at once would not fit. Only the speed depends on it.
    pub window_budget: u64,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            morsel_frames: DEFAULT_MORSEL_FRAMES,
            collect_rejects: true,
            group_budget: crate::fast::DEFAULT_BUDGET,
            rejects_in_memory: crate::spill::DEFAULT_REJECTS_IN_MEMORY,
            read_ahead: crate::columnar::READ_AHEAD,
            regroup_below: crate::fast::DEFAULT_REGROUP_BELOW,
            window_morsels: DEFAULT_WINDOW_MORSELS,
            window_budget: DEFAULT_WINDOW_BUDGET,
        }
    }
}

/// Progress counters, updated by the workers as morsels are done; read them from any thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of all inputs.
    pub bytes_total: AtomicU64,
    /// Bytes read so far.
    pub bytes_done: AtomicU64,
    /// Frames and rejected stretches read so far.
    pub records_done: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Task {
    file: usize,
    morsel: usize,
    start: usize,
    end: usize,
}

struct Morsel {
    /// Its number within its file.
    index: usize,
    start: usize,
    end: usize,
    stop: usize,
    body: Body,
    rejects: Vec<ScanReject>,
}

/// The accepted frames of a morsel.
enum Body {
    /// Decoded in log order.
    Columns(FrameBatch),
    /// A window of a log with interleaved nets: where its frames are, decoded net by net when
    /// the window is aggregated.
    Window(WindowFrames),
}

impl Morsel {
    fn frames(&self) -> usize {
        match &self.body {
            Body::Columns(batch) => batch.len(),
            Body::Window(frames) => frames.len(),
        }
    }
}

#[derive(Default)]
struct Commit {
    next: usize,
    last_stop: usize,
    parked: BTreeMap<usize, Morsel>,
    /// Every morsel below this one has been aggregated.
    aggregated_below: usize,
    /// Aggregated morsels at or above `aggregated_below` (a few: those other workers overtook).
    aggregated_above: Vec<usize>,
    /// Rounds that aggregated morsels began with and saw the end of, waiting for every morsel
    /// before theirs (see [`ColumnarAggregator::add_batch`]).
    heads: Vec<(usize, HeadRound)>,
}

impl Commit {
    fn aggregated(&mut self, morsel: usize, head: Option<HeadRound>) {
        if let Some(head) = head {
            self.heads.push((morsel, head));
        }
        self.aggregated_above.push(morsel);
        while let Some(at) = self
            .aggregated_above
            .iter()
            .position(|&m| m == self.aggregated_below)
        {
            self.aggregated_above.swap_remove(at);
            self.aggregated_below += 1;
        }
    }

    /// A head round all of whose morsel's predecessors have been aggregated.
    fn settleable_head(&mut self) -> Option<HeadRound> {
        let at = self
            .heads
            .iter()
            .position(|&(morsel, _)| morsel < self.aggregated_below)?;
        Some(self.heads.swap_remove(at).1)
    }
}

struct Worker {
    columns: Vec<FrameColumns>,
    regroup: Regroup,
    tally: Tally,
    rejects: Vec<ScanReject>,
    /// A window's buffers kept for the next window this worker reads.
    window: Option<WindowFrames>,
    /// A window's frame offsets in bucket order.
    order: Vec<u64>,
}

/// The worker's columns for frames of `lanes` lanes.
fn columns_of(columns: &mut Vec<FrameColumns>, lanes: usize, capacity: usize) -> &mut FrameColumns {
    if let Some(at) = columns.iter().position(|c| c.lanes() == lanes) {
        return &mut columns[at];
    }
    columns.push(FrameColumns::new(lanes, capacity));
    let last = columns.len() - 1;
    &mut columns[last]
}

/// What a worker reads a morsel into.
enum Destination<'w> {
    Columns(&'w mut FrameColumns),
    Window(WindowFrames),
}

#[allow(clippy::too_many_arguments)]
fn read(
    bytes: &[u8],
    header: LogHeader,
    file: usize,
    index: usize,
    start: usize,
    end: usize,
    read_ahead: usize,
    into: Destination<'_>,
    mut rejects: Vec<ScanReject>,
) -> Morsel {
    rejects.clear();
    let (stop, body) = match into {
        Destination::Columns(columns) => {
            let stop =
                read_morsel_ahead(bytes, header, start, end, read_ahead, columns, &mut rejects);
            // The file index was checked against MAX_FILES.
            let batch = columns.finish(file as u32);
            // Building a batch from columns of the schema's own types cannot fail; should it
            // ever, the frames are counted as unreadable rather than lost silently.
            let batch = batch.unwrap_or_else(|_| empty_batch(file, columns));
            (stop, Body::Columns(batch))
        }
        Destination::Window(mut frames) => {
            let stop = read_window(
                bytes,
                header,
                start,
                end,
                read_ahead,
                &mut frames,
                &mut rejects,
            );
            (stop, Body::Window(frames))
        }
    };
    Morsel {
        index,
        start,
        end,
        stop,
        body,
        rejects,
    }
}

fn empty_batch(file: usize, columns: &mut FrameColumns) -> FrameBatch {
    let mut fresh = FrameColumns::new(columns.lanes(), 0);
    fresh
        .finish(file as u32)
        .unwrap_or_else(|_| unreachable!("an empty batch of the frame schema is valid"))
}

/// Morsels in a window of a log whose nets are interleaved, unless configured otherwise (see
/// [`crate::window`]): at the default morsel size a million frames, 40 MB of a one-lane log,
/// whose offsets and buckets take 10 MB while the window waits to be aggregated. `dcnet
/// aggregate` on the bench log of 1,000 interleaved nets (three alternating runs each): 64
/// morsels 24.9, 128 28.3, 256 32.7, 512 33.9 M frames/s; 1,024 only 9.7, as windows of four
/// rounds on both workers held more open groups than the default group memory, which then
/// settled rounds still being filled, to be read again at the end.
pub const DEFAULT_WINDOW_MORSELS: usize = 256;

/// Bytes all windows in flight may take together unless configured otherwise: on two workers
/// room for the default windows, on more workers shorter windows rather than more memory. At
/// the default, eight workers get windows of 134 morsels (549K frames), 64 workers of 18
/// (74K frames).
pub const DEFAULT_WINDOW_BUDGET: u64 = 128 << 20;

/// Bytes a window keeps for each accepted frame while it waits: the frame's offset and its
/// net's bucket ([`WindowFrames`]).
const WINDOW_BYTES_PER_FRAME: u64 = 10;

/// Bytes per frame of the offsets in bucket order that a worker aggregating a window holds.
const ORDER_BYTES_PER_FRAME: u64 = 8;

/// Tasks (morsels or windows) that may be claimed and not yet aggregated at once, all workers
/// together: one being read or aggregated per worker, as many waiting for the morsels before
/// them in their file, and two to spare so that a worker seldom waits when a neighbour is
/// only a little behind.
fn in_flight_limit(threads: usize) -> usize {
    threads.saturating_mul(2).saturating_add(2)
}

/// Frames in a window of a log with interleaved nets (0: no windows): `window_morsels`
/// morsels, fewer (whole morsels, at least one) when the windows that `threads` workers may
/// have in flight would take more than `window_budget` bytes.
fn window_frames(
    morsel_frames: usize,
    window_morsels: usize,
    window_budget: u64,
    threads: usize,
) -> usize {
    if window_morsels == 0 {
        return 0;
    }
    let threads = threads.max(1) as u64;
    let per_frame = (in_flight_limit(threads as usize) as u64)
        .saturating_mul(WINDOW_BYTES_PER_FRAME)
        .saturating_add(threads.saturating_mul(ORDER_BYTES_PER_FRAME));
    let affordable = usize::try_from(window_budget / per_frame).unwrap_or(usize::MAX);
    let morsels = (affordable / morsel_frames.max(1)).clamp(1, window_morsels);
    morsel_frames.saturating_mul(morsels)
}

/// Caps the tasks claimed and not yet aggregated (see the module documentation): a worker
/// enters before it claims a task and leaves once the task is aggregated (or when there was
/// none to claim); at the cap it waits for a task to leave or for a committed morsel to take.
///
/// Waiting cannot deadlock: a waiting worker holds no task it has not committed, and the
/// first uncommitted task of every file has been claimed (tasks are claimed in file order), so
/// some worker is reading it and will commit it, which readies the tasks parked behind it.
struct Gate {
    in_flight: AtomicUsize,
    limit: usize,
    waiting: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    /// A worker panicked: the tasks it held will never leave, so nobody waits any more and
    /// the workers stop, letting the panic reach the caller instead of hanging the run.
    abandoned: AtomicBool,
}

/// Abandons the gate if the worker holding it unwinds.
struct AbandonOnPanic<'g>(&'g Gate);

impl Drop for AbandonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandoned.store(true, Ordering::SeqCst);
            self.0.wake_waiters();
        }
    }
}

impl Gate {
    fn new(limit: usize) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            limit: limit.max(1),
            waiting: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            abandoned: AtomicBool::new(false),
        }
    }

    fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    fn is_open(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) < self.limit
    }

    /// Counts one more task in flight, unless that would pass the cap.
    fn try_enter(&self) -> bool {
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.wake_waiters();
    }

    /// Wakes the workers waiting at the gate, if any (a morsel was committed for them, or a
    /// task left). The check of `waiting` keeps the common case, nobody waiting, free of
    /// system calls.
    fn wake_waiters(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&self.lock);
            self.wake.notify_all();
        }
    }

    /// Waits until the gate may be open or `ready()` holds. A wake-up is never lost: a waiter
    /// counts itself before it looks, and whoever changes the state looks at the count after
    /// the change. The timeout only bounds the cost of a mistake in that reasoning.
    fn wait(&self, ready: impl Fn() -> bool) {
        let guard = lock(&self.lock);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if !self.is_open() && !ready() && !self.is_abandoned() {
            let _ = self.wake.wait_timeout(guard, Duration::from_millis(5));
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Frames of a log's beginning that [`layout_of`] looks at: enough to tell runs of
/// a (net, round) from interleaved nets, few enough that looking at a thousand logs not yet
/// in the page cache reads little before the workers start.
const PROBE_FRAMES: usize = 512;

/// How a log is cut for the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Frames per task.
    frames: usize,
    /// Whether a task is a window, partitioned by net before it is decoded ([`crate::window`]),
    /// rather than a morsel decoded in log order.
    windowed: bool,
}

/// How to cut the log `bytes`: in morsels of `morsel_frames`, or, when its first frames (as
/// many as a morsel, at most [`PROBE_FRAMES`]) by their header fields would be sorted before
/// they are aggregated (see [`crate::fast::ColumnarAggregator::with_regroup_below`]), in
/// windows of `window_frames` frames (0: never). The frames are not validated here: damage
/// only makes the guess worse, never a result different.
fn layout_of(
    bytes: &[u8],
    header: LogHeader,
    morsel_frames: usize,
    regroup_below: usize,
    window_frames: usize,
) -> Layout {
    let frame_len = header.frame_len();
    let body = bytes.get(LOG_HEADER_LEN..).unwrap_or_default();
    let sample = body
        .chunks_exact(frame_len)
        .take(morsel_frames.min(PROBE_FRAMES))
        .map(|frame| {
            let raw = RawHeader::of(frame);
            (raw.dc_net_id(), raw.round())
        });
    let (mut frames, mut runs, mut previous) = (0usize, 0usize, None);
    for key in sample {
        frames += 1;
        runs += usize::from(previous != Some(key));
        previous = Some(key);
    }
    if window_frames > 0 && crate::fast::is_fragmented(frames, runs, regroup_below) {
        Layout {
            frames: window_frames,
            windowed: true,
        }
    } else {
        Layout {
            frames: morsel_frames,
            windowed: false,
        }
    }
}

/// Aggregates a window of file `file` ([`crate::window`]): its frames in bucket order, decoded
/// a morsel at a time into the worker's columns.
fn aggregate_window(
    aggregator: &ColumnarAggregator<'_>,
    worker: &mut Worker,
    file: usize,
    window: &WindowFrames,
    log: (&[u8], LogHeader),
    morsel_frames: usize,
) {
    let (bytes, header) = log;
    window.partition(&mut worker.order);
    let columns = columns_of(
        &mut worker.columns,
        usize::from(header.lanes),
        morsel_frames,
    );
    for offsets in worker.order.chunks(morsel_frames) {
        columns.gather_frames(bytes, header.frame_len(), offsets);
        // The file index was checked against MAX_FILES. Building a batch from columns of the
        // schema's own types cannot fail.
        let Ok(batch) = columns.finish(file as u32) else {
            continue;
        };
        aggregator.add_partitioned_batch(&batch, &mut worker.regroup, &mut worker.tally);
        columns.recycle(batch);
    }
}

/// Aggregates the round logs at `paths` (`-` is standard input) with the columnar engine.
///
/// Same contract and same results as [`aggregate_files`](crate::batch::aggregate_files), for
/// any thread count and morsel size.
pub fn aggregate_files_columnar(
    paths: &[PathBuf],
    nets: &Nets,
    options: AggregateOptions,
    pipeline: PipelineOptions,
    progress: &Progress,
) -> Result<BatchOutcome, BatchError> {
    let OpenedInputs {
        mut files,
        opened,
        lanes,
    } = open_inputs(paths)?;
    if paths.len() > MAX_FILES {
        return Err(BatchError::TooMany { max: MAX_FILES });
    }
    let mut logs: Vec<Option<(&[u8], LogHeader)>> = vec![None; paths.len()];
    for (index, bytes) in &opened {
        if bytes.len() as u64 >= MAX_FILE_BYTES {
            files[*index].error = Some(format!(
                "{}: larger than {} bytes, the most one input may hold",
                files[*index].path.display(),
                MAX_FILE_BYTES
            ));
            continue;
        }
        if let Some(header) = files[*index].header {
            logs[*index] = Some((bytes, header));
        }
    }
    let total: u64 = logs.iter().flatten().map(|(b, _)| b.len() as u64).sum();
    progress.bytes_total.store(total, Ordering::Relaxed);
    let inputs = Inputs::new(
        logs.iter()
            .map(|log| log.map_or(&[][..], |(bytes, _)| bytes))
            .collect(),
    );
    let threads = if pipeline.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        pipeline.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| BatchError::Threads(e.to_string()))?;
    let aggregator = pool.install(|| {
        ColumnarAggregator::new(nets, lanes, options, inputs)
            .with_budget(pipeline.group_budget)
            .with_redo_morsel(pipeline.morsel_frames)
            .with_regroup_below(pipeline.regroup_below)
            .with_rejects_in_memory(pipeline.rejects_in_memory)
    });
    let morsel_frames = pipeline.morsel_frames.max(1);
    let window_frames = window_frames(
        morsel_frames,
        pipeline.window_morsels,
        pipeline.window_budget,
        threads,
    );
    // How each log is cut: windows for logs whose nets are interleaved, see `layout_of`.
    let plain = Layout {
        frames: morsel_frames,
        windowed: false,
    };
    let layouts: Vec<Layout> = logs
        .iter()
        .map(|log| {
            log.map_or(plain, |(bytes, header)| {
                layout_of(
                    bytes,
                    header,
                    morsel_frames,
                    pipeline.regroup_below,
                    window_frames,
                )
            })
        })
        .collect();
    let commits: Vec<Mutex<Commit>> = logs
        .iter()
        .map(|_| {
            Mutex::new(Commit {
                last_stop: LOG_HEADER_LEN,
                ..Commit::default()
            })
        })
        .collect();
    let records: Vec<AtomicU64> = logs.iter().map(|_| AtomicU64::new(0)).collect();
    let tallies = Mutex::new(Vec::with_capacity(threads));
    // Committed morsels waiting for a worker (see the loop below).
    let ready_queue: SegQueue<(usize, Morsel)> = SegQueue::new();
    // Every morsel of every file is numbered in file order; workers claim the next number from
    // one shared cursor. No producer thread and no channel: on two cores, a channel's wake-ups
    // cost a context switch per morsel (`perf`: about a tenth of the CPU time went to the
    // scheduler and futexes with 1,024-frame morsels; 8% faster end to end at 4,096).
    let mut first_morsel = Vec::with_capacity(logs.len() + 1);
    let mut morsels = 0usize;
    for (log, layout) in logs.iter().zip(&layouts) {
        first_morsel.push(morsels);
        if let Some((bytes, header)) = log {
            let step = layout.frames * header.frame_len();
            morsels += bytes.len().saturating_sub(LOG_HEADER_LEN).div_ceil(step);
        }
    }
    first_morsel.push(morsels);
    let cursor = CachePadded::new(AtomicUsize::new(0));
    let gate = Gate::new(in_flight_limit(threads));
    let next_task = || -> Option<Task> {
        let number = cursor.fetch_add(1, Ordering::Relaxed);
        if number >= morsels {
            return None;
        }
        // The last file whose first morsel is at or before `number` (files without morsels
        // share their successor's number and are passed over).
        let file = first_morsel.partition_point(|&first| first <= number) - 1;
        let morsel = number - first_morsel[file];
        let (bytes, header) = logs[file]?;
        let step = layouts[file].frames * header.frame_len();
        let start = LOG_HEADER_LEN + morsel * step;
        Some(Task {
            file,
            morsel,
            start,
            end: start.saturating_add(step).min(bytes.len()),
        })
    };
    {
        let logs = &logs;
        let layouts = &layouts;
        let next_task = &next_task;
        let gate = &gate;
        pool.scope(|rayon_scope| {
            for _ in 0..threads {
                let (aggregator, commits, records, tallies, ready_queue) =
                    (&aggregator, &commits, &records, &tallies, &ready_queue);
                rayon_scope.spawn(move |_| {
                    let _abandon_on_panic = AbandonOnPanic(gate);
                    let mut worker = Worker {
                        columns: Vec::new(),
                        regroup: Regroup::new(),
                        tally: Tally::new(pipeline.collect_rejects),
                        rejects: Vec::new(),
                        window: None,
                        order: Vec::new(),
                    };
                    let aggregate = |worker: &mut Worker, file: usize, morsel: Morsel| {
                        let index = file as u32;
                        aggregator.add_scan_rejects(index, &morsel.rejects, &mut worker.tally);
                        let frames = morsel.frames();
                        let Morsel {
                            index: number,
                            start,
                            stop,
                            body,
                            rejects,
                            ..
                        } = morsel;
                        let head = match body {
                            Body::Columns(batch) => {
                                let head = aggregator.add_batch(
                                    &batch,
                                    &mut worker.regroup,
                                    &mut worker.tally,
                                );
                                columns_of(&mut worker.columns, batch.lanes(), morsel_frames)
                                    .recycle(batch);
                                head
                            }
                            Body::Window(window) => {
                                if let Some(log) = logs[file] {
                                    aggregate_window(
                                        aggregator,
                                        worker,
                                        file,
                                        &window,
                                        log,
                                        morsel_frames,
                                    );
                                }
                                worker.window = Some(window);
                                None
                            }
                        };
                        // Rounds this morsel began with are settled once every morsel before
                        // it in the file has been aggregated, by whichever worker sees that.
                        let mut ready = {
                            let mut commit = lock(&commits[file]);
                            commit.aggregated(number, head);
                            commit.settleable_head()
                        };
                        while let Some(head) = ready {
                            aggregator.settle_head(head);
                            ready = lock(&commits[file]).settleable_head();
                        }
                        let n = (frames + rejects.len()) as u64;
                        records[file].fetch_add(n, Ordering::Relaxed);
                        progress.records_done.fetch_add(n, Ordering::Relaxed);
                        progress
                            .bytes_done
                            .fetch_add((stop - start) as u64, Ordering::Relaxed);
                        worker.rejects = rejects;
                        aggregator.evict_if_needed();
                        aggregator.spill_rejects_if_needed(&mut worker.tally);
                        gate.leave();
                    };
                    let pop_ready = || ready_queue.pop();
                    loop {
                        // The run fails at the end once the rejects could not be written out
                        // (e.g. a full disk): it stops here, not after reading every input.
                        if aggregator.spill_failed() || gate.is_abandoned() {
                            break;
                        }
                        // Committed morsels of other workers first, so that aggregation is
                        // shared rather than left to whoever committed them.
                        if let Some((file, morsel)) = pop_ready() {
                            aggregate(&mut worker, file, morsel);
                            continue;
                        }
                        if !gate.try_enter() {
                            gate.wait(|| !ready_queue.is_empty());
                            continue;
                        }
                        let Some(task) = next_task() else {
                            gate.leave();
                            break;
                        };
                        let Some((bytes, header)) = logs[task.file] else {
                            gate.leave();
                            continue;
                        };
                        let lanes = usize::from(header.lanes);
                        let rejects = std::mem::take(&mut worker.rejects);
                        let into = if layouts[task.file].windowed {
                            Destination::Window(worker.window.take().unwrap_or_default())
                        } else {
                            Destination::Columns(columns_of(
                                &mut worker.columns,
                                lanes,
                                morsel_frames,
                            ))
                        };
                        let morsel = read(
                            bytes,
                            header,
                            task.file,
                            task.morsel,
                            task.start,
                            task.end,
                            pipeline.read_ahead,
                            into,
                            rejects,
                        );
                        let mut own = None;
                        {
                            let mut commit = lock(&commits[task.file]);
                            commit.parked.insert(task.morsel, morsel);
                            let commit = &mut *commit;
                            while let Some(mut next) = commit.parked.remove(&commit.next) {
                                if next.start != commit.last_stop {
                                    // The previous morsel ran past this one's cut: read again
                                    // from where it really stopped.
                                    let mut fresh = FrameColumns::new(lanes, 0);
                                    let into = match next.body {
                                        Body::Columns(_) => Destination::Columns(&mut fresh),
                                        Body::Window(window) => Destination::Window(window),
                                    };
                                    next = read(
                                        bytes,
                                        header,
                                        task.file,
                                        next.index,
                                        commit.last_stop.max(next.start),
                                        next.end,
                                        pipeline.read_ahead,
                                        into,
                                        next.rejects,
                                    );
                                }
                                commit.last_stop = next.stop;
                                if commit.next == task.morsel {
                                    // Our own morsel: aggregate it here while it is in cache.
                                    own = Some(next);
                                } else {
                                    ready_queue.push((task.file, next));
                                    gate.wake_waiters();
                                }
                                commit.next += 1;
                            }
                        }
                        if let Some(morsel) = own {
                            aggregate(&mut worker, task.file, morsel);
                        }
                    }
                    // The queue may have been filled by this worker's last commit.
                    while !aggregator.spill_failed()
                        && let Some((file, morsel)) = pop_ready()
                    {
                        aggregate(&mut worker, file, morsel);
                    }
                    lock(tallies).push(worker.tally);
                });
            }
        });
    }
    for (file, count) in files.iter_mut().zip(&records) {
        file.records = count.load(Ordering::Relaxed);
    }
    let tallies = tallies.into_inner().unwrap_or_else(PoisonError::into_inner);
    let report = pool.install(|| aggregator.finish(tallies))?;
    Ok(BatchOutcome {
        lanes,
        report,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, Notification};
    use crate::log::LogWriter;

    /// A log of `rounds` rounds of `nets` nets of `clients` transmits each, net after net
    /// within a round when `interleaved` is false, else the nets taking turns frame by frame.
    fn log(nets: u32, clients: u32, rounds: u32, interleaved: bool) -> Vec<u8> {
        let mut writer = LogWriter::new(Vec::new(), 1, 0).unwrap();
        let frame = |net, client, round| Frame {
            notification: Notification::Transmit,
            transmission: true,
            dc_net_id: net,
            client_id: client,
            round,
            timestamp_ms: 0,
            lanes: vec![1],
        };
        for round in 0..rounds {
            if interleaved {
                for client in 0..clients {
                    for net in 0..nets {
                        writer.write_frame(&frame(net, client, round)).unwrap();
                    }
                }
            } else {
                for net in 0..nets {
                    for client in 0..clients {
                        writer.write_frame(&frame(net, client, round)).unwrap();
                    }
                }
            }
        }
        writer.finish().unwrap()
    }

    #[test]
    fn only_logs_with_interleaved_nets_are_read_in_windows() {
        let regroup = crate::fast::DEFAULT_REGROUP_BELOW;
        let morsels = |frames| Layout {
            frames,
            windowed: false,
        };
        for interleaved in [false, true] {
            let bytes = log(20, 500, 2, interleaved);
            let header = LogHeader::parse(&bytes).unwrap();
            let want = if interleaved {
                Layout {
                    frames: 4096 * 3,
                    windowed: true,
                }
            } else {
                morsels(4096)
            };
            assert_eq!(layout_of(&bytes, header, 4096, regroup, 4096 * 3), want);
            // Regrouping or windows switched off: plain morsels.
            assert_eq!(layout_of(&bytes, header, 4096, 0, 4096 * 3), morsels(4096));
            assert_eq!(layout_of(&bytes, header, 4096, regroup, 0), morsels(4096));
        }
        // A morsel shorter than the threshold that holds one run is not fragmented for that.
        let bytes = log(1, 8, 1, false);
        let header = LogHeader::parse(&bytes).unwrap();
        assert_eq!(layout_of(&bytes, header, 5, regroup, 15), morsels(5));
        // A log of its header alone.
        assert_eq!(layout_of(&bytes[..64], header, 5, regroup, 15), morsels(5));
    }

    #[test]
    fn windows_shrink_to_fit_the_budget_of_all_workers() {
        let budget = DEFAULT_WINDOW_BUDGET;
        // Two workers: up to 6 windows in flight at 10 bytes a frame and 2 orders at 8 bytes,
        // 76 bytes per window frame; 128 MiB / 76 = 1,766,023 frames, more than 256 morsels.
        assert_eq!(window_frames(4096, 256, budget, 2), 4096 * 256);
        // Eight workers: 18 windows and 8 orders, 244 bytes; 550,073 frames, 134 whole morsels.
        assert_eq!(window_frames(4096, 256, budget, 8), 4096 * 134);
        // 64 workers: 130 windows and 64 orders, 1,812 bytes; 74,073 frames, 18 morsels.
        assert_eq!(window_frames(4096, 256, budget, 64), 4096 * 18);
        // What the workers may hold at once stays within the budget.
        for threads in [1, 2, 3, 8, 64, 1000] {
            let frames = window_frames(4096, 256, budget, threads) as u64;
            let held = frames
                * (in_flight_limit(threads) as u64 * WINDOW_BYTES_PER_FRAME
                    + threads as u64 * ORDER_BYTES_PER_FRAME);
            assert!(held <= budget || frames == 4096, "{threads} threads");
        }
        // Never less than a morsel, never more than asked for; 0 morsels means no windows.
        assert_eq!(window_frames(4096, 256, 0, 2), 4096);
        assert_eq!(window_frames(4096, 3, u64::MAX, 2), 4096 * 3);
        assert_eq!(window_frames(4096, 0, budget, 2), 0);
        assert_eq!(window_frames(1, 5, budget, 0), 5);
    }

    #[test]
    fn the_gate_never_lets_more_tasks_in_than_its_limit() {
        let gate = Gate::new(3);
        let most = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..2_000 {
                        while !gate.try_enter() {
                            gate.wait(|| false);
                        }
                        most.fetch_max(gate.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
                        std::thread::yield_now();
                        gate.leave();
                    }
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert_eq!(gate.in_flight.load(Ordering::SeqCst), 0);
        assert!(gate.is_open());
    }

    #[test]
    fn a_worker_that_panics_abandons_the_gate_and_wakes_the_waiters() {
        let gate = Gate::new(1);
        assert!(gate.try_enter());
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                // The gate is full and its task will never leave: only abandoning ends the
                // wait (bounded here, so that a broken gate fails the test instead of hanging).
                for _ in 0..2_000 {
                    if gate.is_abandoned() {
                        return true;
                    }
                    gate.wait(|| false);
                }
                false
            });
            let worker = scope.spawn(|| {
                let _abandon_on_panic = AbandonOnPanic(&gate);
                panic!("a worker fails while holding the gate's only task");
            });
            assert!(worker.join().is_err());
            assert!(waiter.join().unwrap(), "the waiter saw the gate abandoned");
        });
        assert!(gate.is_abandoned());
        // A worker that ends normally does not abandon it.
        let calm = Gate::new(1);
        drop(AbandonOnPanic(&calm));
        assert!(!calm.is_abandoned());
    }
}
