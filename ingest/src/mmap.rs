//! Opening round logs: memory-mapped when the input is a regular file. A pipe (stdin as `-`,
//! a FIFO) cannot be mapped, so it is first copied into an unnamed temporary file (in `$TMPDIR`)
//! and that file is mapped: heap memory stays independent of the input's size, and the bytes
//! can be read back by offset like any log. Only when no temporary file can be made, or mapping
//! fails, is the input read into memory.
//!
//! This is one of the modules allowed to contain `unsafe` (see ARCHITECTURE.md): mapping a
//! file is unsafe because another process could change it underneath us.
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
