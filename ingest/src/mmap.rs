//! Opening round logs: memory-mapped when the input is a regular file, read into memory when it
//! is not (a pipe, stdin as `-`) or when mapping fails.
//!
//! This is one of the two modules allowed to contain `unsafe` (see ARCHITECTURE.md): mapping a
//! file is unsafe because another process could change it underneath us.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Read;
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
        let mut bytes = Vec::new();
        std::io::stdin().lock().read_to_end(&mut bytes)?;
        return Ok(LogBytes::Owned(bytes));
    }
    let mut file = File::open(path)?;
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
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(LogBytes::Owned(bytes))
}
