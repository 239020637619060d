//! One sample of each running container's resource use, computed as the docker CLI does.

use bollard::query_parameters::StatsOptions;
use futures_util::StreamExt;
use futures_util::future::join_all;
use serde::Serialize;

use super::containers::{Found, find};
use crate::ops::Target;
use crate::ops::error::OpError;

#[derive(Debug, Serialize)]
pub struct Stats {
    pub service: String,
    pub container: String,
    pub cpu_percent: f64,
    pub memory_used: i64,
    pub memory_limit: i64,
    pub memory_percent: f64,
    pub net_rx: i64,
    pub net_tx: i64,
    pub block_read: i64,
    pub block_write: i64,
    pub pids: i64,
}

/// One sample of each running container's resource use (`docker stats --no-stream`).
pub async fn stats(target: &Target, services: Option<&[String]>) -> Result<Vec<Stats>, OpError> {
    let found: Vec<Found> = find(target, services)
        .await?
        .into_iter()
        .filter(|f| f.state == "running" || f.state == "paused")
        .collect();
    let docker = target.docker().await?;
    let sampled = join_all(found.iter().map(|f| {
        let api = &docker.api;
        async move {
            // Not one-shot: the engine takes two samples a second apart, so the CPU share
            // has a base to be computed against.
            let mut stream = api.stats(
                &f.id,
                Some(StatsOptions {
                    stream: false,
                    one_shot: false,
                }),
            );
            stream.next().await.transpose()
        }
    }))
    .await;
    let mut out = Vec::new();
    for (f, s) in found.iter().zip(sampled) {
        let Some(s) = s.map_err(target.docker_err())? else {
            continue;
        };
        let u = |v: Option<u64>| v.unwrap_or(0) as i64;
        let cpu = s.cpu_stats.as_ref();
        let pre = s.precpu_stats.as_ref();
        let total = |c: Option<&bollard::models::ContainerCpuStats>| {
            c.and_then(|c| c.cpu_usage.as_ref())
                .and_then(|u| u.total_usage)
                .unwrap_or(0)
        };
        let system = |c: Option<&bollard::models::ContainerCpuStats>| {
            c.and_then(|c| c.system_cpu_usage).unwrap_or(0)
        };
        let cpu_delta = total(cpu).saturating_sub(total(pre)) as f64;
        let system_delta = system(cpu).saturating_sub(system(pre)) as f64;
        let cpus = cpu
            .and_then(|c| c.online_cpus.map(f64::from))
            .or_else(|| {
                cpu.and_then(|c| c.cpu_usage.as_ref())
                    .and_then(|u| u.percpu_usage.as_ref())
                    .map(|p| p.len() as f64)
            })
            .unwrap_or(1.0);
        let cpu_percent = if system_delta > 0.0 {
            cpu_delta / system_delta * cpus * 100.0
        } else {
            0.0
        };
        let mem = s.memory_stats.as_ref();
        // As the docker CLI: usage minus the page cache (cgroup v2 inactive_file, v1
        // total_inactive_file).
        let cache = mem
            .and_then(|m| m.stats.as_ref())
            .and_then(|st| {
                st.get("inactive_file")
                    .or_else(|| st.get("total_inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        let usage = mem.and_then(|m| m.usage).unwrap_or(0);
        let used = usage.saturating_sub(cache) as i64;
        let limit = u(mem.and_then(|m| m.limit));
        let (mut rx, mut tx) = (0, 0);
        for n in s.networks.as_ref().into_iter().flat_map(|n| n.values()) {
            rx += u(n.rx_bytes);
            tx += u(n.tx_bytes);
        }
        let (mut read, mut write) = (0, 0);
        let entries = s
            .blkio_stats
            .as_ref()
            .and_then(|b| b.io_service_bytes_recursive.as_ref());
        for e in entries.into_iter().flatten() {
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => read += u(e.value),
                Some("write") => write += u(e.value),
                _ => {}
            }
        }
        out.push(Stats {
            service: f.service.clone(),
            container: f.name.clone(),
            cpu_percent: (cpu_percent * 100.0).round() / 100.0,
            memory_used: used,
            memory_limit: limit,
            memory_percent: if limit > 0 {
                (used as f64 / limit as f64 * 10000.0).round() / 100.0
            } else {
                0.0
            },
            net_rx: rx,
            net_tx: tx,
            block_read: read,
            block_write: write,
            pids: u(s.pids_stats.as_ref().and_then(|p| p.current)),
        });
    }
    Ok(out)
}
