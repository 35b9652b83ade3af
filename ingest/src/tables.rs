//! The companion CSV files of DESIGN §4: `graph.csv` (key-graph edges), `global.csv` (the
//! provider's output) and `readings.csv` (a simulation's plaintext readings).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use engine::{GraphError, KeyGraph};
use rayon::prelude::*;

use crate::aggregate::{Nets, RoundResult, RoundStatus};

/// The header of `graph.csv`.
pub const GRAPH_HEADER: [&str; 3] = ["dc_net_id", "client_a", "client_b"];

/// Why a CSV table could not be read or written. Every variant names the file and, where there
/// is one, the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The file could not be opened, read or written.
    // The cause is part of the message, not a `source`, so a printed error chain names it once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not valid CSV.
    #[error("{path}:{line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// The header row is not the one the format defines.
    #[error("{path}:1: header is {found:?}, expected {expected:?}")]
    Header {
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// A field is not a decimal integer of the right size, or is missing.
    #[error("{path}:{line}: field `{field}` = {value:?} is not a valid {kind}")]
    Field {
        path: PathBuf,
        line: u64,
        field: String,
        value: String,
        kind: &'static str,
    },
    /// An edge row violates the graph rules.
    #[error("{path}:{line}: {error}")]
    Graph {
        path: PathBuf,
        line: u64,
        error: GraphError,
    },
    /// The file has a header but no rows.
    #[error("{path}: no rows")]
    NoRows { path: PathBuf },
}

/// A CSV reader's error on `text` (the whole file), read from byte `start` on; the line is
/// counted in the text, as for every other error (see `line_at`).
fn csv_error(path: &Path, text: &[u8], start: usize, error: csv::Error) -> TableError {
    let line = error.position().map_or(0, |p| {
        line_at(
            text,
            start.saturating_add(usize::try_from(p.byte()).unwrap_or(usize::MAX)),
        )
    });
    // The csv crate's own message repeats the position we give as a line, so the error a
    // user meets (a file that is not text) gets a message of its own. Rows of the wrong width
    // never reach here: both readers are flexible and count fields themselves.
    let message = match error.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "not UTF-8 text (field {}, after {} valid bytes): is this a CSV file?",
            err.field() + 1,
            err.valid_up_to()
        ),
        _ => error.to_string(),
    };
    match error.into_kind() {
        csv::ErrorKind::Io(error) => TableError::Io {
            path: path.to_owned(),
            error,
        },
        _ => TableError::Csv {
            path: path.to_owned(),
            line,
            message,
        },
    }
}

fn field<T: std::str::FromStr>(
    path: &Path,
    record: &csv::StringRecord,
    line: u64,
    index: usize,
    name: &str,
    kind: &'static str,
) -> Result<T, TableError> {
    let value = record.get(index).unwrap_or("");
    value.trim().parse().map_err(|_| TableError::Field {
        path: path.to_owned(),
        line,
        field: name.to_owned(),
        value: value.to_owned(),
        kind,
    })
}

fn check_header(
    path: &Path,
    found: &csv::StringRecord,
    expected: &[&str],
) -> Result<(), TableError> {
    let found_names: Vec<&str> = found.iter().map(str::trim).collect();
    if found_names.len() < expected.len() || found_names[..expected.len()] != *expected {
        return Err(TableError::Header {
            path: path.to_owned(),
            found: found_names.join(","),
            expected: expected.join(","),
        });
    }
    Ok(())
}

/// Edges by net, in the order the rows gave them.
type EdgeLists = BTreeMap<u32, Vec<(u32, u32)>>;

/// Appends `list` to the edges of `net`, moving it in whole when the net has none yet.
fn append_edges(edges: &mut EdgeLists, net: u32, list: Vec<(u32, u32)>) {
    match edges.entry(net) {
        std::collections::btree_map::Entry::Vacant(entry) => {
            entry.insert(list);
        }
        std::collections::btree_map::Entry::Occupied(mut entry) => entry.get_mut().extend(list),
    }
}

/// Edge rows gathered per run of one net before they go into the map: a provider's graph.csv
/// has millions of rows, net after net, and one map lookup per run is cheaper than per row.
#[derive(Default)]
struct NetRuns {
    edges: EdgeLists,
    current: Option<(u32, Vec<(u32, u32)>)>,
}

