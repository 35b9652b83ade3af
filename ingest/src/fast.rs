//! The columnar aggregation engine: DESIGN §5 over Arrow batches, shared by all worker threads.
//!
//! State lives per (net, round) group, never per frame: a present bitmap over the net's roster,
//! the source (file and byte offset) of the transmit frame kept for each present client, the
//! running wrapping lane sums of those frames, and the few resend frames by client with their
//! values (and those of the transmit they replace, captured when the resend arrives). Frame
//! values that a rule needs again later (a duplicate to compare, a transmit that arrived after
//! its resend) are read back from the input logs by their source: the logs stay mapped for the
//! whole run, and this is rare. So an open group costs about `roster × 8 bytes`, and open groups
//! are bounded by a budget ([`ColumnarAggregator::with_budget`]), whatever the number of frames.
//!
//! Every decision is independent of the order in which frames arrive: presence and resends are
//! sets, and between two frames for the same (net, round, client, notification) the one kept is
//! the smaller of (timestamp, lanes, source), exactly what the straightforward
//! [`Aggregator`](crate::aggregate::Aggregator) keeps when it reads the logs in order. Hence the
//! results are identical for any thread count, morsel size or interleaving.

use rustc_hash::FxHashMap as HashMap;
use std::cmp::Ordering;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};

use engine::{KeyGraph, MAX_LANES};
use rayon::prelude::*;

use crate::aggregate::{AggregateOptions, AggregateReport, Nets, RoundResult, RoundStatus};
use crate::columnar::{FrameBatch, FrameColumns, ScanReject};
use crate::frame::{FRAME_HEADER_LEN, Notification, frame_len};
use crate::reject::{FrameSource, RejectCounts, RejectReason};
use crate::spill::{
    DEFAULT_REJECTS_IN_MEMORY, REJECT_ENTRY_BYTES, RejectSink, SpillError, SpillRuns,
};

const OFFSET_BITS: u32 = 40;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
/// The most inputs one aggregation takes (a source packs the file index into 24 bits).
pub const MAX_FILES: usize = 1 << (64 - OFFSET_BITS);
/// The largest input one aggregation takes, in bytes (a source packs offsets into 40 bits).
pub const MAX_FILE_BYTES: u64 = 1 << OFFSET_BITS;

/// A frame's position packed into one word: file index in the high 24 bits, byte offset in the
/// low 40. Ordered like `(file, offset)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Src(u64);

impl Src {
    fn new(file: u32, offset: u64) -> Self {
        Self((u64::from(file) << OFFSET_BITS) | (offset & OFFSET_MASK))
    }

    fn file(self) -> u32 {
        // The high 24 bits fit a u32.
        (self.0 >> OFFSET_BITS) as u32
    }

    fn offset(self) -> u64 {
        self.0 & OFFSET_MASK
    }
}

/// `source` packed as the engine packs a frame's position (the spilled reject lists store it
/// so): ordered like `(file, offset)`.
pub(crate) fn pack_source(source: FrameSource) -> u64 {
    Src::new(source.file, source.offset).0
}

/// The position [`pack_source`] packed.
pub(crate) fn unpack_source(packed: u64) -> FrameSource {
    let src = Src(packed);
    FrameSource {
        file: src.file(),
        offset: src.offset(),
    }
}

/// Finds a client's roster slot: a hash table of buckets of eight clients, multiplicative hash.
/// A hand-written table because it is the one lookup every frame pays for, and its cost is
/// branch prediction more than memory: with one entry per probe, whether a client sits in its
/// home entry or the next is a coin toss per frame. Here a client is compared with all eight
/// keys of its home bucket at once (one 64-byte line, compared as vectors), and at half load a
/// bucket almost never overflows into the next, so the branch is nearly always the same.
#[derive(Debug)]
struct RosterIndex {
    shift: u32,
    /// A client id not in the roster, held by every unused entry, so that a lookup compares
    /// keys only.
    vacant: u32,
    buckets: Vec<Bucket>,
}

const BUCKET: usize = 8;

/// Eight entries in one cache line; they fill from the front.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    keys: [u32; BUCKET],
    slots: [u32; BUCKET],
}

/// The slot [`RosterIndex::slots`] writes for a client not in the roster.
const NOT_IN_ROSTER: u32 = u32::MAX;

impl RosterIndex {
    fn new(clients: &[u32]) -> Self {
        let buckets = (clients.len() * 2)
            .div_ceil(BUCKET)
            .next_power_of_two()
            .max(2);
        let bits = buckets.trailing_zeros();
        // A roster has fewer than u32::MAX clients, so some id is free: the largest one not
        // taken, found from the top of the sorted ids.
        // A key graph's roster is already in ascending order; only another list is copied.
        let copy;
        let sorted = if clients.is_sorted() {
            clients
        } else {
            let mut list = clients.to_vec();
            list.sort_unstable();
            copy = list;
            &copy[..]
        };
        let mut vacant = u32::MAX;
        for &client in sorted.iter().rev() {
            if client == vacant {
                vacant = vacant.wrapping_sub(1);
            } else if client < vacant {
                break;
            }
        }
        let mut index = Self {
            shift: 64 - bits,
            vacant,
            buckets: vec![
                Bucket {
                    keys: [vacant; BUCKET],
                    slots: [NOT_IN_ROSTER; BUCKET],
                };
                buckets
            ],
        };
        // Entries taken per bucket, kept apart from the buckets: finding the next free entry by
        // scanning a bucket's keys read back what the previous insert had just written, and
        // made the insert loop nearly half of preparing a net.
        let mut fill = vec![0u8; buckets];
        for (slot, &client) in clients.iter().enumerate() {
            let mut at = index.home(client);
            while usize::from(fill[at]) == BUCKET {
                at = (at + 1) & (buckets - 1);
            }
            let entry = usize::from(fill[at]);
            fill[at] += 1;
            let bucket = &mut index.buckets[at];
            bucket.keys[entry] = client;
            // Rosters are far smaller than u32::MAX.
            bucket.slots[entry] = slot as u32;
        }
        index
    }

    #[inline]
    fn home(&self, client: u32) -> usize {
        ((u64::from(client).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> self.shift) as usize
    }

    /// Asks the CPU to load the bucket `client` is looked up in first.
    #[inline]
    fn prefetch(&self, client: u32) {
        crate::mmap::prefetch(bytemuck::cast_slice(&self.buckets[self.home(client)].keys));
    }

    #[inline]
    fn get(&self, client: u32) -> Option<usize> {
        let slot = self.slot(client);
        (slot != NOT_IN_ROSTER).then_some(slot as usize)
    }

    /// The client's slot, or [`NOT_IN_ROSTER`].
    #[inline(always)]
    fn slot(&self, client: u32) -> u32 {
        if client == self.vacant {
            return NOT_IN_ROSTER;
        }
        let mask = self.buckets.len() - 1;
        let mut at = self.home(client);
        loop {
            let bucket = &self.buckets[at];
            if let Some(slot) = bucket.slot_of(client) {
                return slot;
            }
            if bucket.keys[BUCKET - 1] == self.vacant {
                return NOT_IN_ROSTER;
            }
            at = (at + 1) & mask;
        }
    }
}

impl Bucket {
    /// The slot stored beside `client`'s key, if the bucket holds it. Written as a mask per
    /// entry (all ones where the key is the client) and-ed with the slots and or-ed together,
    /// which LLVM compiles to a few vector compares and ands with no branch and no scalar
    /// compare per key; a roster's ids are distinct, so at most one entry matches. Packing a
    /// byte per key into a word instead compiles to scalar compares and byte stores read back
    /// as a word (27 instructions a lookup under callgrind against 20, and a store-forwarding
    /// stall).
    #[inline(always)]
    fn slot_of(&self, client: u32) -> Option<u32> {
        let mut slot = 0u32;
        let mut hit = 0u32;
        for (&key, &entry) in self.keys.iter().zip(&self.slots) {
            let mask = 0u32.wrapping_sub(u32::from(key == client));
            slot |= mask & entry;
            hit |= mask;
        }
        (hit != 0).then_some(slot)
    }
}

/// A net's roster and key graph by slot (slots are the ascending order of client ids).
#[derive(Debug)]
struct NetInfo {
    clients: Vec<u32>,
    index: RosterIndex,
    /// `neighbours[adjacency[s]..adjacency[s + 1]]` are the slots of slot `s`'s neighbours.
    adjacency: Vec<u32>,
    neighbours: Vec<u32>,
}

impl NetInfo {
    fn new(graph: &KeyGraph) -> Self {
        let clients = graph.clients().to_vec();
        let index = RosterIndex::new(&clients);
        // Two passes: the neighbour ids first (a pointer chase per client), then their slots
        // in one tight loop of independent lookups, which the CPU overlaps; looking each id up
        // as it is read took twice as long. Every neighbour of a client is on the roster.
        let mut adjacency = Vec::with_capacity(clients.len() + 1);
        let mut neighbours: Vec<u32> = Vec::with_capacity(graph.edge_count() * 2);
        adjacency.push(0);
        for slot in 0..clients.len() {
            neighbours.extend_from_slice(graph.neighbours_at(slot));
            adjacency.push(neighbours.len() as u32);
        }
        for neighbour in &mut neighbours {
            *neighbour = index.slot(*neighbour);
        }
        debug_assert!(
            !neighbours.contains(&NOT_IN_ROSTER),
            "a key graph's edges join clients"
        );
        Self {
            clients,
            index,
            adjacency,
            neighbours,
        }
    }

    /// The slot of `client`, or [`NOT_IN_ROSTER`], searched from `hint` (the slot after the
    /// last one found in this run). Frames of a (net, round) mostly come in client order, so
    /// the client is usually at the hint or a few slots after it (after a dropout, or the next
    /// resend): those slots were just read by the ordered path and are in cache, while the
    /// hash index of a net is cold for the few lookups a run makes. So a client up to
    /// [`REACH`] slots ahead is searched for in the sorted roster; one probe at the end of that
    /// window tells whether it can be there, so a log in random order pays one probe more
    /// than the index lookup it then makes.
    #[inline]
    fn slot_near(&self, client: u32, hint: usize) -> u32 {
        let roster = &self.clients;
        match roster.get(hint) {
            Some(&at) if at == client => hint as u32,
            Some(&at) if at < client => {
                if roster.get(hint + 1) == Some(&client) {
                    return (hint + 1) as u32;
                }
                let far = (hint + REACH).min(roster.len() - 1);
                if roster[far] < client {
                    return self.index.slot(client);
                }
                // roster[hint] < client <= roster[far]: there or nowhere.
                let window = &roster[hint + 1..=far];
                match window.binary_search(&client) {
                    Ok(at) => (hint + 1 + at) as u32,
                    Err(_) => NOT_IN_ROSTER,
                }
            }
            _ => self.index.slot(client),
        }
    }

    fn neighbours(&self, slot: usize) -> &[u32] {
        &self.neighbours[self.adjacency[slot] as usize..self.adjacency[slot + 1] as usize]
    }

