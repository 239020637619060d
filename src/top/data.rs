//! What `opsh top` shows, read through the same operations the procedures use. Each source
//! (Docker, PostgreSQL, Qdrant, Redis, the host) runs on a thread of its own with its own
//! [`Target`], every call under a timeout, so a backend that hangs stalls only its own pane and
//! never the keys.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::bridge::Bridge;
use crate::config::{Settings, key};
use crate::ops::error::OpError;
use crate::ops::{Flags, Target};

/// One container's line.
#[derive(Debug, Clone, Default)]
pub struct Container {
    pub service: String,
    pub state: String,
    pub health: Option<String>,
    pub cpu_percent: Option<f64>,
    pub memory_used: Option<i64>,
    pub uptime_seconds: Option<i64>,
    pub restarts: Option<i64>,
}

/// The job queue.
#[derive(Debug, Clone, Default)]
pub struct Jobs {
    /// job type → status → count.
    pub by_type: BTreeMap<String, BTreeMap<String, i64>>,
    /// The processing job whose last sign of life is oldest: id, type, seconds.
    pub oldest: Option<(i64, String, i64)>,
    pub stuck: usize,
    pub stuck_after: Duration,
    /// Jobs finished (completed or failed) in each of the last minutes, oldest first.
    pub finished_per_minute: Vec<u64>,
}

/// One Qdrant collection.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    pub name: String,
    pub status: String,
    pub points: u64,
}

/// The last integrity check the audit recorded.
#[derive(Debug, Clone)]
pub struct LastCheck {
    /// The procedure that ran it (check-data, daily-check, …), or the op for `opsh -e`.
    pub by: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// "ok", "3 orphans, 1 missing", "critical: …".
    pub outcome: String,
}

