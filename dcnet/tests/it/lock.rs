//! The program lock end to end through the binary: keygen, init, request, approve, apply,
//! and every refusal the issue lists, each checked to leave the meter's files untouched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::dcnet;

fn ok(args: &[&str]) -> String {
    let out = dcnet(args);
    assert!(
        out.status.success(),
        "dcnet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail and returns its one-line error.
fn refused(args: &[&str]) -> String {
    let out = dcnet(args);
    assert!(!out.status.success(), "dcnet {args:?} should have failed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.lines().count(),
        1,
        "one-line error expected: {stderr}"
    );
    stderr
}

fn tariffs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tariffs")
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Flips the last hex digit of `field = "..."` in a TOML file.
fn flip_hex_field(path: &Path, field: &str, from_end: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let prefix = format!("{field} = \"");
    let start = text.find(&prefix).unwrap() + prefix.len();
    let end = start + text[start..].find('"').unwrap();
    let at = end - 1 - from_end;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(path, bytes).unwrap();
}

/// A meter locked under t = 3 of n = 4 (user, grid, supplier, regulator) with cn-tou.toml.
struct Meter {
    dir: tempfile::TempDir,
}

const HOLDERS: [&str; 4] = ["user", "grid", "supplier", "regulator"];

impl Meter {
    fn new() -> Self {
        let meter = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in ["meter", "user", "grid", "supplier", "regulator"] {
            ok(&["keygen", "--out", &meter.path(&format!("keys/{name}"))]);
        }
        let tariff = tariffs().join("cn-tou.toml");
        ok(&[
            "lock",
            "init",
            "--key",
            &meter.path("keys/meter.key"),
            "--tariff",
            tariff.to_str().unwrap(),
            "--user",
            &meter.path("keys/user.pub"),
            "--company",
            &meter.path("keys/grid.pub"),
            "--company",
            &meter.path("keys/supplier.pub"),
            "--company",
            &meter.path("keys/regulator.pub"),
            "--t",
            "3",
            "--state",
            &meter.path("state"),
        ]);
        // Readings (local +08:00): 1 kWh in the 14:00 hour, 2 kWh in the 20:00 hour.
        std::fs::write(
            meter.dir.path().join("readings.csv"),
            "start,wh\n2024-07-01T14:00:00+08:00,1000\n2024-07-01T20:00:00+08:00,2000\n",
        )
        .unwrap();
        meter
    }

    fn path(&self, relative: &str) -> String {
        self.dir.path().join(relative).to_str().unwrap().to_owned()
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn request(&self, by: &str, tariff: &str, out: &str) -> String {
        let tariff = tariffs().join(tariff);
        ok(&[
            "lock",
            "request",
            "--key",
            &self.path(&format!("keys/{by}.key")),
            "--lock",
            &self.path("state/lock.toml"),
            "--tariff",
            tariff.to_str().unwrap(),
            "--reason",
            "afternoon peak from 14:00",
            "--out",
            &self.path(out),
        ]);
        self.path(out)
    }

    fn approve_args(&self, holder: &str, share: &str, request: &str, out: &str) -> Vec<String> {
        [
            "lock",
            "approve",
            "--key",
            &self.path(&format!("keys/{holder}.key")),
            "--meter",
            &self.path("keys/meter.pub"),
            "--lock",
            &self.path("state/lock.toml"),
            "--share",
            share,
            "--request",
            request,
            "--out",
            &self.path(out),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn approve(&self, holder: &str, request: &str, out: &str) -> String {
        let share = self.path(&format!("state/shares/{holder}.toml"));
        let args = self.approve_args(holder, &share, request, out);
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        self.path(out)
    }

    fn apply_args(&self, request: &str, approvals: &[String]) -> Vec<String> {
        let mut args = vec![
            "lock".to_owned(),
            "apply".into(),
            "--key".into(),
            self.path("keys/meter.key"),
            "--state".into(),
            self.path("state"),
            "--request".into(),
            request.to_owned(),
        ];
        for approval in approvals {
            args.push("--approval".into());
            args.push(approval.clone());
        }
        args
    }

    fn apply(&self, request: &str, approvals: &[String]) -> String {
        ok(&self
            .apply_args(request, approvals)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>())
    }

    /// Applying must fail, name `expected` and leave every file of the meter as it was.
    fn apply_refused(&self, request: &str, approvals: &[String], expected: &str) {
        let before = snapshot(&self.state());
        let error = refused(
            &self
                .apply_args(request, approvals)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        assert!(error.contains(expected), "{expected:?} not in {error}");
        assert!(error.contains("nothing changed"), "{error}");
        assert_eq!(
            snapshot(&self.state()),
            before,
            "a refused apply changed files"
        );
    }

    /// The bill total under the tariff in force.
    fn bill_total(&self) -> String {
        let out = ok(&[
            "tariff",
            "bill",
            "--tariff",
            &self.path("state/tariff.toml"),
            "--readings",
            &self.path("readings.csv"),
            "--interval",
            "1h",
            "--json",
        ]);
        let start = out.find("\"total\": \"").unwrap() + 10;
        out[start..start + out[start..].find('"').unwrap()].to_owned()
    }
}

#[test]
fn t_approvals_change_the_tariff_and_the_bill() {
    let meter = Meter::new();
    // Hand computation under cn-tou.toml: 14:00 is flat, 1 kWh * 0.64370 = 0.6437;
    // 20:00 is sharp, 2 kWh * 1.21567 = 2.43134; total 3.07504.
    assert_eq!(meter.bill_total(), "3.07504");
    let request = meter.request("grid", "cn-tou-longer-peak.toml", "request.toml");
    let approvals: Vec<String> = ["user", "grid", "regulator"]
        .iter()
        .map(|holder| meter.approve(holder, &request, &format!("approval-{holder}.toml")))
        .collect();
    let lock_before = std::fs::read(meter.state().join("lock.toml")).unwrap();
    let out = meter.apply(&request, &approvals);
    assert!(out.contains("user, grid, regulator"), "{out}");
    assert_eq!(
        std::fs::read_to_string(meter.state().join("tariff.toml")).unwrap(),
        std::fs::read_to_string(tariffs().join("cn-tou-longer-peak.toml")).unwrap()
    );
    assert_ne!(
        std::fs::read(meter.state().join("lock.toml")).unwrap(),
        lock_before
    );
    // Under the new tariff 14:00 is peak: 1 kWh * 1.14460 + 2.43134 = 3.57594.
    assert_eq!(meter.bill_total(), "3.57594");
    for holder in HOLDERS {
        assert!(meter.state().join(format!("shares/{holder}.toml")).exists());
    }
}

#[test]
fn t_minus_one_approvals_change_nothing() {
    let meter = Meter::new();
    let request = meter.request("grid", "cn-tou-longer-peak.toml", "request.toml");
    let approvals = vec![
        meter.approve("grid", &request, "a1.toml"),
        meter.approve("supplier", &request, "a2.toml"),
    ];
    meter.apply_refused(
        &request,
        &approvals,
        "2 valid approval(s), the lock needs 3",
    );
    assert_eq!(meter.bill_total(), "3.07504");
}

#[test]
fn a_forged_signature_is_refused() {
    let meter = Meter::new();
    let request = meter.request("grid", "cn-tou-longer-peak.toml", "request.toml");
    let approvals: Vec<String> = ["user", "grid", "supplier"]
        .iter()
        .map(|holder| meter.approve(holder, &request, &format!("approval-{holder}.toml")))
        .collect();
    flip_hex_field(Path::new(&approvals[2]), "signature", 0);
    meter.apply_refused(
        &request,
        &approvals,
        "signature does not verify with the key of holder \"supplier\"",
    );
    // A forged request signature is refused too, even with valid approvals of it.
    let mut approvals = approvals;
    approvals[2] = meter.approve("supplier", &request, "approval-supplier.toml");
    flip_hex_field(Path::new(&request), "signature", 3);
    meter.apply_refused(
        &request,
        &approvals,
        "the request's signature does not verify",
    );
}

#[test]
fn a_share_from_another_request_is_refused() {
    let meter = Meter::new();
    let wanted = meter.request("grid", "cn-tou-longer-peak.toml", "wanted.toml");
    let other = meter.request("supplier", "cn-tou-longer-peak.toml", "other.toml");
    let approvals = vec![
        meter.approve("user", &wanted, "a-user.toml"),
        meter.approve("grid", &wanted, "a-grid.toml"),
        meter.approve("regulator", &other, "a-regulator.toml"),
    ];
    meter.apply_refused(&wanted, &approvals, "approval of another request");
    // Re-pointing that approval at the wanted request breaks its signature.
    let first = std::fs::read_to_string(&approvals[0]).unwrap();
    let wanted_digest = first
        .lines()
        .find(|l| l.starts_with("request_digest"))
        .unwrap();
    let text = std::fs::read_to_string(&approvals[2]).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("request_digest"))
        .unwrap();
    std::fs::write(&approvals[2], text.replace(line, wanted_digest)).unwrap();
    meter.apply_refused(
        &wanted,
        &approvals,
        "signature does not verify with the key of holder \"regulator\"",
    );
}

#[test]
fn a_flipped_byte_in_a_share_is_refused() {
    let meter = Meter::new();
    let request = meter.request("grid", "cn-tou-longer-peak.toml", "request.toml");
    let approvals: Vec<String> = ["user", "grid", "supplier"]
        .iter()
        .map(|holder| meter.approve(holder, &request, &format!("approval-{holder}.toml")))
        .collect();
    // In an approval: the share is covered by the holder's signature.
    flip_hex_field(Path::new(&approvals[1]), "share", 10);
    meter.apply_refused(&request, &approvals, "approval-grid.toml");
    // In the share file the meter handed out: the holder's approve refuses it.
    let share = meter.path("state/shares/regulator.toml");
    flip_hex_field(Path::new(&share), "sealed", 20);
    let args = meter.approve_args("regulator", &share, &request, "approval-regulator.toml");
    let error = refused(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(error.contains("meter signature does not verify"), "{error}");
    assert!(!Path::new(&meter.path("approval-regulator.toml")).exists());
    assert_eq!(meter.bill_total(), "3.07504");
}

#[test]
fn an_old_approval_replayed_after_relocking_is_refused() {
    let meter = Meter::new();
    let first = meter.request("grid", "cn-tou-longer-peak.toml", "first.toml");
    let old_share = meter.path("old-supplier-share.toml");
    std::fs::copy(meter.path("state/shares/supplier.toml"), &old_share).unwrap();
    let first_approvals: Vec<String> = ["user", "grid", "supplier"]
        .iter()
        .map(|holder| meter.approve(holder, &first, &format!("first-{holder}.toml")))
        .collect();
    meter.apply(&first, &first_approvals);
    assert_eq!(meter.bill_total(), "3.57594");

    // Back to the original tariff: a fresh request with two fresh approvals plus the
    // supplier's approval of the first request, replayed.
    let second = meter.request("regulator", "cn-tou.toml", "second.toml");
    let approvals = vec![
        meter.approve("user", &second, "second-user.toml"),
        meter.approve("regulator", &second, "second-regulator.toml"),
        first_approvals[2].clone(),
    ];
    meter.apply_refused(
        &second,
        &approvals,
        "approvals cannot be replayed across a re-lock",
    );
    // The whole first request replayed: refused as well.
    meter.apply_refused(
        &first,
        &first_approvals,
        "requests cannot be replayed across a re-lock",
    );
    // The supplier's share from before the re-lock cannot approve anything now.
    let args = meter.approve_args("supplier", &old_share, &second, "stale.toml");
    let error = refused(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        error.contains("share file is for lock generation 0"),
        "{error}"
    );
    // With the supplier's new share the second request goes through.
    let mut approvals = approvals;
    approvals[2] = meter.approve("supplier", &second, "second-supplier.toml");
    meter.apply(&second, &approvals);
    assert_eq!(meter.bill_total(), "3.07504");
}

#[test]
fn keygen_refuses_to_overwrite_and_protects_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("meter");
    ok(&["keygen", "--out", out.to_str().unwrap()]);
    let error = refused(&["keygen", "--out", out.to_str().unwrap()]);
    assert!(error.contains("--force"), "{error}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("meter.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "secret key readable by others: {mode:o}");
    }
    let public = std::fs::read_to_string(dir.path().join("meter.pub")).unwrap();
    assert!(!public.contains("secret"));
}

#[test]
fn security_degree_matches_a_hand_computation() {
    // sd(10, 3, 0.1) = 0.9^10 + 10 * 0.1 * 0.9^9 + 45 * 0.01 * 0.9^8 = 0.9298091736.
    // The smallest t reaching 0.999: sd(10, 5) = 0.9983650626 falls short, sd(10, 6) =
    // 0.9983650626 + 252 * 0.1^5 * 0.9^5 = 0.9998530974 does, so t = 6.
    let out = ok(&["lock", "security", "--n", "10", "--p", "0.1", "--t", "3"]);
    assert!(out.contains("0.9298091736"), "{out}");
    assert!(out.contains("0.0701908264"), "{out}");
    assert!(out.contains("smallest t with sd >= 0.999: 6"), "{out}");
    let table = ok(&["lock", "security", "--n", "10", "--p", "0.1"]);
    assert!(
        table.contains("0.9983650626") && table.contains("0.9872048016"),
        "{table}"
    );
    let error = refused(&["lock", "security", "--n", "10", "--p", "2"]);
    assert!(error.contains("--p"), "{error}");
}

#[test]
fn every_billing_and_lock_subcommand_explains_its_flags() {
    let cases: [(&[&str], &[&str]); 8] = [
        (
            &["tariff", "bill"],
            &["--tariff", "--readings", "--interval", "--json"],
        ),
        (
            &["tariff", "diff"],
            &["--tariff", "--readings", "--interval", "--json"],
        ),
        (&["keygen"], &["--out", "--name", "--force"]),
        (
            &["lock", "init"],
            &[
                "--key",
                "--tariff",
                "--user",
                "--company",
                "--t",
                "--state",
                "--force",
            ],
        ),
        (
            &["lock", "request"],
            &["--key", "--lock", "--tariff", "--reason", "--out"],
        ),
        (
            &["lock", "approve"],
            &[
                "--key",
                "--meter",
                "--lock",
                "--share",
                "--request",
                "--out",
            ],
        ),
        (
            &["lock", "apply"],
            &["--key", "--state", "--request", "--approval"],
        ),
        (&["lock", "security"], &["--n", "--p", "--t", "--target"]),
    ];
    for (command, flags) in cases {
        let mut args = command.to_vec();
        args.push("--help");
        let help = ok(&args);
        assert!(help.contains("Usage: dcnet"), "{command:?}");
        for flag in flags {
            let documented = help
                .lines()
                .any(|line| line.split_whitespace().next() == Some(flag));
            assert!(documented, "{command:?} help lacks {flag}: {help}");
        }
    }
}
