//! The progress bar of long runs: frames, bytes, rate and ETA on a terminal; nothing when
//! standard error is not a terminal or with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingest::pipeline::Progress;

/// Runs `work` while a bar follows `progress` from another thread.
pub fn with_bar<T>(progress: &Progress, quiet: bool, work: impl FnOnce() -> T) -> T {
    if quiet || !std::io::stderr().is_terminal() {
        return work();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| draw(progress, &done));
        let result = work();
        done.store(true, Ordering::Relaxed);
        result
    })
}

fn draw(progress: &Progress, done: &AtomicBool) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    while !done.load(Ordering::Relaxed) {
        let total = progress.bytes_total.load(Ordering::Relaxed);
        let bytes = progress.bytes_done.load(Ordering::Relaxed);
        let frames = progress.records_done.load(Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_length(total);
        bar.set_position(bytes);
        bar.set_message(format!(
            "{frames} frames, {} frames/s",
            si(frames as f64 / seconds).trim_end()
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

/// The final line of a run: frames/s and bytes/s, each with the SI prefix that suits it, so
/// that a small run reads `23.0 k frames/s` rather than `0.0 M frames/s`.
pub fn throughput_line(frames: u64, bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{frames} frames, {bytes} bytes in {seconds:.3} s: {} frames/s, {}B/s",
        si(frames as f64 / seconds).trim_end(),
        si(bytes as f64 / seconds)
    )
}

/// A rate with an SI prefix: `12.3 M`, `456.0 k`, `7.0 ` (the space ends the number, so a
/// unit follows directly).
pub fn si(value: f64) -> String {
    let (scaled, prefix) = if value >= 1e9 {
        (value / 1e9, "G")
    } else if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    format!("{scaled:.1} {prefix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_prefixes() {
        assert_eq!(si(2.5e8), "250.0 M");
        assert_eq!(si(1.2e9), "1.2 G");
        assert_eq!(si(999.0), "999.0 ");
        assert_eq!(si(23_000.0), "23.0 k");
    }

    #[test]
    fn the_final_line_scales_its_rates() {
        // 20 M frames of 40 bytes in 0.25 s: 80 M frames/s, 3.2 GB/s.
        let big = throughput_line(20_000_000, 800_000_000, Duration::from_millis(250));
        assert_eq!(
            big,
            "20000000 frames, 800000000 bytes in 0.250 s: 80.0 M frames/s, 3.2 GB/s"
        );
        // 23 frames of 48 bytes in 1 ms: 23 k frames/s, 1.1 MB/s.
        let small = throughput_line(23, 1104, Duration::from_millis(1));
        assert_eq!(
            small,
            "23 frames, 1104 bytes in 0.001 s: 23.0 k frames/s, 1.1 MB/s"
        );
    }
}
