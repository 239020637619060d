//! `jobs::` — the processing_jobs queue: counts, listing, stuck jobs and their reset, waiting
//! for the workers to go idle, retrying failed jobs.
//!
//! Every write is one set-based UPDATE whose WHERE clause is the whole predicate: under READ
//! COMMITTED PostgreSQL re-checks it on the newest row version after waiting for a concurrent
//! writer, so a job that finished meanwhile, or that another reset already took, is left alone.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Map, Module, NativeCallContext};
use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::ops::Target;
use crate::ops::db::{fmt_ts, pg_err};
use crate::ops::support::{OpError, Opts, RhaiResult, at, block, func, op_error, to_rhai};

pub const STATUSES: [&str; 4] = ["pending", "processing", "completed", "failed"];

/// A job's last sign of life. The partial index idx_processing_jobs_stuck is on exactly this
/// expression, and it is compared with LOCALTIMESTAMP (a timestamp, like the columns) so the
/// index applies.
const LAST_ACTIVITY: &str = "COALESCE(GREATEST(started_at, updated_at, completed_at), created_at)";

const JOB_COLUMNS: &str = "id, job_type, content_id, status, priority, retry_count, error_message, \
     created_at, started_at, completed_at, updated_at, \
     EXTRACT(EPOCH FROM (LOCALTIMESTAMP - COALESCE(GREATEST(started_at, updated_at, completed_at), created_at)))::float8 AS age";

#[derive(Debug, Serialize)]
pub struct Counts {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    pub by_type: BTreeMap<String, BTreeMap<String, i64>>,
}

pub async fn counts(target: &Target) -> Result<Counts, OpError> {
    let pool = target.pg().await?;
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT job_type::text, COALESCE(status, 'null')::text, count(*)
         FROM processing_jobs GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .map_err(pg_err(target))?;
    let zero = || {
        STATUSES
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect::<BTreeMap<_, _>>()
    };
    let mut counts = Counts {
        total: 0,
        by_status: zero(),
        by_type: BTreeMap::new(),
    };
    for (job_type, status, n) in rows {
        counts.total += n;
        *counts.by_status.entry(status.clone()).or_default() += n;
        *counts
            .by_type
            .entry(job_type)
            .or_insert_with(zero)
            .entry(status)
            .or_default() += n;
    }
    Ok(counts)
}

#[derive(Debug, Serialize)]
pub struct Job {
    pub id: i64,
    pub job_type: String,
    pub content_id: Option<i64>,
    pub status: Option<String>,
    pub priority: Option<i64>,
    pub retry_count: i64,
    pub error_message: Option<String>,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub updated_at: Option<String>,
    /// Seconds since the job's last sign of life.
    pub age_seconds: i64,
}

fn job(row: &PgRow) -> Job {
    let ts = |name: &str| {
        row.get::<Option<chrono::NaiveDateTime>, _>(name)
            .map(fmt_ts)
    };
    Job {
        id: i64::from(row.get::<i32, _>("id")),
        job_type: row.get("job_type"),
        content_id: row.get::<Option<i32>, _>("content_id").map(i64::from),
        status: row.get("status"),
        priority: row.get::<Option<i32>, _>("priority").map(i64::from),
        retry_count: i64::from(row.get::<i32, _>("retry_count")),
        error_message: row.get("error_message"),
        created_at: ts("created_at"),
        started_at: ts("started_at"),
        completed_at: ts("completed_at"),
        updated_at: ts("updated_at"),
        age_seconds: row.get::<Option<f64>, _>("age").unwrap_or(0.0) as i64,
    }
}

/// Which jobs a call is about.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<String>,
    pub job_types: Option<Vec<String>>,
    /// Last activity at least this long ago.
    pub older_than: Option<Duration>,
    pub limit: i64,
}

