//! Waiting until the containers run and their healthchecks pass.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::containers::{Ps, ps};
use crate::ops::Target;
use crate::ops::error::OpError;

#[derive(Debug, Serialize)]
pub struct Ready {
    pub ready: bool,
    pub waited_seconds: f64,
    /// Containers not (yet) running, or running but not healthy.
    pub not_ready: Vec<Ps>,
}

/// Polls until every container (of `services`) runs and, where it has a healthcheck, is
/// healthy; or `timeout` passes.
pub async fn wait_ready(
    target: &Target,
    services: Option<&[String]>,
    timeout: Duration,
    poll: Duration,
) -> Result<Ready, OpError> {
    let started = Instant::now();
    loop {
        let not_ready: Vec<Ps> = ps(target, services)
            .await?
            .into_iter()
            .filter(|p| p.state != "running" || p.health.as_deref().is_some_and(|h| h != "healthy"))
            .collect();
        let waited = started.elapsed();
        if not_ready.is_empty() || waited >= timeout {
            return Ok(Ready {
                ready: not_ready.is_empty(),
                waited_seconds: waited.as_secs_f64(),
                not_ready,
            });
        }
        tokio::time::sleep(poll.min(timeout.saturating_sub(waited))).await;
    }
}
