//! Aggregating round-log files: opens each input, scans it and feeds one [`Aggregator`].
//!
//! A file that cannot be read as a round log (missing, empty, wrong header) is reported and
//! skipped; the other files still count. Only when no input is readable does the batch fail.

use std::path::{Path, PathBuf};

use crate::aggregate::{AggregateOptions, AggregateReport, Aggregator, Nets};
use crate::log::{FrameScanner, LogHeader};
use crate::mmap::{LogBytes, open_log};

/// Why a batch produced nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// No input was given.
    #[error("no round log given")]
    NoInput,
    /// Every input failed; the first failure is named.
    #[error("no readable round log: {first}")]
    NothingReadable { first: String },
    /// More inputs than one aggregation can tell apart.
    #[error("too many round logs: at most {max} per run")]
    TooMany { max: usize },
    /// The worker threads could not be started.
    #[error("cannot start worker threads: {0}")]
    Threads(String),
    /// The list of rejected frames could not be kept in temporary files.
    #[error(transparent)]
    Spill(#[from] crate::spill::SpillError),
}

/// What happened to one input file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    /// The path as given.
    pub path: PathBuf,
    /// The header, if the file is a round log.
    pub header: Option<LogHeader>,
    /// Why the file was skipped, if it was.
    pub error: Option<String>,
    /// Bytes in the file.
    pub bytes: u64,
    /// Records scanned (valid frames and rejected stretches).
    pub records: u64,
}

/// The result of aggregating several files.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// Lanes of the aggregation (of the first readable log).
    pub lanes: usize,
    /// Rounds, rejects and counts.
    pub report: AggregateReport,
    /// One entry per input, in input order.
    pub files: Vec<FileOutcome>,
}

fn describe(path: &Path, error: impl std::fmt::Display) -> String {
    format!("{}: {error}", path.display())
}

/// The inputs of a batch, opened: each file's outcome so far, the readable logs' bytes by input
/// index, and the lane count of the aggregation (the first readable log's).
pub struct OpenedInputs {
    /// One entry per input, in input order.
    pub files: Vec<FileOutcome>,
    /// `(input index, bytes)` of every input with a valid header.
    pub opened: Vec<(usize, LogBytes)>,
    /// Lanes of the first readable log.
    pub lanes: usize,
}

/// Opens every input (mapping regular files, reading pipes and `-`), parses the headers and
/// notes why unreadable ones are skipped. Fails only if no input is readable.
pub fn open_inputs(paths: &[PathBuf]) -> Result<OpenedInputs, BatchError> {
    if paths.is_empty() {
        return Err(BatchError::NoInput);
    }
    let mut files = Vec::with_capacity(paths.len());
    let mut opened = Vec::with_capacity(paths.len());
    for path in paths {
        let mut outcome = FileOutcome {
            path: path.clone(),
            header: None,
            error: None,
            bytes: 0,
            records: 0,
        };
        match open_log(path) {
            Ok(bytes) => {
                outcome.bytes = bytes.len() as u64;
                match LogHeader::parse(&bytes) {
                    Ok(header) => {
                        outcome.header = Some(header);
                        opened.push((files.len(), bytes));
                    }
                    Err(error) => outcome.error = Some(describe(path, error)),
                }
            }
            Err(error) => outcome.error = Some(describe(path, error)),
        }
        files.push(outcome);
    }
    let Some(lanes) = opened
        .first()
        .and_then(|(i, _)| files[*i].header)
        .map(|h| usize::from(h.lanes))
    else {
        let first = files
            .iter()
            .find_map(|f| f.error.clone())
            .unwrap_or_default();
        return Err(BatchError::NothingReadable { first });
    };
    Ok(OpenedInputs {
        files,
        opened,
        lanes,
    })
}

/// Aggregates the round logs at `paths` (`-` is standard input) against the key graphs in `nets`
/// with the straightforward [`Aggregator`], one frame after the other: the reference that the
/// columnar engine ([`crate::pipeline`]) is tested against.
pub fn aggregate_files(
    paths: &[PathBuf],
    nets: &Nets,
    options: AggregateOptions,
) -> Result<BatchOutcome, BatchError> {
    let OpenedInputs {
        mut files,
        opened,
        lanes,
    } = open_inputs(paths)?;
    let mut aggregator = Aggregator::new(nets, lanes, options);
    for (index, bytes) in &opened {
        let scanner = match FrameScanner::new(bytes) {
            Ok(scanner) => scanner,
            Err(error) => {
                files[*index].error = Some(describe(&files[*index].path, error));
                continue;
            }
        };
        let file = u32::try_from(*index).unwrap_or(u32::MAX);
        let mut records = 0;
        for scanned in scanner {
            aggregator.add_scanned(file, &scanned);
            records += 1;
        }
        files[*index].records = records;
    }
    Ok(BatchOutcome {
        lanes,
        report: aggregator.finish(),
        files,
    })
}
