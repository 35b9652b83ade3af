//! The columnar commands end to end: exported tables read back with the parquet crate, the
//! reject file's offsets, result formats, late frames, and the columnar engine agreeing with the
//! reference engine through the binary.

use std::fs::File;
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMillisecondType, UInt8Type, UInt32Type, UInt64Type};
use ingest::{FrameScanner, FrameView, RejectReason};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::e2e::{logs_in, ok};

fn simulate(dir: &Path, dropout: &str, extra: &[&str]) {
    let out = dir.to_str().unwrap();
    let mut args = vec![
        "simulate",
        "--out",
        out,
        "--nets",
        "2",
        "--clients",
        "12",
        "--rounds",
        "4",
        "--dropout",
        dropout,
        "--seed",
        "5",
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

#[test]
fn exported_parquet_reads_back_as_the_decoded_frames() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "0.1", &["--lanes", "3"]);
    let logs = logs_in(dir.path());
    let table = dir.path().join("frames.parquet");
    let mut args = vec![
        "export",
        "--format",
        "parquet",
        "--out",
        table.to_str().unwrap(),
    ];
    args.extend(logs.iter().map(String::as_str));
    ok(&args);

    // The frames as the scanner decodes them, in input order.
    let mut expected = Vec::new();
    for log in &logs {
        let bytes = std::fs::read(log).unwrap();
        for item in FrameScanner::new(&bytes).unwrap() {
            expected.push(item.frame.unwrap().to_frame());
        }
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&table).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut got = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "dc_net_id",
                "client_id",
                "round",
                "notification",
                "transmission",
                "timestamp",
                "lane0",
                "lane1",
                "lane2"
            ]
        );
        let u32s = |i: usize| batch.column(i).as_primitive::<UInt32Type>().clone();
        let (net, client, round) = (u32s(0), u32s(1), u32s(2));
        let code = batch.column(3).as_primitive::<UInt8Type>().clone();
        let tx = batch.column(4).as_boolean().clone();
        let ts = batch
            .column(5)
            .as_primitive::<TimestampMillisecondType>()
            .clone();
        let lanes: Vec<_> = (6..9)
            .map(|i| batch.column(i).as_primitive::<UInt64Type>().clone())
            .collect();
        for row in 0..batch.num_rows() {
            got.push(ingest::Frame {
                notification: ingest::Notification::from_code(code.value(row)).unwrap(),
                transmission: tx.value(row),
                dc_net_id: net.value(row),
                client_id: client.value(row),
                round: round.value(row),
                timestamp_ms: ts.value(row) as u64,
                lanes: lanes.iter().map(|l| l.value(row)).collect(),
            });
        }
    }
    assert!(expected.len() > 80, "{}", expected.len());
    assert_eq!(got, expected);
}

#[test]
fn rejects_file_names_each_damaged_frame_at_its_offset_and_engines_agree() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "0", &[]);
    let logs = logs_in(dir.path());
    // Damage: a flipped data bit in frame 3 of the first log; a copy of frame 1 and a partial
    // frame appended to the second.
    let mut first = std::fs::read(&logs[0]).unwrap();
    first[64 + 3 * 40 + 36] ^= 0x40;
    std::fs::write(&logs[0], &first).unwrap();
    let mut second = std::fs::read(&logs[1]).unwrap();
    let copy = second[64 + 40..64 + 80].to_vec();
    second.extend_from_slice(&copy);
    second.extend_from_slice(&[1, 2, 3]);
    std::fs::write(&logs[1], &second).unwrap();

    let graph = dir.path().join("graph.csv");
    let run = |engine: &str| {
        let global = dir.path().join(format!("global-{engine}.csv"));
        let rejects = dir.path().join(format!("rejects-{engine}.csv"));
        let mut args = vec![
            "aggregate".to_owned(),
            "--graph".to_owned(),
            graph.to_str().unwrap().to_owned(),
            "--engine".to_owned(),
            engine.to_owned(),
            "--out".to_owned(),
            global.to_str().unwrap().to_owned(),
            "--rejects".to_owned(),
            rejects.to_str().unwrap().to_owned(),
        ];
        args.extend(logs.iter().cloned());
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        (
            std::fs::read_to_string(global).unwrap(),
            std::fs::read_to_string(rejects).unwrap(),
        )
    };
    let (global, rejects) = run("columnar");
    assert_eq!((global.clone(), rejects.clone()), run("reference"));

    let rows: Vec<Vec<String>> = rejects
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert_eq!(rejects.lines().next(), Some("file,offset,reason"));
    let reasons: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        reasons,
        ["crc-mismatch", "duplicate", "truncated"],
        "{rejects}"
    );
    // Each offset points at the bytes that were damaged or copied.
    let at = |row: &[String]| -> (Vec<u8>, usize) {
        (std::fs::read(&row[0]).unwrap(), row[1].parse().unwrap())
    };
    let (bytes, offset) = at(&rows[0]);
    assert_eq!(
        (rows[0][0].as_str(), offset),
        (logs[0].as_str(), 64 + 3 * 40)
    );
    assert!(FrameView::parse(&bytes[offset..offset + 40], 1).is_err());
    let (bytes, offset) = at(&rows[1]);
    assert_eq!(&bytes[offset..offset + 40], copy.as_slice());
    assert_eq!(offset, second.len() - 43);
    let (_, offset) = at(&rows[2]);
    assert_eq!(offset, second.len() - 3);
    assert!(RejectReason::ALL.iter().any(|r| r.name() == "truncated"));
    // The round that lost the damaged transmit is unrecoverable: no resends were sent.
    assert!(global.contains(",unrecoverable,"), "{global}");
}

