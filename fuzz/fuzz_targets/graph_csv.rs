//! graph.csv: any bytes are key graphs or an error naming the file and line, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(nets) = ingest::tables::read_graph_csv(Path::new("graph.csv"), data) {
        for graph in nets.values() {
            let _ = graph.is_connected();
            let _ = graph.min_degree();
        }
    }
});
