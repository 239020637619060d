//! `jobs::` — the processing_jobs queue: counts, listing, stuck jobs and their reset, waiting
//! for the workers to go idle, retrying failed jobs.
//!
//! Every write is one set-based UPDATE whose WHERE clause is the whole predicate: under READ
//! COMMITTED PostgreSQL re-checks it on the newest row version after waiting for a concurrent
//! writer, so a job that finished meanwhile, or that another reset already took, is left alone.

use crate::config::key;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::ops::Target;
use crate::ops::clients::postgres::fmt_ts;
use crate::ops::db::schema::{JobShape, job_shape};
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Registrar, Spec};
use crate::text::count;

pub const STATUSES: [&str; 4] = ["pending", "processing", "completed", "failed"];

/// A job's last sign of life. The partial index idx_processing_jobs_stuck is on exactly this
/// expression, and it is compared with LOCALTIMESTAMP (a timestamp, like the columns) so the
/// index applies.
pub const LAST_ACTIVITY: &str =
    "COALESCE(GREATEST(started_at, updated_at, completed_at), created_at)";

/// The SQL for processing_jobs as this database has it. The deployment's init.sql makes neither
/// retry_count nor updated_at (`opsh migrate` adds them); without them reads go on, a missing
/// retry_count read as 0 and a missing updated_at as NULL.
struct JobSql {
    has: JobShape,
    retry_count: &'static str,
    updated_at: &'static str,
    last_activity: &'static str,
}

impl JobSql {
    async fn of(target: &Target) -> Result<JobSql, OpError> {
        let pool = target.pg().await?;
        let (shape, database) = job_shape(target.settings.text(key::POSTGRES_URL), pool)
            .await
            .map_err(target.pg_err())?;
        if !shape.table {
            return Err(OpError::backend(
                target.pg_backend(),
                ErrorKind::MissingSchema,
                format!(
                    "database {database} has no table processing_jobs: run `opsh migrate` to create the \
                     deployment's schema, or point postgres.url at the deployment's database"
                ),
            ));
        }
        Ok(JobSql {
            has: shape,
            retry_count: if shape.retry_count {
                "retry_count"
            } else {
                "0"
            },
            updated_at: if shape.updated_at {
                "updated_at"
            } else {
                "NULL::timestamp"
            },
            last_activity: if shape.updated_at {
                LAST_ACTIVITY
            } else {
                "COALESCE(GREATEST(started_at, completed_at), created_at)"
            },
        })
    }

    fn columns(&self) -> String {
        format!(
            "id, job_type, content_id, status, priority, {} AS retry_count, error_message, \
             created_at, started_at, completed_at, {} AS updated_at, \
             EXTRACT(EPOCH FROM (LOCALTIMESTAMP - {}))::float8 AS age",
            self.retry_count, self.updated_at, self.last_activity
        )
    }

    /// `, updated_at = LOCALTIMESTAMP` where the column exists: a write stamps it if it can.
    fn touch(&self) -> &'static str {
        if self.has.updated_at {
            ", updated_at = LOCALTIMESTAMP"
        } else {
            ""
        }
    }
}

/// A job's last sign of life as this database can compute it (with or without updated_at);
/// fails, as every read here does, where processing_jobs is missing.
pub async fn last_activity(target: &Target) -> Result<&'static str, OpError> {
    Ok(JobSql::of(target).await?.last_activity)
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    pub by_type: BTreeMap<String, BTreeMap<String, i64>>,
}

pub async fn counts(target: &Target) -> Result<Counts, OpError> {
    JobSql::of(target).await?;
    let pool = target.pg().await?;
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT job_type::text, COALESCE(status, 'null')::text, count(*)
         FROM processing_jobs GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .map_err(target.pg_err())?;
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
    let shape = JobSql::of(target).await?;
    let pool = target.pg().await?;
    let (columns, last_activity) = (shape.columns(), shape.last_activity);
    let sql = format!(
        "SELECT {columns} FROM processing_jobs
         WHERE ($1::text IS NULL OR status = $1)
           AND ($2::text[] IS NULL OR job_type = ANY($2))
           AND ($3::float8 IS NULL OR {last_activity} < LOCALTIMESTAMP - make_interval(secs => $3))
         ORDER BY {last_activity} NULLS FIRST, id
         LIMIT $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&filter.status)
        .bind(&filter.job_types)
        .bind(filter.older_than.map(|d| d.as_secs_f64()))
        .bind(filter.limit)
        .fetch_all(pool)
        .await
        .map_err(target.pg_err())?;
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
    /// False where processing_jobs has no retry_count (a database `opsh migrate` never
    /// touched): the reset is not counted and max_retries cannot send a job to 'failed'.
    pub retries_counted: bool,
}