#[test]
fn results_as_parquet_match_the_csv_and_late_transmits_count_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "0", &[]);
    let logs = logs_in(dir.path());
    let graph = dir.path().join("graph.csv");
    let base = |extra: &[&str]| {
        let mut args = vec!["aggregate", "--graph", graph.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend(logs.iter().map(String::as_str));
        ok(&args)
    };
    let csv = String::from_utf8(base(&[]).stdout).unwrap();
    let table = dir.path().join("global.parquet");
    base(&["--format", "parquet", "--out", table.to_str().unwrap()]);
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&table).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut lines = vec!["dc_net_id,round,expected,present,resent,status,lane0".to_owned()];
    for batch in reader {
        let batch = batch.unwrap();
        let u32s = |i| batch.column(i).as_primitive::<UInt32Type>().clone();
        let u64s = |i| batch.column(i).as_primitive::<UInt64Type>().clone();
        let status = batch.column(5).as_string::<i32>().clone();
        for row in 0..batch.num_rows() {
            let lane = u64s(6);
            lines.push(format!(
                "{},{},{},{},{},{},{}",
                u32s(0).value(row),
                u32s(1).value(row),
                u64s(2).value(row),
                u64s(3).value(row),
                u64s(4).value(row),
                status.value(row),
                if lane.is_null(row) {
                    String::new()
                } else {
                    lane.value(row).to_string()
                }
            ));
        }
    }
    assert_eq!(lines.join("\n") + "\n", csv);

    // The simulator stamps transmits 1..121 s into their 15-minute round, so a deadline with no
    // grace accepts them all. With 1-second rounds every round ends in January 1970 and every
    // transmit is late: all clients are missing and no round has a row (a round without a used
    // frame has none).
    let on_time = String::from_utf8(base(&["--deadline-ms", "0"]).stdout).unwrap();
    assert_eq!(on_time, csv);
    let shifted = base(&["--deadline-ms", "0", "--epoch", "0", "--period", "15m"]);
    assert_eq!(String::from_utf8(shifted.stdout).unwrap(), csv);
    let late = base(&["--deadline-ms", "0", "--period", "1s"]);
    let stdout = String::from_utf8(late.stdout).unwrap();
    let stderr = String::from_utf8(late.stderr).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stderr.contains("late"), "{stderr}");
}

/// A log piped into standard input (`-`) aggregates to the same rows as the file itself: the
/// pipe is spooled into a temporary file and mapped, so frames are read back by offset as from
/// a file.
#[test]
fn a_log_on_standard_input_aggregates_like_the_file() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "0.1", &[]);
    let logs = logs_in(dir.path());
    let graph = dir.path().join("graph.csv");
    let graph = graph.to_str().unwrap();
    let from_file = ok(&["aggregate", "--graph", graph, &logs[0]]).stdout;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dcnet"))
        .args(["aggregate", "--quiet", "--graph", graph, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&logs[0]).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&bytes).unwrap());
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!from_file.is_empty());
    assert_eq!(output.stdout, from_file);
}