pub async fn list(target: &Target, filter: &Filter) -> Result<Vec<Job>, OpError> {
    let pool = target.pg().await?;
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM processing_jobs
         WHERE ($1::text IS NULL OR status = $1)
           AND ($2::text[] IS NULL OR job_type = ANY($2))
           AND ($3::float8 IS NULL OR {LAST_ACTIVITY} < LOCALTIMESTAMP - make_interval(secs => $3))
         ORDER BY {LAST_ACTIVITY} NULLS FIRST, id
         LIMIT $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&filter.status)
        .bind(&filter.job_types)
        .bind(filter.older_than.map(|d| d.as_secs_f64()))
        .bind(filter.limit)
        .fetch_all(pool)
        .await
        .map_err(pg_err(target))?;
    Ok(rows.iter().map(job).collect())
}

/// Jobs in 'processing' whose last sign of life is older than `older_than`, oldest first.
pub async fn stuck(
    target: &Target,
    older_than: Duration,
    job_types: Option<Vec<String>>,
    limit: i64,
) -> Result<Vec<Job>, OpError> {
    let filter = Filter {
        status: Some("processing".into()),
        job_types,
        older_than: Some(older_than),
        limit,
    };
    list(target, &filter).await
}

#[derive(Debug, Default, Serialize)]
pub struct Reset {
    pub dry_run: bool,
    /// Jobs put back to 'pending' (with --dry-run: that would be).
    pub reset: i64,
    /// Jobs that had reached max_retries and went to 'failed' instead.
    pub failed: i64,
    pub ids: Vec<i64>,
    pub failed_ids: Vec<i64>,
}

impl Reset {
    fn new(dry_run: bool, ids: Vec<i64>, failed_ids: Vec<i64>) -> Reset {
        Reset {
            dry_run,
            reset: ids.len() as i64,
            failed: failed_ids.len() as i64,
            ids,
            failed_ids,
        }
    }
}

pub struct ResetStuck {
    pub older_than: Duration,
    pub max_retries: i64,
    pub reason: String,
    pub job_types: Option<Vec<String>>,
}

/// Puts stuck jobs back to 'pending' (or 'failed' once they reached max_retries) in one UPDATE.
pub async fn reset_stuck(target: &Target, req: &ResetStuck) -> Result<Reset, OpError> {
    let predicate = format!(
        "status = 'processing'
           AND {LAST_ACTIVITY} < LOCALTIMESTAMP - make_interval(secs => $1)
           AND ($4::text[] IS NULL OR job_type = ANY($4))"
    );
    let new_status = "CASE WHEN retry_count >= $2 THEN 'failed' ELSE 'pending' END";
    let changed = if target.flags.dry_run {
        format!(
            "SELECT id, {new_status}::text AS status, $3::text AS reason FROM processing_jobs WHERE {predicate}"
        )
    } else {
        format!(
            "UPDATE processing_jobs
             SET status = {new_status}, started_at = NULL, retry_count = retry_count + 1,
                 error_message = $3, updated_at = LOCALTIMESTAMP
             WHERE {predicate}
             RETURNING id, status"
        )
    };
    let (ids, failed_ids) = split_ids(target, &changed, |q| {
        q.bind(req.older_than.as_secs_f64())
            .bind(i32::try_from(req.max_retries).unwrap_or(i32::MAX))
            .bind(&req.reason)
            .bind(&req.job_types)
    })
    .await?;
    Ok(Reset::new(target.flags.dry_run, ids, failed_ids))
}

type PgQueryAs<'q> =
    sqlx::query::QueryAs<'q, sqlx::Postgres, (Vec<i32>, Vec<i32>), sqlx::postgres::PgArguments>;

