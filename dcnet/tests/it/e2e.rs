//! simulate → aggregate → compare, through the built binary, as a user would run it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn dcnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dcnet"))
        .args(args)
        .output()
        .expect("dcnet runs")
}

pub(crate) fn ok(args: &[&str]) -> Output {
    let out = dcnet(args);
    assert!(
        out.status.success(),
        "dcnet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `dcnet simulate --out DIR` with `args`.
fn simulate(dir: &Path, args: &[&str]) {
    let mut argv = vec!["simulate", "--out", dir.to_str().unwrap()];
    argv.extend_from_slice(args);
    ok(&argv);
}

pub(crate) fn logs_in(dir: &Path) -> Vec<String> {
    let mut logs: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dclog"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    logs.sort();
    logs
}

/// Sums readings.csv per (net, round) lane by lane: an independent recomputation of the totals
/// from the plaintext readings, without any of the masking or aggregation code.
fn sums_from_readings(path: &Path, lanes: usize) -> BTreeMap<(u32, u32), Vec<u64>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut sums: BTreeMap<(u32, u32), Vec<u64>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let fields: Vec<u64> = line.split(',').map(|f| f.parse().unwrap()).collect();
        let sum = sums
            .entry((fields[0] as u32, fields[2] as u32))
            .or_insert_with(|| vec![0; lanes]);
        for (s, v) in sum.iter_mut().zip(&fields[3..]) {
            *s = s.wrapping_add(*v);
        }
    }
    sums
}

#[test]
fn simulate_then_aggregate_equals_truth_with_dropouts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    simulate(
        dir.path(),
        &[
            "--nets",
            "3",
            "--clients",
            "30",
            "--rounds",
            "20",
            "--lanes",
            "4",
            "--dropout",
            "0.08",
            "--seed",
            "7",
            "--reveal-readings",
        ],
    );
    let global = dir.path().join("global.csv");
    let mut args = vec![
        "aggregate",
        "--graph",
        &format!("{out}/graph.csv"),
        "--out",
        global.to_str().unwrap(),
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(logs_in(dir.path()));
    let run = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("60 rounds: 60 ok"), "{stderr}");

    let global_text = std::fs::read_to_string(&global).unwrap();
    let truth_text = std::fs::read_to_string(dir.path().join("truth.csv")).unwrap();
    assert_eq!(global_text, truth_text);

    // The released totals equal the plaintext sums, and dropouts really happened.
    let sums = sums_from_readings(&dir.path().join("readings.csv"), 4);
    let mut resent_total = 0;
    for line in global_text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let key = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let lanes: Vec<u64> = f[6..].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(f[5], "ok");
        assert_eq!(lanes, sums[&key], "{line}");
        // Lane 2 counts the households that reported.
        assert_eq!(lanes[2].to_string(), f[3]);
        resent_total += f[4].parse::<u32>().unwrap();
    }
    assert!(resent_total > 0, "the scenario must exercise corrections");
}

#[test]
fn aggregate_writes_to_stdout_and_reports_rejects_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    simulate(
        dir.path(),
        &[
            "--nets",
            "1",
            "--clients",
            "10",
            "--rounds",
            "3",
            "--dropout",
            "0",
        ],
    );
    let log = format!("{out}/net-1.dclog");
    let mut bytes = std::fs::read(&log).unwrap();
    // Flip a data bit of the first frame, and append half a frame.
    bytes[64 + 35] ^= 1;
    bytes.extend_from_slice(&[0x44, 0x43, 1, 5]);
    std::fs::write(&log, &bytes).unwrap();
    let run = ok(&["aggregate", "--graph", &format!("{out}/graph.csv"), &log]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stdout.starts_with("dc_net_id,round,expected,present,resent,status,lane0\n"),
        "{stdout}"
    );
    // The first round lost one client's transmit: its neighbours sent no resend, so no sum.
    assert!(
        stdout
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(",9,0,unrecoverable,"),
        "{stdout}"
    );
    assert!(
        stderr.contains("crc-mismatch") && stderr.contains("truncated"),
        "{stderr}"
    );
    assert!(stderr.contains("rejected 2 frames"), "{stderr}");
}

#[test]
fn unusable_input_exits_non_zero_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("graph.csv");
    std::fs::write(&graph, "dc_net_id,client_a,client_b\n1,2,3\n1,2,x\n").unwrap();
    let log = dir.path().join("a.dclog");
    std::fs::write(&log, b"").unwrap();
    let run = dcnet(&[
        "aggregate",
        "--graph",
        graph.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("graph.csv:3") && stderr.contains("client_b"),
        "{stderr}"
    );

    std::fs::write(&graph, "dc_net_id,client_a,client_b\n1,2,3\n").unwrap();
    let run = dcnet(&[
        "aggregate",
        "--graph",
        graph.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("a.dclog") && stderr.contains("empty file"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("error: no readable round log"),
        "{stderr}"
    );
}

#[test]
fn simulate_rejects_a_degree_below_three() {
    let dir = tempfile::tempdir().unwrap();
    let run = dcnet(&[
        "simulate",
        "--out",
        dir.path().to_str().unwrap(),
        "--degree",
        "2",
    ]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--degree 2 is below the minimum"));
}

#[test]
fn inspect_counts_frames_nets_and_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    simulate(
        dir.path(),
        &[
            "--nets",
            "1",
            "--clients",
            "8",
            "--rounds",
            "5",
            "--dropout",
            "0",
        ],
    );
    let log = format!("{out}/net-1.dclog");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[64 + 2] = 9; // version of the first frame
    std::fs::write(&log, &bytes).unwrap();
    let run = ok(&["inspect", &log]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("1 lanes, 40-byte frames"), "{stdout}");
    // 8 clients x 5 rounds = 40 frames, one damaged.
    assert!(
        stdout.contains("40 in the header, 39 valid frames found"),
        "{stdout}"
    );
    assert!(
        stdout.contains("transmit") && stdout.contains("39"),
        "{stdout}"
    );
    assert!(stdout.contains("bad-version"), "{stdout}");
    assert!(
        stdout.contains("net 1") && stdout.contains("8 clients"),
        "{stdout}"
    );
}

#[test]
fn demo_checks_its_totals() {
    let run = ok(&[
        "demo",
        "--nets",
        "2",
        "--clients",
        "20",
        "--rounds",
        "8",
        "--dropout",
        "0.1",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("totals matched    16 of 16"), "{stdout}");
    assert!(stdout.contains("OK: every released total"), "{stdout}");
}

#[test]
fn simulation_is_reproducible() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&a, &b] {
        ok(&[
            "simulate",
            "--out",
            dir.path().to_str().unwrap(),
            "--nets",
            "2",
            "--clients",
            "12",
            "--rounds",
            "4",
        ]);
    }
    for name in ["graph.csv", "truth.csv", "net-1.dclog", "net-2.dclog"] {
        assert_eq!(
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["simulate", "aggregate", "inspect", "demo"] {
        let run = ok(&[sub, "--help"]);
        assert!(
            String::from_utf8_lossy(&run.stdout).contains("Usage: dcnet"),
            "{sub}"
        );
    }
}

#[test]
fn aggregate_matches_an_independent_implementation() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/samples/reference");
    let run = ok(&[
        "aggregate",
        "--graph",
        dir.join("graph.csv").to_str().unwrap(),
        dir.join("reference.dclog").to_str().unwrap(),
    ]);
    let expected = std::fs::read_to_string(dir.join("expected-global.csv")).unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), expected);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("rejected 14 frames"), "{stderr}");
}
