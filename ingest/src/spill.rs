//! Reject lists larger than memory.
//!
//! When rejects are listed (`dcnet aggregate --rejects`), a log that is mostly garbage has about
//! as many rejects as frames. So that heap memory stays bounded by the (net, round) groups and
//! rosters rather than by the frames, each worker keeps at most a bound of listed rejects in
//! memory ([`DEFAULT_REJECTS_IN_MEMORY`]); beyond it they are sorted by source and written as one
//! run to an unnamed temporary file, 9 bytes an entry. At the end the runs and what is still in
//! memory are merged ([`RejectList::stream`], a k-way merge over buffered run readers) into one
//! stream in ascending (file, offset, reason) order, which the binary writes straight into its
//! CSV file. More than [`FAN_IN`] runs are first merged in passes of that many, so that the
//! readers' buffers stay bounded as well.
//!
//! A duplicate that a worker reported for a round which was later aggregated again is reported
//! again by that second aggregation, so the first report is withdrawn. Which rounds are
//! aggregated again is known only at the end: a spilled duplicate therefore carries its
//! (net, round) key (8 more bytes), and the merge leaves it out when that round was redone.
//!
//! Runs are written and read by position (`pwrite`/`pread`), never through a file's cursor, so
//! any number of readers can share a file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rustc_hash::FxHashSet;

use crate::fast::{pack_source as pack, unpack_source as unpack};
use crate::reject::{RejectReason, Rejected};

/// Listed rejects a worker keeps in memory before it sorts them and writes them to a temporary
/// file, unless configured otherwise: 1 Mi entries, 16 MiB per worker.
pub const DEFAULT_REJECTS_IN_MEMORY: usize = 1 << 20;

/// Heap bytes one listed reject takes while it is in memory.
pub const REJECT_ENTRY_BYTES: u64 = 16;

/// Runs merged at once; when there are more, they are first merged in passes of this many.
const FAN_IN: usize = 64;
/// Bytes each run reader and writer buffers at most.
const BUFFER: usize = 64 << 10;
/// A spilled entry: the packed source (u64, little-endian) and the reason code.
const ENTRY: usize = 9;
/// Set in an entry's reason code when the entry is followed by a withdrawal key.
const KEYED: u8 = 0x80;
/// The (net, round) key after a keyed entry (u64, little-endian).
const KEY: usize = 8;

