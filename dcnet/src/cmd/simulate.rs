//! `dcnet simulate`: write a simulated population's round logs, key graphs and truth.
//!
//! Nets are simulated in parallel on all cores, a few per core at a time, each straight into
//! its own round log. What goes into the shared files (`graph.csv`, `truth.csv`,
//! `readings.csv`) is handed, batch by batch and in net order, to one writer thread. Memory is
//! therefore bounded by the nets in flight, not by the population, and every file is the same
//! whatever the thread count.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use dcnet::sim::{NetPlan, NetStats, SimConfig, SimSink, run_net_with};
use engine::KeyGraph;
use engine::keystream::Keystream;
use indicatif::{ProgressBar, ProgressStyle};
use ingest::frame::{FRAME_HEADER_LEN, frame_len};
use ingest::log::LOG_HEADER_LEN;
use ingest::tables::{GRAPH_HEADER, GlobalCsvWriter};
use ingest::{FrameFields, LogHeader, RoundResult};
use rayon::prelude::*;

use crate::cli::SimulateConfig;

/// What a simulation wrote.
#[derive(Debug, Clone)]
pub struct SimSummary {
    pub graph: PathBuf,
    pub truth: PathBuf,
    pub logs: Vec<PathBuf>,
    pub stats: NetStats,
    /// Bytes of all round logs together.
    pub log_bytes: u64,
    pub elapsed: Duration,
}

/// Nets simulated per core between two hand-overs to the writer thread: enough to keep every
/// core busy, few enough to bound the memory held for the shared files.
const NETS_PER_CORE_IN_FLIGHT: usize = 4;

/// Frames are encoded straight into a buffer of about this size and written when it is
/// full: small enough to stay in the core's L2 cache, where the kernel copies it from into the
/// page cache, large enough that system calls cost nothing.
const WRITE_CHUNK: usize = 256 << 10;

/// Writes cover whole pages of the file: a page written in two parts costs the page cache a
/// second lookup (and on tmpfs zeroing its unwritten part first).
const PAGE: usize = 4096;

/// Where the fields that differ between the frames of one round lie in a frame (DESIGN §3):
/// everything else comes from a template header encoded by `ingest`.
const CLIENT_ID_FIELD: Range<usize> = 12..16;
const CRC_FIELD: Range<usize> = 20..24;
const TIMESTAMP_FIELD: Range<usize> = 24..32;

/// One net's round log, written in page-aligned [`WRITE_CHUNK`]s.
///
/// Frames are appended without their CRC, and the CRCs of everything buffered are computed
/// in one pass before a write: [`ingest::crc::frame_crcs`] interleaves four frames, which keeps
/// the CRC unit busy where one 40-byte frame at a time would leave it idle two cycles in three.
struct LogFile {
    file: File,
    header: LogHeader,
    frame_len: usize,
    /// Bytes not yet written, `buffer[..len]`, starting at a page boundary of the file.
    buffer: Box<[u8]>,
    len: usize,
    /// Where in `buffer` the frames without their CRC yet start.
    unsealed: usize,
    crcs: Vec<u32>,
    /// The fields a template header was encoded for (client id and timestamp zero), and it.
    template_fields: Option<FrameFields>,
    template: [u8; FRAME_HEADER_LEN],
    frames: u64,
    error: Option<std::io::Error>,
}