impl NetRuns {
    fn push(&mut self, net: u32, edge: (u32, u32)) {
        match &mut self.current {
            Some((at, list)) if *at == net => list.push(edge),
            _ => {
                if let Some((net, list)) = self.current.replace((net, vec![edge])) {
                    append_edges(&mut self.edges, net, list);
                }
            }
        }
    }

    fn finish(mut self) -> EdgeLists {
        if let Some((net, list)) = self.current.take() {
            append_edges(&mut self.edges, net, list);
        }
        self.edges
    }
}

/// Reads `graph.csv` from `reader` (named `path` in errors): one key graph per net. The text
/// is read into memory first, so that errors can name lines as [`load_graph_csv`] does.
pub fn read_graph_csv(path: &Path, reader: impl Read) -> Result<Nets, TableError> {
    read_graph_text(path, &read_text(path, reader)?)
}

/// The whole text of a table, so that its errors can name lines in the file (see `line_at`).
fn read_text(path: &Path, mut reader: impl Read) -> Result<Vec<u8>, TableError> {
    let mut text = Vec::new();
    reader
        .read_to_end(&mut text)
        .map_err(|error| TableError::Io {
            path: path.to_owned(),
            error,
        })?;
    Ok(text)
}

/// Reads the whole text of a `graph.csv` from the start, on one thread.
fn read_graph_text(path: &Path, text: &[u8]) -> Result<Nets, TableError> {
    let mut csv = graph_reader(text, true);
    let width = graph_header(path, text, &mut csv)?;
    let body = usize::try_from(csv.position().byte()).unwrap_or(text.len());
    let edges = read_body(path, text, body..text.len(), width)?;
    build_graphs(path, edges)
}

/// The edges of the rows in `text[range]` (`text` is the whole file), each `width` fields.
/// `range` starts at a line start after the header. Rows that are not all plain (see
/// [`read_plain_edges`]) go through the CSV reader.
fn read_body(
    path: &Path,
    text: &[u8],
    range: std::ops::Range<usize>,
    width: usize,
) -> Result<EdgeLists, TableError> {
    let rows = &text[range.clone()];
    if width == GRAPH_HEADER.len()
        && let Some(edges) = read_plain_edges(rows)
    {
        return Ok(edges);
    }
    read_edges(
        path,
        text,
        range.start,
        &mut graph_reader(rows, false),
        width,
    )
}

/// The edge rows of `text` when every one is plain, `net,a,b` in decimal digits with spaces or
/// tabs around them, as every writer of graph.csv makes them; `None` at the first row in any
/// other form (a sign, a quote, a long number, a self-edge, a wrong width, anything not
/// UTF-8...). Such a text is read again by the CSV reader, which gives the same edges for the
/// rows it accepts and names the line of the first it does not.
///
/// Written by hand because the general CSV reader and the field parser after it took more than
/// half of reading a provider's graph (two million rows for 1,000 nets of 1,000 clients), as
/// long as aggregating a day of frames. Lines end as the CSV reader ends records (`\n`, `\r`
/// or both), and empty lines are skipped as it skips them.
fn read_plain_edges(text: &[u8]) -> Option<EdgeLists> {
    let mut runs = NetRuns::default();
    let mut at = 0;
    while let Some(&byte) = text.get(at) {
        if byte == b'\n' || byte == b'\r' {
            at += 1;
            continue;
        }
        let (net, after_net) = plain_field(text, at)?;
        let (a, after_a) = plain_field(text, expect_comma(text, after_net)?)?;
        let (b, after_b) = plain_field(text, expect_comma(text, after_a)?)?;
        if a == b || !matches!(text.get(after_b), None | Some(b'\n' | b'\r')) {
            return None;
        }
        runs.push(net, (a, b));
        at = after_b;
    }
    Some(runs.finish())
}

/// The position after the comma expected at `at`.
fn expect_comma(text: &[u8], at: usize) -> Option<usize> {
    (text.get(at) == Some(&b',')).then_some(at + 1)
}

/// A field of one to ten decimal digits with spaces or tabs around it, from `at`: its value if
/// that fits a u32, and the position after its trailing spaces.
fn plain_field(text: &[u8], at: usize) -> Option<(u32, usize)> {
    let is_blank = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = at + text[at..].iter().take_while(|byte| is_blank(byte)).count();
    let digits = text[start..]
        .iter()
        .take(11)
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if digits == 0 || digits > 10 {
        return None;
    }
    let end = start + digits;
    let value = parse_u32(&text[start..end])?;
    let after = end + text[end..].iter().take_while(|byte| is_blank(byte)).count();
    Some((value, after))
}

