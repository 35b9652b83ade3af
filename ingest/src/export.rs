//! Tables for the tools users already have: validated frames and `global.csv` results written
//! as Parquet, Arrow IPC or CSV, so that DuckDB, Polars, pandas or Spark can query them.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use crate::aggregate::RoundResult;
use crate::batch::{BatchError, FileOutcome, OpenedInputs, open_inputs};
use crate::columnar::{DEFAULT_MORSEL_FRAMES, FrameColumns, frame_schema, read_morsel};
use crate::log::LOG_HEADER_LEN;
use crate::pipeline::Progress;
use crate::reject::{RejectCounts, RejectReason};

/// A table file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Apache Parquet (Snappy-compressed columns).
    Parquet,
    /// Arrow IPC file format (Feather v2).
    Arrow,
    /// Comma-separated values with a header row.
    Csv,
}

impl TableFormat {
    /// Every format, by name.
    pub const ALL: [TableFormat; 3] = [Self::Parquet, Self::Arrow, Self::Csv];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Arrow => "arrow",
            Self::Csv => "csv",
        }
    }
}

/// Why a table could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// No input could be read.
    #[error(transparent)]
    Input(#[from] BatchError),
    /// Writing Arrow IPC or CSV failed.
    #[error("{0}")]
    Arrow(#[from] ArrowError),
    /// Writing Parquet failed.
    #[error("{0}")]
    Parquet(#[from] ParquetError),
}

/// Writes record batches of one schema in a [`TableFormat`].
pub enum TableWriter<W: Write + Send> {
    /// Parquet.
    Parquet(Box<ArrowWriter<W>>),
    /// Arrow IPC file.
    Arrow(Box<arrow_ipc::writer::FileWriter<W>>),
    /// CSV.
    Csv(Box<arrow_csv::Writer<W>>),
}

impl<W: Write + Send> TableWriter<W> {
    /// Starts a table of `schema` in `format` on `out`.
    pub fn new(format: TableFormat, out: W, schema: &SchemaRef) -> Result<Self, ExportError> {
        Ok(match format {
            TableFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                Self::Parquet(Box::new(ArrowWriter::try_new(
                    out,
                    schema.clone(),
                    Some(props),
                )?))
            }
            TableFormat::Arrow => Self::Arrow(Box::new(arrow_ipc::writer::FileWriter::try_new(
                out, schema,
            )?)),
            TableFormat::Csv => Self::Csv(Box::new(
                arrow_csv::WriterBuilder::new().with_header(true).build(out),
            )),
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ExportError> {
        match self {
            Self::Parquet(w) => w.write(batch)?,
            Self::Arrow(w) => w.write(batch)?,
            Self::Csv(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Finishes the file (footers) and flushes.
    pub fn finish(self) -> Result<(), ExportError> {
        match self {
            Self::Parquet(w) => {
                w.close()?;
            }
            Self::Arrow(mut w) => {
                w.finish()?;
                w.get_mut().flush().map_err(ArrowError::from)?;
            }
            Self::Csv(w) => {
                let mut out = w.into_inner();
                out.flush().map_err(ArrowError::from)?;
            }
        }
        Ok(())
    }
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    /// Lanes of the table (of the first readable log).
    pub lanes: usize,
    /// Frames written.
    pub frames: u64,
    /// Stretches that are not valid frames, by reason (not written).
    pub rejects: RejectCounts,
    /// One entry per input.
    pub files: Vec<FileOutcome>,
}

/// Writes every valid frame of the logs at `paths` (`-` is standard input) to `out` as a table of
/// [`frame_schema`], in input order and log order. Logs whose lane count differs from the first
/// readable log's cannot share its table and are skipped with a note in their outcome.
pub fn export_frames<W: Write + Send>(
    paths: &[PathBuf],
    format: TableFormat,
    out: W,
    progress: &Progress,
) -> Result<ExportOutcome, ExportError> {
    let OpenedInputs {
        mut files,
        opened,
        lanes,
    } = open_inputs(paths)?;
    let total: u64 = opened.iter().map(|(_, b)| b.len() as u64).sum();
    progress.bytes_total.store(total, Ordering::Relaxed);
    let mut writer = TableWriter::new(format, out, &frame_schema(lanes))?;
    let mut columns = FrameColumns::new(lanes, DEFAULT_MORSEL_FRAMES);
    let mut rejects = Vec::new();
    let mut counts = RejectCounts::default();
    let mut frames = 0;
    for (index, bytes) in &opened {
        let Some(header) = files[*index].header else {
            continue;
        };
        if usize::from(header.lanes) != lanes {
            files[*index].error = Some(format!(
                "{}: {} lanes, the table has {lanes}; not exported",
                files[*index].path.display(),
                header.lanes
            ));
            continue;
        }
        let file = u32::try_from(*index).unwrap_or(u32::MAX);
        let step = DEFAULT_MORSEL_FRAMES * header.frame_len();
        let mut pos = LOG_HEADER_LEN;
        let mut records = 0;
        while pos < bytes.len() {
            rejects.clear();
            let end = pos.saturating_add(step).min(bytes.len());
            let stop = read_morsel(bytes, header, pos, end, &mut columns, &mut rejects);
            let batch = columns.finish(file)?;
            writer.write(&batch.batch)?;
            frames += batch.len() as u64;
            records += (batch.len() + rejects.len()) as u64;
            for &(_, reason) in &rejects {
                counts.add(reason);
            }
            progress
                .bytes_done
                .fetch_add((stop - pos) as u64, Ordering::Relaxed);
            progress
                .records_done
                .fetch_add((batch.len() + rejects.len()) as u64, Ordering::Relaxed);
            columns.recycle(batch);
            pos = stop;
        }
        files[*index].records = records;
    }
    writer.finish()?;
    Ok(ExportOutcome {
        lanes,
        frames,
        rejects: counts,
        files,
    })
}

/// The Arrow schema of `global.csv` with `lanes` lane columns; lanes are null unless the status
/// is `ok`.
pub fn global_schema(lanes: usize) -> SchemaRef {
    let mut fields = vec![
        Field::new("dc_net_id", DataType::UInt32, false),
        Field::new("round", DataType::UInt32, false),
        Field::new("expected", DataType::UInt64, false),
        Field::new("present", DataType::UInt64, false),
        Field::new("resent", DataType::UInt64, false),
        Field::new("status", DataType::Utf8, false),
    ];
    fields.extend((0..lanes).map(|l| Field::new(format!("lane{l}"), DataType::UInt64, true)));
    Arc::new(Schema::new(fields))
}

/// The rows of `global.csv` as one record batch of [`global_schema`].
pub fn global_batch(lanes: usize, rows: &[RoundResult]) -> Result<RecordBatch, ArrowError> {
    let count = |f: fn(&RoundResult) -> usize| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| f(r) as u64),
        ))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.dc_net_id),
        )),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.round))),
        count(|r| r.expected),
        count(|r| r.present),
        count(|r| r.resent),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.status.name()),
        )),
    ];
    for lane in 0..lanes {
        columns.push(Arc::new(UInt64Array::from_iter(
            rows.iter()
                .map(|r| r.sum.as_ref().and_then(|s| s.get(lane).copied())),
        )));
    }
    RecordBatch::try_new(global_schema(lanes), columns)
}

/// Counts of rejected stretches by reason, for a report.
pub fn reject_lines(counts: &RejectCounts) -> Vec<(RejectReason, u64)> {
    RejectReason::ALL
        .into_iter()
        .map(|r| (r, counts.get(r)))
        .filter(|&(_, n)| n > 0)
        .collect()
}
