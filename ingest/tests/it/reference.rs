//! A round log written by an independent implementation of DESIGN.md
//! (`scripts/reference_log.py`, plain Python with its own CRC-32C and its own provider rules):
//! dcnet must produce the same global.csv and the same reject counts.

use std::path::{Path, PathBuf};

use ingest::batch::aggregate_files;
use ingest::{AggregateOptions, RejectReason};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/samples/reference")
        .join(name)
}

#[test]
fn reference_log_gives_the_reference_totals_and_reject_counts() {
    let nets = ingest::tables::load_graph_csv(&sample("graph.csv")).unwrap();
    let outcome = aggregate_files(
        &[sample("reference.dclog")],
        &nets,
        AggregateOptions::default(),
    )
    .unwrap();
    let mut global = Vec::new();
    ingest::tables::write_global_csv(&mut global, outcome.lanes, &outcome.report.rounds).unwrap();
    let expected = std::fs::read_to_string(sample("expected-global.csv")).unwrap();
    assert_eq!(String::from_utf8(global).unwrap(), expected);

    let expected_rejects = std::fs::read_to_string(sample("expected-rejects.csv")).unwrap();
    let mut listed = 0;
    for line in expected_rejects.lines().skip(1) {
        let (name, count) = line.split_once(',').unwrap();
        let reason = RejectReason::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .unwrap();
        assert_eq!(
            outcome.report.counts.get(reason),
            count.parse::<u64>().unwrap(),
            "{name}"
        );
        listed += count.parse::<u64>().unwrap();
    }
    assert_eq!(outcome.report.counts.total(), listed);
}