impl LogFile {
    fn create(path: &Path, lanes: u8, created_ms: u64) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let header = LogHeader {
            lanes,
            created_ms,
            frame_count: 0,
        };
        let frame_len = frame_len(usize::from(lanes));
        let mut buffer = vec![0; WRITE_CHUNK + frame_len].into_boxed_slice();
        buffer[..LOG_HEADER_LEN].copy_from_slice(&header.encode());
        Ok(Self {
            file,
            header,
            frame_len,
            buffer,
            len: LOG_HEADER_LEN,
            unsealed: LOG_HEADER_LEN,
            crcs: Vec::new(),
            template_fields: None,
            template: [0; FRAME_HEADER_LEN],
            frames: 0,
            error: None,
        })
    }

    #[inline]
    fn frame(&mut self, fields: &FrameFields, lanes: &[u64]) {
        let shared = FrameFields {
            client_id: 0,
            timestamp_ms: 0,
            ..*fields
        };
        if self.template_fields != Some(shared) {
            self.set_template(shared, lanes.len());
        }
        // The buffer always has room for one more frame after `len` (it is written out as
        // soon as `len` reaches WRITE_CHUNK), so this slice is the whole frame.
        let Some(frame) = self.buffer.get_mut(self.len..self.len + self.frame_len) else {
            return;
        };
        let (head, data) = frame.split_at_mut(FRAME_HEADER_LEN);
        head.copy_from_slice(&self.template);
        head[CLIENT_ID_FIELD].copy_from_slice(&fields.client_id.to_le_bytes());
        head[TIMESTAMP_FIELD].copy_from_slice(&fields.timestamp_ms.to_le_bytes());
        match (lanes, data.first_chunk_mut::<8>()) {
            // One lane, the common case, without the call into `memcpy` the loop becomes.
            ([only], Some(out)) => *out = only.to_le_bytes(),
            _ => {
                for (out, lane) in data.chunks_exact_mut(8).zip(lanes) {
                    out.copy_from_slice(&lane.to_le_bytes());
                }
            }
        }
        self.len += self.frame_len;
        self.frames += 1;
        if self.len >= WRITE_CHUNK {
            self.write_pages();
        }
    }

    /// Encodes the header shared by the frames of `shared` through `ingest`, CRC field zero.
    #[cold]
    fn set_template(&mut self, shared: FrameFields, lanes: usize) {
        let mut encoded = Vec::with_capacity(self.frame_len);
        // The simulator's lane count is the log's and validated (1..=32), so encoding cannot
        // fail.
        let _ = shared.encode_into(&vec![0; lanes], &mut encoded);
        if let Some(head) = encoded.get(..FRAME_HEADER_LEN) {
            self.template.copy_from_slice(head);
            self.template[CRC_FIELD].fill(0);
        }
        self.template_fields = Some(shared);
    }

    /// Fills in the CRCs of the frames appended since the last call.
    fn seal(&mut self) {
        let frames = &mut self.buffer[self.unsealed..self.len];
        self.crcs.resize(frames.len() / self.frame_len, 0);
        ingest::crc::frame_crcs(frames, self.frame_len, &mut self.crcs);
        for (frame, crc) in frames.chunks_exact_mut(self.frame_len).zip(&self.crcs) {
            frame[CRC_FIELD].copy_from_slice(&crc.to_le_bytes());
        }
        self.unsealed = self.len;
    }

    /// Writes the whole pages of the buffer and keeps the rest (less than a page).
    fn write_pages(&mut self) {
        self.seal();
        let whole = self.len / PAGE * PAGE;
        if self.error.is_none()
            && let Err(error) = self.file.write_all(&self.buffer[..whole])
        {
            self.error = Some(error);
        }
        self.buffer.copy_within(whole..self.len, 0);
        self.len -= whole;
        self.unsealed = self.len;
    }

    /// Writes what is buffered and the frame count into the header; returns the frames.
    fn finish(mut self) -> std::io::Result<u64> {
        self.seal();
        if let Some(error) = self.error {
            return Err(error);
        }
        self.file.write_all(&self.buffer[..self.len])?;
        self.header.frame_count = self.frames;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&self.header.encode())?;
        Ok(self.frames)
    }
}

struct NetSink<'a> {
    log: LogFile,
    truth: Vec<RoundResult>,
    readings: Option<Vec<u8>>,
    progress: &'a ProgressBar,
}

impl SimSink for NetSink<'_> {
    #[inline]
    fn frame(&mut self, fields: &FrameFields, lanes: &[u64]) {
        self.log.frame(fields, lanes);
    }

    #[inline]
    fn reading(&mut self, net: u32, client: u32, round: u32, lanes: &[u64]) {
        if let Some(out) = &mut self.readings {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{net},{client},{round}");
            for lane in lanes {
                let _ = write!(out, ",{lane}");
            }
            out.push(b'\n');
        }
    }

    fn truth(&mut self, row: RoundResult) {
        self.truth.push(row);
    }

    fn round_done(&mut self, _round: u32) {
        self.progress.inc(1);
    }
}

/// One simulated net, its log written, with what the shared files need from it.
struct NetDone {
    graph: KeyGraph,
    path: PathBuf,
    truth: Vec<RoundResult>,
    readings: Option<Vec<u8>>,
    stats: NetStats,
    log_bytes: u64,
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(
        1 << 20,
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    ))
}

