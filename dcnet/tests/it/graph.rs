use crate::{dcnet, stderr, stdout};

/// The analysis row of `net`, split into columns.
fn net_row(table: &str, net: u32) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols[0] == net.to_string())
        .unwrap_or_else(|| panic!("net {net} missing in\n{table}"))
}

#[test]
fn analyze_reports_degrees_connectivity_and_the_weakest_clients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.csv");
    // Net 1: two triangles sharing client 3 (one client isolates either side).
    // Net 2: a 6-ring (two clients isolate a side). Net 3: two separate edges.
    std::fs::write(
        &path,
        "dc_net_id,client_a,client_b\n\
         1,1,2\n1,2,3\n1,1,3\n1,3,4\n1,4,5\n1,3,5\n\
         2,1,2\n2,2,3\n2,3,4\n2,4,5\n2,5,6\n2,6,1\n\
         3,1,2\n3,3,4\n",
    )
    .unwrap();
    let output = dcnet(&["graph", "analyze", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    // Columns: net clients edges min median max connected connectivity separator weakest.
    let bowtie = net_row(&table, 1);
    assert_eq!(&bowtie[1..9], ["5", "6", "2", "2", "4", "yes", "1", "3"]);
    assert!(bowtie[9] == "1,2" || bowtie[9] == "4,5", "{table}");
    let ring = net_row(&table, 2);
    assert_eq!(&ring[1..8], ["6", "6", "2", "2", "2", "yes", "2"]);
    // Every ring client is isolated by its two neighbours.
    assert_eq!(ring[9], "1,2,3,4,5,6");
    let split = net_row(&table, 3);
    assert_eq!(&split[1..8], ["4", "2", "1", "1", "1", "NO", "0"]);
}

#[test]
fn analyze_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.csv");
    std::fs::write(&path, "dc_net_id,client_a,client_b\n1,1,2\n1,x,3\n").unwrap();
    let output = dcnet(&["graph", "analyze", path.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(":3: field `client_a` = \"x\""),
        "{}",
        stderr(&output)
    );
    std::fs::write(&path, "net,a,b\n1,1,2\n").unwrap();
    let output = dcnet(&["graph", "analyze", path.to_str().unwrap()]);
    assert!(
        stderr(&output).contains(":1: header"),
        "{}",
        stderr(&output)
    );
    std::fs::write(&path, "dc_net_id,client_a,client_b\n1,4,4\n").unwrap();
    let output = dcnet(&["graph", "analyze", path.to_str().unwrap()]);
    assert!(stderr(&output).contains(":2: "), "{}", stderr(&output));
    assert!(stderr(&output).contains("client 4"), "{}", stderr(&output));
}
