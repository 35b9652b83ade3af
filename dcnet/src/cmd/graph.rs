//! `dcnet graph analyze`: how well each net's key graph protects its clients.

use std::io::Write;

use anyhow::Result;

use crate::cli::GraphAnalyze;
use crate::cmd::list_ids;

pub fn analyze(config: &GraphAnalyze) -> Result<()> {
    let nets = ingest::tables::load_graph_csv(&config.graph)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>6} {:>8} {:>8} {:>5} {:>6} {:>5} {:>9} {:>12}  {:<24} weakest clients",
        "net", "clients", "edges", "deg", "median", "max", "connected", "connectivity", "separator"
    )?;
    for (net, graph) in nets {
        let mut degrees: Vec<usize> = (0..graph.len())
            .map(|i| graph.neighbours_at(i).len())
            .collect();
        degrees.sort_unstable();
        let median = degrees.get(degrees.len() / 2).copied().unwrap_or(0);
        let max = degrees.last().copied().unwrap_or(0);
        let connectivity = graph.connectivity();
        // The weakest clients: when the connectivity equals the minimum degree, every client
        // of minimum degree is isolated by its own neighbours; otherwise those the smallest
        // separator cuts off.
        let weakest: Vec<u32> = if connectivity.vertex_connectivity == graph.min_degree() {
            let min = graph.min_degree();
            graph
                .clients()
                .iter()
                .copied()
                .filter(|&c| graph.degree(c) == min)
                .collect()
        } else {
            connectivity.isolated.clone()
        };
        writeln!(
            out,
            "{:>6} {:>8} {:>8} {:>5} {:>6} {:>5} {:>9} {:>12}  {:<24} {}",
            net,
            graph.len(),
            graph.edge_count(),
            graph.min_degree(),
            median,
            max,
            if graph.is_connected() { "yes" } else { "NO" },
            connectivity.vertex_connectivity,
            list_ids(&connectivity.separator, config.show),
            list_ids(&weakest, config.show),
        )?;
    }
    Ok(())
}