/// Reads `graph.csv` from a file (or standard input for `-`).
///
/// A provider's file has millions of rows, which took longer to parse than aggregating a day
/// of frames; so the file is mapped and cut at line ends into pieces that are parsed on
/// every core, with exactly the rows, results and first error (file and line) of reading it
/// from the start. A file with a quote character is read from the start: a quoted field may
/// hold a line end, which a cut must not split.
pub fn load_graph_csv(path: &Path) -> Result<Nets, TableError> {
    let io = |error| TableError::Io {
        path: path.to_owned(),
        error,
    };
    let bytes = crate::mmap::open_log(path).map_err(io)?;
    parse_graph_csv(path, &bytes)
}

/// Parses the whole text of a `graph.csv` (see [`load_graph_csv`]); `min_piece` bytes at
/// least go to one worker.
fn parse_graph_csv_in_pieces(
    path: &Path,
    bytes: &[u8],
    min_piece: usize,
) -> Result<Nets, TableError> {
    let pieces = rayon::current_num_threads() * 4;
    if bytes.len() < 2 * min_piece || pieces < 2 || memchr::memchr(b'"', bytes).is_some() {
        return read_graph_text(path, bytes);
    }
    let mut csv = graph_reader(bytes, true);
    let width = graph_header(path, bytes, &mut csv)?;
    let body = usize::try_from(csv.position().byte()).unwrap_or(bytes.len());
    let step = (bytes.len() / pieces).max(min_piece);
    let mut cuts = vec![body];
    while let Some(&last) = cuts.last() {
        let Some(newline) = bytes
            .get(last + step..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
        else {
            break;
        };
        cuts.push(last + step + newline + 1);
    }
    cuts.push(bytes.len());
    cuts.dedup();
    let parsed: Vec<Result<EdgeLists, TableError>> = cuts
        .par_windows(2)
        .map(|cut| read_body(path, bytes, cut[0]..cut[1], width))
        .collect();
    let mut edges = EdgeLists::new();
    for piece in parsed {
        for (net, list) in piece? {
            append_edges(&mut edges, net, list);
        }
    }
    build_graphs(path, edges)
}

/// Parses the whole text of a `graph.csv` (see [`load_graph_csv`]).
pub fn parse_graph_csv(path: &Path, bytes: &[u8]) -> Result<Nets, TableError> {
    parse_graph_csv_in_pieces(path, bytes, 1 << 20)
}

/// A CSV reader for graph rows. Row widths are checked by [`read_edges`] against the header
/// rather than by the reader, so that a piece without the header checks them the same way.
fn graph_reader<R: Read>(reader: R, has_headers: bool) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(has_headers)
        .from_reader(reader)
}

/// Reads and checks the header row; returns its number of fields.
fn graph_header<R: Read>(
    path: &Path,
    text: &[u8],
    csv: &mut csv::Reader<R>,
) -> Result<usize, TableError> {
    let header = csv.headers().map_err(|e| csv_error(path, text, 0, e))?;
    check_header(path, header, &GRAPH_HEADER)?;
    Ok(header.len())
}

/// Reads the edge rows of `csv`, each `width` fields. `csv` reads `text` (the whole file)
/// from byte `start` on, which names the lines in errors.
fn read_edges<R: Read>(
    path: &Path,
    text: &[u8],
    start: usize,
    csv: &mut csv::Reader<R>,
    width: usize,
) -> Result<EdgeLists, TableError> {
    // One record reused for every row: a provider's graph.csv has millions of rows.
    let mut record = csv::ByteRecord::new();
    let mut runs = NetRuns::default();
    while csv
        .read_byte_record(&mut record)
        .map_err(|e| csv_error(path, text, start, e))?
    {
        // Only an error needs the line, and counting it costs a pass over the text before.
        let line = || {
            let at = record.position().map_or(0, |p| p.byte());
            line_at(
                text,
                start.saturating_add(usize::try_from(at).unwrap_or(usize::MAX)),
            )
        };
        if record.len() != width {
            return Err(TableError::Csv {
                path: path.to_owned(),
                line: line(),
                message: format!("the row has {} fields, the header {width}", record.len()),
            });
        }
        let net = u32_field(path, &record, &line, 0, "dc_net_id")?;
        let a = u32_field(path, &record, &line, 1, "client_a")?;
        let b = u32_field(path, &record, &line, 2, "client_b")?;
        if a == b {
            return Err(TableError::Graph {
                path: path.to_owned(),
                line: line(),
                error: GraphError::SelfEdge { net, client: a },
            });
        }
        runs.push(net, (a, b));
    }
    Ok(runs.finish())
}

