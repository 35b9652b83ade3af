//! Frames as Arrow columns: the table schema of validated frames, and the morsel reader that
//! turns a stretch of a round log into one `RecordBatch`.
//!
//! A morsel is a few thousand frames (about 160 KiB of a one-lane log): small enough that the
//! log bytes it reads and the columns it writes stay in the core's L2 cache while the
//! aggregation consumes them. The column buffers are plain `Vec`s handed to Arrow without a copy
//! and taken back after the batch is consumed ([`FrameColumns::recycle`]), so a worker allocates
//! its buffers once, not once per morsel.
//!
//! Schema (DESIGN §3 fields, one row per valid frame): `dc_net_id` u32, `client_id` u32,
//! `round` u32, `notification` u8, `transmission` bool, `timestamp` Timestamp(ms), `lane0..`
//! u64. A timestamp is the frame's u64 reinterpreted as Arrow's i64 (bit for bit; frames from
//! before the year 292,278,994 read as they are).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMillisecondType, UInt8Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, PrimitiveArray, RecordBatch, TimestampMillisecondArray,
    UInt8Array, UInt32Array, UInt64Array,
};
use arrow_buffer::{BooleanBufferBuilder, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::frame::{FRAME_HEADER_LEN, FrameView, RawHeader};
use crate::log::{FrameScanner, LogHeader};
use crate::reject::RejectReason;

/// Frames per morsel unless configured otherwise.
pub const DEFAULT_MORSEL_FRAMES: usize = 4096;

/// Frames checked and decoded together on the fast path: their CRCs run side by side, and the
/// block (2.5 KiB of a one-lane log) stays in L1 while its columns are written.
const BLOCK_FRAMES: usize = 64;

/// How many frames ahead [`FrameColumns::gather_frames`] asks the CPU to load the frame it
/// will decode: enough to cover a miss to memory at a few nanoseconds a frame.
const GATHER_AHEAD: usize = 48;

/// Column names of the fixed fields, in schema order.
pub const FIXED_COLUMNS: [&str; 6] = [
    "dc_net_id",
    "client_id",
    "round",
    "notification",
    "transmission",
    "timestamp",
];

/// The Arrow schema of validated frames with `lanes` lanes.
pub fn frame_schema(lanes: usize) -> SchemaRef {
    let mut fields = vec![
        Field::new("dc_net_id", DataType::UInt32, false),
        Field::new("client_id", DataType::UInt32, false),
        Field::new("round", DataType::UInt32, false),
        Field::new("notification", DataType::UInt8, false),
        Field::new("transmission", DataType::Boolean, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ];
    fields.extend((0..lanes).map(|l| Field::new(format!("lane{l}"), DataType::UInt64, false)));
    Arc::new(Schema::new(fields))
}

/// A batch of valid frames of one input, with the byte offset of each row's frame.
#[derive(Debug, Clone)]
pub struct FrameBatch {
    /// Index of the input the frames come from.
    pub file: u32,
    /// The frames, in [`frame_schema`].
    pub batch: RecordBatch,
    /// Byte offset of each row's frame in its log (not a column: the table is the frames).
    pub offsets: Vec<u64>,
}

impl FrameBatch {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether the batch holds no frame.
    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    /// Lanes per frame.
    pub fn lanes(&self) -> usize {
        self.batch.num_columns() - FIXED_COLUMNS.len()
    }

    fn u32_column(&self, index: usize) -> &[u32] {
        self.batch
            .column(index)
            .as_primitive::<UInt32Type>()
            .values()
    }

    /// The `dc_net_id` column.
    pub fn dc_net_id(&self) -> &[u32] {
        self.u32_column(0)
    }

    /// The `client_id` column.
    pub fn client_id(&self) -> &[u32] {
        self.u32_column(1)
    }

    /// The `round` column.
    pub fn round(&self) -> &[u32] {
        self.u32_column(2)
    }

    /// The `notification` column (wire codes 1..=5).
    pub fn notification(&self) -> &[u8] {
        self.batch.column(3).as_primitive::<UInt8Type>().values()
    }

    /// The `transmission` column.
    pub fn transmission(&self) -> &BooleanArray {
        self.batch.column(4).as_boolean()
    }

    /// The `timestamp` column as the frames' u64 milliseconds.
    pub fn timestamp_ms(&self) -> &[u64] {
        let values: &[i64] = self
            .batch
            .column(5)
            .as_primitive::<TimestampMillisecondType>()
            .values();
        // The column was built from the frames' u64 timestamps reinterpreted as i64.
        bytemuck::cast_slice(values)
    }

    /// Lane `lane` of every frame.
    pub fn lane(&self, lane: usize) -> &[u64] {
        self.batch
            .column(FIXED_COLUMNS.len() + lane)
            .as_primitive::<UInt64Type>()
            .values()
    }
}

/// Reusable column buffers that valid frames are appended to.
#[derive(Debug)]
pub struct FrameColumns {
    schema: SchemaRef,
    dc_net_id: Vec<u32>,
    client_id: Vec<u32>,
    round: Vec<u32>,
    notification: Vec<u8>,
    transmission: BooleanBufferBuilder,
    timestamp: Vec<i64>,
    lanes: Vec<Vec<u64>>,
    offsets: Vec<u64>,
    /// Frames appended since the last batch. The column buffers keep the length of the
    /// longest morsel they held (values past `rows` are stale and cut off by `finish`), so
    /// that appending overwrites instead of growing them: growing wrote zeros over every
    /// column before the frames' values (about 37 bytes a frame) in each morsel.
    rows: usize,
}

/// Takes the values buffer of a primitive array back as a `Vec` when this was its only owner.
fn reclaim<T: arrow_array::ArrowPrimitiveType>(array: ArrayRef) -> Option<Vec<T::Native>> {
    let primitive = array.as_any().downcast_ref::<PrimitiveArray<T>>()?.clone();
    drop(array);
    let (_, values, _) = primitive.into_parts();
    values.into_inner().into_vec::<T::Native>().ok()
}

/// Writes `value` as row `row` of `column`, which holds at least `row` values.
fn put<T>(column: &mut Vec<T>, row: usize, value: T) {
    match column.get_mut(row) {
        Some(slot) => *slot = value,
        None => column.push(value),
    }
}

/// Makes `column` hold at least `rows` values; new ones are zero until overwritten.
fn extend_to<T: Copy + Default>(column: &mut Vec<T>, rows: usize) {
    if column.len() < rows {
        column.resize(rows, T::default());
    }
}

/// Rows `base..base + count` of `column`, made to exist (new ones zero until overwritten).
fn grow<T: Copy + Default>(column: &mut Vec<T>, base: usize, count: usize) -> &mut [T] {
    extend_to(column, base + count);
    &mut column[base..base + count]
}

/// `column`'s first `rows` values as a vector of that length (cutting off stale ones).
fn take_rows<T>(column: &mut Vec<T>, rows: usize) -> Vec<T> {
    let mut taken = std::mem::take(column);
    taken.truncate(rows);
    taken
}

/// Makes room in `column` for `rows` values in all.
fn reserve_rows<T>(column: &mut Vec<T>, rows: usize) {
    column.reserve(rows.saturating_sub(column.len()));
}

impl FrameColumns {
    /// Empty columns for frames of `lanes` lanes, sized for `capacity` frames.
    pub fn new(lanes: usize, capacity: usize) -> Self {
        Self {
            schema: frame_schema(lanes),
            dc_net_id: Vec::with_capacity(capacity),
            client_id: Vec::with_capacity(capacity),
            round: Vec::with_capacity(capacity),
            notification: Vec::with_capacity(capacity),
            transmission: BooleanBufferBuilder::new(capacity),
            timestamp: Vec::with_capacity(capacity),
            lanes: (0..lanes).map(|_| Vec::with_capacity(capacity)).collect(),
            offsets: Vec::with_capacity(capacity),
            rows: 0,
        }
    }

    /// Lanes per frame.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Frames appended since the last batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no frame was appended since the last batch.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one valid frame found at byte `offset`. The frame's lane count must be the
    /// columns' (the scanner guarantees it for frames of one log).
    pub fn push(&mut self, frame: &FrameView<'_>, offset: u64) {
        let bytes = frame.as_bytes();
        let row = self.rows;
        put(&mut self.dc_net_id, row, frame.dc_net_id());
        put(&mut self.client_id, row, frame.client_id());
        put(&mut self.round, row, frame.round());
        put(&mut self.notification, row, frame.notification().code());
        self.transmission.append(frame.transmission());
        // Bit-for-bit reinterpretation: the column is read back as u64 by `timestamp_ms`.
        put(&mut self.timestamp, row, frame.timestamp_ms() as i64);
        for (column, word) in self
            .lanes
            .iter_mut()
            .zip(bytes[FRAME_HEADER_LEN..].chunks_exact(8))
        {
            let mut lane = [0u8; 8];
            lane.copy_from_slice(word);
            put(column, row, u64::from_le_bytes(lane));
        }
        put(&mut self.offsets, row, offset);
        self.rows += 1;
    }

    /// Appends rows `rows` of `batch`, in that order, to columns of the batch's lane count.
    /// This is Arrow's `take` into buffers that are kept from batch to batch: the kernel
    /// allocates every column afresh, and for the regrouped morsels of an interleaved log
    /// (several megabytes each) those allocations were a tenth of the run in page faults.
    pub fn gather(&mut self, batch: &FrameBatch, rows: &[u32]) {
        fn gather_column<T: Copy + Default>(
            column: &mut Vec<T>,
            base: usize,
            from: &[T],
            rows: &[u32],
        ) {
            for (value, &row) in grow(column, base, rows.len()).iter_mut().zip(rows) {
                *value = from[row as usize];
            }
        }
        let base = self.rows;
        gather_column(&mut self.dc_net_id, base, batch.dc_net_id(), rows);
        gather_column(&mut self.client_id, base, batch.client_id(), rows);
        gather_column(&mut self.round, base, batch.round(), rows);
        gather_column(&mut self.notification, base, batch.notification(), rows);
        let stamps: &[i64] = bytemuck::cast_slice(batch.timestamp_ms());
        gather_column(&mut self.timestamp, base, stamps, rows);
        for (lane, column) in self.lanes.iter_mut().enumerate() {
            gather_column(column, base, batch.lane(lane), rows);
        }
        gather_column(&mut self.offsets, base, &batch.offsets, rows);
        let bits = batch.transmission().values();
        for &row in rows {
            self.transmission.append(bits.value(row as usize));
        }
        self.rows += rows.len();
    }

    /// The next `count` rows of every fixed column, made to exist (new ones zero until
    /// overwritten), the lane columns and the transmission bits, for a caller that fills them
    /// in place.
    fn new_rows(&mut self, count: usize) -> NewRows<'_> {
        let base = self.rows;
        NewRows {
            nets: grow(&mut self.dc_net_id, base, count),
            clients: grow(&mut self.client_id, base, count),
            rounds: grow(&mut self.round, base, count),
            codes: grow(&mut self.notification, base, count),
            stamps: grow(&mut self.timestamp, base, count),
            offsets: grow(&mut self.offsets, base, count),
            lanes: &mut self.lanes,
            transmission: &mut self.transmission,
        }
    }

    /// Appends the frames of `log` that start at byte offsets `offsets`, in that order. The
    /// morsel reader has already accepted every one of them ([`crate::window::WindowFrames`]
    /// holds only such offsets), so they are decoded here without being checked again. They
    /// lie scattered over a stretch of the log far larger than the caches, so each frame is
    /// asked for [`GATHER_AHEAD`] frames before it is read.
    ///
    /// # Panics
    /// If a frame at one of `offsets` does not lie wholly within `log`.
    pub(crate) fn gather_frames(&mut self, log: &[u8], frame_len: usize, offsets: &[u64]) {
        let base = self.rows;
        let count = offsets.len();
        let new = self.new_rows(count);
        for lane in new.lanes.iter_mut() {
            extend_to(lane, base + count);
        }
        let mut bits = 0u64;
        for (k, &offset) in offsets.iter().enumerate() {
            if let Some(&ahead) = offsets.get(k + GATHER_AHEAD) {
                let ahead = ahead as usize;
                crate::mmap::prefetch(&log[ahead..ahead + frame_len]);
            }
            let at = offset as usize;
            let frame = &log[at..at + frame_len];
            let header = RawHeader::of(frame);
            new.nets[k] = header.dc_net_id();
            new.clients[k] = header.client_id();
            new.rounds[k] = header.round();
            new.codes[k] = header.notification;
            // Bit-for-bit reinterpretation: the column is read back as u64 by `timestamp_ms`.
            new.stamps[k] = header.timestamp_ms() as i64;
            new.offsets[k] = offset;
            for (lane, word) in new
                .lanes
                .iter_mut()
                .zip(frame[FRAME_HEADER_LEN..].chunks_exact(8))
            {
                lane[base + k] = u64::from_le_bytes(first_word(word));
            }
            // An accepted frame's flags byte is 0 or 1: its transmission bit.
            bits |= u64::from(header.flags & 1) << (k % 64);
            if k % 64 == 63 || k + 1 == count {
                new.transmission
                    .append_packed_range(0..k % 64 + 1, &bits.to_le_bytes());
                bits = 0;
            }
        }
        self.rows += count;
    }

    /// Appends `frames`, well-formed frames of `frame_len` bytes back to back whose first one
    /// starts at byte `offset` of its log. The columns are grown first and then filled in
    /// passes over the frames (which stay in L1), so the loops do plain stores with no length
    /// bookkeeping per value; the transmission bits are packed 64 at a time.
    /// At most 64 frames; bit k of `transmission` is frame k's transmission bit.
    fn push_block(&mut self, frames: &[u8], frame_len: usize, offset: u64, transmission: u64) {
        self.push_block_with(frames, frame_len, offset, transmission, true);
    }

    /// [`Self::push_block`], with the fixed fields transposed several frames at a time
    /// ([`transpose`]) when `vectorised`, else one frame at a time (kept to check the
    /// transposition against).
    fn push_block_with(
        &mut self,
        frames: &[u8],
        frame_len: usize,
        offset: u64,
        transmission: u64,
        vectorised: bool,
    ) {
        fn u64_at(frame: &[u8], at: usize) -> u64 {
            let mut word = [0u8; 8];
            word.copy_from_slice(&frame[at..at + 8]);
            u64::from_le_bytes(word)
        }
        let count = frames.len() / frame_len;
        let base = self.rows;
        let NewRows {
            nets,
            clients,
            rounds,
            codes,
            stamps,
            offsets,
            lanes,
            transmission: bits,
        } = self.new_rows(count);
        let mut lanes = lanes.iter_mut();
        let first_lane = lanes.next().map(|column| grow(column, base, count));
        let step = frame_len as u64;
        let rows = frames.chunks_exact(frame_len);
        let (ids_done, stamps_done) = match (vectorised, &first_lane) {
            (true, Some(_)) => (
                transpose::ids_by_four(frames, frame_len, nets, clients, rounds),
                0,
            ),
            _ => (0, 0),
        };
        let (stamps_done, lane_done) = match (vectorised, first_lane) {
            (true, Some(lane)) => {
                let done = transpose::stamps_and_lane_by_two(frames, frame_len, stamps, &mut *lane);
                for (value, frame) in lane.iter_mut().zip(rows.clone()).skip(done) {
                    *value = u64_at(frame, FRAME_HEADER_LEN);
                }
                (done, count)
            }
            (_, Some(lane)) => {
                for (value, frame) in lane.iter_mut().zip(rows.clone()) {
                    *value = u64_at(frame, FRAME_HEADER_LEN);
                }
                (stamps_done, count)
            }
            (_, None) => (stamps_done, count),
        };
        debug_assert_eq!(lane_done, count);
        for (k, frame) in rows.clone().enumerate().skip(ids_done) {
            let header = RawHeader::of(frame);
            nets[k] = header.dc_net_id();
            clients[k] = header.client_id();
            rounds[k] = header.round();
        }
        for (stamp, frame) in stamps.iter_mut().zip(rows.clone()).skip(stamps_done) {
            // Bit-for-bit reinterpretation: the column is read back as u64 by `timestamp_ms`.
            *stamp = RawHeader::of(frame).timestamp_ms() as i64;
        }
        for (code, frame) in codes.iter_mut().zip(rows.clone()) {
            *code = frame[3];
        }
        let mut next = offset;
        for at in offsets.iter_mut() {
            *at = next;
            next += step;
        }
        for (l, column) in lanes.enumerate() {
            let values = grow(column, base, count);
            for (value, frame) in values.iter_mut().zip(rows.clone()) {
                *value = u64_at(frame, FRAME_HEADER_LEN + 8 * (l + 1));
            }
        }
        debug_assert!(count <= 64, "a block holds at most 64 frames");
        bits.append_packed_range(0..count, &transmission.to_le_bytes());
        self.rows += count;
    }

    /// Moves the appended frames into a batch for input `file`; the columns are empty after.
    pub fn finish(&mut self, file: u32) -> Result<FrameBatch, ArrowError> {
        let rows = std::mem::take(&mut self.rows);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(FIXED_COLUMNS.len() + self.lanes());
        columns.push(Arc::new(UInt32Array::new(
            ScalarBuffer::from(take_rows(&mut self.dc_net_id, rows)),
            None,
        )));
        columns.push(Arc::new(UInt32Array::new(
            ScalarBuffer::from(take_rows(&mut self.client_id, rows)),
            None,
        )));
        columns.push(Arc::new(UInt32Array::new(
            ScalarBuffer::from(take_rows(&mut self.round, rows)),
            None,
        )));
        columns.push(Arc::new(UInt8Array::new(
            ScalarBuffer::from(take_rows(&mut self.notification, rows)),
            None,
        )));
        columns.push(Arc::new(BooleanArray::new(
            self.transmission.finish(),
            None,
        )));
        columns.push(Arc::new(TimestampMillisecondArray::new(
            ScalarBuffer::from(take_rows(&mut self.timestamp, rows)),
            None,
        )));
        for lane in &mut self.lanes {
            columns.push(Arc::new(UInt64Array::new(
                ScalarBuffer::from(take_rows(lane, rows)),
                None,
            )));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok(FrameBatch {
            file,
            batch,
            offsets: take_rows(&mut self.offsets, rows),
        })
    }

    /// Takes the buffers of a consumed batch back for the next morsel. Buffers still shared
    /// elsewhere (a caller kept a column) are left alone and fresh ones are allocated later.
    pub fn recycle(&mut self, batch: FrameBatch) {
        /// Keeps whichever buffer has the larger capacity, so that recycling never drops a
        /// buffer in favour of a smaller one.
        fn keep<T>(mine: &mut Vec<T>, theirs: Option<Vec<T>>) {
            if let Some(theirs) = theirs
                && theirs.capacity() > mine.capacity()
            {
                // Its values stay: the next morsel overwrites them (see `rows`).
                *mine = theirs;
            }
        }
        let FrameBatch { batch, offsets, .. } = batch;
        keep(&mut self.offsets, Some(offsets));
        let (_, columns, _) = batch.into_parts();
        let mut columns = columns.into_iter();
        let mut next = || columns.next();
        keep(&mut self.dc_net_id, next().and_then(reclaim::<UInt32Type>));
        keep(&mut self.client_id, next().and_then(reclaim::<UInt32Type>));
        keep(&mut self.round, next().and_then(reclaim::<UInt32Type>));
        keep(
            &mut self.notification,
            next().and_then(reclaim::<UInt8Type>),
        );
        let _transmission = next();
        keep(
            &mut self.timestamp,
            next().and_then(reclaim::<TimestampMillisecondType>),
        );
        for lane in &mut self.lanes {
            keep(lane, next().and_then(reclaim::<UInt64Type>));
        }
    }

    /// Makes room for `frames` more frames in every column at once, so that a morsel fills
    /// its columns without growing them step by step.
    pub fn reserve(&mut self, frames: usize) {
        let rows = self.rows + frames;
        reserve_rows(&mut self.dc_net_id, rows);
        reserve_rows(&mut self.client_id, rows);
        reserve_rows(&mut self.round, rows);
        reserve_rows(&mut self.notification, rows);
        self.transmission.reserve(frames);
        reserve_rows(&mut self.timestamp, rows);
        for lane in &mut self.lanes {
            reserve_rows(lane, rows);
        }
        reserve_rows(&mut self.offsets, rows);
    }
}

/// Rows about to be filled, one slice per fixed column ([`FrameColumns::new_rows`]).
struct NewRows<'c> {
    nets: &'c mut [u32],
    clients: &'c mut [u32],
    rounds: &'c mut [u32],
    codes: &'c mut [u8],
    stamps: &'c mut [i64],
    offsets: &'c mut [u64],
    lanes: &'c mut [Vec<u64>],
    transmission: &'c mut BooleanBufferBuilder,
}

/// Fixed fields of several frames at once: a frame's ids (bytes 8..24: dc_net_id, client_id,
/// round, crc32c) are read as one `[u32; 4]` and four frames' rows are transposed into the
/// columns, which LLVM's SLP vectoriser turns into 16-byte loads, shuffles and stores; the
/// timestamp and first lane (bytes 24..40) likewise two frames at a time. The scalar loop,
/// a load and a store per field and frame, keeps every column's address in a register or on
/// the stack and ran at half the speed (`decode` benchmark).
mod transpose {
    fn row<T: bytemuck::Pod>(bytes: &[u8], at: usize) -> T {
        bytemuck::pod_read_unaligned(&bytes[at..at + std::mem::size_of::<T>()])
    }

    /// Returns how many frames it did (a multiple of four); the caller does the rest.
    pub(super) fn ids_by_four(
        frames: &[u8],
        frame_len: usize,
        nets: &mut [u32],
        clients: &mut [u32],
        rounds: &mut [u32],
    ) -> usize {
        let mut done = 0;
        for (((quad, nets), clients), rounds) in frames
            .chunks_exact(4 * frame_len)
            .zip(nets.chunks_exact_mut(4))
            .zip(clients.chunks_exact_mut(4))
            .zip(rounds.chunks_exact_mut(4))
        {
            let a: [u32; 4] = row(quad, 8);
            let b: [u32; 4] = row(quad, frame_len + 8);
            let c: [u32; 4] = row(quad, 2 * frame_len + 8);
            let d: [u32; 4] = row(quad, 3 * frame_len + 8);
            nets.copy_from_slice(&[a[0], b[0], c[0], d[0]].map(u32::from_le));
            clients.copy_from_slice(&[a[1], b[1], c[1], d[1]].map(u32::from_le));
            rounds.copy_from_slice(&[a[2], b[2], c[2], d[2]].map(u32::from_le));
            done += 4;
        }
        done
    }

    /// Returns how many frames it did (even).
    pub(super) fn stamps_and_lane_by_two(
        frames: &[u8],
        frame_len: usize,
        stamps: &mut [i64],
        lane: &mut [u64],
    ) -> usize {
        let mut done = 0;
        for ((pair, stamps), lane) in frames
            .chunks_exact(2 * frame_len)
            .zip(stamps.chunks_exact_mut(2))
            .zip(lane.chunks_exact_mut(2))
        {
            let a: [u64; 2] = row(pair, 24);
            let b: [u64; 2] = row(pair, frame_len + 24);
            // Bit-for-bit reinterpretation, as in the scalar path.
            stamps.copy_from_slice(&[u64::from_le(a[0]) as i64, u64::from_le(b[0]) as i64]);
            lane.copy_from_slice(&[u64::from_le(a[1]), u64::from_le(b[1])]);
            done += 2;
        }
        done
    }
}

/// A rejected stretch found while reading a morsel: its byte offset and reason.
pub type ScanReject = (u64, RejectReason);

/// Reads the morsel of `bytes` (a whole log with header `header`) that starts at `start`,
/// between frames, and ends at the first position at or after `end` that is between frames.
///
/// Valid frames go into `columns`, rejected stretches into `rejects`. Returns the position
/// where reading stopped: the start of the next morsel if the next morsel was cut there, and
/// further on when a damaged stretch or a misaligned frame crosses `end`.
pub fn read_morsel(
    bytes: &[u8],
    header: LogHeader,
    start: usize,
    end: usize,
    columns: &mut FrameColumns,
    rejects: &mut Vec<ScanReject>,
) -> usize {
    read_morsel_ahead(bytes, header, start, end, READ_AHEAD, columns, rejects)
}

/// How far ahead of the frames being checked [`read_morsel`] asks the CPU to load the log.
///
/// Far enough that the lines arrive before the reader does (a 64-frame block of one-lane
/// frames is 2.5 KiB), near enough that they are still in cache when it does. Loop times of
/// `dcnet aggregate` on the 823 MB bench log, six alternating runs each: no hints 147–155 ms,
/// 1 KiB 135–137 ms, 4 KiB 124–128 ms, 16 KiB 127–130 ms.
pub const READ_AHEAD: usize = 4096;

/// [`read_morsel`] with the read-ahead distance given: `read_ahead` bytes past each block of
/// frames are prefetched while the block is checked ([`crate::mmap::prefetch`]); 0 gives no
/// hints. Only the speed depends on it.
pub fn read_morsel_ahead(
    bytes: &[u8],
    header: LogHeader,
    start: usize,
    end: usize,
    read_ahead: usize,
    columns: &mut FrameColumns,
    rejects: &mut Vec<ScanReject>,
) -> usize {
    read_into(bytes, header, start, end, read_ahead, columns, rejects)
}

/// Where the morsel reader puts the valid frames it finds: decoded columns
/// ([`FrameColumns`]), or only their places and nets ([`crate::window::WindowFrames`]).
pub(crate) trait FrameSink {
    /// Makes room for `frames` more frames.
    fn reserve(&mut self, frames: usize);
    /// Appends well-formed frames of `frame_len` bytes back to back (at most 64), the first at
    /// byte `offset` of the log; bit k of `transmission` is frame k's transmission bit.
    fn push_block(&mut self, frames: &[u8], frame_len: usize, offset: u64, transmission: u64);
    /// Appends one valid frame found at byte `offset`.
    fn push(&mut self, frame: &FrameView<'_>, offset: u64);
}

impl FrameSink for FrameColumns {
    fn reserve(&mut self, frames: usize) {
        FrameColumns::reserve(self, frames);
    }

    fn push_block(&mut self, frames: &[u8], frame_len: usize, offset: u64, transmission: u64) {
        FrameColumns::push_block(self, frames, frame_len, offset, transmission);
    }

    fn push(&mut self, frame: &FrameView<'_>, offset: u64) {
        FrameColumns::push(self, frame, offset);
    }
}

/// [`read_morsel_ahead`] into any [`FrameSink`]: the sink sees exactly the frames, offsets and
/// order a scan of the whole log would accept.
pub(crate) fn read_into<S: FrameSink>(
    bytes: &[u8],
    header: LogHeader,
    start: usize,
    end: usize,
    read_ahead: usize,
    columns: &mut S,
    rejects: &mut Vec<ScanReject>,
) -> usize {
    let frame_len = header.frame_len();
    let lanes = header.lanes;
    // The first eight bytes of a well-formed frame of this log, with the notification and
    // flags bytes masked out: "DC", version 1, the log's lane count, reserved zero.
    let base = u64::from_le_bytes([b'D', b'C', 1, 0, 0, lanes, 0, 0]);
    let mask = u64::from_le_bytes([0xFF, 0xFF, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF]);
    let mut crcs = [0u32; BLOCK_FRAMES];
    let mut pos = start.max(crate::log::LOG_HEADER_LEN);
    columns.reserve(end.saturating_sub(pos).div_ceil(frame_len.max(1)));
    loop {
        // Fast path, at a position between frames: blocks of frames that pass every check are
        // decoded straight into the columns, their CRCs computed side by side. Anything else
        // (damage, another lane count, the end of the log) goes through the scanner, which
        // decides exactly as a scan of the whole log would.
        while pos < end {
            let whole = (bytes.len() - pos) / frame_len;
            let wanted = (end - pos).div_ceil(frame_len).min(whole).min(BLOCK_FRAMES);
            let block = &bytes[pos..pos + wanted * frame_len];
            if read_ahead > 0 {
                let from = pos.saturating_add(read_ahead).min(bytes.len());
                let to = (from + block.len()).min(bytes.len());
                crate::mmap::prefetch(&bytes[from..to]);
            }
            let mut good = 0;
            let mut transmission = 0u64;
            for frame in block.chunks_exact(frame_len) {
                let word = u64::from_le_bytes(first_word(frame));
                let (code, flags) = (frame[3], frame[4]);
                if word & mask != base || !(1..=5).contains(&code) || flags > 1 {
                    break;
                }
                transmission |= u64::from(flags) << good;
                good += 1;
            }
            crate::crc::frame_crcs(block, frame_len, &mut crcs[..good]);
            let valid = block
                .chunks_exact(frame_len)
                .zip(&crcs[..good])
                .take_while(|&(frame, &crc)| RawHeader::of(frame).crc32c() == crc)
                .count();
            columns.push_block(
                &block[..valid * frame_len],
                frame_len,
                pos as u64,
                transmission,
            );
            pos += valid * frame_len;
            if valid < wanted || wanted == 0 {
                break;
            }
        }
        if pos >= end {
            return pos;
        }
        let mut scanner = FrameScanner::starting_at(bytes, header, pos);
        loop {
            let Some(item) = scanner.next() else {
                return scanner.position();
            };
            match item.frame {
                Ok(frame) => columns.push(&frame, item.offset),
                Err(error) => rejects.push((item.offset, error.into())),
            }
            if scanner.between_frames() {
                break;
            }
        }
        pos = scanner.position();
        if pos >= end {
            return pos;
        }
    }
}

fn first_word(frame: &[u8]) -> [u8; 8] {
    let mut word = [0u8; 8];
    word.copy_from_slice(&frame[..8]);
    word
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, Notification};
    use crate::log::LogWriter;

    fn frame(client: u32, ts: u64, lanes: Vec<u64>) -> Frame {
        Frame {
            notification: Notification::Resend,
            transmission: client.is_multiple_of(2),
            dc_net_id: 7,
            client_id: client,
            round: 96 + client,
            timestamp_ms: ts,
            lanes,
        }
    }

    proptest::proptest! {
        /// The transposed block decode writes exactly what decoding frame by frame writes,
        /// for any lane count, block length (remainders of the four- and two-frame steps
        /// included) and alignment of the frames in memory.
        #[test]
        fn block_decode_equals_frame_by_frame(
            fields in proptest::collection::vec(
                (1u8..=5, proptest::prelude::any::<(bool, u32, u32, u32, u64)>(), proptest::prelude::any::<[u64; 3]>()),
                0..=64,
            ),
            lanes in 1usize..=3,
            shift in 0usize..8,
        ) {
            let mut bytes = vec![0u8; shift];
            let mut bits = 0u64;
            for (k, &(code, (tx, net, client, round, ts), values)) in fields.iter().enumerate() {
                let frame = Frame {
                    notification: Notification::from_code(code).unwrap(),
                    transmission: tx,
                    dc_net_id: net,
                    client_id: client,
                    round,
                    timestamp_ms: ts,
                    lanes: values[..lanes].to_vec(),
                };
                bytes.extend(frame.to_bytes().unwrap());
                bits |= u64::from(tx) << k;
            }
            let frames = &bytes[shift..];
            let frame_len = crate::frame::frame_len(lanes);
            let mut one_by_one = FrameColumns::new(lanes, 0);
            for (k, frame) in frames.chunks_exact(frame_len).enumerate() {
                let view = FrameView::parse(frame, lanes as u8).unwrap();
                one_by_one.push(&view, 64 + (k * frame_len) as u64);
            }
            let want = one_by_one.finish(0).unwrap();
            for vectorised in [false, true] {
                let mut columns = FrameColumns::new(lanes, 0);
                columns.push_block_with(frames, frame_len, 64, bits, vectorised);
                let got = columns.finish(0).unwrap();
                proptest::prop_assert_eq!(&got.batch, &want.batch);
                proptest::prop_assert_eq!(&got.offsets, &want.offsets);
            }
        }
    }

    #[test]
    fn gathering_rows_equals_appending_those_frames_in_that_order() {
        let frames: Vec<Frame> = (0..70u32)
            .map(|k| {
                frame(
                    k * 3 + 1,
                    1_700_000_000_000 + u64::from(k),
                    vec![u64::from(k), !u64::from(k)],
                )
            })
            .collect();
        let offset = |k: usize| 64 + 48 * k as u64;
        let mut source = FrameColumns::new(2, 0);
        for (k, f) in frames.iter().enumerate() {
            source.push(
                &FrameView::parse(&f.to_bytes().unwrap(), 2).unwrap(),
                offset(k),
            );
        }
        let batch = source.finish(5).unwrap();
        let mut gathered = FrameColumns::new(2, 0);
        // Rows out of order, repeated, and more than one bitmap word of them; then fewer rows
        // into the recycled buffers, whose stale values must not show.
        for rows in [
            vec![69u32, 0, 0, 64, 3, 63, 65, 2, 1, 68],
            (0..70).rev().collect(),
            vec![7],
        ] {
            let mut one_by_one = FrameColumns::new(2, 0);
            for &row in &rows {
                let bytes = frames[row as usize].to_bytes().unwrap();
                one_by_one.push(&FrameView::parse(&bytes, 2).unwrap(), offset(row as usize));
            }
            let want = one_by_one.finish(5).unwrap();
            gathered.gather(&batch, &rows);
            let got = gathered.finish(5).unwrap();
            assert_eq!(got.batch, want.batch);
            assert_eq!(got.offsets, want.offsets);
            gathered.recycle(got);
        }
    }

    #[test]
    fn columns_hold_every_field_and_buffers_come_back() {
        let frames = [
            frame(1, u64::MAX, vec![1, 2]),
            frame(2, 1_700_000_000_000, vec![u64::MAX, 0]),
        ];
        let mut writer = LogWriter::new(Vec::new(), 2, 0).unwrap();
        for f in &frames {
            writer.write_frame(f).unwrap();
        }
        let bytes = writer.finish().unwrap();
        let header = LogHeader::parse(&bytes).unwrap();
        let mut columns = FrameColumns::new(2, 16);
        let mut rejects = Vec::new();
        let stop = read_morsel(&bytes, header, 64, bytes.len(), &mut columns, &mut rejects);
        assert_eq!(stop, bytes.len());
        assert!(rejects.is_empty());
        let batch = columns.finish(3).unwrap();
        assert_eq!(batch.file, 3);
        assert_eq!(batch.offsets, vec![64, 112]);
        assert_eq!(batch.client_id(), &[1, 2]);
        assert_eq!(batch.round(), &[97, 98]);
        assert_eq!(batch.dc_net_id(), &[7, 7]);
        assert_eq!(batch.notification(), &[4, 4]);
        assert!(!batch.transmission().value(0) && batch.transmission().value(1));
        assert_eq!(batch.timestamp_ms(), &[u64::MAX, 1_700_000_000_000]);
        assert_eq!(batch.lane(0), &[1, u64::MAX]);
        assert_eq!(batch.lane(1), &[2, 0]);
        assert_eq!(batch.batch.schema(), frame_schema(2));
        let pointer = batch.lane(1).as_ptr();
        columns.recycle(batch);
        assert!(columns.is_empty());
        // The lane buffer was taken back, not reallocated.
        assert_eq!(columns.lanes[1].as_ptr(), pointer);
    }

    #[test]
    fn the_read_ahead_changes_nothing_but_speed() {
        // A log with a damaged frame in the middle, read in morsels that end inside frames,
        // with read-ahead distances from none to past the end of the log.
        let mut writer = LogWriter::new(Vec::new(), 1, 0).unwrap();
        for client in 0..300 {
            writer
                .write_frame(&frame(client, u64::from(client), vec![u64::from(client)]))
                .unwrap();
        }
        let mut bytes = writer.finish().unwrap();
        bytes[64 + 40 * 150 + 9] ^= 1;
        let header = LogHeader::parse(&bytes).unwrap();
        let read = |read_ahead: usize| {
            let mut columns = FrameColumns::new(1, 0);
            let mut rejects = Vec::new();
            let mut pos = 64;
            while pos < bytes.len() {
                let end = (pos + 1_001).min(bytes.len());
                pos = read_morsel_ahead(
                    &bytes,
                    header,
                    pos,
                    end,
                    read_ahead,
                    &mut columns,
                    &mut rejects,
                );
            }
            (columns.finish(0).unwrap(), rejects)
        };
        let (want, want_rejects) = read(0);
        assert_eq!(want.len(), 299);
        assert_eq!(want_rejects.len(), 1);
        for read_ahead in [1, 63, READ_AHEAD, bytes.len(), usize::MAX] {
            let (got, rejects) = read(read_ahead);
            assert_eq!(got.batch, want.batch, "read-ahead {read_ahead}");
            assert_eq!(got.offsets, want.offsets);
            assert_eq!(rejects, want_rejects);
        }
    }
}
