//! Progress while a backup or restore runs: a live line on a terminal (indicatif), plain
//! lines every few seconds otherwise. Reads the shared counters; never blocks the work.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::archive::ArchiveProgress;

/// Human-readable size with binary units.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Reports the counters of one running archive until dropped.
pub struct ProgressReporter {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ProgressReporter {
    /// Starts reporting `label` (e.g. "backup root.tar") from `progress`. `quiet` reports
    /// nothing (JSON output keeps stderr for errors only when asked).
    pub fn start(label: String, progress: Arc<ArchiveProgress>, quiet: bool) -> Self {
        if quiet {
            return Self {
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let terminal = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let bar = terminal.then(|| {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix}: {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(label.clone());
                bar
            });
            let period = if terminal {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            };
            // Plain output starts after one period, so short runs print only the summary.
            let mut show = terminal;
            loop {
                if show {
                    let line = status_line(&progress, started.elapsed());
                    match &bar {
                        Some(bar) => bar.set_message(line),
                        None => eprintln!("{label}: {line}"),
                    }
                }
                show = true;
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = &mut stopped => break,
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops reporting and waits until the live line is cleared.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn status_line(progress: &ArchiveProgress, elapsed: Duration) -> String {
    let bytes = progress.bytes.load(Ordering::Relaxed);
    let files = progress.files.load(Ordering::Relaxed);
    let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
    format!(
        "{} in {files} files, {}/s",
        human_bytes(bytes),
        human_bytes(rate as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(5 << 30), "5.00 GiB");
    }
}