/// Field `index` of a graph row as a decimal u32 (surrounding spaces allowed).
fn u32_field(
    path: &Path,
    record: &csv::ByteRecord,
    line: &impl Fn() -> u64,
    index: usize,
    name: &str,
) -> Result<u32, TableError> {
    let value = record.get(index).unwrap_or(b"");
    parse_u32(value.trim_ascii()).ok_or_else(|| TableError::Field {
        path: path.to_owned(),
        line: line(),
        field: name.to_owned(),
        value: String::from_utf8_lossy(value).into_owned(),
        kind: "u32",
    })
}

/// The line (from 1) of the record the CSV reader placed at byte `at` of `text`. The reader's
/// own line numbers drift with CRLF line ends and blank lines, and the position it gives may
/// be the line end before the record, so the line ends before the record's first byte are
/// counted.
fn line_at(text: &[u8], at: usize) -> u64 {
    let at = at.min(text.len());
    let first = text[at..]
        .iter()
        .position(|&byte| byte != b'\r' && byte != b'\n')
        .map_or(text.len(), |skip| at + skip);
    memchr::memchr_iter(b'\n', &text[..first]).count() as u64 + 1
}

/// A decimal u32 as `str::parse` reads one (an optional `+`, then digits), without the UTF-8
/// check and the generic parser a `&str` goes through: graph.csv has millions of fields, and
/// those two were a fifth of reading it. Past leading zeros, at most ten digits can make a
/// u32, and ten digits cannot overflow a u64: so the digits are added up unchecked (one
/// multiply-add a digit, where checking every step made a chain of dependent branches) and
/// the range is checked once at the end.
fn parse_u32(text: &[u8]) -> Option<u32> {
    let digits = text.strip_prefix(b"+").unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    let significant = &digits[digits.iter().take_while(|&&byte| byte == b'0').count()..];
    if significant.len() > 10 {
        // Too long for a u32, unless a non-digit makes it no number at all: None either way.
        return None;
    }
    let mut value = 0u64;
    for &byte in significant {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    u32::try_from(value).ok()
}

/// One key graph per net, built on every core (the nets' graphs are independent).
fn build_graphs(path: &Path, edges: EdgeLists) -> Result<Nets, TableError> {
    if edges.is_empty() {
        return Err(TableError::NoRows {
            path: path.to_owned(),
        });
    }
    edges
        .into_par_iter()
        .map(|(net, edges)| {
            KeyGraph::from_edges(net, edges)
                .map(|graph| (net, graph))
                .map_err(|error| TableError::Graph {
                    path: path.to_owned(),
                    line: 0,
                    error,
                })
        })
        .collect()
}

/// Writes `graph.csv`: one row per edge, nets ascending, edges ascending.
pub fn write_graph_csv<'g>(
    writer: impl Write,
    graphs: impl IntoIterator<Item = &'g KeyGraph>,
) -> std::io::Result<()> {
    let mut csv = GraphCsvWriter::new(writer)?;
    for graph in graphs {
        csv.write_graph(graph)?;
    }
    csv.finish()
}

/// Writes `graph.csv` one net at a time, for producers that cannot hold every graph at once.
pub struct GraphCsvWriter<W: Write> {
    csv: csv::Writer<W>,
}

impl<W: Write> GraphCsvWriter<W> {
    /// Starts the file with its header row.
    pub fn new(writer: W) -> std::io::Result<Self> {
        let mut csv = csv::Writer::from_writer(writer);
        csv.write_record(GRAPH_HEADER)?;
        Ok(Self { csv })
    }

    /// Appends every edge of `graph`, ascending.
    pub fn write_graph(&mut self, graph: &KeyGraph) -> std::io::Result<()> {
        let net = graph.dc_net_id().to_string();
        for (a, b) in graph.edges() {
            self.csv
                .write_record([net.as_str(), &a.to_string(), &b.to_string()])?;
        }
        Ok(())
    }

    /// Flushes everything written.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.csv.flush()
    }
}