/// The vectors pane: collections, and the last integrity check recorded in the audit, or, when
/// none is, a light comparison of counts with PostgreSQL.
#[derive(Debug, Clone, Default)]
pub struct Vectors {
    pub collections: Vec<Collection>,
    pub last_check: Option<LastCheck>,
    /// Each compared collection: its name, the rows PostgreSQL says it should have, or why
    /// they could not be counted.
    pub compared: Vec<(String, Result<i64, String>)>,
    pub compared_at: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
pub struct Redis {
    pub used_memory: i64,
    pub maxmemory: i64,
    pub db_keys: i64,
    pub version: String,
}

/// STT spend against its budgets, and the runs waiting for approval; each part read on its own
/// (spend from PostgreSQL, approvals from Redis), so one backend down leaves the other shown.
#[derive(Debug, Clone)]
pub struct Stt {
    /// None when stt_cost_tracking does not exist (the STT workers create it).
    pub spend: Result<Option<SttSpend>, String>,
    pub approvals: Result<Option<Approvals>, String>,
}

#[derive(Debug, Clone, Default)]
pub struct SttSpend {
    pub today_usd: f64,
    pub today_limit_usd: f64,
    pub today_runs: i64,
    pub month_usd: f64,
    pub month_limit_usd: f64,
    pub month_runs: i64,
}

/// The runs waiting for an operator (None: the hash does not exist, no run ever waited).
#[derive(Debug, Clone, Default)]
pub struct Approvals {
    pub waiting: usize,
    pub oldest_seconds: Option<i64>,
    pub timed_out: usize,
    pub estimated_usd: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Host {
    /// mount point, used bytes, total bytes.
    pub disks: Vec<(String, i64, i64)>,
    pub memory_used: i64,
    pub memory_total: i64,
    pub swap_used: i64,
    pub swap_total: i64,
}

/// What one source read, or why it could not.
#[derive(Debug, Clone)]
pub enum Reading {
    Containers(Result<Vec<Container>, String>),
    Jobs(Result<Jobs, String>),
    Vectors(Result<Vectors, String>),
    Redis(Result<Redis, String>),
    Stt(Result<Stt, String>),
    Host(Result<Host, String>),
}

/// A reading and when it was made.
#[derive(Debug, Clone)]
pub struct Update {
    pub reading: Reading,
    pub at: Instant,
}

/// The sources, in the order their panes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Containers,
    Jobs,
    Vectors,
    Redis,
    Stt,
    Host,
}

pub const SOURCES: [Source; 6] = [
    Source::Containers,
    Source::Jobs,
    Source::Vectors,
    Source::Redis,
    Source::Stt,
    Source::Host,
];

/// Starts one thread per source: each reads, sends its update, then waits `refresh` (or until
/// `wake` says so, or ends when the view is gone).
pub fn spawn(
    settings: &Settings,
    handle: &Handle,
    updates: &Sender<Update>,
    once: bool,
) -> Vec<std::thread::JoinHandle<()>> {
    let refresh = settings.duration(key::TOP_REFRESH);
    SOURCES
        .into_iter()
        .map(|source| {
            let (settings, handle, updates) = (settings.clone(), handle.clone(), updates.clone());
            std::thread::Builder::new()
                .name(format!("top-{source:?}"))
                .spawn(move || {
                    let _entered = handle.enter();
                    let target =
                        Target::new(settings, Bridge::new(handle.clone()), Flags::default());
                    let mut state = State::default();
                    loop {
                        let reading = read(&handle, &target, source, &mut state);
                        let update = Update {
                            reading,
                            at: Instant::now(),
                        };
                        if updates.send(update).is_err() || once {
                            break;
                        }
                        std::thread::sleep(refresh);
                    }
                })
                .expect("a thread for a pane")
        })
        .collect()
}

/// Each collection's rows in PostgreSQL, or why they could not be counted.
type RowCounts = Vec<(String, Result<i64, String>)>;

/// What a source keeps between readings.
#[derive(Default)]
struct State {
    vectors_compared: Option<(RowCounts, Instant)>,
}

/// How often the vectors pane compares counts with PostgreSQL (a count of each collection's
/// rows: light, but not every 2 s).
const COMPARE_EVERY: Duration = Duration::from_secs(60);

fn read(handle: &Handle, target: &Target, source: Source, state: &mut State) -> Reading {
    let timeout = target.settings.duration(key::TOP_TIMEOUT);
    let run =
        |f: std::pin::Pin<Box<dyn Future<Output = Result<Reading, OpError>> + '_>>| match handle
            .block_on(tokio::time::timeout(timeout, f))
        {
            Ok(Ok(reading)) => Ok(reading),
            Ok(Err(e)) => Err(crate::redact::text(&e.to_string())),
            Err(_) => Err(format!(
                "no answer within {} (top.timeout)",
                crate::duration::format(timeout)
            )),
        };
    let result = match source {
        Source::Containers => run(Box::pin(async {
            Ok(Reading::Containers(Ok(containers(target).await?)))
        })),
        Source::Jobs => run(Box::pin(async {
            Ok(Reading::Jobs(Ok(jobs(target).await?)))
        })),
        Source::Vectors => {
            let compare = state
                .vectors_compared
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() >= COMPARE_EVERY);
            let kept = state.vectors_compared.clone();
            let result = run(Box::pin(async {
                let mut v = vectors(target).await?;
                // PostgreSQL down: no record, and the comparison below says why.
                v.last_check = last_check(target).await.ok().flatten();
                if v.last_check.is_some() {
                    // The recorded check says more than a count; no comparison needed.
                } else if compare {
                    v.compared = compared(target, &v.collections).await;
                    v.compared_at = Some(Instant::now());
                } else if let Some((c, at)) = kept {
                    v.compared = c;
                    v.compared_at = Some(at);
                }
                Ok(Reading::Vectors(Ok(v)))
            }));
            if let Ok(Reading::Vectors(Ok(v))) = &result
                && let Some(at) = v.compared_at
            {
                state.vectors_compared = Some((v.compared.clone(), at));
            }
            result
        }
        Source::Redis => run(Box::pin(async {
            let info = crate::ops::cache::info(target).await?;
            Ok(Reading::Redis(Ok(Redis {
                used_memory: info.used_memory,
                maxmemory: info.maxmemory,
                db_keys: info.db_keys,
                version: info.server_version,
            })))
        })),
        Source::Stt => Ok(Reading::Stt(Ok(stt(handle, target, timeout)))),
        Source::Host => Ok(Reading::Host(host(target).map_err(|e| e.to_string()))),
    };
    result.unwrap_or_else(|why| match source {
        Source::Containers => Reading::Containers(Err(why)),
        Source::Jobs => Reading::Jobs(Err(why)),
        Source::Vectors => Reading::Vectors(Err(why)),
        Source::Redis => Reading::Redis(Err(why)),
        Source::Stt => Reading::Stt(Err(why)),
        Source::Host => Reading::Host(Err(why)),
    })
}