/// Why the list of rejected frames could not be kept in temporary files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpillError {
    /// No temporary file could be created.
    #[error("cannot create a temporary file in {} for the list of rejected frames: {error}", .dir.display())]
    Create {
        /// The directory temporary files go to (`$TMPDIR`).
        dir: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// Writing a temporary file failed, e.g. because the disk is full.
    #[error("cannot write the list of rejected frames to a temporary file in {}: {error}", .dir.display())]
    Write {
        /// The directory temporary files go to (`$TMPDIR`).
        dir: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// Reading a temporary file back failed.
    #[error("cannot read the list of rejected frames back from its temporary file: {0}")]
    Read(io::Error),
    /// A temporary file does not hold what was written to it.
    #[error("the temporary file of rejected frames is damaged: {0}")]
    Damaged(&'static str),
}

fn create_error(error: io::Error) -> SpillError {
    SpillError::Create {
        dir: std::env::temp_dir(),
        error,
    }
}

fn write_error(error: io::Error) -> SpillError {
    SpillError::Write {
        dir: std::env::temp_dir(),
        error,
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(unix)]
fn read_exact_at(file: &File, bytes: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, bytes, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        match file.seek_write(bytes, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes = &bytes[n..];
                offset += n as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut bytes: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        match file.seek_read(bytes, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                bytes = &mut bytes[n..];
                offset += n as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn write_all_at(_: &File, _: &[u8], _: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(any(unix, windows)))]
fn read_exact_at(_: &File, _: &mut [u8], _: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// One sorted run: bytes `start..end` of file `file`.
#[derive(Debug, Clone, Copy)]
struct Run {
    file: usize,
    start: u64,
    end: u64,
}

/// Sorted runs of listed rejects in unnamed temporary files.
#[derive(Debug, Default)]
pub(crate) struct SpillRuns {
    files: Vec<File>,
    runs: Vec<Run>,
    /// The file this collection appends its own runs to, and that file's length.
    writing: Option<(usize, u64)>,
}

impl SpillRuns {
    /// Whether no run was written.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Starts a run, creating the temporary file on first use. Entries must be pushed in
    /// ascending (source, reason) order.
    pub(crate) fn run(&mut self) -> Result<RunWriter<'_>, SpillError> {
        let (file, length) = match self.writing {
            Some(writing) => writing,
            None => {
                self.files.push(tempfile::tempfile().map_err(create_error)?);
                let writing = (self.files.len() - 1, 0);
                self.writing = Some(writing);
                writing
            }
        };
        Ok(RunWriter {
            runs: self,
            file,
            start: length,
            position: length,
            buffer: Vec::new(),
        })
    }

    /// Takes over the runs of `other` (and its files).
    pub(crate) fn append(&mut self, other: SpillRuns) {
        let base = self.files.len();
        self.files.extend(other.files);
        self.runs.extend(other.runs.into_iter().map(|run| Run {
            file: run.file + base,
            ..run
        }));
    }
}

/// Writes one run; [`RunWriter::finish`] records it.
pub(crate) struct RunWriter<'r> {
    runs: &'r mut SpillRuns,
    file: usize,
    start: u64,
    position: u64,
    buffer: Vec<u8>,
}

impl RunWriter<'_> {
    /// Appends an entry: `key` is the (net, round) of a duplicate that may be withdrawn.
    pub(crate) fn push(
        &mut self,
        source: u64,
        reason: RejectReason,
        key: Option<u64>,
    ) -> Result<(), SpillError> {
        if self.buffer.len() + ENTRY + KEY > BUFFER {
            self.flush()?;
        }
        self.buffer.extend_from_slice(&source.to_le_bytes());
        match key {
            None => self.buffer.push(reason as u8),
            Some(key) => {
                self.buffer.push(reason as u8 | KEYED);
                self.buffer.extend_from_slice(&key.to_le_bytes());
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SpillError> {
        write_all_at(&self.runs.files[self.file], &self.buffer, self.position)
            .map_err(write_error)?;
        self.position += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Writes what is buffered and records the run. A writer dropped before this leaves no run
    /// (its bytes are overwritten by the next one).
    pub(crate) fn finish(mut self) -> Result<(), SpillError> {
        self.flush()?;
        if self.position > self.start {
            self.runs.runs.push(Run {
                file: self.file,
                start: self.start,
                end: self.position,
            });
        }
        self.runs.writing = Some((self.file, self.position));
        Ok(())
    }
}

/// Reads a run back, entry by entry, leaving out withdrawn duplicates.
struct RunReader<'a> {
    file: &'a File,
    /// Where the next bytes to buffer start in the file, and where the run ends.
    next: u64,
    end: u64,
    buffer: Vec<u8>,
    at: usize,
    withdrawn: &'a FxHashSet<u64>,
}

impl<'a> RunReader<'a> {
    fn new(file: &'a File, run: Run, withdrawn: &'a FxHashSet<u64>) -> Self {
        Self {
            file,
            next: run.start,
            end: run.end,
            buffer: Vec::new(),
            at: 0,
            withdrawn,
        }
    }

    /// Makes at least `n` unread bytes available; `false` at the end of the run.
    fn available(&mut self, n: usize) -> Result<bool, SpillError> {
        if self.buffer.len() - self.at >= n {
            return Ok(true);
        }
        self.buffer.drain(..self.at);
        self.at = 0;
        let room = BUFFER.max(n) - self.buffer.len();
        let take = usize::try_from(self.end - self.next).map_or(room, |left| left.min(room));
        if take > 0 {
            let old = self.buffer.len();
            self.buffer.resize(old + take, 0);
            read_exact_at(self.file, &mut self.buffer[old..], self.next)
                .map_err(SpillError::Read)?;
            self.next += take as u64;
        }
        match self.buffer.len() {
            0 => Ok(false),
            length if length >= n => Ok(true),
            _ => Err(SpillError::Damaged("a run ends inside an entry")),
        }
    }

    fn word(&mut self) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.buffer[self.at..self.at + 8]);
        self.at += 8;
        u64::from_le_bytes(word)
    }

    fn next(&mut self) -> Result<Option<Rejected>, SpillError> {
        loop {
            if !self.available(ENTRY)? {
                return Ok(None);
            }
            let source = self.word();
            let code = self.buffer[self.at];
            self.at += 1;
            let reason = *RejectReason::ALL
                .get(usize::from(code & !KEYED))
                .ok_or(SpillError::Damaged("unknown reason code"))?;
            if code & KEYED != 0 {
                if !self.available(KEY)? {
                    return Err(SpillError::Damaged("a run ends inside an entry"));
                }
                let key = self.word();
                if self.withdrawn.contains(&key) {
                    continue;
                }
            }
            return Ok(Some(Rejected {
                source: unpack(source),
                reason,
            }));
        }
    }
}

/// The source index of the in-memory part in a [`Merge`].
const MEMORY: usize = usize::MAX;

/// A k-way merge of sorted sources: the in-memory part and any number of runs.
struct Merge<'a> {
    memory: std::slice::Iter<'a, Rejected>,
    readers: Vec<RunReader<'a>>,
    /// The next entry of each source that has one, smallest first.
    heads: BinaryHeap<Reverse<(Rejected, usize)>>,
}

impl<'a> Merge<'a> {
    fn new(
        memory: &'a [Rejected],
        files: &'a [File],
        runs: &[Run],
        withdrawn: &'a FxHashSet<u64>,
    ) -> Result<Self, SpillError> {
        let readers = runs
            .iter()
            .map(|run| {
                let file = files
                    .get(run.file)
                    .ok_or(SpillError::Damaged("a run names no file"))?;
                Ok(RunReader::new(file, *run, withdrawn))
            })
            .collect::<Result<Vec<_>, SpillError>>()?;
        let mut merge = Self {
            memory: memory.iter(),
            heads: BinaryHeap::with_capacity(readers.len() + 1),
            readers,
        };
        merge.advance(MEMORY)?;
        for source in 0..merge.readers.len() {
            merge.advance(source)?;
        }
        Ok(merge)
    }

    /// Puts the next entry of `source` among the heads.
    fn advance(&mut self, source: usize) -> Result<(), SpillError> {
        let next = match self.readers.get_mut(source) {
            Some(reader) => reader.next()?,
            None => self.memory.next().copied(),
        };
        if let Some(next) = next {
            self.heads.push(Reverse((next, source)));
        }
        Ok(())
    }

    fn next_entry(&mut self) -> Result<Option<Rejected>, SpillError> {
        let Some(Reverse((entry, source))) = self.heads.pop() else {
            return Ok(None);
        };
        self.advance(source)?;
        Ok(Some(entry))
    }
}

/// What of a list went to temporary files.
#[derive(Debug)]
struct Spilled {
    runs: SpillRuns,
    /// (net, round) keys of rounds aggregated again: keyed duplicates of these are left out.
    withdrawn: FxHashSet<u64>,
}

/// The rejected frames of an aggregation in ascending (file, offset, reason) order: in memory,
/// or, when the list was larger than the bound the engine was given, mostly in temporary files
/// that [`RejectList::stream`] merges as it goes.
#[derive(Debug, Clone, Default)]
pub struct RejectList {
    memory: Vec<Rejected>,
    spilled: Option<Arc<Spilled>>,
}

impl From<Vec<Rejected>> for RejectList {
    /// A list held in memory (sorted here).
    fn from(mut rejects: Vec<Rejected>) -> Self {
        rejects.sort_unstable();
        Self {
            memory: rejects,
            spilled: None,
        }
    }
}

impl RejectList {
    /// A list of the sorted `memory` and the sorted `runs`, leaving out keyed duplicates of
    /// the rounds in `withdrawn`. Merges runs in passes while there are more than [`FAN_IN`].
    fn with_runs(
        memory: Vec<Rejected>,
        mut runs: SpillRuns,
        withdrawn: FxHashSet<u64>,
    ) -> Result<Self, SpillError> {
        if runs.is_empty() {
            return Ok(memory.into());
        }
        while runs.runs.len() > FAN_IN {
            let mut merged = SpillRuns::default();
            for chunk in runs.runs.chunks(FAN_IN) {
                let mut merge = Merge::new(&[], &runs.files, chunk, &withdrawn)?;
                let mut writer = merged.run()?;
                while let Some(entry) = merge.next_entry()? {
                    writer.push(pack(entry.source), entry.reason, None)?;
                }
                writer.finish()?;
            }
            // The merged runs replace the old ones, whose files are closed (and so removed) here.
            runs = merged;
        }
        Ok(Self {
            memory,
            spilled: Some(Arc::new(Spilled { runs, withdrawn })),
        })
    }

    /// The whole list, if it is held in memory.
    pub fn in_memory(&self) -> Option<&[Rejected]> {
        self.spilled.is_none().then_some(&self.memory[..])
    }

    /// Whether part of the list is in temporary files.
    pub fn is_spilled(&self) -> bool {
        self.spilled.is_some()
    }

    /// Every entry in order, read back from the temporary files as needed: memory stays
    /// bounded by a read buffer per run, however long the list is.
    pub fn stream(&self) -> Result<RejectStream<'_>, SpillError> {
        static NONE: std::sync::OnceLock<FxHashSet<u64>> = std::sync::OnceLock::new();
        let merge = match &self.spilled {
            Some(spilled) => Merge::new(
                &self.memory,
                &spilled.runs.files,
                &spilled.runs.runs,
                &spilled.withdrawn,
            )?,
            None => Merge::new(&self.memory, &[], &[], NONE.get_or_init(FxHashSet::default))?,
        };
        Ok(RejectStream {
            merge,
            failed: false,
        })
    }

    /// The whole list in memory (for tests and small lists).
    pub fn to_vec(&self) -> Result<Vec<Rejected>, SpillError> {
        self.stream()?.collect()
    }
}

/// The entries of a [`RejectList`] in order; after an error it ends.
pub struct RejectStream<'a> {
    merge: Merge<'a>,
    failed: bool,
}

impl Iterator for RejectStream<'_> {
    type Item = Result<Rejected, SpillError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.merge.next_entry();
        self.failed = next.is_err();
        next.transpose()
    }
}

