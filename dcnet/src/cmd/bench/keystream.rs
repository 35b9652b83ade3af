//! `dcnet bench keystream`: edge keys per second for both batch shapes and every backend,
//! next to the naive one-cipher-per-key rate and OpenSSL's single-key AES-128-CTR block rate,
//! all measured in the same run.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;
use engine::keystream::{Backend, Keystream, fill_lanes};
use engine::{EdgeSeed, EdgeSeedDeriver, master_key};

use super::{si, thread_cpu_time};
use crate::cli::BenchKeystreamConfig;

/// Keys produced by one measurement, with the time they took.
#[derive(Debug, Clone, Copy)]
struct Measured {
    keys: u64,
    wall: Duration,
    /// The thread's CPU time; the wall time where the OS does not tell.
    cpu: Duration,
}

impl Measured {
    fn per_cpu_second(&self) -> f64 {
        self.keys as f64 / self.cpu.as_secs_f64().max(1e-12)
    }
}

/// Runs `batch` (which returns the keys it made) for about `seconds` on this thread.
fn measure(seconds: f64, mut batch: impl FnMut() -> u64) -> Measured {
    // One untimed batch: page in the buffers, detect the CPU, warm the caches.
    batch();
    let budget = Duration::from_secs_f64(seconds);
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    let mut keys = 0;
    loop {
        keys += batch();
        if start.elapsed() >= budget {
            break;
        }
    }
    let wall = start.elapsed();
    let cpu = match (cpu_start, thread_cpu_time()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => wall,
    };
    Measured { keys, wall, cpu }
}

/// Per core (one thread, keys per CPU second) and all cores (`threads` threads, keys per wall
/// second of the slowest).
#[derive(Debug, Clone, Copy)]
struct Rates {
    per_core: f64,
    all_cores: f64,
}

fn rates<F>(config: &BenchKeystreamConfig, make: impl Fn() -> F + Sync) -> Rates
where
    F: FnMut() -> u64,
{
    let single = measure(config.seconds, make());
    let runs: Vec<Measured> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.threads)
            .map(|_| scope.spawn(|| measure(config.seconds, make())))
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .collect()
    });
    let keys: u64 = runs.iter().map(|m| m.keys).sum();
    let wall = runs.iter().map(|m| m.wall).max().unwrap_or(single.wall);
    Rates {
        per_core: single.per_cpu_second(),
        all_cores: keys as f64 / wall.as_secs_f64().max(1e-12),
    }
}

fn seeds(count: usize) -> Vec<EdgeSeed> {
    let deriver = EdgeSeedDeriver::new(&master_key(42));
    (0..count as u32)
        .map(|i| deriver.derive(1, i, i + 1))
        .collect()
}

/// The single-key AES-128-CTR rate of `openssl speed -evp aes-128-ctr` in 16-byte blocks per
/// CPU second, from its "Doing ... N AES-128-CTR's in T s" line (16 KiB buffers).
struct OpenSsl {
    blocks_per_second: f64,
    command: String,
}

fn openssl_speed(seconds: f64) -> Result<OpenSsl, String> {
    const BUFFER: u64 = 16_384;
    let seconds = seconds.ceil().max(1.0) as u64;
    let args = [
        "speed".to_owned(),
        "-evp".to_owned(),
        "aes-128-ctr".to_owned(),
        "-bytes".to_owned(),
        BUFFER.to_string(),
        "-seconds".to_owned(),
        seconds.to_string(),
    ];
    let command = format!("openssl {}", args.join(" "));
    let output = Command::new("openssl")
        .args(&args)
        .output()
        .map_err(|e| format!("openssl is not available ({e})"))?;
    if !output.status.success() {
        return Err(format!("`{command}` failed ({})", output.status));
    }
    // OpenSSL 3 prints the progress line on stderr, older versions on stdout.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match parse_openssl_doing_line(&text, BUFFER) {
        Some(blocks_per_second) => Ok(OpenSsl {
            blocks_per_second,
            command,
        }),
        None => Err(format!("cannot read the result of `{command}`")),
    }
}

/// Blocks of 16 bytes per second from a line like "Doing AES-128-CTR for 2s on 16384 size
/// blocks: 1123639 AES-128-CTR's in 1.56s" (some versions say "ops" instead of "'s").
fn parse_openssl_doing_line(text: &str, buffer: u64) -> Option<f64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("Doing") && l.contains(&format!("{buffer} size blocks")))?;
    let (_, result) = line.split_once(": ")?;
    let mut words = result.split_whitespace();
    let ops: f64 = words.next()?.parse().ok()?;
    let seconds: f64 = result
        .rsplit_once(" in ")?
        .1
        .trim()
        .trim_end_matches('s')
        .parse()
        .ok()?;
    (seconds > 0.0).then(|| ops * (buffer / 16) as f64 / seconds)
}

