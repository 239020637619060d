//! Progress bars for long operations (orphan deletion, backup, restore, waiting for jobs, acting
//! on containers), drawn on stderr only when stderr is a terminal: under cron, in a pipe or in
//! a test nothing at all is written, so logs and --json output stay clean.
//!
//! ```ignore
//! let progress = Progress::bar(ids.len() as u64, "deleting orphan points");
//! for batch in ids.chunks(500) {
//!     delete(batch).await?;
//!     progress.inc(batch.len() as u64);
//! }
//! progress.finish();
//! ```

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar or spinner; does nothing when stderr is not a terminal.
pub struct Progress(Option<ProgressBar>);

/// Whether progress is drawn: stderr is a terminal (and TERM is not `dumb`).
pub fn enabled() -> bool {
    std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

impl Progress {
    /// A bar of `len` steps: `message [=====>    ] 120/500 (00:12)`.
    pub fn bar(len: u64, message: &str) -> Progress {
        Self::make(message, || {
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} ({elapsed}, ~{eta} left)",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        })
    }

    /// A bar of bytes: `message [=====>    ] 12.5 MiB/80.0 MiB (3.1 MiB/s)`.
    pub fn bytes(len: u64, message: &str) -> Progress {
        Self::make(message, || {
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, ~{eta} left)",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        })
    }

    /// A spinner for work of unknown length: `⠋ message (00:12)`.
    pub fn spinner(message: &str) -> Progress {
        Self::make(message, || {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
    }

    fn make(message: &str, bar: impl FnOnce() -> ProgressBar) -> Progress {
        if !enabled() {
            return Progress(None);
        }
        let bar = bar();
        bar.set_message(message.to_string());
        Progress(Some(bar))
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        self.0.is_some()
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    pub fn set_position(&self, pos: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(pos);
        }
    }

    pub fn set_length(&self, len: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(len);
        }
    }

    pub fn set_message(&self, message: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.into());
        }
    }

    /// Removes the bar from the terminal (the report says how it ended).
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