/// The header of `global.csv` with `lanes` lane columns.
pub fn global_header(lanes: usize) -> Vec<String> {
    let fixed = [
        "dc_net_id",
        "round",
        "expected",
        "present",
        "resent",
        "status",
    ];
    fixed
        .iter()
        .map(|s| (*s).to_owned())
        .chain((0..lanes).map(|l| format!("lane{l}")))
        .collect()
}

/// Writes `global.csv`. Lanes are empty unless the status is `ok`.
pub fn write_global_csv<'r>(
    writer: impl Write,
    lanes: usize,
    rows: impl IntoIterator<Item = &'r RoundResult>,
) -> std::io::Result<()> {
    let mut csv = GlobalCsvWriter::new(writer, lanes)?;
    for row in rows {
        csv.write_row(row)?;
    }
    csv.finish()
}

/// Writes `global.csv` row by row, for producers that stream their results.
pub struct GlobalCsvWriter<W: Write> {
    csv: csv::Writer<W>,
    lanes: usize,
    record: Vec<String>,
}

impl<W: Write> GlobalCsvWriter<W> {
    /// Starts the file with its header row for `lanes` lanes.
    pub fn new(writer: W, lanes: usize) -> std::io::Result<Self> {
        let mut csv = csv::Writer::from_writer(writer);
        csv.write_record(global_header(lanes))?;
        Ok(Self {
            csv,
            lanes,
            record: Vec::with_capacity(6 + lanes),
        })
    }

    /// Appends one row; its lanes are empty unless the status is `ok`.
    pub fn write_row(&mut self, row: &RoundResult) -> std::io::Result<()> {
        self.record.clear();
        self.record.extend([
            row.dc_net_id.to_string(),
            row.round.to_string(),
            row.expected.to_string(),
            row.present.to_string(),
            row.resent.to_string(),
            row.status.name().to_owned(),
        ]);
        match &row.sum {
            Some(sum) => self.record.extend(sum.iter().map(u64::to_string)),
            None => self
                .record
                .extend(std::iter::repeat_n(String::new(), self.lanes)),
        }
        Ok(self.csv.write_record(&self.record)?)
    }

    /// Flushes everything written.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.csv.flush()
    }
}

/// Reads `global.csv` back (for checks against a simulation's `truth.csv`). The `exposed`
/// field of each row is empty: the file does not carry it.
pub fn read_global_csv(path: &Path, reader: impl Read) -> Result<Vec<RoundResult>, TableError> {
    // The text is held whole (a row per round, far smaller than the logs) so that errors name
    // the line in the file, which the CSV reader's own count misses with CRLF line ends and
    // blank lines.
    let text = read_text(path, reader)?;
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(&text[..]);
    let header = csv
        .headers()
        .map_err(|e| csv_error(path, &text, 0, e))?
        .clone();
    let lanes = header.len().saturating_sub(6);
    check_header(
        path,
        &header,
        &global_header(lanes)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )?;
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    while csv
        .read_record(&mut record)
        .map_err(|e| csv_error(path, &text, 0, e))?
    {
        let line = line_at(
            &text,
            record
                .position()
                .map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX)),
        );
        if record.len() != header.len() {
            return Err(TableError::Csv {
                path: path.to_owned(),
                line,
                message: format!(
                    "the row has {} fields, the header {}",
                    record.len(),
                    header.len()
                ),
            });
        }
        let status_text = record.get(5).unwrap_or("");
        let status = RoundStatus::from_name(status_text).ok_or_else(|| TableError::Field {
            path: path.to_owned(),
            line,
            field: "status".to_owned(),
            value: status_text.to_owned(),
            kind: "status (ok, unrecoverable, withheld)",
        })?;
        let sum = if status == RoundStatus::Ok {
            let lanes = (0..lanes)
                .map(|l| field(path, &record, line, 6 + l, &format!("lane{l}"), "u64"))
                .collect::<Result<Vec<u64>, _>>()?;
            Some(lanes)
        } else {
            None
        };
        rows.push(RoundResult {
            dc_net_id: field(path, &record, line, 0, "dc_net_id", "u32")?,
            round: field(path, &record, line, 1, "round", "u32")?,
            expected: field(path, &record, line, 2, "expected", "count")?,
            present: field(path, &record, line, 3, "present", "count")?,
            resent: field(path, &record, line, 4, "resent", "count")?,
            status,
            sum,
            exposed: Vec::new(),
        });
    }
    Ok(rows)
}

