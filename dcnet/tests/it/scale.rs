//! The simulator at scale and the `bench` commands, through the built binary.

use std::path::Path;
use std::process::{Command, Output};

fn dcnet_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dcnet"))
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("dcnet runs")
}

fn ok_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    let out = dcnet_with(env, args);
    assert!(
        out.status.success(),
        "dcnet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn simulation_output_is_identical_for_any_thread_count() {
    // 9 nets span several hand-overs to the writer thread with 1 and with 2 threads (4 and 8
    // nets in flight), so the order of graph.csv, truth.csv and readings.csv is exercised.
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, threads) in [(&one, "1"), (&two, "2")] {
        let run = ok_with(
            &[("RAYON_NUM_THREADS", threads)],
            &[
                "simulate",
                "--out",
                dir.path().to_str().unwrap(),
                "--nets",
                "9",
                "--clients",
                "20",
                "--rounds",
                "6",
                "--lanes",
                "2",
                "--dropout",
                "0.1",
                "--reveal-readings",
            ],
        );
        // Standard error is a pipe here: the summary, and no progress bar.
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains("frames/s"), "{stderr}");
        assert!(!stderr.contains("net-rounds"), "{stderr}");
    }
    let names = files_in(one.path());
    assert_eq!(names, files_in(two.path()));
    assert_eq!(names.len(), 9 + 3, "{names:?}");
    for name in names {
        assert_eq!(
            std::fs::read(one.path().join(&name)).unwrap(),
            std::fs::read(two.path().join(&name)).unwrap(),
            "{name} differs between 1 and 2 threads"
        );
    }
    // Nets appear in order in the shared files.
    let truth = std::fs::read_to_string(one.path().join("truth.csv")).unwrap();
    let nets: Vec<u32> = truth
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(nets.windows(2).all(|w| w[0] <= w[1]) && nets.last() == Some(&9));
}

#[test]
fn bench_keystream_reports_every_backend_and_shape() {
    let out = ok_with(
        &[],
        &[
            "bench",
            "keystream",
            "--seconds",
            "0.02",
            "--edges",
            "20",
            "--rounds",
            "5",
            "--lanes",
            "1,3",
            "--threads",
            "1",
            "--no-openssl",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for backend in engine::keystream::Backend::available() {
        assert!(
            text.contains(&format!("20 edges x 1 round, {backend}")),
            "{backend}: {text}"
        );
    }
    assert_eq!(text.matches("naive: one ctr").count(), 2, "{text}");
    assert_eq!(text.matches("1 edge x 5 rounds, expand once, ").count(), 2);
    assert!(text.contains("OpenSSL not measured"), "{text}");
}

#[test]
fn bench_simulate_compares_with_dd_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok_with(
        &[],
        &[
            "bench",
            "simulate",
            "--dir",
            dir.path().to_str().unwrap(),
            "--nets",
            "3",
            "--clients",
            "10",
            "--rounds",
            "2",
            "--repeat",
            "2",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("simulate/dd = ").count(), 2, "{text}");
    assert!(text.contains("median simulate/dd over 2 run(s)"), "{text}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn bench_flags_are_validated() {
    for (args, flag) in [
        (&["bench", "keystream", "--lanes", "33"][..], "--lanes"),
        (&["bench", "keystream", "--backend", "sse9"], "--backend"),
        (&["bench", "keystream", "--seconds", "0"], "--seconds"),
        (&["bench", "simulate", "--dir", "/no/such/dir"], "--dir"),
    ] {
        let out = dcnet_with(&[], args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    for sub in ["keystream", "simulate"] {
        let help = ok_with(&[], &["bench", sub, "--help"]);
        assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: dcnet bench"));
    }
}

/// `bench aggregate` checks the aggregate against the simulation's truth before it measures
/// (it fails otherwise), prints every measurement of each run, and keeps the log with `--dir`;
/// `--interleave` writes the same frames round by round with the nets interleaved.
#[test]
fn bench_aggregate_measures_both_orders_of_the_same_frames() {
    let dir = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    for interleave in [false, true] {
        let mut args = vec![
            "bench",
            "aggregate",
            "--frames",
            "600",
            "--nets",
            "5",
            "--clients",
            "30",
            "--repeat",
            "2",
            "--threads",
            "2",
            "--dir",
            dir.path().to_str().unwrap(),
        ];
        if interleave {
            args.push("--interleave");
        }
        let out = ok_with(&[], &args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("rounds checked against the truth"), "{text}");
        assert!(text.contains("checked frames/s"), "{text}");
        assert!(text.contains("no read-ahead frames/s"), "{text}");
        assert!(text.contains("over 2 runs"), "{text}");
        assert!(text.contains("read-ahead speed-up: median"), "{text}");
        let name = if interleave {
            "bench-5x30x4-L1-interleaved.dclog"
        } else {
            "bench-5x30x4-L1.dclog"
        };
        logs.push(std::fs::read(dir.path().join(name)).unwrap());
    }
    assert!(files_in(dir.path()).contains(&"graph.csv".to_string()));
    let frames =
        |bytes: &[u8]| -> Vec<Vec<u8>> { bytes[64..].chunks(40).map(<[u8]>::to_vec).collect() };
    let (by_net, interleaved) = (frames(&logs[0]), frames(&logs[1]));
    let mut sorted = (by_net.clone(), interleaved.clone());
    sorted.0.sort();
    sorted.1.sort();
    assert_eq!(sorted.0, sorted.1, "the same frames");
    let net = |frame: &[u8]| u32::from_le_bytes(frame[8..12].try_into().unwrap());
    let round = |frame: &[u8]| u32::from_le_bytes(frame[16..20].try_into().unwrap());
    let switches = |frames: &[Vec<u8>]| {
        frames
            .windows(2)
            .filter(|w| net(&w[0]) != net(&w[1]))
            .count()
    };
    // Net by net: a switch per net and round at most; interleaved: most frames follow another
    // net's (five nets at random), in round order.
    assert!(switches(&by_net) <= 5 * 4, "{}", switches(&by_net));
    assert!(switches(&interleaved) * 2 > interleaved.len());
    assert!(interleaved.windows(2).all(|w| round(&w[0]) <= round(&w[1])));
}