    /// Asks the CPU to load the neighbour list of `slot` without waiting for it.
    fn prefetch_neighbours(&self, slot: usize) {
        crate::mmap::prefetch(bytemuck::cast_slice(self.neighbours(slot)));
    }
}

/// One (net, round) while frames may still come: what DESIGN §5 needs, by roster slot.
#[derive(Debug, Clone)]
struct Group {
    present: Vec<u64>,
    /// The source of the transmit kept for each slot; only read where `present` has the bit,
    /// so a reused group need not clear it.
    kept: Vec<Src>,
    sum: Vec<u64>,
    /// Kept resend per slot: its source and where its values start in `captured`.
    resends: HashMap<u32, (Src, u32)>,
    /// Per kept resend, `1 + 2·lanes` words: the source of the client's transmit when the resend
    /// was kept (or 0), the resend's lanes, that transmit's lanes. Captured while both frames
    /// are still in cache, so that settling rarely reads frames back from the logs.
    captured: Vec<u64>,
}

impl Group {
    fn new(roster: usize, lanes: usize) -> Self {
        Self {
            present: vec![0; roster.div_ceil(64)],
            kept: vec![Src(0); roster],
            sum: vec![0; lanes],
            resends: HashMap::default(),
            captured: Vec::new(),
        }
    }

    fn is_present(&self, slot: usize) -> bool {
        self.present[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// Heap bytes of a group over a roster of `roster` clients.
    fn footprint(roster: usize) -> u64 {
        (roster * 8 + roster.div_ceil(64) * 8 + 64) as u64
    }
}

/// Buffers [`ColumnarAggregator::settle`] works in, one set per thread and reused from round
/// to round: allocated afresh they were most of the aggregation's allocations (the growing
/// list of needy slots alone took four or five a round), each a trip through the allocator's
/// locks when the other worker freed or grew a block of the same arena.
#[derive(Debug, Default)]
struct SettleScratch {
    missing: Vec<usize>,
    needs_bits: Vec<u64>,
    resends: Vec<(u32, Src)>,
    needy: Vec<usize>,
}

thread_local! {
    static SETTLE_SCRATCH: std::cell::RefCell<SettleScratch> =
        std::cell::RefCell::new(SettleScratch::default());
}

/// A settled round: its row, the rejects settling produced and the frames it used.
type Settled = (RoundResult, Vec<(Src, RejectReason)>, u64);

/// A round as `finish` finds it: the index of its stored row, or what settling it (or
/// aggregating it again) needs: its key, net, the net's roster and graph, its state and byte
/// ranges.
type Work<'n> = Result<u32, (u64, u32, &'n NetInfo, State, Vec<(u32, u64, u64)>)>;

/// Counts a settled round's rejects by reason, and lists them when rejects are `collect`ed.
fn count_rejects(
    group_rejects: Vec<(Src, RejectReason)>,
    collect: bool,
    counts: &mut [u64],
    rejects: &mut RejectSink,
) -> Result<(), SpillError> {
    for &(_, reason) in &group_rejects {
        counts[reason as usize] += 1;
    }
    if collect {
        for (src, reason) in group_rejects {
            rejects.push(src.0, reason)?;
        }
    }
    Ok(())
}

/// The byte ranges `(file, first, last)` of several rounds as the fewest stretches to read:
/// sorted, and merged where they overlap or where the gap between them is at most `gap`
/// bytes (reading a short gap costs less than starting another pass).
fn merge_spans(mut spans: Vec<(u32, u64, u64)>, gap: u64) -> Vec<(u32, u64, u64)> {
    spans.sort_unstable();
    let mut merged: Vec<(u32, u64, u64)> = Vec::with_capacity(spans.len());
    for (file, first, last) in spans {
        match merged.last_mut() {
            Some((f, _, hi)) if *f == file && first <= hi.saturating_add(gap) => {
                *hi = (*hi).max(last);
            }
            _ => merged.push((file, first, last)),
        }
    }
    merged
}

/// A round to aggregate again at the end (see `ColumnarAggregator::redo_all`): its key, its
/// net's roster, and the byte ranges its frames came from.
struct Redo<'n> {
    key: u64,
    info: &'n NetInfo,
    ranges: Vec<(u32, u64, u64)>,
}

/// Rounds settled on the pool before their rejects go to the list (see `finish`).
const SETTLE_CHUNK: usize = 256;

/// Where a group stands.
#[derive(Debug)]
enum State {
    /// Frames are being added.
    Open(Box<Group>),
    /// Settled early to free memory (see [`ColumnarAggregator::with_budget`]): its result is
    /// row `.0` of the [`SettledStore`], and the group table holds that index instead of a cell.
    Settled(u32),
    /// Frames arrived after the group was settled early: it is aggregated again at the end
    /// from the byte ranges its frames came from.
    Dirty,
}

/// A group and what is needed to redo it.
#[derive(Debug)]
struct Cell {
    state: State,
    /// Per file, the first and last offset of a frame that reached this group.
    ranges: Vec<(u32, u64, u64)>,
    /// Duplicates reported while open, withdrawn if the group is aggregated again. Which ones
    /// is not kept here (that would grow with the frames): a listed duplicate names its frame,
    /// whose (net, round) the end reads back (see [`ColumnarAggregator::finish`]).
    reported: u64,
}

/// What the group table holds for a (net, round): the live cell, or, once the round was settled
/// early, only the index of its row in the [`SettledStore`].
#[derive(Debug)]
enum Entry {
    Live(Arc<GroupCell>),
    Settled(u32),
}

/// Rounds settled early, a few dozen bytes each: a settled round gives up its cell, its group
/// buffers and its heap-allocated row, so that memory grows by little more than this per round
/// over logs of hundreds of thousands of rounds.
#[derive(Debug, Default)]
struct SettledStore {
    lanes: usize,
    rows: Vec<SettledRow>,
    /// `lanes` words per row: the sums (zeros unless the status is ok).
    sums: Vec<u64>,
    /// What few rounds have: flagged clients, rejects, reported duplicates, further ranges.
    extras: HashMap<u32, SettledExtras>,
}

#[derive(Debug)]
struct SettledRow {
    key: u64,
    expected: u32,
    present: u32,
    resent: u32,
    status: RoundStatus,
    /// Duplicates reported while it was open.
    reported: u32,
    /// The first of its byte ranges (file, first offset, last offset).
    range: (u32, u64, u64),
}

#[derive(Debug, Default)]
struct SettledExtras {
    exposed: Vec<u32>,
    rejects: Vec<(Src, RejectReason)>,
    more_ranges: Vec<(u32, u64, u64)>,
}

impl SettledStore {
    /// Stores the settled round `key` whose cell is `cell`; returns its row index.
    fn push(&mut self, key: u64, settled: Settled, cell: &Cell) -> u32 {
        let (row, rejects, _) = settled;
        let index = self.rows.len() as u32;
        match &row.sum {
            Some(sum) if sum.len() == self.lanes => self.sums.extend_from_slice(sum),
            _ => self.sums.resize(self.sums.len() + self.lanes, 0),
        }
        self.rows.push(SettledRow {
            key,
            expected: row.expected as u32,
            present: row.present as u32,
            resent: row.resent as u32,
            status: row.status,
            reported: cell.reported as u32,
            range: cell.ranges.first().copied().unwrap_or((0, 0, 0)),
        });
        let more_ranges = cell.ranges.get(1..).unwrap_or(&[]).to_vec();
        if !row.exposed.is_empty() || !rejects.is_empty() || !more_ranges.is_empty() {
            self.extras.insert(
                index,
                SettledExtras {
                    exposed: row.exposed,
                    rejects,
                    more_ranges,
                },
            );
        }
        index
    }

    /// A dirty cell that takes over from row `index` (which the group table then no longer
    /// names, so the row is never read again) with what redoing the round needs: its byte
    /// ranges and the number of duplicates reported while it was open.
    fn revive(&mut self, index: u32) -> Cell {
        let row = &self.rows[index as usize];
        let mut ranges = vec![row.range];
        if let Some(extras) = self.extras.remove(&index) {
            ranges.extend(extras.more_ranges);
        }
        Cell {
            state: State::Dirty,
            ranges,
            reported: u64::from(row.reported),
        }
    }

    /// Row `index` as a settled result.
    fn result(&mut self, index: u32) -> Settled {
        let row = &self.rows[index as usize];
        let (net, round) = ((row.key >> 32) as u32, row.key as u32);
        let at = index as usize * self.lanes;
        let sum = (row.status == RoundStatus::Ok).then(|| self.sums[at..at + self.lanes].to_vec());
        let extras = self.extras.remove(&index).unwrap_or_default();
        let result = RoundResult {
            dc_net_id: net,
            round,
            expected: row.expected as usize,
            present: row.present as usize,
            resent: row.resent as usize,
            status: row.status,
            sum,
            exposed: extras.exposed,
        };
        let kept = u64::from(row.present) + u64::from(row.resent);
        (result, extras.rejects, kept)
    }
}

/// The shared handle of a group: its state, and when it was last used (for eviction).
#[derive(Debug)]
struct GroupCell {
    touched: AtomicU64,
    /// Whether the group is open, so that eviction passes skip settled groups unlocked.
    open: AtomicBool,
    cell: Mutex<Cell>,
}

/// The columns of a run and what the fast path needs to take a row without the general rules.
struct FastRows<'b> {
    codes: &'b [u8],
    bit_bytes: &'b [u8],
    bit_offset: usize,
    on_time: u64,
    clients: &'b [u32],
    timestamps: &'b [u64],
    offsets: &'b [u64],
    file: u32,
    /// The net: its roster by slot (ascending client ids) and the roster index.
    info: &'b NetInfo,
    /// Whether the run's clients ascend (a sorted batch): the next one is then always at or
    /// after the last one's slot, so it is searched for there however far the stretches are
    /// from being consecutive, never in the roster index (whose buckets are cold).
    ascending: bool,
}

/// Rows the ordered fast path checks and takes at once.
const ORDERED: usize = 16;

/// How many rows ahead of a lookup in the roster index the bucket of a later row's client is
/// asked for, in a run whose clients come in no particular order.
const INDEX_AHEAD: usize = 24;

/// How far ahead of the expected slot [`NetInfo::slot_near`] searches the roster.
const REACH: usize = 64;

