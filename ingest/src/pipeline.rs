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
//! undamaged log; workers never wait for each other.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam::queue::SegQueue;
use crossbeam::utils::CachePadded;
use std::sync::{Mutex, PoisonError};

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
    batch: FrameBatch,
    rejects: Vec<ScanReject>,
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
}

impl Worker {
    fn columns(&mut self, lanes: usize, capacity: usize) -> &mut FrameColumns {
        if let Some(at) = self.columns.iter().position(|c| c.lanes() == lanes) {
            return &mut self.columns[at];
        }
        self.columns.push(FrameColumns::new(lanes, capacity));
        let last = self.columns.len() - 1;
        &mut self.columns[last]
    }
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
    columns: &mut FrameColumns,
    mut rejects: Vec<ScanReject>,
) -> Morsel {
    rejects.clear();
    let stop = read_morsel_ahead(bytes, header, start, end, read_ahead, columns, &mut rejects);
    // The file index was checked against MAX_FILES.
    let batch = columns.finish(file as u32);
    Morsel {
        index,
        start,
        end,
        stop,
        // Building a batch from columns of the schema's own types cannot fail; should it ever,
        // the frames are counted as unreadable rather than lost silently.
        batch: batch.unwrap_or_else(|_| empty_batch(file, columns)),
        rejects,
    }
}

fn empty_batch(file: usize, columns: &mut FrameColumns) -> FrameBatch {
    let mut fresh = FrameColumns::new(columns.lanes(), 0);
    fresh
        .finish(file as u32)
        .unwrap_or_else(|_| unreachable!("an empty batch of the frame schema is valid"))
}

/// How many times longer the morsels of a log with interleaved nets are: sorted by (net,
/// round), a morsel of such a log has few frames of each group, so every group costs its
/// cache misses (group, roster, index) for a handful of frames. Sixteen times longer morsels
/// (2.6 MB of one-lane frames at the default size: with their columns no longer in a core's
/// L2, which matters less than the groups' misses) made a log of 1,000 interleaved nets
/// aggregate 1.8× as fast (9.6–9.9 against 17.1–19.1 M frames/s, `dcnet aggregate` on the
/// bench log with `--interleave`); 64 times longer gained another tenth for 40 MiB more
/// memory, 256 times nothing more. Logs in client order keep the short morsels their cache
/// wants.
const REGROUP_MORSEL_FACTOR: usize = 16;

/// Frames of a log's beginning that [`morsel_frames_of`] looks at: enough to tell runs of
/// a (net, round) from interleaved nets, few enough that looking at a thousand logs not yet
/// in the page cache reads little before the workers start.
const PROBE_FRAMES: usize = 512;