pub fn run(config: BenchKeystreamConfig) -> Result<()> {
    let backends: Vec<Backend> = match config.backend {
        Some(backend) => vec![backend],
        None => Backend::available().collect(),
    };
    let all: Vec<&str> = Backend::available().map(Backend::name).collect();
    println!(
        "dcnet bench keystream: backends on this CPU: {} (default {}); {} threads for \"all cores\"",
        all.join(", "),
        Backend::best(),
        config.threads
    );
    println!(
        "rates in edge keys/s; per core = one thread, keys per CPU second; all cores = {} threads, keys per wall second",
        config.threads
    );
    let seeds = seeds(config.edges);
    let rounds: Vec<u32> = (0..config.rounds).collect();
    let openssl = if config.openssl {
        Some(openssl_speed(config.seconds))
    } else {
        None
    };
    let mut summary = Vec::new();
    for &lanes in &config.lanes {
        let blocks = lanes.div_ceil(2) as f64;
        println!();
        println!(
            "L = {lanes} lane(s) = {} AES block(s) per key",
            lanes.div_ceil(2)
        );
        println!(
            "  {:<42} {:>14} {:>16} {:>10}",
            "shape / backend", "per core", "all cores", "vs naive"
        );
        let naive = rates(&config, || {
            let mut out = vec![0u64; seeds.len() * lanes];
            let seeds = &seeds;
            let mut round = 0u32;
            move || {
                round = round.wrapping_add(1);
                for (seed, key) in seeds.iter().zip(out.chunks_exact_mut(lanes)) {
                    fill_lanes(seed, std::hint::black_box(round), key);
                }
                std::hint::black_box(&out);
                seeds.len() as u64
            }
        });
        let row = |label: &str, r: Rates| {
            println!(
                "  {:<42} {:>14} {:>16} {:>9.1}x",
                label,
                format!("{}keys/s", si(r.per_core)),
                format!("{}keys/s", si(r.all_cores)),
                r.per_core / naive.per_core
            );
        };
        row("naive: one ctr::Ctr128BE<Aes128> per key", naive);
        for &backend in &backends {
            let keystream = Keystream::with_backend(backend)?;
            let r = rates(&config, || {
                let mut out = vec![0u64; seeds.len() * lanes];
                let seeds = &seeds;
                let mut round = 0u32;
                move || {
                    round = round.wrapping_add(1);
                    // The shape was validated by the CLI, so this cannot fail.
                    let _ =
                        keystream.fill_edges(seeds, std::hint::black_box(round), lanes, &mut out);
                    std::hint::black_box(&out);
                    seeds.len() as u64
                }
            });
            row(&format!("{} edges x 1 round, {}", config.edges, backend), r);
            if Some(&backend) == backends.last() {
                summary.push(format!(
                    "many edges x one round, L={lanes}, {backend}: {}keys/s per core = {:.1}x naive",
                    si(r.per_core),
                    r.per_core / naive.per_core
                ));
            }
        }
        let fastest = backends.last().copied().unwrap_or(Backend::Portable);
        let keystream = Keystream::with_backend(fastest)?;
        let r = rates(&config, || {
            let mut out = vec![0u64; rounds.len() * lanes];
            let seed = &seeds[0];
            let rounds = &rounds;
            move || {
                let _ = keystream.fill_rounds(seed, std::hint::black_box(rounds), lanes, &mut out);
                std::hint::black_box(&out);
                rounds.len() as u64
            }
        });
        row(
            &format!("1 edge x {} rounds, expand once, {fastest}", config.rounds),
            r,
        );
        let mut line = format!(
            "one edge x {} rounds, L={lanes}, {fastest}: {}keys/s = {}blocks/s per core",
            config.rounds,
            si(r.per_core),
            si(r.per_core * blocks)
        );
        if let Some(Ok(openssl)) = &openssl {
            line.push_str(&format!(
                " = {:.0}% of OpenSSL's single-key CTR",
                100.0 * r.per_core * blocks / openssl.blocks_per_second
            ));
        }
        summary.push(line);
    }
    println!();
    match &openssl {
        Some(Ok(openssl)) => println!(
            "reference: `{}`: {}blocks/s (16-byte blocks per CPU second, one key)",
            openssl.command,
            si(openssl.blocks_per_second)
        ),
        Some(Err(why)) => println!("reference: no OpenSSL figure: {why}"),
        None => println!("reference: OpenSSL not measured (--no-openssl)"),
    }
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openssl_3_and_1_progress_lines() {
        let v3 = "Doing AES-128-CTR for 2s on 16384 size blocks: 1000 AES-128-CTR's in 2.00s\n";
        let v1 =
            "Doing aes-128-ctr ops for 3s on 16384 size blocks: 3000 aes-128-ctr ops in 1.50s\n";
        // 1000 buffers of 1024 blocks in 2 s.
        assert_eq!(parse_openssl_doing_line(v3, 16_384), Some(512_000.0));
        assert_eq!(parse_openssl_doing_line(v1, 16_384), Some(2_048_000.0));
        assert_eq!(parse_openssl_doing_line("no such line", 16_384), None);
        assert_eq!(parse_openssl_doing_line(v3, 64), None);
    }
}