fn simulate_net(
    config: &SimulateConfig,
    keystream: &Keystream,
    index: u32,
    progress: &ProgressBar,
) -> Result<NetDone> {
    let sim = &config.sim;
    let plan = NetPlan::new(sim, index)?;
    let path = config.out.join(format!("net-{}.dclog", plan.dc_net_id));
    let created_ms = dcnet::sim::round_start_ms(sim.first_round);
    let mut sink = NetSink {
        log: LogFile::create(&path, sim.lanes, created_ms)?,
        truth: Vec::new(),
        readings: config.reveal_readings.then(Vec::new),
        progress,
    };
    let stats = run_net_with(sim, &plan, keystream, &mut sink);
    let frames = sink
        .log
        .finish()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(NetDone {
        graph: plan.graph,
        path,
        truth: sink.truth,
        readings: sink.readings,
        stats,
        log_bytes: ingest::log::LOG_HEADER_LEN as u64
            + frames * frame_len(usize::from(sim.lanes)) as u64,
    })
}

/// Appends the `graph.csv` rows of `graph`, edges ascending: the rows of
/// `ingest::tables::GraphCsvWriter` (a test checks), without its two strings per edge, which
/// cost a tenth of setting up a simulated net.
fn write_edges(out: &mut impl Write, graph: &KeyGraph) -> std::io::Result<()> {
    let net = graph.dc_net_id();
    for (a, b) in graph.edges() {
        writeln!(out, "{net},{a},{b}")?;
    }
    Ok(())
}

/// The shared files, written in net order by one thread.
struct Tables {
    graph_path: PathBuf,
    truth_path: PathBuf,
    readings_path: Option<PathBuf>,
}

/// What the writer thread accumulated.
#[derive(Default)]
struct Written {
    logs: Vec<PathBuf>,
    stats: NetStats,
    log_bytes: u64,
}

impl Tables {
    fn write(&self, sim: &SimConfig, batches: Receiver<Vec<NetDone>>) -> Result<Written> {
        let graph_error = || format!("cannot write {}", self.graph_path.display());
        let truth_error = || format!("cannot write {}", self.truth_path.display());
        let mut graph = create(&self.graph_path)?;
        writeln!(graph, "{}", GRAPH_HEADER.join(",")).with_context(graph_error)?;
        let mut truth = GlobalCsvWriter::new(create(&self.truth_path)?, usize::from(sim.lanes))
            .with_context(truth_error)?;
        let mut readings = match &self.readings_path {
            Some(path) => {
                let mut out = create(path)?;
                let mut header = String::from("dc_net_id,client_id,round");
                for lane in 0..sim.lanes {
                    header.push_str(&format!(",lane{lane}"));
                }
                writeln!(out, "{header}")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Some((out, path))
            }
            None => None,
        };
        let mut written = Written::default();
        for batch in batches {
            for net in batch {
                write_edges(&mut graph, &net.graph).with_context(graph_error)?;
                for row in &net.truth {
                    truth.write_row(row).with_context(truth_error)?;
                }
                if let (Some((out, path)), Some(bytes)) = (&mut readings, &net.readings) {
                    out.write_all(bytes)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                written.stats.merge(net.stats);
                written.log_bytes += net.log_bytes;
                written.logs.push(net.path);
            }
        }
        graph.flush().with_context(graph_error)?;
        truth.finish().with_context(truth_error)?;
        if let Some((mut out, path)) = readings {
            out.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(written)
    }
}

fn progress_bar(config: &SimConfig) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::from(config.nets) * u64::from(config.rounds));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} simulating [{bar:40}] {human_pos}/{human_len} net-rounds, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Runs the simulation and writes every file into `config.out`.
pub fn simulate(config: &SimulateConfig) -> Result<SimSummary> {
    let started = Instant::now();
    let sim: &SimConfig = &config.sim;
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("cannot create directory {}", config.out.display()))?;
    let tables = Tables {
        graph_path: config.out.join("graph.csv"),
        truth_path: config.out.join("truth.csv"),
        readings_path: config
            .reveal_readings
            .then(|| config.out.join("readings.csv")),
    };
    let keystream = Keystream::new();
    let progress = progress_bar(sim);
    let in_flight = u32::try_from(rayon::current_num_threads() * NETS_PER_CORE_IN_FLIGHT)
        .unwrap_or(u32::MAX)
        .max(1);
    let written = std::thread::scope(|scope| -> Result<Written> {
        // One batch may wait while the next is computed; more would only hold memory.
        let (sender, receiver) = sync_channel::<Vec<NetDone>>(1);
        let writer = scope.spawn(|| tables.write(sim, receiver));
        let mut computed = Ok(());
        let mut first = 0;
        while first < sim.nets {
            let end = first.saturating_add(in_flight).min(sim.nets);
            let batch = (first..end)
                .into_par_iter()
                .map(|index| simulate_net(config, &keystream, index, &progress))
                .collect::<Result<Vec<_>>>();
            match batch {
                // A closed channel means the writer failed; its error is reported below.
                Ok(batch) => {
                    if sender.send(batch).is_err() {
                        break;
                    }
                }
                Err(error) => {
                    computed = Err(error);
                    break;
                }
            }
            first = end;
        }
        drop(sender);
        let written = writer
            .join()
            .map_err(|_| anyhow!("the writer of the shared files panicked"))?;
        computed?;
        written
    })?;
    progress.finish_and_clear();
    Ok(SimSummary {
        graph: tables.graph_path,
        truth: tables.truth_path,
        logs: written.logs,
        stats: written.stats,
        log_bytes: written.log_bytes,
        elapsed: started.elapsed(),
    })
}