/// Frames per morsel for the log `bytes`: `morsel_frames`, or [`REGROUP_MORSEL_FACTOR`] times
/// that when its first frames (as many as a morsel, at most [`PROBE_FRAMES`]), by their header
/// fields, would be sorted before they are aggregated (see
/// [`crate::fast::ColumnarAggregator::with_regroup_below`]). The frames are not validated
/// here: damage only makes the guess worse, never a result different.
fn morsel_frames_of(
    bytes: &[u8],
    header: LogHeader,
    morsel_frames: usize,
    regroup_below: usize,
) -> usize {
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
    if crate::fast::is_fragmented(frames, runs, regroup_below) {
        morsel_frames.saturating_mul(REGROUP_MORSEL_FACTOR)
    } else {
        morsel_frames
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
    // Frames per morsel of each log: longer for logs whose nets are interleaved, see
    // `morsel_frames_of`.
    let file_morsel_frames: Vec<usize> = logs
        .iter()
        .map(|log| {
            log.map_or(morsel_frames, |(bytes, header)| {
                morsel_frames_of(bytes, header, morsel_frames, pipeline.regroup_below)
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
    for (log, &frames) in logs.iter().zip(&file_morsel_frames) {
        first_morsel.push(morsels);
        if let Some((bytes, header)) = log {
            let step = frames * header.frame_len();
            morsels += bytes.len().saturating_sub(LOG_HEADER_LEN).div_ceil(step);
        }
    }
    first_morsel.push(morsels);
    let cursor = CachePadded::new(AtomicUsize::new(0));
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
        let step = file_morsel_frames[file] * header.frame_len();
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
        let file_morsel_frames = &file_morsel_frames;
        let next_task = &next_task;
        pool.scope(|rayon_scope| {
            for _ in 0..threads {
                let (aggregator, commits, records, tallies, ready_queue) =
                    (&aggregator, &commits, &records, &tallies, &ready_queue);
                rayon_scope.spawn(move |_| {
                    let mut worker = Worker {
                        columns: Vec::new(),
                        regroup: Regroup::new(),
                        tally: Tally::new(pipeline.collect_rejects),
                        rejects: Vec::new(),
                    };
                    let aggregate = |worker: &mut Worker, file: usize, morsel: Morsel| {
                        let index = file as u32;
                        aggregator.add_scan_rejects(index, &morsel.rejects, &mut worker.tally);
                        let head = aggregator.add_batch(
                            &morsel.batch,
                            &mut worker.regroup,
                            &mut worker.tally,
                        );
                        // Rounds this morsel began with are settled once every morsel before
                        // it in the file has been aggregated, by whichever worker sees that.
                        let mut ready = {
                            let mut commit = lock(&commits[file]);
                            commit.aggregated(morsel.index, head);
                            commit.settleable_head()
                        };
                        while let Some(head) = ready {
                            aggregator.settle_head(head);
                            ready = lock(&commits[file]).settleable_head();
                        }
                        let n = (morsel.batch.len() + morsel.rejects.len()) as u64;
                        records[file].fetch_add(n, Ordering::Relaxed);
                        progress.records_done.fetch_add(n, Ordering::Relaxed);
                        progress
                            .bytes_done
                            .fetch_add((morsel.stop - morsel.start) as u64, Ordering::Relaxed);
                        worker
                            .columns(morsel.batch.lanes(), file_morsel_frames[file])
                            .recycle(morsel.batch);
                        worker.rejects = morsel.rejects;
                        aggregator.evict_if_needed();
                        aggregator.spill_rejects_if_needed(&mut worker.tally);
                    };
                    let pop_ready = || ready_queue.pop();
                    loop {
                        // The run fails at the end once the rejects could not be written out
                        // (e.g. a full disk): it stops here, not after reading every input.
                        if aggregator.spill_failed() {
                            break;
                        }
                        // Committed morsels of other workers first, so that aggregation is
                        // shared rather than left to whoever committed them.
                        if let Some((file, morsel)) = pop_ready() {
                            aggregate(&mut worker, file, morsel);
                            continue;
                        }
                        let Some(task) = next_task() else { break };
                        let Some((bytes, header)) = logs[task.file] else {
                            continue;
                        };
                        let lanes = usize::from(header.lanes);
                        let rejects = std::mem::take(&mut worker.rejects);
                        let columns = worker.columns(lanes, file_morsel_frames[task.file]);
                        let morsel = read(
                            bytes,
                            header,
                            task.file,
                            task.morsel,
                            task.start,
                            task.end,
                            pipeline.read_ahead,
                            columns,
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
                                    next = read(
                                        bytes,
                                        header,
                                        task.file,
                                        next.index,
                                        commit.last_stop.max(next.start),
                                        next.end,
                                        pipeline.read_ahead,
                                        &mut fresh,
                                        next.rejects,
                                    );
                                }
                                commit.last_stop = next.stop;
                                if commit.next == task.morsel {
                                    // Our own morsel: aggregate it here while it is in cache.
                                    own = Some(next);
                                } else {
                                    ready_queue.push((task.file, next));
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
    fn only_logs_with_interleaved_nets_get_longer_morsels() {
        let regroup = crate::fast::DEFAULT_REGROUP_BELOW;
        for (interleaved, want) in [(false, 4096), (true, 4096 * REGROUP_MORSEL_FACTOR)] {
            let bytes = log(20, 500, 2, interleaved);
            let header = LogHeader::parse(&bytes).unwrap();
            assert_eq!(morsel_frames_of(&bytes, header, 4096, regroup), want);
            // Regrouping switched off: the morsels are never longer.
            assert_eq!(morsel_frames_of(&bytes, header, 4096, 0), 4096);
        }
        // A morsel shorter than the threshold that holds one run is not fragmented for that.
        let bytes = log(1, 8, 1, false);
        let header = LogHeader::parse(&bytes).unwrap();
        assert_eq!(morsel_frames_of(&bytes, header, 5, regroup), 5);
        // A log of its header alone.
        assert_eq!(morsel_frames_of(&bytes[..64], header, 5, regroup), 5);
    }
}
