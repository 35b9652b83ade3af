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
            "{frames} frames, {:.1} M frames/s",
            frames as f64 / seconds / 1e6
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

/// The final line of a run: frames/s and GB/s.
pub fn throughput_line(frames: u64, bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{frames} frames, {bytes} bytes in {seconds:.3} s: {:.1} M frames/s, {:.2} GB/s",
        frames as f64 / seconds / 1e6,
        bytes as f64 / seconds / 1e9
    )
}