impl Reset {
    fn new(dry_run: bool, ids: Vec<i64>, failed_ids: Vec<i64>, retries_counted: bool) -> Reset {
        Reset {
            dry_run,
            reset: ids.len() as i64,
            failed: failed_ids.len() as i64,
            ids,
            failed_ids,
            retries_counted,
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
/// Where processing_jobs has no retry_count (the deployment's own schema, never migrated) the
/// jobs are reset as the deployment's tools did, all to 'pending', uncounted: max_retries
/// cannot apply until `opsh migrate` adds the column (the run's one warning says so).
pub async fn reset_stuck(target: &Target, req: &ResetStuck) -> Result<Reset, OpError> {
    let shape = JobSql::of(target).await?;
    let counted = shape.has.retry_count;
    let (last_activity, touch) = (shape.last_activity, shape.touch());
    let predicate = format!(
        "status = 'processing'
           AND {last_activity} < LOCALTIMESTAMP - make_interval(secs => $1)
           AND ($4::text[] IS NULL OR job_type = ANY($4))"
    );
    // Without retry_count, $2 (max_retries) is bound but unused (its type is sent with the
    // statement, so PostgreSQL accepts it): every job goes to 'pending'.
    let (new_status, count_retry) = if counted {
        (
            "CASE WHEN retry_count >= $2 THEN 'failed' ELSE 'pending' END",
            ", retry_count = retry_count + 1",
        )
    } else {
        ("'pending'", "")
    };
    let mut change = Change {
        op: "jobs::reset_stuck",
        summary: format!(
            "reset jobs processing for more than {}",
            crate::text::duration(req.older_than)
        ),
        count: 0,
        confirm: Confirm::Never,
    };
    let go = proceed(target, &change)?;
    let changed = if !go {
        format!(
            "SELECT id, {new_status}::text AS status, $3::text AS reason FROM processing_jobs WHERE {predicate}"
        )
    } else {
        format!(
            "UPDATE processing_jobs
             SET status = {new_status}, started_at = NULL{count_retry},
                 error_message = $3{touch}
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
    let reset = Reset::new(!go, ids, failed_ids, counted);
    if go {
        change.count = reset.reset + reset.failed;
        done(
            target,
            &change,
            &format!("{} pending again, {} failed", reset.reset, reset.failed),
        );
    }
    Ok(reset)
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
        .map_err(target.pg_err())?;
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
    let shape = JobSql::of(target).await?;
    let (touch, counted) = (shape.touch(), shape.has.retry_count);
    const PROCESSING: &str =
        "SELECT id, 'pending'::text AS status, $1::text AS reason FROM processing_jobs
         WHERE status = 'processing' AND ($2::text[] IS NULL OR job_type = ANY($2))";
    let (planned, _) = split_ids(target, PROCESSING, |q| q.bind(reason).bind(&job_types)).await?;
    let change = Change {
        op: "jobs::reset_processing",
        summary: format!(
            "reset {} to pending",
            count(planned.len() as i64, "processing job", None)
        ),
        count: planned.len() as i64,
        confirm: Confirm::Yes,
    };
    if !proceed(target, &change)? {
        return Ok(Reset::new(true, planned, Vec::new(), counted));
    }
    let changed = format!(
        "UPDATE processing_jobs
         SET status = 'pending', started_at = NULL, error_message = $1{touch}
         WHERE status = 'processing' AND ($2::text[] IS NULL OR job_type = ANY($2))
         RETURNING id, status"
    );
    let (ids, failed_ids) =
        split_ids(target, &changed, |q| q.bind(reason).bind(&job_types)).await?;
    done(target, &change, &format!("{} pending again", ids.len()));
    Ok(Reset::new(false, ids, failed_ids, counted))
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

#[derive(Debug, Serialize)]
pub struct Retried {
    pub dry_run: bool,
    pub retried: i64,
    pub ids: Vec<i64>,
}

/// Failed jobs back to 'pending', oldest failures first, at most `limit`.
pub async fn retry_failed(target: &Target, filter: &Filter) -> Result<Retried, OpError> {
    let shape = JobSql::of(target).await?;
    let pool = target.pg().await?;
    let (last_activity, touch) = (shape.last_activity, shape.touch());
    let select = format!(
        "SELECT id FROM processing_jobs
         WHERE status = 'failed'
           AND ($1::text[] IS NULL OR job_type = ANY($1))
           AND ($2::float8 IS NULL OR {last_activity} < LOCALTIMESTAMP - make_interval(secs => $2))
         ORDER BY {last_activity}, id LIMIT $3"
    );
    // The pick is a MATERIALIZED CTE: inside `IN (… LIMIT … SKIP LOCKED)` PostgreSQL may run the
    // subquery again and retry more than `limit` (seen with jobs::purge's DELETE).
    let update = format!(
        "WITH picked AS MATERIALIZED ({select} FOR UPDATE SKIP LOCKED)
         UPDATE processing_jobs
         SET status = 'pending', started_at = NULL, completed_at = NULL{touch}
         WHERE status = 'failed' AND id IN (SELECT id FROM picked)
         RETURNING id"
    );
    let run = |sql: String| async move {
        let mut ids: Vec<i64> = sqlx::query_scalar::<_, i32>(sqlx::AssertSqlSafe(sql))
            .bind(&filter.job_types)
            .bind(filter.older_than.map(|d| d.as_secs_f64()))
            .bind(filter.limit)
            .fetch_all(pool)
            .await
            .map_err(target.pg_err())?
            .into_iter()
            .map(i64::from)
            .collect();
        ids.sort_unstable();
        Ok::<_, OpError>(ids)
    };
    let planned = run(select).await?;
    let change = Change {
        op: "jobs::retry_failed",
        summary: format!(
            "put {} back to pending",
            count(planned.len() as i64, "failed job", None)
        ),
        count: planned.len() as i64,
        confirm: Confirm::Yes,
    };
    let go = proceed(target, &change)?;
    let ids = if go { run(update).await? } else { planned };
    if go {
        done(target, &change, &format!("{} pending again", ids.len()));
    }
    Ok(Retried {
        dry_run: !go,
        retried: ids.len() as i64,
        ids,
    })
}

/// The configured stuck threshold of a procedure (`jobs.stuck_after.<name>`).
fn stuck_after(target: &Target, name: &str) -> Result<String, OpError> {
    let Some(key) = key::stuck_after(name) else {
        return Err(OpError::invalid(format!(
            "no setting `jobs.stuck_after.{name}`; known: check_data, safe_start, reset_stuck_jobs, check_jobs"
        )));
    };
    Ok(target
        .settings
        .text_by_name(key.name())
        .unwrap_or_default()
        .to_string())
}

const JOB_TYPE: Opt = Opt::new(
    "job_type",
    Kind::Strings,
    Default::None,
    "only these job types (one or an array)",
);
const STUCK_AFTER: Default = Default::Setting(key::JOBS_STUCK_AFTER_RESET_STUCK_JOBS.name());

static COUNTS: Spec = Spec {
    module: "jobs",
    name: "counts",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "Job counts: total, by_status (pending, processing, completed, failed, always present) and \
          by_type (job_type → status → count).",
    examples: &[Example::new(
        "jobs::counts().by_status",
        r#"{"completed": 2, "failed": 1, "pending": 2, "processing": 3}"#,
    )],
};

static LIST: Spec = Spec {
    module: "jobs",
    name: "list",
    params: &[],
    options: &[
        Opt::new(
            "status",
            Kind::Str,
            Default::None,
            "only jobs in this status",
        ),
        JOB_TYPE,
        Opt::new(
            "older_than",
            Kind::Duration,
            Default::None,
            "last activity at least this long ago",
        ),
        Opt::new(
            "limit",
            Kind::Int,
            Default::Value("100"),
            "at most this many jobs",
        ),
    ],
    returns: "Array",
    doc: "Jobs, oldest activity first. Each job: id, job_type, content_id, status, priority, \
          retry_count, error_message, created_at, started_at, completed_at, updated_at, age_seconds.",
    examples: &[Example::new(
        r#"jobs::list(#{status: "pending"}).map(|j| j.id)"#,
        "[4, 5]",
    )],
};

static STUCK: Spec = Spec {
    module: "jobs",
    name: "stuck",
    params: &[],
    options: &[
        Opt::new(
            "older_than",
            Kind::Duration,
            STUCK_AFTER,
            "processing with no sign of life for this long",
        ),
        JOB_TYPE,
        Opt::new(
            "limit",
            Kind::Int,
            Default::Value("10000"),
            "at most this many jobs",
        ),
    ],
    returns: "Array",
    doc: "Jobs in 'processing' whose started_at (or a newer updated_at) is older than older_than, \
          oldest first.",
    examples: &[Example::new(
        r#"jobs::stuck(#{older_than: "1h"}).map(|j| j.id)"#,
        "[2, 1]",
    )],
};

static RESET_STUCK: Spec = Spec {
    module: "jobs",
    name: "reset_stuck",
    params: &[],
    options: &[
        Opt::new(
            "older_than",
            Kind::Duration,
            STUCK_AFTER,
            "processing with no sign of life for this long",
        ),
        Opt::new(
            "max_retries",
            Kind::Int,
            Default::Setting(key::JOBS_MAX_RETRIES.name()),
            "jobs already retried this often go to 'failed'",
        ),
        Opt::new(
            "reason",
            Kind::Str,
            Default::None,
            "the error_message written (default names the threshold)",
        ),
        JOB_TYPE,
    ],
    returns: "Map",
    doc: "Resets stuck jobs in one UPDATE that re-checks its own predicate: status back to \
          'pending', started_at cleared, retry_count + 1, error_message = reason. Jobs whose \
          retry_count reached max_retries go to 'failed' instead, so a poison job stops looping. \
          On a database without retry_count (the deployment's init.sql, never migrated) every \
          stuck job goes to 'pending' uncounted and retries_counted is false; max_retries \
          applies once `opsh migrate` adds the column. Returns reset, failed, ids, failed_ids, \
          retries_counted, dry_run; with --dry-run nothing changes and the same fields say what \
          would.",
    examples: &[
        Example::new(
            r#"let r = jobs::reset_stuck(#{older_than: "1h"}); [r.reset, r.failed, r.ids, r.failed_ids]"#,
            "[1, 1, [1], [2]]",
        ),
        Example::new(
            r#"jobs::reset_stuck(#{older_than: "1h", max_retries: 10}).ids"#,
            "[1, 2]",
        ),
    ],
};

static RESET_PROCESSING: Spec = Spec {
    module: "jobs",
    name: "reset_processing",
    params: &[],
    options: &[
        Opt::new(
            "reason",
            Kind::Str,
            Default::Value("Service stopped during processing"),
            "the error_message written",
        ),
        JOB_TYPE,
    ],
    returns: "Map",
    doc: "safe-stop's step: every 'processing' job back to 'pending' (retry_count unchanged; a \
          deliberate stop is not the job's fault). Asks for confirmation (--yes answers it); with \
          --dry-run nothing changes.",
    examples: &[Example::new(
        "let r = jobs::reset_processing(); [r.reset, r.ids]",
        "[3, [1, 2, 3]]",
    )],
};

static WAIT_IDLE: Spec = Spec {
    module: "jobs",
    name: "wait_idle",
    params: &[],
    options: &[
        Opt::new(
            "timeout",
            Kind::Duration,
            Default::Value("30s"),
            "give up after this long",
        ),
        Opt::new(
            "poll",
            Kind::Duration,
            Default::Value("2s"),
            "how often to look",
        ),
        JOB_TYPE,
    ],
    returns: "Map",
    doc: "Waits until no job is processing (of job_type, when given) or timeout passes. Returns \
          idle, waited_seconds and still_running (the jobs).",
    examples: &[
        Example::new(
            r#"jobs::wait_idle(#{timeout: "1s", poll: "100ms", job_type: "no-such-type"}).idle"#,
            "true",
        ),
        Example::new(
            r#"let w = jobs::wait_idle(#{timeout: "200ms", poll: "50ms"}); [w.idle, w.still_running.len()]"#,
            "[false, 3]",
        ),
    ],
};

static RETRY_FAILED: Spec = Spec {
    module: "jobs",
    name: "retry_failed",
    params: &[],
    options: &[
        JOB_TYPE,
        Opt::new(
            "older_than",
            Kind::Duration,
            Default::None,
            "failed at least this long ago",
        ),
        Opt::new(
            "limit",
            Kind::Int,
            Default::Value("100"),
            "at most this many jobs",
        ),
    ],
    returns: "Map",
    doc: "Puts failed jobs back to 'pending', oldest failures first. Asks for confirmation (--yes \
          answers it). Returns retried, ids, dry_run; with --dry-run nothing changes.",
    examples: &[Example::new("jobs::retry_failed().ids", "[8]")],
};

static STUCK_AFTER_SPEC: Spec = Spec {
    module: "jobs",
    name: "stuck_after",
    params: &[Param::new(
        "procedure",
        Kind::Str,
        "check_data, safe_start, reset_stuck_jobs or check_jobs",
    )],
    options: &[],
    returns: "String",
    doc: "The configured stuck threshold of a procedure, from the setting jobs.stuck_after.<procedure>.",
    examples: &[Example::new(
        r#"jobs::stuck_after("check_data")"#,
        r#""1d""#,
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&COUNTS, |c| c.block(counts(c.target)));
    reg.add(&LIST, |c| {
        let filter = Filter {
            status: c.opt_str("status")?,
            job_types: c.opt_strings("job_type")?,
            older_than: c.opt_duration("older_than")?,
            limit: c.int("limit")?,
        };
        c.block(list(c.target, &filter))
    });
    reg.add(&STUCK, |c| {
        let (older_than, job_types) = (c.duration("older_than")?, c.opt_strings("job_type")?);
        c.block(stuck(c.target, older_than, job_types, c.int("limit")?))
    });
    reg.add(&RESET_STUCK, |c| {
        let older_than = c.duration("older_than")?;
        let max_retries = c.int("max_retries")?;
        if max_retries < 0 {
            return Err(OpError::invalid(format!(
                "option `max_retries`: {max_retries} is negative"
            ))
            .into());
        }
        let req = ResetStuck {
            older_than,
            max_retries,
            reason: c.opt_str("reason")?.unwrap_or_else(|| {
                format!(
                    "reset by opsh: processing for more than {}",
                    crate::text::duration(older_than)
                )
            }),
            job_types: c.opt_strings("job_type")?,
        };
        let result = c.block(reset_stuck(c.target, &req))?;
        if !result.dry_run {
            tracing::info!(
                "reset {} to pending, {} to failed",
                count(result.reset, "stuck job", None),
                result.failed
            );
        }
        Ok(result)
    });
    reg.add(&RESET_PROCESSING, |c| {
        let (reason, job_types) = (c.str("reason")?, c.opt_strings("job_type")?);
        c.block(reset_processing(c.target, &reason, job_types))
    });
    reg.add(&WAIT_IDLE, |c| {
        let timeout = c.duration("timeout")?;
        let poll = c.duration("poll")?.max(Duration::from_millis(10));
        c.block(wait_idle(
            c.target,
            timeout,
            poll,
            c.opt_strings("job_type")?,
        ))
    });
    reg.add(&RETRY_FAILED, |c| {
        let filter = Filter {
            status: None,
            job_types: c.opt_strings("job_type")?,
            older_than: c.opt_duration("older_than")?,
            limit: c.int("limit")?,
        };
        c.block(retry_failed(c.target, &filter))
    });
    reg.add(&STUCK_AFTER_SPEC, |c| {
        Ok(stuck_after(c.target, &c.str("procedure")?)?)
    });
}
