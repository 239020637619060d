//! Waiting for the workers to go idle.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::read::{Filter, Job, list};
use crate::ops::Target;
use crate::ops::error::OpError;

#[derive(Debug, Serialize)]
pub struct Idle {
    pub idle: bool,
    pub waited_seconds: f64,
    /// What was still processing when the wait ended (empty when idle).
    pub still_running: Vec<Job>,
}

/// Polls until no job (of the given types) is processing, or the timeout passes.
pub async fn wait_idle(
    target: &Target,
    timeout: Duration,
    poll: Duration,
    job_types: Option<Vec<String>>,
) -> Result<Idle, OpError> {
    let started = Instant::now();
    let filter = Filter {
        status: Some("processing".into()),
        job_types,
        older_than: None,
        limit: 1000,
    };
    // Seconds waited out of the timeout; drawn only on a terminal.
    let progress = crate::ops::progress::Progress::bar(timeout.as_secs(), "waiting for jobs");
    loop {
        let running = list(target, &filter).await?;
        let waited = started.elapsed();
        progress.set_position(waited.as_secs());
        progress.set_message(format!("{} jobs processing", running.len()));
        if running.is_empty() || waited >= timeout {
            return Ok(Idle {
                idle: running.is_empty(),
                waited_seconds: waited.as_secs_f64(),
                still_running: running,
            });
        }
        tokio::time::sleep(poll.min(timeout.saturating_sub(waited))).await;
    }
}
