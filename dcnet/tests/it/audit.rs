use std::path::Path;

use crate::{dcnet, stderr, stdout};

/// A small audit log written by `dcnet churn`; returns its lines.
fn make_log(path: &Path) -> Vec<String> {
    let output = dcnet(&[
        "churn",
        "--nets",
        "1",
        "--clients",
        "8",
        "--rounds",
        "6",
        "--join",
        "0.5",
        "--loss",
        "0.05",
        "--seed",
        "3",
        "--audit",
        path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn verify(path: &Path, lines: &[String]) -> (bool, String) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    let output = dcnet(&["audit", "verify", path.to_str().unwrap()]);
    (output.status.success(), stderr(&output))
}

#[test]
fn verify_names_the_first_bad_entry_after_edit_delete_or_reorder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let lines = make_log(&path);
    assert!(lines.len() > 20);
    assert!(verify(&path, &lines).0);

    // Edit: one digit of entry 10's action.
    let mut edited = lines.clone();
    edited[10] = edited[10].replacen("net=1", "net=2", 1);
    let (ok, error) = verify(&path, &edited);
    assert!(!ok);
    assert!(error.contains("line 11: entry 10 was altered"), "{error}");

    // Delete entry 5.
    let mut deleted = lines.clone();
    deleted.remove(5);
    let (ok, error) = verify(&path, &deleted);
    assert!(!ok);
    assert!(
        error.contains("line 6: entry 6 where entry 5 should be"),
        "{error}"
    );

    // Reorder entries 3 and 4.
    let mut reordered = lines.clone();
    reordered.swap(3, 4);
    let (ok, error) = verify(&path, &reordered);
    assert!(!ok);
    assert!(error.contains("line 4"), "{error}");

    // Cut the last entry: only the published head shows it.
    let head = lines.last().unwrap().split(' ').nth(2).unwrap().to_string();
    let cut = &lines[..lines.len() - 1];
    assert!(verify(&path, cut).0);
    let output = dcnet(&["audit", "verify", path.to_str().unwrap(), "--head", &head]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("expected head"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn show_lists_the_actions_naming_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let lines = make_log(&path);
    let output = dcnet(&["audit", "show", path.to_str().unwrap(), "--client", "3"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let shown = stdout(&output);
    // Independently: the entries whose action names client 3 in any client field.
    let names_three = |line: &str| {
        line.split(' ').skip(4).any(|field| {
            let Some((key, value)) = field.split_once('=') else {
                return false;
            };
            key != "net"
                && key != "exchange"
                && key != "round"
                && key != "expected"
                && key != "present"
                && key != "resent"
                && key != "what"
                && key != "resend"
                && key != "reason"
                && key != "message"
                && value.split(',').any(|v| v == "3")
        })
    };
    let expected = lines.iter().filter(|l| names_three(l)).count();
    assert!(expected > 0);
    assert_eq!(shown.lines().count(), expected, "{shown}");
    assert!(shown.lines().any(|l| l.contains("assigned net=1 client=3")));
    let all = dcnet(&["audit", "show", path.to_str().unwrap()]);
    assert_eq!(stdout(&all).lines().count(), lines.len());
}

#[test]
fn show_reports_a_malformed_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, "0 nothing here\n").unwrap();
    let output = dcnet(&["audit", "show", path.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("line 1"), "{}", stderr(&output));
}