async fn containers(target: &Target) -> Result<Vec<Container>, OpError> {
    use crate::ops::docker::{ps, stats};
    let ps = ps(target, None).await?;
    // Stats may fail alone (a container that stops meanwhile): the states still show.
    let stats = if ps.is_empty() {
        Vec::new()
    } else {
        stats(target, None).await.unwrap_or_default()
    };
    Ok(ps
        .into_iter()
        .map(|p| {
            let s = stats.iter().find(|s| s.container == p.container);
            Container {
                cpu_percent: s.map(|s| s.cpu_percent),
                memory_used: s.map(|s| s.memory_used),
                service: p.service,
                state: p.state,
                health: p.health,
                uptime_seconds: p.uptime_seconds,
                restarts: p.restarts,
            }
        })
        .collect())
}

/// Minutes the finished-jobs sparkline covers.
pub const MINUTES: usize = 15;

async fn jobs(target: &Target) -> Result<Jobs, OpError> {
    use crate::ops::jobs::{Filter, counts, list, stuck};
    let stuck_after = target.settings.duration(key::JOBS_STUCK_AFTER_CHECK_JOBS);
    let counts = counts(target).await?;
    let oldest = list(
        target,
        &Filter {
            status: Some("processing".into()),
            job_types: None,
            older_than: None,
            limit: 1,
        },
    )
    .await?;
    let stuck = stuck(target, stuck_after, None, 10_000).await?.len();
    let sql = format!(
        "SELECT floor(extract(epoch FROM LOCALTIMESTAMP - completed_at) / 60)::int8 AS minute, \
         count(*)::int8 AS n FROM processing_jobs \
         WHERE status IN ('completed', 'failed') \
           AND completed_at > LOCALTIMESTAMP - interval '{MINUTES} minutes' GROUP BY 1"
    );
    let rows = crate::ops::db::query(target, &sql, Vec::new()).await?;
    let mut finished = vec![0_u64; MINUTES];
    for row in rows {
        let minute = row
            .get("minute")
            .and_then(|v| v.as_int().ok())
            .unwrap_or(-1);
        let n = row.get("n").and_then(|v| v.as_int().ok()).unwrap_or(0);
        if let Ok(m) = usize::try_from(minute)
            && m < MINUTES
        {
            finished[MINUTES - 1 - m] = u64::try_from(n).unwrap_or(0);
        }
    }
    Ok(Jobs {
        by_type: counts.by_type,
        oldest: oldest
            .into_iter()
            .next()
            .map(|j| (j.id, j.job_type, j.age_seconds)),
        stuck,
        stuck_after,
        finished_per_minute: finished,
    })
}

async fn vectors(target: &Target) -> Result<Vectors, OpError> {
    let collections = crate::ops::qdrant::collections(target).await?;
    Ok(Vectors {
        collections: collections
            .into_iter()
            .map(|c| Collection {
                name: c.name,
                status: c.status,
                points: c.points,
            })
            .collect(),
        ..Vectors::default()
    })
}

async fn last_check(target: &Target) -> Result<Option<LastCheck>, OpError> {
    let Some(r) = crate::ops::audit::last(target, crate::ops::integrity::AUDIT_OP).await? else {
        return Ok(None);
    };
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(&r.at) else {
        return Ok(None);
    };
    Ok(Some(LastCheck {
        by: r.procedure.unwrap_or(r.op),
        at: at.with_timezone(&chrono::Utc),
        outcome: r.outcome,
    }))
}

