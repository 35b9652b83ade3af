//! Opening round logs: memory-mapped when the input is a regular file. A pipe (stdin as `-`,
//! a FIFO) cannot be mapped, so it is first copied into an unnamed temporary file (in `$TMPDIR`)
//! and that file is mapped: heap memory stays independent of the input's size, and the bytes
//! can be read back by offset like any log. Only when no temporary file can be made, or mapping
//! fails, is the input read into memory.
//!
//! This is one of the modules allowed to contain `unsafe` (see ARCHITECTURE.md): mapping a
//! file is unsafe because another process could change it underneath us, and [`prefetch`]
//! calls a CPU instruction.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

/// The bytes of an opened log.
pub enum LogBytes {
    /// A read-only mapping of a regular file.
    Mapped(Mmap),
    /// Bytes read into memory.
    Owned(Vec<u8>),
}

impl Deref for LogBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(map) => map,
            Self::Owned(bytes) => bytes,
        }
    }
}

/// Opens `path` (or standard input for `-`) for reading as one byte slice.
pub fn open_log(path: &Path) -> std::io::Result<LogBytes> {
    if path.as_os_str() == "-" {
        return spool(std::io::stdin().lock());
    }
    let file = File::open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_file() && metadata.len() > 0 {
        // SAFETY: the mapping is read-only and private to this process. A round log is written
        // once and then only read; should another process truncate or rewrite the file while it
        // is mapped, reads may see the new bytes or fault, which is the documented risk of
        // mapping and the reason the reader validates every frame (CRC) rather than trusting it.
        if let Ok(map) = unsafe { Mmap::map(&file) } {
            return Ok(LogBytes::Mapped(map));
        }
    }
    spool(file)
}

/// Copies `input` into an unnamed temporary file and maps it; reads it into memory when no
/// temporary file can be made or mapped.
fn spool(mut input: impl Read) -> std::io::Result<LogBytes> {
    let Ok(mut file) = tempfile::tempfile() else {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        return Ok(LogBytes::Owned(bytes));
    };
    let copied = std::io::copy(&mut input, &mut file)?;
    if copied > 0 {
        // SAFETY: the file was created here without a name (unlinked at once), so no other
        // process can open it to change it while it is mapped.
        if let Ok(map) = unsafe { Mmap::map(&file) } {
            return Ok(LogBytes::Mapped(map));
        }
    }
    let mut bytes = Vec::with_capacity(usize::try_from(copied).unwrap_or(0));
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(LogBytes::Owned(bytes))
}

/// Asks the CPU to start loading `bytes` into its caches, a cache line at a time, and returns
/// at once: a hint that never faults and never changes what the program computes.
///
/// Why it is needed: a mapped log lies in the page cache as scattered 4 KiB pages, and the
/// CPU's own prefetchers stop at page boundaries, so a reader that checks frame after frame
/// keeps only a few cache misses in flight and waits for memory (`perf` put over half of the
/// morsel reader's time on the first load of each frame). Hints a few KiB ahead of the reader
/// keep the lines coming; `dcnet bench aggregate` measures the run with and without them.
/// No crate offers a stable, safe prefetch (`core::intrinsics::prefetch_read_data` is
/// unstable), hence this wrapper. On targets other than x86-64 it does nothing.
#[inline]
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86-64 baseline, so every CPU this code runs on executes the
    // `prefetcht0` instruction that `prefetch_sse` is compiled with.
    unsafe {
        prefetch_sse(bytes);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse")]
fn prefetch_sse(bytes: &[u8]) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    const LINE: usize = 64;
    // Every line `bytes` touches: one address in each 64-byte step and the last byte, whose line
    // the steps miss when `bytes` does not start on a line boundary.
    let lines = (0..bytes.len())
        .step_by(LINE)
        .chain(bytes.len().checked_sub(1));
    for at in lines {
        // A prefetch does not dereference its address; the addresses are inside `bytes` anyway.
        _mm_prefetch::<_MM_HINT_T0>(bytes[at..].as_ptr().cast());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_spooled_to_a_mapped_file_with_the_same_bytes() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let spooled = spool(bytes.as_slice()).unwrap();
        assert!(
            matches!(spooled, LogBytes::Mapped(_)),
            "spooled input is mapped"
        );
        assert_eq!(&*spooled, bytes.as_slice());
        let empty = spool(&[][..]).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn prefetching_any_slice_changes_nothing() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let before = bytes.clone();
        for (start, end) in [
            (0, 0),
            (0, 1),
            (3, 67),
            (63, 129),
            (0, 10_000),
            (9_999, 10_000),
        ] {
            prefetch(&bytes[start..end]);
        }
        assert_eq!(bytes, before);
    }

    #[test]
    fn a_fifo_reads_like_the_file_written_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("log.fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !status.is_ok_and(|s| s.success()) {
            // Not a Unix system with mkfifo: the spooling itself is covered above.
            return;
        }
        let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 256) as u8).collect();
        let writer = {
            let (fifo, bytes) = (fifo.clone(), bytes.clone());
            std::thread::spawn(move || std::fs::write(fifo, bytes).unwrap())
        };
        let read = open_log(&fifo).unwrap();
        writer.join().unwrap();
        assert_eq!(&*read, bytes.as_slice());
    }
}
