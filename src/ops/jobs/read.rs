//! Reading the queue: counts by type and status, listing and stuck jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::sql::{JobSql, STATUSES};
use crate::ops::Target;
use crate::ops::clients::postgres::fmt_ts;
use crate::ops::error::OpError;

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