/// The list being assembled at the end of an aggregation: entries in memory up to the bound,
/// the rest sorted into runs.
pub(crate) struct RejectSink {
    pending: Vec<(u64, RejectReason)>,
    runs: SpillRuns,
    bound: usize,
}

impl RejectSink {
    /// A sink that spills whenever `bound` entries (at least one) are pending.
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            pending: Vec::new(),
            runs: SpillRuns::default(),
            bound: bound.max(1),
        }
    }

    /// Takes over runs spilled elsewhere (by a worker).
    pub(crate) fn append(&mut self, runs: SpillRuns) {
        self.runs.append(runs);
    }

    /// Adds an entry (`source` packed), which is never withdrawn.
    pub(crate) fn push(&mut self, source: u64, reason: RejectReason) -> Result<(), SpillError> {
        self.pending.push((source, reason));
        if self.pending.len() >= self.bound {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), SpillError> {
        self.pending.sort_unstable();
        let mut writer = self.runs.run()?;
        for &(source, reason) in &self.pending {
            writer.push(source, reason, None)?;
        }
        writer.finish()?;
        self.pending.clear();
        Ok(())
    }

    /// The list, leaving out keyed duplicates of the rounds in `withdrawn`. Held in memory
    /// only if nothing was spilled; otherwise what is pending becomes one more run.
    pub(crate) fn finish(mut self, withdrawn: FxHashSet<u64>) -> Result<RejectList, SpillError> {
        if !self.runs.is_empty() && !self.pending.is_empty() {
            self.spill()?;
        }
        self.pending.sort_unstable();
        let memory = self
            .pending
            .into_iter()
            .map(|(source, reason)| Rejected {
                source: unpack(source),
                reason,
            })
            .collect();
        RejectList::with_runs(memory, self.runs, withdrawn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::FrameSource;
    use proptest::prelude::*;

    fn entry(file: u32, offset: u64, reason: usize) -> Rejected {
        Rejected {
            source: FrameSource { file, offset },
            reason: RejectReason::ALL[reason % RejectReason::ALL.len()],
        }
    }

    proptest! {
        /// Any split of a list into sorted runs and a sorted memory part, through any number
        /// of merge passes, streams back as the sorted list without the withdrawn duplicates.
        #[test]
        fn runs_and_memory_merge_into_the_sorted_list(
            entries in proptest::collection::vec(
                (0u32..4, 0u64..(1 << 40), 0usize..16, any::<bool>(), 0u64..4),
                0..600,
            ),
            run_len in 1usize..40,
            in_memory in 0usize..50,
        ) {
            let withdrawn: FxHashSet<u64> = [1u64, 3].into_iter().collect();
            let mut want = Vec::new();
            let mut runs = SpillRuns::default();
            let (memory, spilled) = entries.split_at(in_memory.min(entries.len()));
            for chunk in spilled.chunks(run_len) {
                let mut chunk: Vec<_> = chunk.to_vec();
                chunk.sort_unstable_by_key(|&(f, o, r, _, _)| entry(f, o, r));
                let mut writer = runs.run().unwrap();
                for &(file, offset, reason, keyed, key) in &chunk {
                    let e = entry(file, offset, reason);
                    writer.push(pack(e.source), e.reason, keyed.then_some(key)).unwrap();
                    if !(keyed && withdrawn.contains(&key)) {
                        want.push(e);
                    }
                }
                writer.finish().unwrap();
            }
            let mut memory: Vec<Rejected> =
                memory.iter().map(|&(f, o, r, _, _)| entry(f, o, r)).collect();
            memory.sort_unstable();
            want.extend(&memory);
            want.sort_unstable();
            let list = RejectList::with_runs(memory, runs, withdrawn).unwrap();
            prop_assert_eq!(list.is_spilled(), !spilled.is_empty());
            let got = list.to_vec().unwrap();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn packing_keeps_sources_and_their_order(
            a in (0u32..(1 << 24), 0u64..(1 << 40)),
            b in (0u32..(1 << 24), 0u64..(1 << 40)),
        ) {
            let (a, b) = (
                FrameSource { file: a.0, offset: a.1 },
                FrameSource { file: b.0, offset: b.1 },
            );
            prop_assert_eq!(unpack(pack(a)), a);
            prop_assert_eq!(pack(a).cmp(&pack(b)), a.cmp(&b));
        }
    }

    #[test]
    fn a_sink_spills_at_its_bound_and_streams_everything_in_order() {
        let mut sink = RejectSink::new(3);
        let entries: Vec<Rejected> = (0..10u64)
            .rev()
            .map(|i| entry((i % 3) as u32, i * 40, i as usize))
            .collect();
        for e in &entries {
            sink.push(pack(e.source), e.reason).unwrap();
        }
        // Three runs of three, one entry left, which finishing writes out too.
        assert_eq!(sink.runs.runs.len(), 3);
        assert_eq!(sink.pending.len(), 1);
        let list = sink.finish(FxHashSet::default()).unwrap();
        assert!(list.is_spilled());
        assert_eq!(list.in_memory(), None);
        assert!(list.memory.is_empty());
        let mut want = entries.clone();
        want.sort_unstable();
        assert_eq!(list.to_vec().unwrap(), want);
        // A stream can be taken twice, and a clone streams the same.
        assert_eq!(list.clone().to_vec().unwrap(), want);
    }

    #[test]
    fn many_runs_are_merged_in_passes() {
        let mut sink = RejectSink::new(1);
        let n = FAN_IN * FAN_IN + 5;
        for i in (0..n as u64).rev() {
            sink.push(i * 40, RejectReason::Duplicate).unwrap();
        }
        let list = sink.finish(FxHashSet::default()).unwrap();
        let Some(spilled) = &list.spilled else {
            panic!("the list was spilled")
        };
        assert!(spilled.runs.runs.len() <= FAN_IN);
        let got: Vec<u64> = list
            .stream()
            .unwrap()
            .map(|e| e.unwrap().source.offset)
            .collect();
        let want: Vec<u64> = (0..n as u64).map(|i| i * 40).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_damaged_run_is_an_error_not_a_panic() {
        let mut runs = SpillRuns::default();
        let mut writer = runs.run().unwrap();
        writer.push(7, RejectReason::BadMagic, None).unwrap();
        writer.finish().unwrap();
        // An unknown reason code.
        write_all_at(&runs.files[0], &[0x7F], 8).unwrap();
        let list = RejectList::with_runs(Vec::new(), runs, FxHashSet::default()).unwrap();
        let error = list.to_vec().unwrap_err();
        assert!(matches!(error, SpillError::Damaged(_)), "{error}");
        // A run cut inside an entry.
        let mut runs = SpillRuns::default();
        let mut writer = runs.run().unwrap();
        writer.push(7, RejectReason::BadMagic, Some(3)).unwrap();
        writer.finish().unwrap();
        runs.runs[0].end -= 1;
        let list = RejectList::with_runs(Vec::new(), runs, FxHashSet::default()).unwrap();
        assert!(matches!(list.to_vec(), Err(SpillError::Damaged(_))));
    }

    #[test]
    fn errors_name_what_failed() {
        let error = write_error(io::Error::from(io::ErrorKind::StorageFull));
        let text = error.to_string();
        assert!(
            text.starts_with("cannot write the list of rejected frames"),
            "{text}"
        );
        assert!(
            text.contains(&std::env::temp_dir().display().to_string()),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }
}
