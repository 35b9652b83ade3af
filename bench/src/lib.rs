//! Shared fixtures for dcnet benchmarks: simulated round logs built in memory.
#![forbid(unsafe_code)]

use dcnet::sim::{NetPlan, SimConfig, SimSink, run_net};
use ingest::{
    AggregateOptions, Aggregator, FrameFields, FrameScanner, FrameSource, LogWriter, Nets,
    RoundResult,
};

/// A simulated population's round log held in memory, with its key graphs.
pub struct SimulatedLog {
    /// The log bytes, header included.
    pub bytes: Vec<u8>,
    /// The key graph of every net.
    pub nets: Nets,
}

struct Sink(LogWriter<Vec<u8>>);

impl SimSink for Sink {
    fn frame(&mut self, fields: &FrameFields, lanes: &[u64]) {
        // Writing into a Vec cannot fail, and the lane count is the log's.
        let _ = self.0.write_fields(fields, lanes);
    }
    fn reading(&mut self, _: u32, _: u32, _: u32, _: &[u64]) {}
    fn truth(&mut self, _: RoundResult) {}
}

impl SimulatedLog {
    /// Simulates `nets` nets of `clients` clients over `rounds` rounds with `lanes` lanes
    /// (1% dropout, seed 42) into one in-memory log.
    pub fn new(nets: u32, clients: u32, rounds: u32, lanes: u8) -> Self {
        let config = SimConfig {
            nets,
            clients,
            rounds,
            lanes,
            ..SimConfig::default()
        };
        let mut sink = Sink(LogWriter::new(Vec::new(), lanes, 0).unwrap_or_else(|e| panic!("{e}")));
        let mut graphs = Nets::new();
        for index in 0..nets {
            let plan = NetPlan::new(&config, index).unwrap_or_else(|e| panic!("{e}"));
            run_net(&config, &plan, &mut sink);
            graphs.insert(plan.dc_net_id, plan.graph);
        }
        let bytes = sink.0.finish().unwrap_or_else(|e| panic!("{e}"));
        Self {
            bytes,
            nets: graphs,
        }
    }

    /// The straightforward engine (`Aggregator`, one frame at a time) over the whole log: the
    /// baseline the benches compare the faster paths with. Returns the number of rounds.
    pub fn aggregate_straightforward(&self) -> usize {
        let mut aggregator = Aggregator::new(&self.nets, 1, AggregateOptions::default());
        let scanner = FrameScanner::new(&self.bytes).unwrap_or_else(|e| panic!("{e}"));
        for scanned in scanner {
            if let Ok(frame) = scanned.frame {
                let source = FrameSource {
                    file: 0,
                    offset: scanned.offset,
                };
                aggregator.add_frame(&frame, source);
            }
        }
        aggregator.finish().rounds.len()
    }
}
