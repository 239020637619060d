//! Retrying failed jobs.

use serde::Serialize;

use super::read::Filter;
use super::sql::JobSql;
use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;
use crate::text::count;

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
