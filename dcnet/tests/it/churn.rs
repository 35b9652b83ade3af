use crate::{dcnet, stderr, stdout};

/// The value of a row of the churn table.
fn row(table: &str, name: &str) -> String {
    table
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("row {name} missing in\n{table}"))
        .trim()
        .to_string()
}

const SMALL: &[&str] = &[
    "churn",
    "--nets",
    "2",
    "--clients",
    "15",
    "--rounds",
    "40",
    "--join",
    "0.3",
    "--exit",
    "0.02",
    "--loss",
    "0.03",
    "--tamper",
    "0.1",
    "--seed",
    "5",
];

#[test]
fn churn_prints_the_table_and_checks_every_sum() {
    let output = dcnet(SMALL);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert_eq!(row(&table, "graph splits"), "0");
    let released: u64 = row(&table, "rounds released").parse().unwrap();
    let withheld: u64 = row(&table, "rounds withheld").parse().unwrap();
    let unrecoverable: u64 = row(&table, "rounds unrecoverable").parse().unwrap();
    assert_eq!(released + withheld + unrecoverable, 80);
    assert!(row(&table, "sums checked").starts_with(&format!("{released} ")));
    let degree: usize = row(&table, "minimum degree seen").parse().unwrap();
    assert!(degree >= 3);
    // Every tampered share was refused by the gateway that received it.
    assert_eq!(
        row(&table, "key exchanges refused"),
        row(&table, "shares tampered")
    );
    assert!(row(&table, "losses").parse::<u64>().unwrap() > 0);
    // Same seed, same run.
    assert_eq!(stdout(&dcnet(SMALL)), table);
}

#[test]
fn churn_writes_an_audit_log_that_verifies_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let log_arg = log.to_str().unwrap();
    let mut args = SMALL.to_vec();
    args.extend(["--audit", log_arg]);
    let first = dcnet(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    let audit_row = row(&stdout(&first), "audit");
    let head = audit_row.rsplit(' ').next().unwrap().to_string();
    let verified = dcnet(&["audit", "verify", log_arg, "--head", &head]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stdout(&verified).contains(&head));
    // A second run appends to the same chain.
    let second = dcnet(&args);
    assert!(second.status.success(), "{}", stderr(&second));
    let entries = |text: &str| -> u64 {
        let row = row(text, "audit");
        row.split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(entries(&stdout(&second)), 2 * entries(&stdout(&first)));
    let verified = dcnet(&["audit", "verify", log_arg]);
    assert!(verified.status.success(), "{}", stderr(&verified));
}

#[test]
fn churn_refuses_bad_parameters_with_a_clear_error() {
    let output = dcnet(&["churn", "--loss", "1.5"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--loss 1.5"),
        "{}",
        stderr(&output)
    );
    let output = dcnet(&["churn", "-k", "2"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("-k 2"), "{}", stderr(&output));
}
