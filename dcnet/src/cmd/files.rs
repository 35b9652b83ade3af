//! Small text files of the billing and lock commands: bounded reads with the file named in
//! every error, refusing to overwrite by accident, and atomic replacement.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Tariffs, keys, locks, requests and approvals are a few KiB; anything beyond this is not one.
pub const MAX_TEXT_FILE: u64 = 1 << 20;

/// Reads a UTF-8 text file of at most [`MAX_TEXT_FILE`] bytes; `what` names it in errors.
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    let file =
        File::open(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mut text = String::new();
    let read = file
        .take(MAX_TEXT_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if read as u64 > MAX_TEXT_FILE {
        bail!(
            "{what} {} is larger than {MAX_TEXT_FILE} bytes",
            path.display()
        );
    }
    Ok(text)
}

/// Creates `path` with `contents`; refuses to replace an existing file unless `force`.
/// Secret files are created readable by the owner only.
pub fn write_new(path: &Path, contents: &str, force: bool, secret: bool) -> Result<()> {
    if !force && path.exists() {
        bail!("{} exists; pass --force to replace it", path.display());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Replaces `path` atomically: a reader sees the old file or the new one, never a mix.
pub fn replace(path: &Path, contents: &str) -> Result<()> {
    let temporary = sibling(path, ".new");
    write_new(&temporary, contents, true, false)?;
    fs::rename(&temporary, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// `path` with `suffix` appended to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