impl FastRows<'_> {
    /// Takes rows from `row` on while each is a transmit with its bit set, on time, of a
    /// roster client not yet present: sets its bit and records its source (the caller sums
    /// the lanes of the taken rows, which are contiguous). Returns the first row it did not
    /// take (or `end`). The group's arrays come as separate slices so that the loop keeps
    /// their addresses in registers.
    ///
    /// Logs are usually written a (net, round) at a time in client order, and slots are the
    /// ascending order of client ids, so a row's client is most often the roster client right
    /// after the previous row's. Such stretches are checked [`ORDERED`] rows at a time with
    /// no lookup at all ([`Self::take_ordered`]); any other row is searched for near the
    /// expected slot ([`NetInfo::slot_near`]), and the prediction starts again from its slot.
    /// `next` is the slot the next row's client is expected at; it is left after the last
    /// row taken. `unordered` counts the stretches in a row that were mostly not where
    /// predicted (see below); it is carried from call to call within a run, so that a run in
    /// no particular order is not predicted afresh after every resend it holds.
    #[inline]
    fn take(
        &self,
        mut row: usize,
        end: usize,
        next: &mut usize,
        unordered: &mut u32,
        present: &mut [u64],
        kept: &mut [Src],
    ) -> usize {
        let transmit = Notification::Transmit as u8;
        // The expected slot lives in a local for the loop and goes back through `next` at the
        // end, whichever way the loop stops.
        let mut hint = *next;
        let stop = 'rows: {
            // `unordered` counts stretches in a row whose clients mostly were not where
            // predicted: from two on, the log is taken to be in no particular order here, and
            // rows go straight to the roster index (its bucket asked for [`INDEX_AHEAD`] rows
            // early), without the ordered check or the search ahead; a stretch that is mostly
            // in order again switches back.
            while row < end {
                if *unordered < 2 && self.take_ordered(row, end, hint, present, kept) {
                    row += ORDERED;
                    hint += ORDERED;
                    continue;
                }
                // Up to a chunk of single rows before the ordered path is tried again, so that a
                // log in no particular order pays for the failed check once per chunk only.
                let stretch_end = (row + ORDERED).min(end);
                let mut predicted = 0;
                let stretch_start = row;
                while row < stretch_end {
                    let at = self.bit_offset + row;
                    if self.codes[row] != transmit
                        || self.bit_bytes[at / 8] & (1 << (at % 8)) == 0
                        || self.timestamps[row] > self.on_time
                    {
                        break 'rows row;
                    }
                    let client = self.clients[row];
                    let slot = if *unordered < 2 || self.ascending {
                        self.info.slot_near(client, hint)
                    } else {
                        if let Some(&ahead) = self.clients.get(row + INDEX_AHEAD) {
                            self.info.index.prefetch(ahead);
                        }
                        self.info.index.slot(client)
                    };
                    if slot == NOT_IN_ROSTER {
                        break 'rows row;
                    }
                    let slot = slot as usize;
                    let (word, bit) = (slot / 64, 1u64 << (slot % 64));
                    if present[word] & bit != 0 {
                        break 'rows row;
                    }
                    present[word] |= bit;
                    kept[slot] = Src::new(self.file, self.offsets[row]);
                    let skipped = slot != hint;
                    predicted += usize::from(!skipped);
                    hint = slot + 1;
                    row += 1;
                    // A client found a little further on than predicted, after rows that were
                    // all where predicted: a dropout in an ordered log. The rows after it are
                    // likely in order again, so the ordered check is tried again from here
                    // rather than after the rest of the stretch.
                    if skipped && predicted > 0 && predicted + 1 == row - stretch_start {
                        break;
                    }
                }
                if row < stretch_end {
                    // Left early at a dropout: mostly ordered.
                    *unordered = 0;
                } else if predicted < ORDERED / 2 {
                    *unordered = (*unordered + 1).min(2);
                } else {
                    *unordered = 0;
                }
            }
            end
        };
        *next = hint;
        stop
    }

    /// Takes rows `row..row + ORDERED` if they are exactly the roster clients of slots
    /// `next..next + ORDERED`, all transmits with their bit set, on time and not yet present.
    /// Every check is a fold over the whole chunk without early exit, which LLVM turns into
    /// vector compares; the chunk is taken or left as a whole.
    #[inline(always)]
    fn take_ordered(
        &self,
        row: usize,
        end: usize,
        next: usize,
        present: &mut [u64],
        kept: &mut [Src],
    ) -> bool {
        let (Some(clients), Some(expected)) = (
            self.clients
                .get(row..row + ORDERED)
                .filter(|_| row + ORDERED <= end),
            self.info.clients.get(next..next.wrapping_add(ORDERED)),
        ) else {
            return false;
        };
        let (Some(codes), Some(stamps)) = (
            self.codes.get(row..row + ORDERED),
            self.timestamps.get(row..row + ORDERED),
        ) else {
            return false;
        };
        let mut differ = 0u32;
        for (&client, &roster) in clients.iter().zip(expected) {
            differ |= client ^ roster;
        }
        let transmit = Notification::Transmit as u8;
        let mut not_transmit = 0u8;
        for &code in codes {
            not_transmit |= code ^ transmit;
        }
        let mut late = 0u8;
        for &stamp in stamps {
            late |= u8::from(stamp > self.on_time);
        }
        if differ != 0 || not_transmit != 0 || late != 0 || self.bits16(row) != 0xFFFF {
            return false;
        }
        // The slots' present bits, which span at most two words.
        let (word, shift) = (next / 64, next % 64);
        let mask = 0xFFFFu128 << shift;
        let (low, high) = (mask as u64, (mask >> 64) as u64);
        let high_word = if high == 0 { 0 } else { present[word + 1] };
        if present[word] & low != 0 || high_word & high != 0 {
            return false;
        }
        present[word] |= low;
        if high != 0 {
            present[word + 1] |= high;
        }
        let file = Src::new(self.file, 0).0;
        for (kept, &offset) in kept[next..next + ORDERED]
            .iter_mut()
            .zip(&self.offsets[row..row + ORDERED])
        {
            *kept = Src(file | (offset & OFFSET_MASK));
        }
        true
    }

    /// The transmission bits of rows `row..row + 16`, as the low 16 bits.
    #[inline(always)]
    fn bits16(&self, row: usize) -> u32 {
        let at = self.bit_offset + row;
        let byte = at / 8;
        // Four bytes at once where the bitmap has them (all but its last bytes); copying a
        // slice of varying length into a word is a call to memcpy and a store read back.
        let word = match self.bit_bytes.get(byte..byte + 4) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => {
                let mut word = [0u8; 4];
                let available = self.bit_bytes.len().saturating_sub(byte).min(4);
                word[..available].copy_from_slice(&self.bit_bytes[byte..byte + available]);
                u32::from_le_bytes(word)
            }
        };
        (word >> (at % 8)) & 0xFFFF
    }
}

/// [`is_fragmented`] for the rows whose nets and rounds are `nets` and `rounds`, with the runs
/// counted only as far as the answer needs.
fn runs_are_fragmented(nets: &[u32], rounds: &[u32], regroup_below: usize) -> bool {
    if regroup_below == 0 {
        return false;
    }
    let rows = nets.len().min(rounds.len());
    // Fragmented from this many runs on (`rows < regroup_below * runs`), and never below two.
    let enough = (rows / regroup_below + 1).max(2);
    let (mut runs, mut start) = (0, 0);
    while start < rows && runs < enough {
        start = run_end(nets, rounds, start);
        runs += 1;
    }
    is_fragmented(rows, runs, regroup_below)
}

/// The end of the run of rows of one (net, round) that starts at row `start` (`start` below
/// the columns' length): sixteen rows at a time while the whole chunk is of the run (a fold
/// without early exit, which compiles to vector compares), then row by row.
#[inline]
fn run_end(nets: &[u32], rounds: &[u32], start: usize) -> usize {
    let (net, round) = (nets[start], rounds[start]);
    let rows = nets.len().min(rounds.len());
    let mut end = start + 1;
    while let (Some(n), Some(r)) = (nets.get(end..end + 16), rounds.get(end..end + 16)) {
        let mut differ = 0u32;
        for (&n, &r) in n.iter().zip(r) {
            differ |= (n ^ net) | (r ^ round);
        }
        if differ != 0 {
            break;
        }
        end += 16;
    }
    while end < rows && nets[end] == net && rounds[end] == round {
        end += 1;
    }
    end
}

/// The order of a batch's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// As the frames lie in the log.
    AsRead,
    /// By net, round, client and offset ([`Regroup::sorted`]).
    Sorted,
    /// Gathered from a window of the log, a net's frames together and in log order
    /// ([`crate::window`]): a run's clients in no particular order, and nothing about which
    /// rounds are complete.
    Partitioned,
}

/// Average run length of one (net, round) in a batch below which it is sorted before it is
/// aggregated (see [`ColumnarAggregator::with_regroup_below`]).
pub const DEFAULT_REGROUP_BELOW: usize = 32;

/// Whether `frames` frames in `runs` runs of one (net, round) average fewer than
/// `regroup_below` frames a run. Never for a single run (a morsel shorter than the threshold
/// is not fragmented for that) or for `regroup_below` 0.
pub(crate) fn is_fragmented(frames: usize, runs: usize, regroup_below: usize) -> bool {
    runs >= 2 && frames < regroup_below.saturating_mul(runs)
}

/// What one worker keeps from batch to batch to regroup fragmented batches
/// ([`ColumnarAggregator::add_batch`]): the sort keys, the row order and the columns the
/// sorted rows are gathered into. Allocating them afresh for every morsel of an interleaved
/// log (several megabytes each) cost page faults and trimming on every morsel.
#[derive(Debug, Default)]
pub struct Regroup {
    keys: Vec<u128>,
    rows: Vec<u32>,
    columns: Option<FrameColumns>,
}

impl Regroup {
    /// Empty buffers; they grow to the largest batch regrouped.
    pub fn new() -> Self {
        Self::default()
    }

    /// `batch` with its rows sorted by net, round, client and offset, or `None` should the
    /// columns not make a batch (it is then aggregated as read). Give the batch back with
    /// [`Self::recycle`] once it is aggregated.
    fn sorted(&mut self, batch: &FrameBatch) -> Option<FrameBatch> {
        let (nets, rounds, clients) = (batch.dc_net_id(), batch.round(), batch.client_id());
        // One u128 per row, (net, round, client, row) from the top bits down: sorting integers
        // is faster than sorting tuples of them.
        self.keys.clear();
        self.keys.extend((0..batch.len()).map(|row| {
            (u128::from(nets[row]) << 96)
                | (u128::from(rounds[row]) << 64)
                | (u128::from(clients[row]) << 32)
                | row as u128
        }));
        self.keys.sort_unstable();
        self.rows.clear();
        self.rows.extend(self.keys.iter().map(|&key| key as u32));
        let lanes = batch.lanes();
        let columns = match &mut self.columns {
            Some(columns) if columns.lanes() == lanes => columns,
            other => other.insert(FrameColumns::new(lanes, batch.len())),
        };
        columns.gather(batch, &self.rows);
        columns.finish(batch.file).ok()
    }

    /// Takes back the buffers of a batch [`Self::sorted`] made.
    fn recycle(&mut self, sorted: FrameBatch) {
        if let Some(columns) = &mut self.columns {
            columns.recycle(sorted);
        }
    }
}

/// Per-worker tallies: reject counts by reason and, when asked for, each rejected frame.
#[derive(Debug, Default)]
pub struct Tally {
    counts: [u64; RejectReason::ALL.len()],
    rejects: Vec<(Src, RejectReason)>,
    collect: bool,
    /// Listed rejects already written to a temporary file
    /// ([`ColumnarAggregator::spill_rejects_if_needed`]).
    spilled: SpillRuns,
    /// The first failure to spill: the list is incomplete, and `finish` reports it.
    failed: Option<SpillError>,
}