pub fn run(config: SimulateConfig) -> Result<()> {
    let summary = simulate(&config)?;
    let frames = summary.stats.transmits + summary.stats.resends;
    let seconds = summary.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "simulated {} nets x {} clients x {} rounds: {} frames ({} transmit, {} resend), {} dropouts, in {:.2} s ({:.0} frames/s, {:.0} MB/s of round logs, {} threads)",
        config.sim.nets,
        config.sim.clients,
        config.sim.rounds,
        frames,
        summary.stats.transmits,
        summary.stats.resends,
        summary.stats.dropouts,
        seconds,
        frames as f64 / seconds,
        summary.log_bytes as f64 / seconds / 1e6,
        rayon::current_num_threads(),
    );
    eprintln!(
        "wrote {}, {}, {} round logs in {}",
        summary.graph.display(),
        summary.truth.display(),
        summary.logs.len(),
        config.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn graph_rows_are_those_of_ingest() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let clients: Vec<u32> = (0..50).map(|i| i * 7_919 + 3).collect();
        let graphs: Vec<KeyGraph> = (1..=3)
            .map(|net| KeyGraph::random(net, &clients, 4, &mut rng).unwrap())
            .collect();
        let mut ours = format!("{}\n", GRAPH_HEADER.join(",")).into_bytes();
        for graph in &graphs {
            write_edges(&mut ours, graph).unwrap();
        }
        let mut expected = Vec::new();
        ingest::tables::write_graph_csv(&mut expected, &graphs).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
    use ingest::{LogWriter, Notification};
    use proptest::prelude::*;

    fn fields(i: u64, net: u32, round: u32) -> FrameFields {
        FrameFields {
            notification: if i % 7 == 3 {
                Notification::Resend
            } else {
                Notification::Transmit
            },
            transmission: true,
            dc_net_id: net,
            client_id: (i as u32).wrapping_mul(2_654_435_761),
            // A new round every 1,000 frames, so templates change.
            round: round.wrapping_add((i / 1000) as u32),
            timestamp_ms: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn log_file_writes_what_ingest_log_writer_writes(
            lanes in 1u8..=32,
            frames in prop_oneof![0u64..50, 6_000u64..20_000],
            net: u32,
            round: u32,
            created_ms: u64,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.dclog");
            let mut ours = LogFile::create(&path, lanes, created_ms).unwrap();
            let mut theirs = LogWriter::new(Vec::new(), lanes, created_ms).unwrap();
            for i in 0..frames {
                let data: Vec<u64> = (0..u64::from(lanes)).map(|l| i.wrapping_mul(31) ^ l << 60).collect();
                let f = fields(i, net, round);
                ours.frame(&f, &data);
                theirs.write_fields(&f, &data).unwrap();
            }
            prop_assert_eq!(ours.finish().unwrap(), frames);
            let mut expected = theirs.finish().unwrap();
            // LogWriter leaves the count at 0 ("unknown") unless finished on a seekable file.
            expected[24..32].copy_from_slice(&frames.to_le_bytes());
            prop_assert!(std::fs::read(&path).unwrap() == expected);
        }
    }
}
