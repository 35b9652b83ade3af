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
        Self::with_dropout(nets, clients, rounds, lanes, SimConfig::default().dropout)
    }

    /// [`Self::new`] with another share of clients missing from each round.
    pub fn with_dropout(nets: u32, clients: u32, rounds: u32, lanes: u8, dropout: f64) -> Self {
        let config = SimConfig {
            nets,
            clients,
            rounds,
            lanes,
            dropout,
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

    /// The same log with the frames of each (net, round) in a random order (a fixed seed), as
    /// a collector that writes frames as they arrive would have them: the same frames and
    /// results, without the client order the ordered fast path relies on.
    pub fn shuffled_within_rounds(&self) -> Self {
        let header = ingest::LogHeader::parse(&self.bytes).unwrap_or_else(|e| panic!("{e}"));
        let frame_len = header.frame_len();
        let (head, body) = self.bytes.split_at(ingest::log::LOG_HEADER_LEN);
        let frames: Vec<&[u8]> = body.chunks_exact(frame_len).collect();
        // The simulator writes each (net, round) as one stretch: shuffle within stretches
        // (Fisher-Yates with a xorshift generator, to need no randomness crate here).
        let key = |frame: &[u8]| {
            let header = ingest::frame::RawHeader::of(frame);
            (header.dc_net_id(), header.round())
        };
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut bytes = head.to_vec();
        for stretch in frames.chunk_by(|a, b| key(a) == key(b)) {
            let mut order: Vec<&[u8]> = stretch.to_vec();
            for i in (1..order.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            for frame in order {
                bytes.extend_from_slice(frame);
            }
        }
        Self {
            bytes,
            nets: self.nets.clone(),
        }
    }

    /// The same log in round order with the nets' frames interleaved at random within each
    /// round (a fixed seed), as a collector that writes frames as they arrive from every net
    /// would have it: the same frames and results, but a (net, round) rarely has two frames
    /// in a row.
    pub fn interleaved(&self) -> Self {
        let header = ingest::LogHeader::parse(&self.bytes).unwrap_or_else(|e| panic!("{e}"));
        let frame_len = header.frame_len();
        let (head, body) = self.bytes.split_at(ingest::log::LOG_HEADER_LEN);
        let mut frames: Vec<&[u8]> = body.chunks_exact(frame_len).collect();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for i in (1..frames.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            frames.swap(i, (state % (i as u64 + 1)) as usize);
        }
        // A stable sort keeps the random order within each round.
        frames.sort_by_key(|frame| ingest::frame::RawHeader::of(frame).round());
        let mut bytes = head.to_vec();
        for frame in frames {
            bytes.extend_from_slice(frame);
        }
        Self {
            bytes,
            nets: self.nets.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `reordered` holds exactly the frames of `log`, in another order, and gives the same
    /// results.
    fn assert_same_frames_and_results(log: &SimulatedLog, reordered: &SimulatedLog) {
        assert_eq!(reordered.bytes.len(), log.bytes.len());
        assert_ne!(reordered.bytes, log.bytes, "the order changed");
        let frames = |bytes: &[u8]| {
            let mut all: Vec<Vec<u8>> = bytes[64..].chunks_exact(40).map(<[u8]>::to_vec).collect();
            all.sort();
            all
        };
        assert_eq!(frames(&reordered.bytes), frames(&log.bytes));
        let rounds = |log: &SimulatedLog| {
            let mut aggregator = Aggregator::new(&log.nets, 1, AggregateOptions::default());
            for scanned in FrameScanner::new(&log.bytes).unwrap() {
                let frame = scanned.frame.unwrap();
                let source = FrameSource {
                    file: 0,
                    offset: scanned.offset,
                };
                aggregator.add_frame(&frame, source);
            }
            aggregator.finish().rounds
        };
        assert_eq!(rounds(reordered), rounds(log));
    }

    #[test]
    fn shuffling_within_rounds_keeps_the_frames_and_the_results() {
        let log = SimulatedLog::new(2, 40, 3, 1);
        assert_same_frames_and_results(&log, &log.shuffled_within_rounds());
    }

    #[test]
    fn interleaving_keeps_the_frames_and_the_results_in_round_order() {
        let log = SimulatedLog::new(4, 40, 3, 1);
        let interleaved = log.interleaved();
        assert_same_frames_and_results(&log, &interleaved);
        let headers: Vec<_> = interleaved.bytes[64..]
            .chunks_exact(40)
            .map(ingest::frame::RawHeader::of)
            .collect();
        assert!(headers.windows(2).all(|w| w[0].round() <= w[1].round()));
        // Four nets at random: about three frames in four follow one of another net.
        let switches = headers
            .windows(2)
            .filter(|w| w[0].dc_net_id() != w[1].dc_net_id())
            .count();
        assert!(
            switches * 2 > headers.len(),
            "{switches} of {}",
            headers.len()
        );
    }
}
