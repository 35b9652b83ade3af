//! Simulated meters → gateways → aggregate, through the built binary: three households'
//! gateways on pseudo-terminals read simulated meters at one-second rounds, mask the energy
//! with seeds they share pairwise, and the provider's aggregate equals the sum of what the
//! meters reported.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use engine::{edge_seed, master_key};

const NET: u32 = 7;

/// A running `dcnet meter sim --pty`, killed when dropped.
struct Sim {
    child: Child,
    path: String,
}

impl Sim {
    fn start(profile: &str, record: &Path, extra: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dcnet"))
            .args(["meter", "sim", "--pty", "--profile", profile, "--unit", "1"])
            .args(["--speed", "900", "--record", record.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dcnet meter sim runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let path = line.trim().to_string();
        assert!(path.starts_with("/dev/"), "sim printed {line:?}");
        Sim { child, path }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The import counter a simulated meter reported at the start of each round: the last answer
/// served within 250 ms after the round boundary (the gateway reads right at the boundary).
fn served_at_boundaries(record: &Path, rounds: std::ops::RangeInclusive<u32>) -> Vec<u64> {
    let text = std::fs::read_to_string(record).unwrap();
    let rows: Vec<(u64, u64)> = text
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<u64> = line.split(',').map(|x| x.parse().unwrap()).collect();
            (f[1], f[3])
        })
        .collect();
    rounds
        .map(|round| {
            let start = u64::from(round) * 1000;
            rows.iter()
                .rev()
                .find(|(at, _)| (start..start + 250).contains(at))
                .unwrap_or_else(|| panic!("no reading at the start of round {round}: {text}"))
                .1
        })
        .collect()
}

fn write_keys(dir: &Path, me: u32, others: &[u32]) -> String {
    let master = master_key(2026);
    let text: String = others
        .iter()
        .map(|&o| format!("{o} {}\n", hex(edge_seed(&master, NET, me, o).as_bytes())))
        .collect();
    let path = dir.join(format!("keys-{me}.txt"));
    std::fs::write(&path, format!("# neighbours of client {me}\n{text}")).unwrap();
    path.to_string_lossy().into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gateway(sim: &Sim, profile: &str, client: u32, keys: &str, log: &Path, first: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dcnet"))
        .args([
            "gateway",
            "--port",
            &sim.path,
            "--profile",
            profile,
            "--unit",
            "1",
        ])
        .args(["--net", &NET.to_string(), "--client", &client.to_string()])
        .args(["--keys", keys, "--out", log.to_str().unwrap()])
        .args([
            "--period",
            "1s",
            "--rounds",
            "3",
            "--from-round",
            &first.to_string(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("dcnet gateway runs")
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "gateway failed: {stderr}");
    stderr
}

#[test]
fn three_gateways_aggregate_to_the_meters_energy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Three kinds of meter: u64 in 0.01 kWh, SunSpec acc32 with a scale factor, float32 kWh.
    let profiles = ["abb-b23", "sunspec-203", "sdm630"];
    let sims: Vec<Sim> = profiles
        .iter()
        .enumerate()
        .map(|(i, p)| Sim::start(p, &d.join(format!("served-{i}.csv")), &[]))
        .collect();
    // A triangle: every pair of gateways shares a seed.
    let keys = [
        write_keys(d, 1, &[2, 3]),
        write_keys(d, 2, &[1, 3]),
        write_keys(d, 3, &[1, 2]),
    ];
    std::fs::write(
        d.join("graph.csv"),
        format!("dc_net_id,client_a,client_b\n{NET},1,2\n{NET},1,3\n{NET},2,3\n"),
    )
    .unwrap();
    // Two to three seconds ahead, so all three are up and take their first reading at the
    // same boundary even on a busy machine.
    let first = (unix_ms() / 1000) as u32 + 3;
    let logs: Vec<_> = (0..3)
        .map(|i| d.join(format!("gw-{}.dclog", i + 1)))
        .collect();
    let children: Vec<Child> = (0..3)
        .map(|i| {
            gateway(
                &sims[i],
                profiles[i],
                i as u32 + 1,
                &keys[i],
                &logs[i],
                first,
            )
        })
        .collect();
    for child in children {
        let stderr = finish(child);
        assert_eq!(
            stderr.matches("sent a transmit frame").count(),
            3,
            "{stderr}"
        );
    }
    drop(sims);

    let out = Command::new(env!("CARGO_BIN_EXE_dcnet"))
        .args([
            "aggregate",
            "--graph",
            d.join("graph.csv").to_str().unwrap(),
        ])
        .args(["--out", d.join("global.csv").to_str().unwrap()])
        .args(logs.iter().map(|l| l.to_str().unwrap()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let global = std::fs::read_to_string(d.join("global.csv")).unwrap();
    let totals: BTreeMap<u32, (String, u64)> = global
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f[0], NET.to_string(), "{line}");
            (
                f[1].parse().unwrap(),
                (f[5].to_string(), f[6].parse().unwrap_or(u64::MAX)),
            )
        })
        .collect();

    // The expected totals, from the meters' own records: per meter, the counter at the end of
    // each round minus the counter at its start, summed over the three meters.
    let mut expected = [0u64; 3];
    for i in 0..3 {
        let counters = served_at_boundaries(&d.join(format!("served-{i}.csv")), first..=first + 3);
        for (round, pair) in counters.windows(2).enumerate() {
            expected[round] += pair[1] - pair[0];
        }
    }
    // At 900x real time a 3500 kWh household uses about 100 Wh per second.
    assert!(expected.iter().all(|&e| e > 0), "{expected:?}");
    for (k, want) in expected.iter().enumerate() {
        let round = first + k as u32;
        assert_eq!(
            totals.get(&round),
            Some(&("ok".to_string(), *want)),
            "round {round}: {global}"
        );
    }
}

#[test]
fn a_failed_read_sends_no_frame_for_that_round_or_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The meter stays silent on its second request: the reading that ends the first round.
    let sim = Sim::start("em24", &d.join("served.csv"), &["--fault", "silence@2"]);
    let keys = write_keys(d, 4, &[5, 6, 7]);
    let log = d.join("gw.dclog");
    let first = (unix_ms() / 1000) as u32 + 3;
    let child = Command::new(env!("CARGO_BIN_EXE_dcnet"))
        .args([
            "gateway",
            "--port",
            &sim.path,
            "--profile",
            "em24",
            "--unit",
            "1",
        ])
        .args(["--net", "7", "--client", "4", "--keys", &keys])
        .args([
            "--out",
            log.to_str().unwrap(),
            "--period",
            "1s",
            "--rounds",
            "3",
        ])
        .args([
            "--from-round",
            &first.to_string(),
            "--timeout",
            "150ms",
            "--retries",
            "0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = finish(child);
    assert!(
        stderr.contains(&format!(
            "round {first}: no frame: meter read failed: unit 1: no answer"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "round {}: no frame: no reading at the start of the round",
            first + 1
        )),
        "{stderr}"
    );
    // Only the third round has a frame.
    let bytes = std::fs::read(&log).unwrap();
    let frames: Vec<_> = ingest::FrameScanner::new(&bytes)
        .unwrap()
        .map(|s| s.frame.unwrap())
        .collect();
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].client_id(), frames[0].round()), (4, first + 2));
}