/// A long reject list goes through temporary files: `--reject-memory 0` makes every worker
/// write its rejects out after each morsel and the end merge hundreds of runs, and the
/// --rejects file is byte for byte the one kept in memory and the reference engine's, also
/// with rounds aggregated again (`--group-memory 0`), whose duplicates were reported twice.
/// Without a usable $TMPDIR spilling fails with one line naming what failed, while a list kept
/// in memory needs no temporary file.
#[test]
fn a_spilled_rejects_file_is_identical_and_a_failed_spill_is_one_line() {
    use std::process::Command;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let population = "--nets 3 --clients 20 --rounds 6 --dropout 0.1 --seed 9";
    let mut args = vec!["simulate", "--out", out];
    args.extend(population.split(' '));
    ok(&args);
    for log in logs_in(dir.path()) {
        // Every frame three times: twice more in a second log (which sorts first), the second
        // copy after some garbage and with a bit flipped in every seventh frame. Mostly
        // duplicates, then stray bytes and CRC mismatches. With --group-memory 0 the rounds
        // are settled after the second log's morsel, which reported duplicates, and aggregated
        // again when the first log's frames come: those duplicates are withdrawn.
        let original = std::fs::read(&log).unwrap();
        let mut bytes = original.clone();
        bytes.extend((0..97u8).map(|b| b.wrapping_mul(37)));
        let copy = bytes.len();
        bytes.extend_from_slice(&original[64..]);
        for frame in (copy..bytes.len()).step_by(7 * 40) {
            bytes[frame + 33] ^= 0x10;
        }
        std::fs::write(log.replace(".dclog", "-again.dclog"), bytes).unwrap();
    }
    let logs = logs_in(dir.path());
    let graph = dir.path().join("graph.csv");
    let run = |name: &str, extra: &str, tmpdir: Option<&Path>| {
        let rejects = dir.path().join(format!("{name}.csv"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_dcnet"));
        command
            .args(["aggregate", "--quiet", "--graph", graph.to_str().unwrap()])
            .args(["--rejects", rejects.to_str().unwrap()])
            .args(extra.split_whitespace())
            .args(&logs);
        if let Some(tmpdir) = tmpdir {
            command.env("TMPDIR", tmpdir);
        }
        let output = command.output().unwrap();
        let written = std::fs::read(&rejects).ok();
        (output, written)
    };
    let (memory, in_memory) = run("memory", "--threads 2", None);
    assert!(memory.status.success(), "{}", crate::stderr(&memory));
    let in_memory = in_memory.unwrap();
    let text = String::from_utf8(in_memory.clone()).unwrap();
    assert!(text.starts_with("file,offset,reason\n"));
    for reason in ["duplicate", "crc-mismatch", "stray-bytes"] {
        assert!(text.contains(&format!(",{reason}\n")), "{reason}");
    }
    assert!(text.lines().count() > 300, "{}", text.lines().count());
    for (name, extra) in [
        ("spilled", "--threads 2 --reject-memory 0"),
        ("redone", "--threads 1 --reject-memory 0 --group-memory 0"),
        ("reference", "--engine reference"),
    ] {
        let (output, written) = run(name, extra, None);
        let stderr = crate::stderr(&output);
        assert!(output.status.success(), "{stderr}");
        assert_eq!(output.stdout, memory.stdout, "{name}: global.csv");
        assert!(written == Some(in_memory.clone()), "{name}: rejects differ");
        if name == "redone" {
            assert!(stderr.contains("read again"), "{stderr}");
        }
    }

    let missing = dir.path().join("no-such-dir");
    let (output, _) = run("no-tmp", "--reject-memory 0", Some(&missing));
    assert!(!output.status.success());
    let stderr = crate::stderr(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let expected = format!(
        "error: cannot create a temporary file in {} for the list of rejected frames: ",
        missing.display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    let (output, written) = run("no-tmp-in-memory", "", Some(&missing));
    assert!(output.status.success(), "{}", crate::stderr(&output));
    assert!(written == Some(in_memory), "rejects differ");
}

#[test]
fn outputs_are_opened_before_the_run_and_a_failed_run_leaves_them_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "0.1", &[]);
    let logs = logs_in(dir.path());
    let log = logs[0].as_str();
    let graph = dir.path().join("graph.csv");
    let graph = graph.to_str().unwrap();
    let missing_graph = dir.path().join("no-such-graph.csv");
    let missing_graph = missing_graph.to_str().unwrap();

    // One output flag, one path: the run's output.
    let aggregate = |graph: &str, flag: &str, path: &Path| {
        crate::dcnet(&[
            "aggregate",
            "--graph",
            graph,
            flag,
            path.to_str().unwrap(),
            log,
        ])
    };
    // An output that cannot be created is named before any input is read: with a missing
    // graph as well, the error is the output's.
    let unwritable = dir.path().join("no-such-dir").join("global.csv");
    for flag in ["--out", "--rejects"] {
        let output = aggregate(missing_graph, flag, &unwritable);
        assert!(!output.status.success());
        let error = crate::stderr(&output);
        assert!(
            error.contains("cannot create") && error.contains("no-such-dir"),
            "{flag}: {error}"
        );
    }

    // A run that fails keeps an existing file's content and removes a file it created.
    let existing = dir.path().join("kept.csv");
    std::fs::write(&existing, "earlier results\n").unwrap();
    let created = dir.path().join("new-rejects.csv");
    let output = crate::dcnet(&[
        "aggregate",
        "--graph",
        missing_graph,
        "--out",
        existing.to_str().unwrap(),
        "--rejects",
        created.to_str().unwrap(),
        log,
    ]);
    assert!(!output.status.success());
    assert!(crate::stderr(&output).contains("no-such-graph"));
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "earlier results\n"
    );
    assert!(!created.exists(), "the failed run's own output is removed");

    // A successful run replaces a longer earlier file entirely, and a device takes the
    // results as well (nothing to truncate there).
    std::fs::write(&existing, "x".repeat(1 << 16)).unwrap();
    let fresh = dir.path().join("fresh.csv");
    assert!(aggregate(graph, "--out", &fresh).status.success());
    assert!(aggregate(graph, "--out", &existing).status.success());
    assert_eq!(
        std::fs::read(&existing).unwrap(),
        std::fs::read(&fresh).unwrap()
    );
    assert!(!std::fs::read(&fresh).unwrap().is_empty());
    ok(&["aggregate", "--graph", graph, "--out", "/dev/null", log]);
}
