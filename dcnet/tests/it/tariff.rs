//! `dcnet tariff bill` and `dcnet tariff diff` through the binary, against hand computations.

use std::path::{Path, PathBuf};

use crate::dcnet;

fn tariff(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/tariffs")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn bill_straddling_a_boundary_matches_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    // A 1.2 kWh load from 18:30 to 19:30 local (+08:00) in 15-minute readings: two in peak
    // (18:30, 18:45), two in sharp (19:00, 19:15).
    // Peak 0.3 + 0.3 = 0.6 kWh * 1.14460 = 0.68676; sharp 0.3 + 0.3 = 0.6 kWh * 1.21567
    // = 0.729402; total 1.416162 CNY.
    let readings = write(
        dir.path(),
        "r.csv",
        "start,wh\n2024-07-01T10:30:00Z,300\n2024-07-01T10:45:00Z,300\n\
         2024-07-01T11:00:00Z,300\n2024-07-01T11:15:00Z,300\n",
    );
    let out = dcnet(&[
        "tariff",
        "bill",
        "--tariff",
        &tariff("cn-tou.toml"),
        "--readings",
        &readings,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).unwrap();
    let compact: String = json.split_whitespace().collect();
    assert_eq!(
        compact,
        r#"{"currency":"CNY","periods":[{"name":"sharp","kwh":"0.6","cost":"0.729402"},{"name":"peak","kwh":"0.6","cost":"0.68676"},{"name":"flat","kwh":"0","cost":"0"},{"name":"valley","kwh":"0","cost":"0"}],"total":"1.416162"}"#
    );
    // The same consumption as one hourly reading crosses 19:00 and is refused, not guessed.
    let hourly = write(dir.path(), "h.csv", "start,wh\n2024-07-01T10:30:00Z,1200\n");
    let out = dcnet(&[
        "tariff",
        "bill",
        "--tariff",
        &tariff("cn-tou.toml"),
        "--readings",
        &hourly,
        "--interval",
        "1h",
    ]);
    let error = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(
        error.contains("h.csv: line 2:") && error.contains("peak into sharp at 19:00"),
        "{error}"
    );
}

#[test]
fn diff_shows_who_gains_from_longer_peak_hours() {
    let dir = tempfile::tempdir().unwrap();
    // 1 kWh at 14:00 local moves from flat (0.64370) to peak (1.14460): +0.5009 CNY for the
    // provider; 2 kWh at 03:00 stays valley.
    let readings = write(
        dir.path(),
        "r.csv",
        "start,wh\n2024-07-01T14:00:00+08:00,1000\n2024-07-01T03:00:00+08:00,2000\n",
    );
    let out = dcnet(&[
        "tariff",
        "diff",
        "--tariff",
        &tariff("cn-tou.toml"),
        "--tariff",
        &tariff("cn-tou-longer-peak.toml"),
        "--readings",
        &readings,
        "--interval",
        "15m",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("moved 1 kWh from flat to peak"), "{text}");
    // Before: 0.6437 + 2 * 0.3082 = 1.2601; after: 1.1446 + 0.6164 = 1.761.
    assert!(
        text.contains("total 1.2601 -> 1.761 CNY (change +0.5009)"),
        "{text}"
    );
    assert!(text.contains("the customer pays 0.5009 CNY more"), "{text}");
}

#[test]
fn tariffs_with_gaps_or_overlaps_are_refused_naming_the_file_and_hours() {
    let dir = tempfile::tempdir().unwrap();
    let readings = write(
        dir.path(),
        "r.csv",
        "start,wh\n2024-07-01T14:00:00+08:00,1000\n",
    );
    let base = std::fs::read_to_string(tariff("cn-tou.toml")).unwrap();
    let cases = [
        (
            base.replace("\"23:00-07:00\"", "\"00:00-07:00\""),
            "hours 23:00-24:00 are not covered by any period",
        ),
        (
            base.replace("\"15:00-19:00\"", "\"14:00-19:00\""),
            "overlap at 14:00-15:00",
        ),
    ];
    for (index, (text, expected)) in cases.iter().enumerate() {
        let path = write(dir.path(), &format!("bad-{index}.toml"), text);
        let out = dcnet(&[
            "tariff",
            "bill",
            "--tariff",
            &path,
            "--readings",
            &readings,
            "--interval",
            "1h",
        ]);
        assert!(!out.status.success());
        let error = String::from_utf8(out.stderr).unwrap();
        assert!(
            error.contains(&format!("tariff {path}: ")) && error.contains(expected),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }
}