/// Runs a statement yielding (id, status) rows and returns the ids split into those not failed
/// and those failed. The split happens in the server and comes back as one row of two arrays:
/// 100,000 single-row results would cost more than the UPDATE itself.
async fn split_ids<'q>(
    target: &Target,
    changed: &str,
    bind: impl FnOnce(PgQueryAs<'q>) -> PgQueryAs<'q>,
) -> Result<(Vec<i64>, Vec<i64>), OpError> {
    let pool = target.pg().await?;
    let sql = format!(
        "WITH changed AS ({changed})
         SELECT COALESCE(array_agg(id) FILTER (WHERE status <> 'failed'), '{{}}'),
                COALESCE(array_agg(id) FILTER (WHERE status = 'failed'), '{{}}')
         FROM changed"
    );
    let (ids, failed): (Vec<i32>, Vec<i32>) = bind(sqlx::query_as(sqlx::AssertSqlSafe(sql)))
        .fetch_one(pool)
        .await
        .map_err(pg_err(target))?;
    let sorted = |v: Vec<i32>| {
        let mut v: Vec<i64> = v.into_iter().map(i64::from).collect();
        v.sort_unstable();
        v
    };
    Ok((sorted(ids), sorted(failed)))
}

/// safe-stop: every 'processing' job back to 'pending'. A deliberate stop is not the job's
/// failure, so retry_count stays as it is.
pub async fn reset_processing(
    target: &Target,
    reason: &str,
    job_types: Option<Vec<String>>,
) -> Result<Reset, OpError> {
    let changed = if target.flags.dry_run {
        "SELECT id, 'pending'::text AS status, $1::text AS reason FROM processing_jobs
         WHERE status = 'processing' AND ($2::text[] IS NULL OR job_type = ANY($2))"
    } else {
        "UPDATE processing_jobs
         SET status = 'pending', started_at = NULL, error_message = $1, updated_at = LOCALTIMESTAMP
         WHERE status = 'processing' AND ($2::text[] IS NULL OR job_type = ANY($2))
         RETURNING id, status"
    };
    let (ids, failed_ids) = split_ids(target, changed, |q| q.bind(reason).bind(&job_types)).await?;
    Ok(Reset::new(target.flags.dry_run, ids, failed_ids))
}

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
    loop {
        let running = list(target, &filter).await?;
        let waited = started.elapsed();
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

#[derive(Debug, Serialize)]
pub struct Retried {
    pub dry_run: bool,
    pub retried: i64,
    pub ids: Vec<i64>,
}

/// Failed jobs back to 'pending', oldest failures first, at most `limit`.
pub async fn retry_failed(target: &Target, filter: &Filter) -> Result<Retried, OpError> {
    let pool = target.pg().await?;
    let select = format!(
        "SELECT id FROM processing_jobs
         WHERE status = 'failed'
           AND ($1::text[] IS NULL OR job_type = ANY($1))
           AND ($2::float8 IS NULL OR {LAST_ACTIVITY} < LOCALTIMESTAMP - make_interval(secs => $2))
         ORDER BY {LAST_ACTIVITY}, id LIMIT $3"
    );
    let sql = if target.flags.dry_run {
        select
    } else {
        format!(
            "UPDATE processing_jobs
             SET status = 'pending', started_at = NULL, completed_at = NULL, updated_at = LOCALTIMESTAMP
             WHERE status = 'failed' AND id IN ({select} FOR UPDATE SKIP LOCKED)
             RETURNING id"
        )
    };
    let mut ids: Vec<i64> = sqlx::query_scalar::<_, i32>(sqlx::AssertSqlSafe(sql))
        .bind(&filter.job_types)
        .bind(filter.older_than.map(|d| d.as_secs_f64()))
        .bind(filter.limit)
        .fetch_all(pool)
        .await
        .map_err(pg_err(target))?
        .into_iter()
        .map(i64::from)
        .collect();
    ids.sort_unstable();
    Ok(Retried {
        dry_run: target.flags.dry_run,
        retried: ids.len() as i64,
        ids,
    })
}

/// The configured stuck threshold of a procedure (`jobs.stuck_after.<name>`).
fn stuck_after(target: &Target, name: &str) -> Result<String, OpError> {
    let key = format!("jobs.stuck_after.{name}");
    let value = target.settings.get(&key);
    if value.is_empty() {
        return Err(OpError::Invalid(format!(
            "no setting `{key}`; known: check_data, safe_start, reset_stuck_jobs, check_jobs"
        )));
    }
    Ok(value.to_string())
}

fn default_threshold(target: &Target) -> Duration {
    target
        .settings
        .duration("jobs.stuck_after.reset_stuck_jobs")
        .unwrap_or(Duration::from_secs(3600))
}

pub fn module(target: &Rc<Target>) -> Module {
    let mut m = Module::new();

    let t = target.clone();
    func(
        "counts",
        &["Map"],
        "Job counts: total, by_status (pending, processing, completed, failed, always present) and\n\
by_type (job_type → status → count).\n\
```rhai\nlet c = jobs::counts(); c.total >= 0 && c.by_status.processing >= 0\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext| -> RhaiResult<Dynamic> {
        to_rhai("jobs::counts", &block(&ctx, &t, "jobs::counts", counts(&t))?)
    });

    let t = target.clone();
    func(
        "list",
        &["options: Map", "Array"],
        "Jobs, oldest activity first. Options: status, job_type (text or array), older_than (by last\n\
activity), limit (default 100). Each job: id, job_type, content_id, status, retry_count,\n\
error_message, created_at, started_at, completed_at, updated_at, age_seconds.\n\
```rhai\njobs::list(#{status: \"failed\", limit: 5}).len() <= 5\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, opts: Map| -> RhaiResult<Dynamic> {
        let op = "jobs::list";
        let mut o = Opts::new(&ctx, op, opts);
        let filter = Filter {
            status: o.string("status")?,
            job_types: o.strings("job_type")?,
            older_than: o.duration("older_than")?,
            limit: o.int("limit")?.unwrap_or(100),
        };
        o.finish(&["status", "job_type", "older_than", "limit"])?;
        to_rhai(op, &block(&ctx, &t, op, list(&t, &filter))?)
    });

    let t = target.clone();
    func(
        "stuck",
        &["options: Map", "Array"],
        "Jobs in 'processing' whose started_at (or a newer updated_at) is older than older_than\n\
(default: the setting jobs.stuck_after.reset_stuck_jobs, 1h). Options: older_than, job_type, limit.\n\
```rhai\njobs::stuck(#{older_than: \"1h\"}).all(|j| j.status == \"processing\" && j.age_seconds >= 3600)\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, opts: Map| -> RhaiResult<Dynamic> {
        let op = "jobs::stuck";
        let mut o = Opts::new(&ctx, op, opts);
        let older_than = o.duration("older_than")?.unwrap_or_else(|| default_threshold(&t));
        let job_types = o.strings("job_type")?;
        let limit = o.int("limit")?.unwrap_or(10_000);
        o.finish(&["older_than", "job_type", "limit"])?;
        to_rhai(op, &block(&ctx, &t, op, stuck(&t, older_than, job_types, limit))?)
    });

    let t = target.clone();
    func(
        "reset_stuck",
        &["options: Map", "Map"],
        "Resets stuck jobs in one UPDATE that re-checks its own predicate: status back to\n\
'pending', started_at cleared, retry_count + 1, error_message = reason. Jobs whose\n\
retry_count reached max_retries (default: the setting jobs.max_retries, 3) go to 'failed'\n\
instead, so a poison job stops looping. Options: older_than, max_retries, reason, job_type.\n\
Returns reset, failed, ids, failed_ids, dry_run; with --dry-run nothing changes.\n\
```rhai\nlet r = jobs::reset_stuck(#{older_than: \"1h\", reason: \"stuck for over an hour\"}); r.reset >= 0 && r.failed >= 0\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, opts: Map| -> RhaiResult<Dynamic> {
        let op = "jobs::reset_stuck";
        let mut o = Opts::new(&ctx, op, opts);
        let older_than = o.duration("older_than")?.unwrap_or_else(|| default_threshold(&t));
        let req = ResetStuck {
            older_than,
            max_retries: o.int("max_retries")?.unwrap_or_else(|| t.settings.int("jobs.max_retries")),
            reason: o.string("reason")?.unwrap_or_else(|| {
                format!("reset by opsh: processing for more than {}", crate::duration::format(older_than))
            }),
            job_types: o.strings("job_type")?,
        };
        o.finish(&["older_than", "max_retries", "reason", "job_type"])?;
        let result = block(&ctx, &t, op, reset_stuck(&t, &req))?;
        if !result.dry_run {
            tracing::info!("reset {} stuck jobs to pending, {} to failed", result.reset, result.failed);
        }
        to_rhai(op, &result)
    });

    let t = target.clone();
    func(
        "reset_processing",
        &["options: Map", "Map"],
        "safe-stop's step: every 'processing' job back to 'pending' (retry_count unchanged; a\n\
deliberate stop is not the job's fault). Options: reason, job_type. With --dry-run nothing changes.\n\
```rhai\nlet r = jobs::reset_processing(#{reason: \"service stopped during processing\"}); r.failed == 0\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, opts: Map| -> RhaiResult<Dynamic> {
        let op = "jobs::reset_processing";
        let mut o = Opts::new(&ctx, op, opts);
        let reason = o.string("reason")?.unwrap_or_else(|| "Service stopped during processing".into());
        let job_types = o.strings("job_type")?;
        o.finish(&["reason", "job_type"])?;
        to_rhai(op, &block(&ctx, &t, op, reset_processing(&t, &reason, job_types))?)
    });

    let t = target.clone();
    func(
        "wait_idle",
        &["options: Map", "Map"],
        "Waits until no job is processing (of job_type, when given) or timeout (default 30s) passes,\n\
polling every poll (default 2s). Returns idle, waited_seconds and still_running (the jobs).\n\
```rhai\nlet w = jobs::wait_idle(#{timeout: \"1s\", poll: \"100ms\", job_type: \"no-such-type\"}); w.idle\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, opts: Map| -> RhaiResult<Dynamic> {
        let op = "jobs::wait_idle";
        let mut o = Opts::new(&ctx, op, opts);
        let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(30));
        let poll = o.duration("poll")?.unwrap_or(Duration::from_secs(2)).max(Duration::from_millis(10));
        let job_types = o.strings("job_type")?;
        o.finish(&["timeout", "poll", "job_type"])?;
        to_rhai(op, &block(&ctx, &t, op, wait_idle(&t, timeout, poll, job_types))?)
    });

    let t = target.clone();
    func(
        "retry_failed",
        &["options: Map", "Map"],
        "Puts failed jobs back to 'pending', oldest failures first. Options: job_type, older_than,\n\
limit (default 100). Returns retried, ids, dry_run; with --dry-run nothing changes.\n\
```rhai\njobs::retry_failed(#{job_type: \"vectorize\", limit: 10}).retried <= 10\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, opts: Map| -> RhaiResult<Dynamic> {
        let op = "jobs::retry_failed";
        let mut o = Opts::new(&ctx, op, opts);
        let filter = Filter {
            status: None,
            job_types: o.strings("job_type")?,
            older_than: o.duration("older_than")?,
            limit: o.int("limit")?.unwrap_or(100),
        };
        o.finish(&["job_type", "older_than", "limit"])?;
        to_rhai(op, &block(&ctx, &t, op, retry_failed(&t, &filter))?)
    });

    let t = target.clone();
    func(
        "stuck_after",
        &["procedure: &str", "String"],
        "The configured stuck threshold of a procedure: check_data (1d), safe_start (1h),\n\
reset_stuck_jobs (1h) or check_jobs (1h), from jobs.stuck_after.<procedure>.\n\
```rhai\nduration(jobs::stuck_after(\"check_data\")) >= 60\n```",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext, name: &str| -> RhaiResult<String> {
            stuck_after(&t, name).map_err(|e| at(&ctx, op_error("jobs::stuck_after", e)))
        },
    );

    m
}