/// Reads `global.csv` from a file.
pub fn load_global_csv(path: &Path) -> Result<Vec<RoundResult>, TableError> {
    let file = std::fs::File::open(path).map_err(|error| TableError::Io {
        path: path.to_owned(),
        error,
    })?;
    read_global_csv(path, std::io::BufReader::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;

    #[test]
    fn graph_csv_round_trip() {
        let graph = KeyGraph::from_edges(3, [(1, 2), (2, 3), (1, 3)]).unwrap();
        let mut out = Vec::new();
        write_graph_csv(&mut out, [&graph]).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "dc_net_id,client_a,client_b\n3,1,2\n3,1,3\n3,2,3\n"
        );
        let nets = read_graph_csv(Path::new("g.csv"), out.as_slice()).unwrap();
        assert_eq!(nets[&3], graph);
    }

    #[test]
    fn graph_csv_errors_name_file_line_and_field() {
        let err = |text: &str| {
            read_graph_csv(Path::new("g.csv"), text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("net,a,b\n1,2,3\n"),
            "g.csv:1: header is \"net,a,b\", expected \"dc_net_id,client_a,client_b\""
        );
        assert_eq!(
            err("dc_net_id,client_a,client_b\n1,2,3\n1,x,3\n"),
            "g.csv:3: field `client_a` = \"x\" is not a valid u32"
        );
        assert_eq!(
            err("dc_net_id,client_a,client_b\n1,-2,3\n"),
            "g.csv:2: field `client_a` = \"-2\" is not a valid u32"
        );
        assert_eq!(
            err("dc_net_id,client_a,client_b\n1,4,4\n"),
            "g.csv:2: net 1: client 4 cannot share an edge with itself"
        );
        assert_eq!(
            err("dc_net_id,client_a,client_b\n1,2\n"),
            "g.csv:2: the row has 2 fields, the header 3"
        );
        // A file that is not text at all (a round log given for the graph): its first field
        // holds "DC" and then byte 0xFF.
        let binary = read_graph_csv(Path::new("g.csv"), &b"DC\xFF\x01,2,3\n"[..])
            .unwrap_err()
            .to_string();
        assert_eq!(
            binary,
            "g.csv:1: not UTF-8 text (field 1, after 2 valid bytes): is this a CSV file?"
        );
        assert_eq!(err("dc_net_id,client_a,client_b\n"), "g.csv: no rows");
        // Lines are counted in the file, blank lines and CRLF line ends included.
        assert_eq!(
            err("dc_net_id,client_a,client_b\n1,2,3\n\n1,3,4\n1,x,4\n"),
            "g.csv:5: field `client_a` = \"x\" is not a valid u32"
        );
        assert_eq!(
            err("dc_net_id,client_a,client_b\r\n1,2,3\r\n\r\n1,x,4\r\n"),
            "g.csv:4: field `client_a` = \"x\" is not a valid u32"
        );
    }

    /// A graph.csv text from `rows`: (net, a, b) edges, with a few rows made bad on request
    /// (a word for a number, a self-edge, a missing field, spaces) and blank lines.
    fn graph_text(rows: &[(u8, u8, u8, u8)]) -> String {
        let mut text = String::from("dc_net_id,client_a,client_b\n");
        for &(net, a, b, kind) in rows {
            let (net, a, b) = (net % 4, a % 16, b % 16);
            let b = if a == b { b + 16 } else { b };
            let row = match kind {
                0 => format!("{net},x{a},{b}\n"),
                1 => format!("{net},{a},{a}\n"),
                2 => format!("{net},{a}\n"),
                3 => format!(" {net} , {a},{b} \n"),
                4 => "\n".to_owned(),
                _ => format!("{net},{a},{b}\n"),
            };
            text.push_str(&row);
        }
        text
    }

    proptest::proptest! {
        /// Cut into pieces of any size and parsed on several threads, a graph.csv gives the
        /// graphs, or the first error (same line, same words), of reading it from the start,
        /// with either line end.
        #[test]
        fn graph_csv_in_pieces_equals_reading_from_the_start(
            rows in proptest::collection::vec(
                (0u8..=255, 0u8..=255, 0u8..=255, proptest::prop_oneof![
                    40 => proptest::strategy::Just(9u8),
                    1 => 0u8..=4,
                ]),
                0..120,
            ),
            min_piece in 1usize..200,
            crlf: bool,
        ) {
            let mut text = graph_text(&rows);
            if crlf {
                text = text.replace('\n', "\r\n");
            }
            let path = Path::new("g.csv");
            let whole = read_graph_csv(path, text.as_bytes()).map_err(|e| e.to_string());
            let pieces = parse_graph_csv_in_pieces(path, text.as_bytes(), min_piece)
                .map_err(|e| e.to_string());
            proptest::prop_assert_eq!(pieces, whole);
        }
    }

    /// The rows of `text` as the CSV reader and the field parser read them.
    fn edges_by_csv(text: &[u8]) -> Result<EdgeLists, TableError> {
        read_edges(
            Path::new("g.csv"),
            text,
            0,
            &mut graph_reader(text, false),
            3,
        )
    }

    #[test]
    fn plain_rows_are_read_with_every_line_end_and_blank() {
        let text = b"1,2,3\r\n\n 4 ,\t5,6\t\r7,8,9\n7,10,4294967295\n1,0003,2";
        let edges = read_plain_edges(text).unwrap();
        let expected = EdgeLists::from([
            (1, vec![(2, 3), (3, 2)]),
            (4, vec![(5, 6)]),
            (7, vec![(8, 9), (10, u32::MAX)]),
        ]);
        assert_eq!(edges, expected);
        // Rows in any other form are left to the CSV reader.
        for row in [
            "1,2,+3",
            "1,2",
            "1,2,3,4",
            "1,2,2",
            "1,2,4294967296",
            "1,2,00000000001",
            "1, ,3",
            "1,2,3 x",
            "1,2,\u{c}3",
            "1;2;3",
            " \n",
        ] {
            assert_eq!(read_plain_edges(row.as_bytes()), None, "{row:?}");
        }
    }

    proptest::proptest! {
        // A quarter of the texts are plain throughout; more cases reach more of them.
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

        /// Whatever the text, the plain rows reader either gives up or reads exactly the edges
        /// the CSV reader reads; and it reads every plain graph.csv.
        #[test]
        fn plain_rows_are_read_as_the_csv_reader_reads_them(
            text_rows in proptest::collection::vec(
                proptest::collection::vec(proptest::prop_oneof![
                    60 => (
                        proptest::prop_oneof![12 => 0u64..20, 6 => 0u64..1 << 32, 1 => 0u64..1 << 34],
                        proptest::prop_oneof![8 => proptest::strategy::Just(0usize), 1 => 1usize..3],
                        0usize..3,
                        0usize..3,
                    ).prop_map(
                        |(n, zeros, before, after)| {
                            format!("{}{}{n}{}", " ".repeat(before), "0".repeat(zeros), "\t".repeat(after))
                        }
                    ),
                    1 => proptest::sample::select(vec![
                        "+5", "x", "", " ", "\u{c}1", "00000000001", "4294967296", "\"7\"",
                    ]).prop_map(str::to_owned),
                ], 3),
                0..12,
            ),
            separators in proptest::collection::vec(proptest::prop_oneof![
                80 => proptest::strategy::Just(","),
                1 => proptest::sample::select(vec![";", ",,", "", "\r", "\n"]),
            ], 24),
            ends in proptest::collection::vec(
                proptest::sample::select(vec![
                    "\n", "\n", "\n", "\n", "\r\n", "\r\n", "\r", "\n\n", " \n", "\t\r\n", "\r\n\r\n", "",
                ]),
                12,
            ),
            rows in proptest::collection::vec((0u8..=255, 0u8..=255, 0u8..=255, 3u8..=9), 0..60),
        ) {
            let mut text = String::new();
            for (i, fields) in text_rows.iter().enumerate() {
                let line = [
                    fields[0].as_str(), separators[2 * i], &fields[1], separators[2 * i + 1], &fields[2], ends[i],
                ];
                text.push_str(&line.concat());
            }
            if let Some(edges) = read_plain_edges(text.as_bytes()) {
                let by_csv = edges_by_csv(text.as_bytes());
                proptest::prop_assert!(by_csv.is_ok(), "{text:?}");
                proptest::prop_assert_eq!(by_csv.ok(), Some(edges));
            }
            let text = graph_text(&rows);
            let body = &text.as_bytes()[GRAPH_HEADER.join(",").len() + 1..];
            let plain = read_plain_edges(body);
            proptest::prop_assert!(plain.is_some(), "{text:?}");
            proptest::prop_assert_eq!(plain, edges_by_csv(body).ok());
        }
    }

    proptest::proptest! {
        /// The field parser accepts exactly what `str::parse::<u32>` accepts, with the same
        /// value: any bytes, and digit strings around the u32 range.
        #[test]
        fn parse_u32_agrees_with_str_parse(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            number in proptest::prelude::any::<u64>(),
            plus: bool,
            zeros in 0usize..3,
        ) {
            let std = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.parse::<u32>().ok());
            proptest::prop_assert_eq!(parse_u32(&bytes), std(&bytes));
            let text = format!("{}{}{number}", if plus { "+" } else { "" }, "0".repeat(zeros));
            proptest::prop_assert_eq!(parse_u32(text.as_bytes()), std(text.as_bytes()));
            let small = (number % (1 << 33)).to_string();
            proptest::prop_assert_eq!(parse_u32(small.as_bytes()), std(small.as_bytes()));
        }
    }

    #[test]
    fn graph_csv_errors_name_the_same_line_when_parsed_in_pieces() {
        let mut text = String::from("dc_net_id,client_a,client_b\n");
        for i in 0..500u32 {
            text.push_str(&format!("{},{},{}\n", i / 100, i, i + 1));
        }
        let good = parse_graph_csv_in_pieces(Path::new("g.csv"), text.as_bytes(), 64).unwrap();
        assert_eq!(good.len(), 5);
        assert_eq!(good[&4].edges().count(), 100);
        // Line 1 is the header, so the row of i = 400 is line 402.
        let bad = text.replace("4,400,401\n", "4,400,x\n");
        let err = parse_graph_csv_in_pieces(Path::new("g.csv"), bad.as_bytes(), 64)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "g.csv:402: field `client_b` = \"x\" is not a valid u32"
        );
        let short = text.replace("3,350,351\n", "3,350\n");
        let err = parse_graph_csv_in_pieces(Path::new("g.csv"), short.as_bytes(), 64)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "g.csv:352: the row has 2 fields, the header 3");
    }

    #[test]
    fn global_csv_round_trip_leaves_lanes_empty_without_a_sum() {
        let rows = vec![
            RoundResult {
                dc_net_id: 1,
                round: 2,
                expected: 5,
                present: 4,
                resent: 2,
                status: RoundStatus::Ok,
                sum: Some(vec![7, u64::MAX]),
                exposed: vec![],
            },
            RoundResult {
                dc_net_id: 1,
                round: 3,
                expected: 5,
                present: 1,
                resent: 0,
                status: RoundStatus::Withheld,
                sum: None,
                exposed: vec![],
            },
        ];
        let mut out = Vec::new();
        write_global_csv(&mut out, 2, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "dc_net_id,round,expected,present,resent,status,lane0,lane1\n1,2,5,4,2,ok,7,18446744073709551615\n1,3,5,1,0,withheld,,\n"
        );
        assert_eq!(
            read_global_csv(Path::new("x"), text.as_bytes()).unwrap(),
            rows
        );
    }

    #[test]
    fn global_csv_errors_name_the_line_in_the_file() {
        let err = |text: &str| {
            read_global_csv(Path::new("global.csv"), text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        let header = "dc_net_id,round,expected,present,resent,status,lane0";
        assert_eq!(
            err(&format!("{header}\n1,2,5,5,0,ok,7\n1,3,5,5,0,fine,\n")),
            "global.csv:3: field `status` = \"fine\" is not a valid status (ok, unrecoverable, withheld)"
        );
        // A blank line and CRLF line ends are lines of the file too.
        assert_eq!(
            err(&format!(
                "{header}\r\n1,2,5,5,0,ok,7\r\n\r\n1,3,5,x,0,ok,7\r\n"
            )),
            "global.csv:4: field `present` = \"x\" is not a valid count"
        );
        assert_eq!(
            err(&format!("{header}\n\n\n1,2,5,5,0,ok,7,8\n")),
            "global.csv:4: the row has 8 fields, the header 7"
        );
        assert_eq!(
            err(&format!("{header}\n1,2,5,5,0,ok,lots\n")),
            "global.csv:2: field `lane0` = \"lots\" is not a valid u64"
        );
        // The CSV reader's own errors (here a byte that is not UTF-8) name the line too.
        let mut bytes = format!("{header}\r\n\r\n1,2,5,5,0,ok,7\r\n1,3,5,5,0,ok,").into_bytes();
        bytes.extend([0xFF, b'\r', b'\n']);
        let error = read_global_csv(Path::new("global.csv"), &bytes[..])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("global.csv:4:"), "{error}");
    }
}
