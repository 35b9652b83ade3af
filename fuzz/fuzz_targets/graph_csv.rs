//! graph.csv: any bytes are key graphs or an error naming the file and line, never a panic;
//! and the whole-text parser (which cuts large files into pieces) agrees with the streaming
//! reader.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("graph.csv");
    let streamed = ingest::tables::read_graph_csv(path, data);
    let parsed = ingest::tables::parse_graph_csv(path, data);
    assert_eq!(
        streamed.as_ref().map_err(ToString::to_string),
        parsed.as_ref().map_err(ToString::to_string)
    );
    if let Ok(nets) = streamed {
        for graph in nets.values() {
            let _ = graph.is_connected();
            let _ = graph.min_degree();
        }
    }
});