/// Listed rejects a morsel may add past the bound before the worker spills, without the list
/// growing beyond the room [`ColumnarAggregator::spill_rejects_if_needed`] reserved.
const SPILL_HEADROOM: usize = 1 << 16;
/// The largest list (in entries, 1 GiB) whose room is reserved at once; beyond, it doubles.
const MAX_RESERVED: usize = 1 << 26;

// The memory figure the binary converts its reject budget with.
const _: () = assert!(std::mem::size_of::<(Src, RejectReason)>() as u64 == REJECT_ENTRY_BYTES);

impl Tally {
    /// A tally that lists each rejected frame when `collect_rejects` is set.
    pub fn new(collect_rejects: bool) -> Self {
        Self {
            collect: collect_rejects,
            ..Self::default()
        }
    }

    #[inline]
    fn reject(&mut self, src: Src, reason: RejectReason) {
        self.counts[reason as usize] += 1;
        if self.collect {
            self.rejects.push((src, reason));
        }
    }
}

/// The engine's view of the input logs: every input's bytes by file index, so that frames can
/// be read back by their source.
pub struct Inputs<'a> {
    files: Vec<&'a [u8]>,
}

impl<'a> Inputs<'a> {
    /// The inputs in file-index order (an unreadable input is an empty slice).
    pub fn new(files: Vec<&'a [u8]>) -> Self {
        Self { files }
    }

    /// The timestamp and lane bytes of the frame at `src`, which was validated when it was read.
    fn frame(&self, src: Src, frame_len: usize) -> (u64, &'a [u8]) {
        let bytes = self
            .files
            .get(src.file() as usize)
            .and_then(|file| {
                let start = usize::try_from(src.offset()).ok()?;
                file.get(start..start.checked_add(frame_len)?)
            })
            .unwrap_or(&[]);
        if bytes.len() < frame_len {
            // Only if a mapped log changed under us; compare as the smallest frame.
            return (0, &[]);
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[24..32]);
        (u64::from_le_bytes(ts), &bytes[FRAME_HEADER_LEN..])
    }

    /// The (net, round) group key of the frame at `src`, which was validated when it was read;
    /// `None` only if its bytes are no longer there.
    fn group_key(&self, src: Src) -> Option<u64> {
        let start = usize::try_from(src.offset()).ok()?;
        let header = self
            .files
            .get(src.file() as usize)?
            .get(start..start.checked_add(FRAME_HEADER_LEN)?)?;
        let word = |at: usize| {
            let mut word = [0u8; 4];
            word.copy_from_slice(&header[at..at + 4]);
            u64::from(u32::from_le_bytes(word))
        };
        Some((word(8) << 32) | word(16))
    }
}

fn lane_words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes.chunks_exact(8).map(|w| {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        u64::from_le_bytes(word)
    })
}

/// The wrapping sum of a column: the lane-sum kernel. A plain fold over a slice, which LLVM
/// turns into vector adds over several accumulators (the `sum kernel` benchmark compares it
/// with a scalar loop).
#[inline]
pub fn column_sum(values: &[u64]) -> u64 {
    values.iter().fold(0u64, |acc, &v| acc.wrapping_add(v))
}

type Shard = Mutex<HashMap<u64, Entry>>;
const SHARDS: usize = 64;

/// DESIGN §5 over frame batches from any number of threads at once.
pub struct ColumnarAggregator<'a> {
    nets: HashMap<u32, NetInfo>,
    lanes: usize,
    frame_len: usize,
    options: AggregateOptions,
    inputs: Inputs<'a>,
    shards: Vec<Shard>,
    budget: u64,
    redo_morsel_frames: usize,
    regroup_below: usize,
    open_bytes: AtomicU64,
    clock: AtomicU64,
    evicting: Mutex<()>,
    // Boxed as the open state holds them, so that taking one out and putting it back moves a
    // pointer and allocates nothing (a cross-thread malloc and free per round otherwise).
    #[allow(clippy::vec_box)]
    spare: Mutex<Vec<Box<Group>>>,
    settled: Mutex<SettledStore>,
    rejects_in_memory: usize,
    /// Set once a worker could not write its rejects out: the run is bound to fail, so the
    /// workers stop claiming morsels rather than read the rest of the input for nothing.
    spill_failed: AtomicBool,
}

/// A round a batch began with and saw the end of (see [`ColumnarAggregator::add_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadRound {
    net: u32,
    round: u32,
}

