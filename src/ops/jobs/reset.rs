//! Resetting jobs: stuck ones back to pending (or to failed past max_retries), and every
//! processing one before a restart.

use std::time::Duration;

use serde::Serialize;

use super::sql::JobSql;
use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;
use crate::text::count;

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