/// A light integrity check: how many points PostgreSQL says each collection should hold (its
/// vector_mappings rows; for the summaries collection, content marked vector_stored).
async fn compared(
    target: &Target,
    collections: &[Collection],
) -> Vec<(String, Result<i64, String>)> {
    let summaries = target.settings.text(key::QDRANT_SUMMARIES_COLLECTION);
    let mut out = Vec::new();
    for c in collections {
        let (sql, params) = if c.name == summaries {
            (
                "SELECT count(*)::int8 AS n FROM content WHERE vector_stored",
                Vec::new(),
            )
        } else {
            (
                "SELECT count(*)::int8 AS n FROM vector_mappings WHERE vector_collection = $1",
                vec![rhai::Dynamic::from(c.name.clone())],
            )
        };
        let n = crate::ops::db::query(target, sql, params)
            .await
            .map(|rows| {
                rows.first()
                    .and_then(|r| r.get("n"))
                    .and_then(|v| v.as_int().ok())
                    .unwrap_or(0)
            })
            .map_err(|e| crate::redact::text(&e.to_string()));
        out.push((c.name.clone(), n));
    }
    out
}

/// The STT pane: spend and approvals, each under its own timeout.
fn stt(handle: &Handle, target: &Target, timeout: Duration) -> Stt {
    let within = |what: &str| {
        format!(
            "{what}: no answer within {} (top.timeout)",
            crate::duration::format(timeout)
        )
    };
    let why = |e: OpError| crate::redact::text(&e.to_string());
    let spend = match handle.block_on(tokio::time::timeout(
        timeout,
        crate::ops::stt::spend(target),
    )) {
        Ok(Ok(s)) if !s.in_use => Ok(None),
        Ok(Ok(s)) => Ok(Some(SttSpend {
            today_usd: s.today.spent_usd,
            today_limit_usd: s.today.limit_usd,
            today_runs: s.today.runs,
            month_usd: s.month.spent_usd,
            month_limit_usd: s.month.limit_usd,
            month_runs: s.month.runs,
        })),
        Ok(Err(e)) => Err(why(e)),
        Err(_) => Err(within("postgres")),
    };
    let approvals = match handle.block_on(tokio::time::timeout(
        timeout,
        crate::ops::stt::pending(target),
    )) {
        Ok(Ok(p)) if !p.in_use => Ok(None),
        Ok(Ok(p)) => Ok(Some(Approvals {
            waiting: p.approvals.len(),
            // Sorted oldest first.
            oldest_seconds: p.approvals.first().map(|a| a.age_seconds),
            timed_out: p.approvals.iter().filter(|a| a.timed_out).count(),
            estimated_usd: p
                .approvals
                .iter()
                .filter_map(|a| a.estimated_cost_usd)
                .sum(),
        })),
        Ok(Err(e)) => Err(why(e)),
        Err(_) => Err(within("redis")),
    };
    Stt { spend, approvals }
}

fn host(target: &Target) -> Result<Host, OpError> {
    let mut paths = vec!["/".to_string()];
    let backups = target.settings.path(key::BACKUP_DIR);
    if backups.exists() {
        paths.push(backups.display().to_string());
    }
    let mut disks: Vec<(String, i64, i64)> = Vec::new();
    for d in crate::ops::host::disk(&paths)? {
        if !disks.iter().any(|(m, _, _)| *m == d.mount_point) {
            disks.push((d.mount_point, d.used, d.total));
        }
    }
    let m = crate::ops::host::memory()?;
    Ok(Host {
        disks,
        memory_used: m.used,
        memory_total: m.total,
        swap_used: m.swap_used,
        swap_total: m.swap_total,
    })
}

/// Waits for every source's first reading (for `--once`), at most `limit`.
pub fn first_of_each(updates: &Receiver<Update>, limit: Duration) -> Vec<Update> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < SOURCES.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match updates.recv_timeout(left) {
            Ok(u) => got.push(u),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    got
}