/// Heap bytes of open groups before the oldest are settled early, unless configured otherwise.
pub const DEFAULT_BUDGET: u64 = 64 << 20;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking worker poisons nothing we rely on: every update keeps the state consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<'a> ColumnarAggregator<'a> {
    /// An engine for frames of `lanes` lanes of the nets in `nets`, reading frames back from
    /// `inputs`.
    pub fn new(nets: &Nets, lanes: usize, options: AggregateOptions, inputs: Inputs<'a>) -> Self {
        Self {
            // One roster index and adjacency per net: a million clients take tens of
            // milliseconds, so the nets are indexed in parallel (on the caller's pool).
            nets: nets
                .par_iter()
                .map(|(&id, graph)| (id, NetInfo::new(graph)))
                .collect(),
            lanes,
            frame_len: frame_len(lanes),
            options,
            inputs,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            budget: DEFAULT_BUDGET,
            redo_morsel_frames: crate::columnar::DEFAULT_MORSEL_FRAMES,
            regroup_below: DEFAULT_REGROUP_BELOW,
            open_bytes: AtomicU64::new(0),
            clock: AtomicU64::new(0),
            evicting: Mutex::new(()),
            spare: Mutex::new(Vec::new()),
            settled: Mutex::new(SettledStore {
                lanes,
                ..SettledStore::default()
            }),
            rejects_in_memory: DEFAULT_REJECTS_IN_MEMORY,
            spill_failed: AtomicBool::new(false),
        }
    }

    /// Keeps at most about `entries` listed rejects in memory per worker (and as many while
    /// finishing): beyond it they are sorted and written to temporary files (see
    /// [`crate::spill`]) by [`Self::spill_rejects_if_needed`]. The list never depends on it.
    pub fn with_rejects_in_memory(mut self, entries: usize) -> Self {
        self.rejects_in_memory = entries;
        self
    }

    /// Writes the rejects `tally` lists to a temporary file, sorted, once they reach the bound
    /// of [`Self::with_rejects_in_memory`]. Cheap to call after every batch. A failure is kept
    /// in the tally and returned by [`Self::finish`]; the list is dropped from then on, so that
    /// memory stays bounded.
    pub fn spill_rejects_if_needed(&self, tally: &mut Tally) {
        let bound = self.rejects_in_memory.max(1);
        let listed = tally.rejects.len();
        if listed < bound {
            // The list's room is reserved at once, up to the bound and a morsel's worth more,
            // rather than doubled past the bound: capacity never written costs no memory,
            // while a doubling copies the list and can leave the old buffer resident.
            let room = bound.saturating_add(SPILL_HEADROOM);
            if listed > 0 && room <= MAX_RESERVED && tally.rejects.capacity() < room {
                // Without the room the list still grows, by doubling.
                let _ = tally.rejects.try_reserve_exact(room - listed);
            }
            return;
        }
        if tally.failed.is_none()
            && let Err(error) = self.spill_rejects(tally)
        {
            tally.failed = Some(error);
            self.spill_failed.store(true, AtomicOrdering::Relaxed);
        }
        tally.rejects.clear();
    }

    /// Whether a worker's rejects could not be written out, so that [`Self::finish`] will
    /// fail: callers stop adding batches.
    pub fn spill_failed(&self) -> bool {
        self.spill_failed.load(AtomicOrdering::Relaxed)
    }

    /// Writes the rejects `tally` lists as one sorted run and empties the list.
    fn spill_rejects(&self, tally: &mut Tally) -> Result<(), SpillError> {
        tally.rejects.sort_unstable();
        let mut run = tally.spilled.run()?;
        for &(src, reason) in &tally.rejects {
            // A duplicate is withdrawn if its round is aggregated again, which only the end
            // knows: it carries its round along.
            let key = if reason == RejectReason::Duplicate {
                self.inputs.group_key(src)
            } else {
                None
            };
            run.push(src.0, reason, key)?;
        }
        run.finish()?;
        tally.rejects.clear();
        Ok(())
    }

    /// Keeps at most about `bytes` of open groups: when more are open, the least recently used
    /// are settled early. A frame that arrives for such a group later makes it "dirty", and it
    /// is aggregated again at the end from the byte ranges its frames came from, so results
    /// never depend on the budget; only the time does, for logs whose rounds are scattered.
    pub fn with_budget(mut self, bytes: u64) -> Self {
        self.budget = bytes;
        self
    }

    /// Sorts a batch by net, round and client before aggregating it when its runs of one
    /// (net, round) are on average shorter than `frames` (0: never; `usize::MAX`: always).
    /// Results never depend on it; a log whose nets are interleaved is aggregated many times
    /// faster sorted, one whose rounds come whole is faster as read.
    pub fn with_regroup_below(mut self, frames: usize) -> Self {
        self.regroup_below = frames;
        self
    }

    /// Reads a round aggregated again ([`Self::with_budget`]) `frames` frames at a time (at
    /// least one), so that its memory does not grow with the byte range it spans.
    pub fn with_redo_morsel(mut self, frames: usize) -> Self {
        self.redo_morsel_frames = frames.max(1);
        self
    }

    /// Lanes per frame.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Counts the stretches of input `file` that the reader rejected.
    pub fn add_scan_rejects(&self, file: u32, rejects: &[ScanReject], tally: &mut Tally) {
        for &(offset, reason) in rejects {
            tally.reject(Src::new(file, offset), reason);
        }
    }

    /// The live cell of (net, round): a new open group the first time, and for a round settled
    /// early a dirty cell that takes over from its stored row.
    fn group(&self, net: u32, round: u32, roster: usize) -> Arc<GroupCell> {
        let key = (u64::from(net) << 32) | u64::from(round);
        let mut shard = lock(self.shard(key));
        match shard.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut entry) => match entry.get() {
                Entry::Live(cell) => cell.clone(),
                &Entry::Settled(index) => {
                    let cell = lock(&self.settled).revive(index);
                    let handle = Arc::new(GroupCell {
                        touched: AtomicU64::new(0),
                        open: AtomicBool::new(false),
                        cell: Mutex::new(cell),
                    });
                    entry.insert(Entry::Live(handle.clone()));
                    handle
                }
            },
            std::collections::hash_map::Entry::Vacant(entry) => {
                self.open_bytes
                    .fetch_add(Group::footprint(roster), AtomicOrdering::Relaxed);
                let handle = Arc::new(GroupCell {
                    touched: AtomicU64::new(0),
                    open: AtomicBool::new(true),
                    cell: Mutex::new(Cell {
                        state: State::Open(self.fresh_group(roster)),
                        ranges: Vec::new(),
                        reported: 0,
                    }),
                });
                entry.insert(Entry::Live(handle.clone()));
                handle
            }
        }
    }

    fn shard(&self, key: u64) -> &Shard {
        let (net, round) = ((key >> 32) as usize, key as u32 as usize);
        &self.shards[(net ^ round) % SHARDS]
    }

    /// Points the table at the stored row of a settled cell (unless it already moved on), so
    /// that the cell and its buffers can go.
    fn retire(&self, key: u64, handle: &Arc<GroupCell>, index: u32) {
        let mut shard = lock(self.shard(key));
        if let Some(entry) = shard.get_mut(&key)
            && matches!(entry, Entry::Live(cell) if Arc::ptr_eq(cell, handle))
        {
            *entry = Entry::Settled(index);
        }
    }

    fn fresh_group(&self, roster: usize) -> Box<Group> {
        match lock(&self.spare).pop() {
            Some(mut group) => {
                group.present.clear();
                group.present.resize(roster.div_ceil(64), 0);
                // Entries of slots not present are never read: left as they are, the 8 KiB of
                // a 1,000-client roster are not written again for every round.
                group.kept.resize(roster, Src(0));
                group.sum.clear();
                group.sum.resize(self.lanes, 0);
                group.resends.clear();
                group.captured.clear();
                group
            }
            None => Box::new(Group::new(roster, self.lanes)),
        }
    }

    /// Settles the least recently used open groups while open groups take more than the
    /// budget. Cheap to call after every morsel: it returns at once while under the budget or
    /// while another thread is evicting, unless open groups have grown past twice the budget:
    /// then it waits for that thread and evicts. Without that wait, a thread descheduled in
    /// the middle of evicting would let the others open groups without bound until it ran
    /// again.
    pub fn evict_if_needed(&self) {
        let open = self.open_bytes.load(AtomicOrdering::Relaxed);
        if open <= self.budget {
            return;
        }
        let _evicting = match self.evicting.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if open > self.budget.saturating_mul(2) => {
                lock(&self.evicting)
            }
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        // The thread waited for may have evicted enough already.
        if self.open_bytes.load(AtomicOrdering::Relaxed) <= self.budget {
            return;
        }
        let mut cells: Vec<(u64, u64, Arc<GroupCell>)> = Vec::new();
        for shard in &self.shards {
            for (&key, entry) in lock(shard).iter() {
                let Entry::Live(cell) = entry else {
                    continue;
                };
                if !cell.open.load(AtomicOrdering::Relaxed) {
                    continue;
                }
                cells.push((
                    cell.touched.load(AtomicOrdering::Relaxed),
                    key,
                    cell.clone(),
                ));
            }
        }
        cells.sort_unstable_by_key(|&(touched, key, _)| (touched, key));
        let target = self.budget / 4 * 3;
        for (_, key, cell) in cells {
            if self.open_bytes.load(AtomicOrdering::Relaxed) <= target {
                break;
            }
            let net = (key >> 32) as u32;
            let Some(info) = self.nets.get(&net) else {
                continue;
            };
            // Only open groups are settled: a group settled by an earlier pass (or dirty)
            // must keep its state, or it would be aggregated again at the end for nothing.
            self.settle_early(key, &cell, info, false);
        }
    }

    /// Settles the open group `handle` of `key` now, stores its row and frees its buffers;
    /// with `only_released`, only if the round's sum would be released (status ok). Returns
    /// whether it did. A group that is not open (settled already, or dirty) keeps its state.
    fn settle_early(
        &self,
        key: u64,
        handle: &Arc<GroupCell>,
        info: &NetInfo,
        only_released: bool,
    ) -> bool {
        let mut cell = lock(&handle.cell);
        let settled = match &cell.state {
            State::Open(group) => self.settle((key >> 32) as u32, key as u32, info, group),
            _ => return false,
        };
        if only_released && settled.0.status != RoundStatus::Ok {
            return false;
        }
        let State::Open(group) = std::mem::replace(&mut cell.state, State::Dirty) else {
            return false;
        };
        handle.open.store(false, AtomicOrdering::Relaxed);
        let index = lock(&self.settled).push(key, settled, &cell);
        cell.state = State::Settled(index);
        drop(cell);
        self.retire(key, handle, index);
        // Reuse the buffers for the next group: freeing thousands of 8 KiB blocks and
        // allocating small settled rows in between fragments the heap.
        // Keep at most a quarter of the budget in spare buffers.
        let footprint = Group::footprint(info.clients.len());
        let mut spare = lock(&self.spare);
        if (spare.len() as u64 + 1) * footprint <= self.budget / 4 {
            spare.push(group);
        }
        self.open_bytes
            .fetch_sub(footprint, AtomicOrdering::Relaxed);
        true
    }

    /// Settles (net, round) at once if it is open and its sum would be released: called when
    /// a batch has read the round's whole run, begun after the batch's first row, followed by
    /// a later round of the same net. A log written net by net and round by round has no more
    /// frames for it, and settling it now, while its group is in cache, is several times
    /// cheaper than after the memory budget pushed it out. Should a frame for it come after
    /// all (a log in another order, another file), it is aggregated again at the end, as
    /// after an eviction: results never depend on it.
    fn settle_if_released(&self, net: u32, round: u32) {
        let Some(info) = self.nets.get(&net) else {
            return;
        };
        let key = (u64::from(net) << 32) | u64::from(round);
        let handle = match lock(self.shard(key)).get(&key) {
            Some(Entry::Live(handle)) => handle.clone(),
            _ => return,
        };
        self.settle_early(key, &handle, info, true);
    }

    /// Applies the rules to every frame of `batch`.
    ///
    /// Returns the round the batch began with, when a later round of the same net follows it
    /// in the batch: in a log written round by round it has no frames after this batch. The
    /// batch alone cannot tell whether batches before it in the file (being aggregated on
    /// other threads) still hold frames of that round, so it is left open; once every batch
    /// before this one in its file has been added, the caller may settle it at once with
    /// [`Self::settle_head`].
    ///
    /// A batch whose frames of one (net, round) come in short runs (a collector that writes
    /// frames as they arrive interleaves the nets) is first sorted by net, round and client
    /// ([`Self::with_regroup_below`]): each (net, round) is then one run, locked once and
    /// looked up in roster order. The sorted copy is made in `regroup`'s buffers, one
    /// [`Regroup`] per worker, kept from batch to batch. Such a batch settles nothing early,
    /// since its order says nothing about which rounds are complete.
    pub fn add_batch(
        &self,
        batch: &FrameBatch,
        regroup: &mut Regroup,
        tally: &mut Tally,
    ) -> Option<HeadRound> {
        self.add_batch_in(batch, Order::AsRead, regroup, tally)
    }

    /// [`Self::add_batch`] for a batch of frames gathered from a window of a log in bucket
    /// order ([`crate::window::WindowFrames::partition`]): any frames of the window, a net's
    /// frames together. Such a batch settles nothing early.
    pub fn add_partitioned_batch(
        &self,
        batch: &FrameBatch,
        regroup: &mut Regroup,
        tally: &mut Tally,
    ) {
        self.add_batch_in(batch, Order::Partitioned, regroup, tally);
    }

    /// A batch in `order`, sorted first if fragmented; frames of another lane count than the
    /// inputs' are rejected.
    fn add_batch_in(
        &self,
        batch: &FrameBatch,
        order: Order,
        regroup: &mut Regroup,
        tally: &mut Tally,
    ) -> Option<HeadRound> {
        if batch.lanes() != self.lanes {
            for &offset in &batch.offsets {
                tally.reject(Src::new(batch.file, offset), RejectReason::BadLanes);
            }
            return None;
        }
        if self.is_fragmented(batch)
            && let Some(sorted) = regroup.sorted(batch)
        {
            self.add_runs(&sorted, Order::Sorted, tally);
            regroup.recycle(sorted);
            return None;
        }
        self.add_runs(batch, order, tally)
    }

    /// Whether the runs of one (net, round) in `batch` are on average shorter than the
    /// regrouping threshold. Runs are found as [`Self::add_runs`] finds them, sixteen rows at a
    /// time, so a batch of long runs costs a compare per sixteen rows; counting stops as soon as
    /// the batch has too many runs to be anything but fragmented.
    fn is_fragmented(&self, batch: &FrameBatch) -> bool {
        runs_are_fragmented(batch.dc_net_id(), batch.round(), self.regroup_below)
    }

    /// [`Self::add_batch`] for a batch in `order`.
    fn add_runs(&self, batch: &FrameBatch, order: Order, tally: &mut Tally) -> Option<HeadRound> {
        let mut head = None;
        let (nets, rounds) = (batch.dc_net_id(), batch.round());
        let rows = batch.len();
        let mut start = 0;
        // The run before this one: its first row, net and round.
        let mut previous: Option<(usize, u32, u32)> = None;
        while start < rows {
            let (net, round) = (nets[start], rounds[start]);
            let end = run_end(nets, rounds, start);
            self.add_run(batch, start, end, order, tally);
            if order == Order::AsRead
                && let Some((previous_start, previous_net, previous_round)) = previous
                && previous_net == net
                && previous_round < round
            {
                if previous_start > 0 {
                    self.settle_if_released(previous_net, previous_round);
                } else {
                    head = Some(HeadRound {
                        net: previous_net,
                        round: previous_round,
                    });
                }
            }
            previous = Some((start, net, round));
            start = end;
        }
        head
    }

    /// Settles the round `head` returned by [`Self::add_batch`] if its sum would be released,
    /// as rounds read whole within one batch are: call it once every batch before that one in
    /// the same file has been added. Results never depend on it (a frame that still comes for
    /// the round makes it be aggregated again at the end); it only lets the round be settled
    /// while its group is in cache and its buffers be reused, instead of waiting for the end
    /// or for the memory budget.
    pub fn settle_head(&self, head: HeadRound) {
        self.settle_if_released(head.net, head.round);
    }

    /// Rows `start..end` of `batch`, all of one (net, round), in one pass: the per-frame rules
    /// first, then the group, locked once for the run. A new transmit (nearly every row) sets
    /// its present bit, records its source and adds into running sums held in registers;
    /// resends and second frames of a client take [`Self::apply`], the general path.
    fn add_run(
        &self,
        batch: &FrameBatch,
        start: usize,
        end: usize,
        order: Order,
        tally: &mut Tally,
    ) {
        let file = batch.file;
        let (net, round) = (batch.dc_net_id()[start], batch.round()[start]);
        let codes = batch.notification();
        let transmission = batch.transmission();
        let clients = batch.client_id();
        let timestamps = batch.timestamp_ms();
        let offsets = &batch.offsets;
        let src = |row: usize| Src::new(file, offsets[row]);
        let transmit_code = Notification::Transmit as u8;
        let resend_code = Notification::Resend as u8;
        let Some(info) = self.nets.get(&net) else {
            for (row, &code) in codes.iter().enumerate().take(end).skip(start) {
                let reason = match code {
                    c if c != transmit_code && c != resend_code => RejectReason::ControlFrame,
                    c if c == transmit_code && !transmission.value(row) => {
                        RejectReason::NoTransmissionBit
                    }
                    _ => RejectReason::UnknownNet,
                };
                tally.reject(src(row), reason);
            }
            return;
        };
        let deadline = self.options.round_deadline(round);
        // The per-frame rules of DESIGN §5 that need no group state, in the order the
        // reference applies them: a roster slot, or why the frame is not used.
        let classify = |row: usize, hint: usize| -> Result<usize, RejectReason> {
            let code = codes[row];
            let is_transmit = code == transmit_code;
            if !is_transmit && code != resend_code {
                return Err(RejectReason::ControlFrame);
            }
            if is_transmit && !transmission.value(row) {
                return Err(RejectReason::NoTransmissionBit);
            }
            let slot = info.slot_near(clients[row], hint);
            if slot == NOT_IN_ROSTER {
                return Err(RejectReason::UnknownClient);
            }
            let slot = slot as usize;
            if is_transmit && deadline.is_some_and(|d| timestamps[row] > d) {
                return Err(RejectReason::Late);
            }
            Ok(slot)
        };
        // Rows before the first usable one touch no group, so a run of rejects opens none.
        let mut row = start;
        let slot = loop {
            if row == end {
                return;
            }
            match classify(row, 0) {
                Ok(slot) => break slot,
                Err(reason) => tally.reject(src(row), reason),
            }
            row += 1;
        };
        let key = (u64::from(net) << 32) | u64::from(round);
        loop {
            let handle = self.group(net, round, info.clients.len());
            handle.touched.store(
                self.clock.fetch_add(1, AtomicOrdering::Relaxed),
                AtomicOrdering::Relaxed,
            );
            let mut guard = lock(&handle.cell);
            // Settled early between the table lookup and the lock: its row is stored, so take
            // the cell out of the table (if eviction has not yet) and look again, which revives
            // the round as a dirty cell.
            if let State::Settled(index) = guard.state {
                drop(guard);
                self.retire(key, &handle, index);
                continue;
            }
            let cell = &mut *guard;
            // The run's rows lie between these offsets; a redo filters by (net, round), so the
            // range may hold other frames too. Rows as read are in file order.
            let (first, last) = match order {
                Order::AsRead => (offsets[row], offsets[end - 1]),
                Order::Sorted | Order::Partitioned => offsets[row..end]
                    .iter()
                    .fold((u64::MAX, 0), |(lo, hi), &at| (lo.min(at), hi.max(at))),
            };
            match cell.ranges.iter_mut().find(|(f, _, _)| *f == file) {
                Some((_, lo, hi)) => {
                    *lo = (*lo).min(first);
                    *hi = (*hi).max(last);
                }
                None => cell.ranges.push((file, first, last)),
            }
            let State::Open(group) = &mut cell.state else {
                // Dirty (settled early, then revived): the group is aggregated again at the end
                // from its ranges; here only the per-frame rejects count.
                let mut next = slot + 1;
                for row in row + 1..end {
                    match classify(row, next) {
                        Ok(slot) => next = slot + 1,
                        Err(reason) => tally.reject(src(row), reason),
                    }
                }
                return;
            };
            let duplicates_before = tally.counts[RejectReason::Duplicate as usize];
            let mut columns: [&[u64]; MAX_LANES] = [&[]; MAX_LANES];
            for (l, column) in columns.iter_mut().enumerate().take(self.lanes) {
                *column = batch.lane(l);
            }
            let columns = &columns[..self.lanes];
            let mut sums = [0u64; MAX_LANES];
            let sums_of_run = &mut sums[..self.lanes];
            // The first usable row goes the general way; the rest try the fast path first: a
            // transmit with its bit set, on time, of a roster client not yet present.
            self.apply(group, batch, columns, row, slot, tally);
            let bits = transmission.values();
            let fast = FastRows {
                codes,
                bit_bytes: bits.values(),
                bit_offset: bits.offset(),
                on_time: deadline.unwrap_or(u64::MAX),
                clients,
                timestamps,
                offsets,
                file,
                info,
                ascending: order == Order::Sorted,
            };
            let mut row = row + 1;
            let mut next = slot + 1;
            let mut unordered = 0;
            while row < end {
                let stop = fast.take(
                    row,
                    end,
                    &mut next,
                    &mut unordered,
                    &mut group.present,
                    &mut group.kept,
                );
                // Rows `row..stop` were all taken: their lanes are summed column by column
                // with the vectorised kernel.
                for (sum, column) in sums_of_run.iter_mut().zip(columns) {
                    *sum = sum.wrapping_add(column_sum(&column[row..stop]));
                }
                row = stop;
                if row == end {
                    break;
                }
                match classify(row, next) {
                    Ok(slot) => {
                        self.apply(group, batch, columns, row, slot, tally);
                        next = slot + 1;
                    }
                    Err(reason) => tally.reject(src(row), reason),
                }
                row += 1;
            }
            for (sum, run) in group.sum.iter_mut().zip(sums_of_run.iter()) {
                *sum = sum.wrapping_add(*run);
            }
            cell.reported += tally.counts[RejectReason::Duplicate as usize] - duplicates_before;
            return;
        }
    }

    /// DESIGN §5 for one usable row (its roster slot known) against the group: a resend is kept
    /// (or loses to an earlier one) with the lanes of the transmit it replaces captured now; a
    /// new transmit sets its bit and adds into the group's sums; a second transmit of a client
    /// is a duplicate, and the smaller frame is kept.
    fn apply(
        &self,
        group: &mut Group,
        batch: &FrameBatch,
        columns: &[&[u64]],
        row: usize,
        slot: usize,
        tally: &mut Tally,
    ) {
        let src = Src::new(batch.file, batch.offsets[row]);
        let ts = batch.timestamp_ms()[row];
        let lanes = columns;
        if batch.notification()[row] == Notification::Resend as u8 {
            let at = match group.resends.get(&(slot as u32)).copied() {
                None => {
                    let at = group.captured.len();
                    group.captured.resize(at + 1 + 2 * self.lanes, 0);
                    at
                }
                Some((old, at)) => {
                    if self.row_beats(ts, lanes, row, src, old) {
                        tally.reject(old, RejectReason::Duplicate);
                        at as usize
                    } else {
                        tally.reject(src, RejectReason::Duplicate);
                        return;
                    }
                }
            };
            group.resends.insert(slot as u32, (src, at as u32));
            let transmit = if group.is_present(slot) {
                group.kept[slot]
            } else {
                Src(0)
            };
            let entry = &mut group.captured[at..at + 1 + 2 * self.lanes];
            entry[0] = transmit.0;
            let (resend_lanes, transmit_lanes) = entry[1..].split_at_mut(self.lanes);
            for (value, column) in resend_lanes.iter_mut().zip(lanes) {
                *value = column[row];
            }
            if transmit != Src(0) {
                let (_, bytes) = self.inputs.frame(transmit, self.frame_len);
                for (value, word) in transmit_lanes.iter_mut().zip(lane_words(bytes)) {
                    *value = word;
                }
            }
            return;
        }
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if group.present[word] & bit == 0 {
            group.present[word] |= bit;
            group.kept[slot] = src;
            for (s, column) in group.sum.iter_mut().zip(lanes) {
                *s = s.wrapping_add(column[row]);
            }
            return;
        }
        let old = group.kept[slot];
        if self.row_beats(ts, lanes, row, src, old) {
            let (_, old_lanes) = self.inputs.frame(old, self.frame_len);
            for ((s, old), column) in group.sum.iter_mut().zip(lane_words(old_lanes)).zip(lanes) {
                *s = s.wrapping_sub(old).wrapping_add(column[row]);
            }
            group.kept[slot] = src;
            // Keep a resend's captured transmit the kept one (see `settle`).
            if let Some(&(_, at)) = group.resends.get(&(slot as u32)) {
                let at = at as usize;
                let entry = &mut group.captured[at..at + 1 + 2 * self.lanes];
                if entry[0] != 0 {
                    entry[0] = src.0;
                    for (value, column) in entry[1 + self.lanes..].iter_mut().zip(lanes) {
                        *value = column[row];
                    }
                }
            }
            tally.reject(old, RejectReason::Duplicate);
        } else {
            tally.reject(src, RejectReason::Duplicate);
        }
    }

    /// Whether row `row` (timestamp `ts`, at `src`) is kept over the frame at `old`: the smaller
    /// of (timestamp, lanes, source) wins.
    fn row_beats(&self, ts: u64, lanes: &[&[u64]], row: usize, src: Src, old: Src) -> bool {
        let (old_ts, old_lanes) = self.inputs.frame(old, self.frame_len);
        let order = ts
            .cmp(&old_ts)
            .then_with(|| lanes.iter().map(|c| c[row]).cmp(lane_words(old_lanes)))
            .then_with(|| src.cmp(&old));
        order == Ordering::Less
    }

    /// The cell of a round whose row is in the store and was never revived.
    fn settled_cell(index: u32) -> Cell {
        Cell {
            state: State::Settled(index),
            ranges: Vec::new(),
            reported: 0,
        }
    }

    /// Settles every group and merges the workers' tallies into the report. Fails only when
    /// the listed rejects could not be kept in temporary files (see [`crate::spill`]).
    pub fn finish(self, mut tallies: Vec<Tally>) -> Result<AggregateReport, SpillError> {
        if let Some(error) = tallies.iter_mut().find_map(|tally| tally.failed.take()) {
            return Err(error);
        }
        let mut store = std::mem::take(&mut *lock(&self.settled));
        let mut cells: Vec<(u64, Cell)> = Vec::new();
        for shard in &self.shards {
            for (key, entry) in lock(shard).drain() {
                let handle = match entry {
                    Entry::Live(handle) => handle,
                    Entry::Settled(index) => {
                        cells.push((key, Self::settled_cell(index)));
                        continue;
                    }
                };
                let cell = match Arc::try_unwrap(handle) {
                    Ok(handle) => handle
                        .cell
                        .into_inner()
                        .unwrap_or_else(PoisonError::into_inner),
                    // Workers are done, so no other handle exists; take the state regardless.
                    Err(shared) => {
                        let mut cell = lock(&shared.cell);
                        Cell {
                            state: std::mem::replace(&mut cell.state, State::Dirty),
                            ranges: std::mem::take(&mut cell.ranges),
                            reported: cell.reported,
                        }
                    }
                };
                cells.push((key, cell));
            }
        }
        cells.sort_unstable_by_key(|(key, _)| *key);
        let collect = tallies.iter().any(|t| t.collect);
        let rounds_reread = cells
            .iter()
            .filter(|(_, cell)| matches!(cell.state, State::Dirty))
            .count() as u64;
        let mut withdrawn: u64 = 0;
        // Rounds aggregated again, whose duplicates reported by the workers are withdrawn (the
        // second aggregation reports them again). A worker reports a duplicate only for the
        // group of its own frame, while that group is open, so these are exactly the listed
        // duplicates whose frame's (net, round) is in this set: the frames are read back
        // rather than every reported source kept per group.
        let mut redone: rustc_hash::FxHashSet<u64> = rustc_hash::FxHashSet::default();
        let mut work: Vec<Option<Work<'_>>> = cells
            .into_iter()
            .filter_map(|(key, cell)| {
                let net = (key >> 32) as u32;
                self.nets.get(&net).map(|info| (key, net, info, cell))
            })
            .map(|(key, net, info, cell)| {
                if matches!(cell.state, State::Dirty) {
                    withdrawn += cell.reported;
                    redone.insert(key);
                }
                // Stored rows come out in order here; the groups still to settle or redo go
                // to the pool below.
                Some(match cell.state {
                    State::Settled(index) => Ok(index),
                    state => Err((key, net, info, state, cell.ranges)),
                })
            })
            .collect();
        let mut report = AggregateReport {
            rounds_reread,
            ..AggregateReport::default()
        };
        let mut counts = [0u64; RejectReason::ALL.len()];
        // The list: what the workers still hold and what settling finds, spilled as it passes
        // the bound; the runs the workers spilled are merged in when it is read. Once anything
        // is spilled, the workers' lists are written out too rather than gathered here, so
        // that they are not held twice.
        let mut rejects = RejectSink::new(self.rejects_in_memory);
        let spilling = tallies.iter().any(|tally| !tally.spilled.is_empty())
            || tallies
                .iter()
                .map(|tally| tally.rejects.len())
                .sum::<usize>()
                >= self.rejects_in_memory.max(1);
        let is_withdrawn = |src: Src, reason: RejectReason| {
            reason == RejectReason::Duplicate
                && !redone.is_empty()
                && self
                    .inputs
                    .group_key(src)
                    .is_some_and(|key| redone.contains(&key))
        };
        for mut tally in tallies {
            for (c, n) in counts.iter_mut().zip(tally.counts) {
                *c += n;
            }
            if spilling && !tally.rejects.is_empty() {
                self.spill_rejects(&mut tally)?;
            }
            rejects.append(tally.spilled);
            for (src, reason) in tally.rejects {
                if !is_withdrawn(src, reason) {
                    rejects.push(src.0, reason)?;
                }
            }
        }
        counts[RejectReason::Duplicate as usize] -= withdrawn;
        // Rounds read again first, in batches that share their passes over the logs (see
        // `redo_all`); their rejects go to the list as each wave is done, their rows are
        // merged into the others' by key at the end.
        let mut redo = Vec::new();
        for item in &mut work {
            match item.take() {
                Some(Err((key, _, info, State::Dirty | State::Settled(_), ranges))) => {
                    redo.push(Redo { key, info, ranges });
                }
                other => *item = other,
            }
        }
        let mut redone_rows = Vec::with_capacity(redo.len());
        self.redo_all(redo, collect, |(row, group_rejects, kept)| {
            report.frames_kept += kept;
            count_rejects(group_rejects, collect, &mut counts, &mut rejects)?;
            redone_rows.push(row);
            Ok(())
        })?;
        // The other rounds are settled on the pool a chunk at a time, and each chunk's rejects
        // go to the list, which spills, before the next: the same logs given twice make every
        // frame a duplicate, so holding every round's list at once would grow with the input.
        // A chunk holds up to `SETTLE_CHUNK` rounds still to settle, with the stored rows
        // between them. Counting only those keeps each chunk's work on the pool large enough
        // to be shared: chunks of 256 rounds of any kind held about a dozen to settle each
        // (the last round of each net, in a log written net by net), which one thread
        // finished before the other had woken up.
        let mut chunks = Vec::new();
        let (mut start, mut heavy) = (0, 0);
        for (at, item) in work.iter().enumerate() {
            if matches!(item, Some(Err(_))) {
                heavy += 1;
                if heavy == SETTLE_CHUNK {
                    chunks.push(start..at + 1);
                    (start, heavy) = (at + 1, 0);
                }
            }
        }
        chunks.push(start..work.len());
        for range in chunks {
            let chunk = &mut work[range];
            let mut settled: std::collections::VecDeque<Settled> = chunk
                .par_iter_mut()
                .filter_map(|item| match item.take() {
                    Some(Err((key, net, info, State::Open(group), _))) => {
                        Some(self.settle(net, key as u32, info, &group))
                    }
                    stored => {
                        *item = stored;
                        None
                    }
                })
                .collect::<Vec<_>>()
                .into();
            // In key order: stored rows where they are, the rounds just settled in between.
            for item in chunk.iter_mut() {
                let (row, group_rejects, kept) = match item.take() {
                    Some(Ok(index)) => store.result(index),
                    _ => match settled.pop_front() {
                        Some(done) => done,
                        None => continue,
                    },
                };
                report.frames_kept += kept;
                count_rejects(group_rejects, collect, &mut counts, &mut rejects)?;
                report.rounds.push(row);
            }
        }
        if !redone_rows.is_empty() {
            // Both lists are rounds of distinct keys; the result lists them all by key.
            report.rounds.append(&mut redone_rows);
            report
                .rounds
                .sort_unstable_by_key(|row| (row.dc_net_id, row.round));
        }
        let mut tallied = RejectCounts::default();
        for (reason, n) in RejectReason::ALL.into_iter().zip(counts) {
            tallied.add_n(reason, n);
        }
        report.counts = tallied;
        report.rejects = rejects.finish(redone)?;
        Ok(report)
    }

    /// Aggregates the dirty groups `rounds` again from scratch: reads back every frame in
    /// their byte ranges, keeps those of each (net, round) that pass the per-frame rules, and
    /// settles. Per-frame rejects were counted the first time; only duplicates are reported
    /// again. Each round's result goes to `done`, in no particular order.
    ///
    /// Rounds whose ranges lie in the same stretch of a log share one pass over it: in a log
    /// whose nets are interleaved a round's range spans the frames of every net for that
    /// round, so reading it once per round redone read the log thousands of times over when
    /// a small `--group-memory` sent many rounds back. The rounds are put in log order and cut
    /// into batches whose groups together take at most the budget shared among the threads,
    /// and of at most `SETTLE_CHUNK` rounds, each batch read in one pass on the pool; a wave
    /// of as many batches as threads runs at a time, and its results reach `done` before the
    /// next. So what waits for `done` is bounded as the settling of other rounds is: the
    /// same logs given twice make every frame a duplicate, and a batch's results list them.
    fn redo_all(
        &self,
        mut rounds: Vec<Redo<'_>>,
        collect: bool,
        mut done: impl FnMut(Settled) -> Result<(), SpillError>,
    ) -> Result<(), SpillError> {
        rounds.sort_unstable_by_key(|redo| {
            let first = redo.ranges.iter().map(|&(file, lo, _)| (file, lo)).min();
            (first, redo.key)
        });
        let threads = rayon::current_num_threads().max(1);
        let limit = (self.budget / threads as u64).max(1);
        let mut batches: Vec<Vec<Redo<'_>>> = Vec::new();
        let mut bytes = 0;
        for redo in rounds {
            let footprint = Group::footprint(redo.info.clients.len());
            match batches.last_mut() {
                Some(batch) if bytes + footprint <= limit && batch.len() < SETTLE_CHUNK => {
                    batch.push(redo);
                }
                _ => {
                    bytes = 0;
                    batches.push(vec![redo]);
                }
            }
            bytes += footprint;
        }
        let mut batches = batches.into_iter().peekable();
        while batches.peek().is_some() {
            let wave: Vec<Vec<Redo<'_>>> = batches.by_ref().take(threads).collect();
            let settled: Vec<Vec<Settled>> = wave
                .into_par_iter()
                .map(|batch| self.redo_batch(&batch, collect))
                .collect();
            for result in settled.into_iter().flatten() {
                done(result)?;
            }
        }
        Ok(())
    }

    /// The rounds of `batch` aggregated again in one pass over the union of their ranges,
    /// merged where they overlap or lie within a morsel of each other, and settled (see
    /// [`Self::redo_all`]).
    fn redo_batch(&self, batch: &[Redo<'_>], collect: bool) -> Vec<Settled> {
        let mut groups: Vec<Group> = batch
            .iter()
            .map(|redo| Group::new(redo.info.clients.len(), self.lanes))
            .collect();
        let mut tallies: Vec<Tally> = batch.iter().map(|_| Tally::new(collect)).collect();
        let position: rustc_hash::FxHashMap<u64, usize> = batch
            .iter()
            .enumerate()
            .map(|(at, redo)| (redo.key, at))
            .collect();
        let step = self.redo_morsel_frames * self.frame_len;
        let spans = merge_spans(
            batch
                .iter()
                .flat_map(|redo| redo.ranges.iter().copied())
                .collect(),
            step as u64,
        );
        for (file, first, last) in spans {
            let Some(&bytes) = self.inputs.files.get(file as usize) else {
                continue;
            };
            let Ok(header) = crate::log::LogHeader::parse(bytes) else {
                continue;
            };
            if usize::from(header.lanes) != self.lanes {
                continue;
            }
            let (Ok(first), Ok(last)) = (usize::try_from(first), usize::try_from(last)) else {
                continue;
            };
            // The span is read a morsel at a time into reused columns: in a log in no
            // particular order a round's range can span most of the file, and reading it whole
            // held a column row per frame of it (38 MB for a 41 MB log, per round redone).
            let mut columns =
                crate::columnar::FrameColumns::new(self.lanes, self.redo_morsel_frames);
            let mut scan_rejects = Vec::new();
            let mut pos = first;
            while pos <= last {
                scan_rejects.clear();
                let end = pos.saturating_add(step).min(last + 1);
                pos = crate::columnar::read_morsel(
                    bytes,
                    header,
                    pos,
                    end,
                    &mut columns,
                    &mut scan_rejects,
                )
                .max(end);
                let Ok(frames) = columns.finish(file) else {
                    continue;
                };
                self.redo_rows(&frames, batch, &position, &mut groups, &mut tallies);
                columns.recycle(frames);
            }
        }
        batch
            .iter()
            .zip(groups)
            .zip(tallies)
            .map(|((redo, group), tally)| {
                let (net, round) = ((redo.key >> 32) as u32, redo.key as u32);
                let (row, mut rejects, kept) = self.settle(net, round, redo.info, &group);
                let duplicates = tally.counts[RejectReason::Duplicate as usize];
                if collect {
                    rejects.extend(tally.rejects);
                } else {
                    rejects.extend((0..duplicates).map(|_| (Src(0), RejectReason::Duplicate)));
                }
                (row, rejects, kept)
            })
            .collect()
    }

    /// The frames of `frames` that belong to a round of `batch`, lie within one of that
    /// round's ranges (so that a round sees exactly the frames it would reading its ranges
    /// alone) and pass the per-frame rules, applied to its group (see [`Self::redo_all`]).
    fn redo_rows(
        &self,
        frames: &FrameBatch,
        batch: &[Redo<'_>],
        position: &rustc_hash::FxHashMap<u64, usize>,
        groups: &mut [Group],
        tallies: &mut [Tally],
    ) {
        let file = frames.file;
        let (nets, rounds, clients) = (frames.dc_net_id(), frames.round(), frames.client_id());
        let codes = frames.notification();
        let transmission = frames.transmission();
        let timestamps = frames.timestamp_ms();
        let lanes: Vec<&[u64]> = (0..self.lanes).map(|l| frames.lane(l)).collect();
        // Rows of one round come in runs, so the last lookup is kept.
        let mut last: Option<(u64, Option<usize>)> = None;
        for row in 0..frames.len() {
            let key = (u64::from(nets[row]) << 32) | u64::from(rounds[row]);
            let at = match last {
                Some((seen, at)) if seen == key => at,
                _ => {
                    let at = position.get(&key).copied();
                    last = Some((key, at));
                    at
                }
            };
            let Some(at) = at else {
                continue;
            };
            let redo = &batch[at];
            let offset = frames.offsets[row];
            if !redo
                .ranges
                .iter()
                .any(|&(f, lo, hi)| f == file && (lo..=hi).contains(&offset))
            {
                continue;
            }
            // The per-frame rules of `add_run`, without counting: those rejects were counted
            // when the frames were first read.
            let usable = match codes[row] {
                code if code == Notification::Transmit as u8 => {
                    let deadline = self.options.round_deadline(rounds[row]);
                    transmission.value(row) && deadline.is_none_or(|d| timestamps[row] <= d)
                }
                code => code == Notification::Resend as u8,
            };
            if !usable {
                continue;
            }
            if let Some(slot) = redo.info.index.get(clients[row]) {
                self.apply(&mut groups[at], frames, &lanes, row, slot, &mut tallies[at]);
            }
        }
    }

    fn settle(
        &self,
        net: u32,
        round: u32,
        info: &NetInfo,
        group: &Group,
    ) -> (RoundResult, Vec<(Src, RejectReason)>, u64) {
        SETTLE_SCRATCH.with_borrow_mut(|scratch| self.settle_in(net, round, info, group, scratch))
    }

    /// [`Self::settle`] with this thread's working buffers.
    fn settle_in(
        &self,
        net: u32,
        round: u32,
        info: &NetInfo,
        group: &Group,
        scratch: &mut SettleScratch,
    ) -> (RoundResult, Vec<(Src, RejectReason)>, u64) {
        let SettleScratch {
            missing,
            needs_bits,
            resends,
            needy,
        } = scratch;
        let roster = info.clients.len();
        let mut rejects = Vec::new();
        // Word by word over the present bitmap: settling costs O(roster / 64) plus the missing
        // clients' neighbourhoods, not O(roster) lookups.
        let valid = |word: usize| {
            let bits = roster - 64 * word;
            if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            }
        };
        let present = group
            .present
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum::<usize>();
        missing.clear();
        for (word, &bits) in group.present.iter().enumerate() {
            let mut bits = !bits & valid(word);
            while bits != 0 {
                missing.push(64 * word + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
        // A net's neighbour lists are read only here, a few a round, so they are rarely in
        // cache when a round settles (`perf` put a third of this function on the first load
        // of each list). All the lists are asked for first, so that their misses overlap
        // instead of coming one after another.
        for &slot in missing.iter() {
            info.prefetch_neighbours(slot);
        }
        needs_bits.clear();
        needs_bits.resize(group.present.len(), 0);
        for &slot in missing.iter() {
            for &n in info.neighbours(slot) {
                let n = n as usize;
                needs_bits[n / 64] |= group.present[n / 64] & (1 << (n % 64));
            }
        }
        let needs = |slot: usize| needs_bits[slot / 64] & (1 << (slot % 64)) != 0;
        let mut resent = 0;
        resends.clear();
        resends.extend(group.resends.iter().map(|(&s, &(r, _))| (s, r)));
        resends.sort_unstable();
        for &(slot, src) in resends.iter() {
            let slot = slot as usize;
            if needs(slot) {
                resent += 1;
            } else if group.is_present(slot) {
                rejects.push((src, RejectReason::ResendWithoutMissingNeighbour));
            } else {
                rejects.push((src, RejectReason::ResendWithoutTransmit));
            }
        }
        needy.clear();
        for (word, &bits) in needs_bits.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                needy.push(64 * word + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
        for &slot in needy.iter() {
            info.prefetch_neighbours(slot);
        }
        let exposed = needy
            .iter()
            .filter(|&&s| {
                let live = info
                    .neighbours(s)
                    .iter()
                    .filter(|&&n| group.is_present(n as usize))
                    .count();
                live < self.options.min_live_neighbours
            })
            .map(|&s| info.clients[s])
            .collect();
        let status = if present < self.options.min_participants {
            RoundStatus::Withheld
        } else if needy
            .iter()
            .any(|&s| !group.resends.contains_key(&(s as u32)))
        {
            RoundStatus::Unrecoverable
        } else {
            RoundStatus::Ok
        };
        let sum = (status == RoundStatus::Ok).then(|| {
            let mut sum = group.sum.clone();
            let lanes = self.lanes;
            for &slot in needy.iter() {
                // Status ok: every needy client has a kept resend.
                let Some(&(_, at)) = group.resends.get(&(slot as u32)) else {
                    continue;
                };
                let entry = &group.captured[at as usize..at as usize + 1 + 2 * lanes];
                let resend = &entry[1..1 + lanes];
                // A captured transmit is still the kept one: `apply` updates the capture when
                // a duplicate replaces it. Only a transmit that came after its resend has to
                // be looked up, and its `kept` entry read: the group's `kept` array has
                // usually left the cache by the time the group is settled.
                if entry[0] != 0 {
                    for ((s, t), r) in sum.iter_mut().zip(&entry[1 + lanes..]).zip(resend) {
                        *s = s.wrapping_sub(*t).wrapping_add(*r);
                    }
                } else {
                    // The transmit kept now arrived after the resend (or replaced the one
                    // captured): read it back.
                    let (_, transmit) = self.inputs.frame(group.kept[slot], self.frame_len);
                    for ((s, t), r) in sum.iter_mut().zip(lane_words(transmit)).zip(resend) {
                        *s = s.wrapping_sub(t).wrapping_add(*r);
                    }
                }
            }
            sum
        });
        let row = RoundResult {
            dc_net_id: net,
            round,
            expected: roster,
            present,
            resent,
            status,
            sum,
            exposed,
        };
        (row, rejects, (present + resent) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roster_index_finds_exactly_the_roster(
            clients in proptest::collection::btree_set(any::<u32>(), 0..300),
            others in proptest::collection::vec(any::<u32>(), 0..100),
        ) {
            let clients: Vec<u32> = clients.into_iter().collect();
            let index = RosterIndex::new(&clients);
            for (slot, &client) in clients.iter().enumerate() {
                prop_assert_eq!(index.get(client), Some(slot));
            }
            for other in others {
                let want = clients.iter().position(|&c| c == other);
                prop_assert_eq!(index.get(other), want);
            }
        }

        /// The hinted search agrees with a linear scan for any hint: at the client, before
        /// it (near and far), after it, or past the roster's end.
        #[test]
        fn slot_near_finds_exactly_the_roster_from_any_hint(
            ids in proptest::collection::btree_set(0u32..2000, 2..400),
            probes in proptest::collection::vec((0u32..2100, 0usize..420), 1..200),
        ) {
            let clients: Vec<u32> = ids.into_iter().collect();
            let edges: Vec<(u32, u32)> = clients.windows(2).map(|w| (w[0], w[1])).collect();
            let graph = KeyGraph::from_edges(1, edges).unwrap();
            let info = NetInfo::new(&graph);
            for (client, hint) in probes {
                let want = clients
                    .iter()
                    .position(|&c| c == client)
                    .map_or(NOT_IN_ROSTER, |slot| slot as u32);
                prop_assert_eq!(info.slot_near(client, hint), want);
                if let Some(slot) = clients.iter().position(|&c| c == client) {
                    // Right at the hint, and a few slots after it.
                    prop_assert_eq!(info.slot_near(client, slot), slot as u32);
                    prop_assert_eq!(info.slot_near(client, slot.saturating_sub(3)), slot as u32);
                }
            }
        }
    }

    proptest! {
        /// Runs found sixteen rows at a time, and the fragmentation test that stops counting
        /// early, agree with a row-by-row count of the runs.
        #[test]
        fn runs_are_found_and_counted_as_row_by_row(
            keys in proptest::collection::vec((0u32..3, 0u32..3, 1usize..40), 0..60),
            regroup_below in 0usize..80,
        ) {
            let (mut nets, mut rounds) = (Vec::new(), Vec::new());
            for (net, round, repeat) in keys {
                nets.extend(std::iter::repeat_n(net, repeat));
                rounds.extend(std::iter::repeat_n(round, repeat));
            }
            let mut runs = 0;
            let mut start = 0;
            while start < nets.len() {
                let mut end = start + 1;
                while end < nets.len() && (nets[end], rounds[end]) == (nets[start], rounds[start]) {
                    end += 1;
                }
                prop_assert_eq!(run_end(&nets, &rounds, start), end);
                runs += 1;
                start = end;
            }
            prop_assert_eq!(
                runs_are_fragmented(&nets, &rounds, regroup_below),
                regroup_below > 0 && is_fragmented(nets.len(), runs, regroup_below)
            );
        }
    }

    #[test]
    fn roster_index_survives_full_buckets_and_extreme_ids() {
        // Clients that all hash to one bucket fill it and spill into the next ones, wrapping
        // around the end of the table.
        let probe = RosterIndex::new(&[0; 40]);
        let target = probe.buckets.len() - 1;
        let clients: Vec<u32> = (0..=u32::MAX)
            .rev()
            .filter(|&c| probe.home(c) == target)
            .take(20)
            .collect();
        assert_eq!(clients.len(), 20);
        let mut roster = clients.clone();
        roster.extend(0..19);
        for top in [u32::MAX, u32::MAX - 1] {
            if !roster.contains(&top) {
                roster.push(top);
            }
        }
        let index = RosterIndex::new(&roster);
        assert_eq!(index.buckets.len(), probe.buckets.len());
        for (slot, &client) in roster.iter().enumerate() {
            assert_eq!(index.get(client), Some(slot), "client {client}");
        }
        assert_eq!(index.get(12_345_678), None);
        // The id that marks unused entries is no client either.
        assert!(!roster.contains(&index.vacant));
        assert!(index.vacant < u32::MAX - 1);
        assert_eq!(index.get(index.vacant), None);
    }

    #[test]
    fn spans_merge_where_they_overlap_or_nearly_touch() {
        // Hand-worked: file 0 has 100..=200 inside 64..=300, then 310..=400 within a gap of 10
        // of it, then 500..=600 beyond; file 1's 120..=130 lies 20 bytes after its 64..=100,
        // and file 1's ranges never merge with file 0's.
        let spans = vec![
            (1, 64, 100),
            (0, 500, 600),
            (0, 100, 200),
            (0, 310, 400),
            (0, 64, 300),
            (1, 120, 130),
        ];
        assert_eq!(
            merge_spans(spans.clone(), 10),
            vec![(0, 64, 400), (0, 500, 600), (1, 64, 100), (1, 120, 130)]
        );
        assert_eq!(merge_spans(spans, 100), vec![(0, 64, 600), (1, 64, 130)]);
        assert_eq!(merge_spans(Vec::new(), 10), Vec::new());
    }
}
