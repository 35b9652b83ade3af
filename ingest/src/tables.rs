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

fn csv_error(path: &Path, error: csv::Error) -> TableError {
    let line = error.position().map_or(0, |p| p.line());
    match error.into_kind() {
        csv::ErrorKind::Io(error) => TableError::Io {
            path: path.to_owned(),
            error,
        },
        kind => TableError::Csv {
            path: path.to_owned(),
            line,
            message: format!("{kind:?}"),
        },
    }
}

fn field<T: std::str::FromStr>(
    path: &Path,
    record: &csv::StringRecord,
    index: usize,
    name: &str,
    kind: &'static str,
) -> Result<T, TableError> {
    let value = record.get(index).unwrap_or("");
    value.trim().parse().map_err(|_| TableError::Field {
        path: path.to_owned(),
        line: record.position().map_or(0, |p| p.line()),
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

/// Reads `graph.csv` from `reader` (named `path` in errors): one key graph per net.
pub fn read_graph_csv(path: &Path, reader: impl Read) -> Result<Nets, TableError> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let header = csv.headers().map_err(|e| csv_error(path, e))?.clone();
    check_header(path, &header, &GRAPH_HEADER)?;
    let mut edges: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
    // One record reused for every row: a provider's graph.csv has millions of rows.
    let mut record = csv::StringRecord::new();
    while csv
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        let net: u32 = field(path, &record, 0, "dc_net_id", "u32")?;
        let a: u32 = field(path, &record, 1, "client_a", "u32")?;
        let b: u32 = field(path, &record, 2, "client_b", "u32")?;
        if a == b {
            return Err(TableError::Graph {
                path: path.to_owned(),
                line: record.position().map_or(0, |p| p.line()),
                error: GraphError::SelfEdge { net, client: a },
            });
        }
        edges.entry(net).or_default().push((a, b));
    }
    if edges.is_empty() {
        return Err(TableError::NoRows {
            path: path.to_owned(),
        });
    }
    // The nets' graphs are independent: built on every core.
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

/// Reads `graph.csv` from a file.
pub fn load_graph_csv(path: &Path) -> Result<Nets, TableError> {
    let file = std::fs::File::open(path).map_err(|error| TableError::Io {
        path: path.to_owned(),
        error,
    })?;
    read_graph_csv(path, std::io::BufReader::new(file))
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
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let header = csv.headers().map_err(|e| csv_error(path, e))?.clone();
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
    for record in csv.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let status_text = record.get(5).unwrap_or("");
        let status = RoundStatus::from_name(status_text).ok_or_else(|| TableError::Field {
            path: path.to_owned(),
            line: record.position().map_or(0, |p| p.line()),
            field: "status".to_owned(),
            value: status_text.to_owned(),
            kind: "status (ok, unrecoverable, withheld)",
        })?;
        let sum = if status == RoundStatus::Ok {
            let lanes = (0..lanes)
                .map(|l| field(path, &record, 6 + l, &format!("lane{l}"), "u64"))
                .collect::<Result<Vec<u64>, _>>()?;
            Some(lanes)
        } else {
            None
        };
        rows.push(RoundResult {
            dc_net_id: field(path, &record, 0, "dc_net_id", "u32")?,
            round: field(path, &record, 1, "round", "u32")?,
            expected: field(path, &record, 2, "expected", "count")?,
            present: field(path, &record, 3, "present", "count")?,
            resent: field(path, &record, 4, "resent", "count")?,
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
        assert!(err("dc_net_id,client_a,client_b\n1,2\n").starts_with("g.csv:2:"));
        assert_eq!(err("dc_net_id,client_a,client_b\n"), "g.csv: no rows");
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
}
