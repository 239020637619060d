//! The SQL of processing_jobs as this database has it: with or without retry_count and
//! updated_at (the deployment's init.sql makes neither).

use crate::config::key;

use crate::ops::Target;
use crate::ops::db::schema::{JobShape, job_shape};
use crate::ops::error::{ErrorKind, OpError};

pub const STATUSES: [&str; 4] = ["pending", "processing", "completed", "failed"];

/// A job's last sign of life. The partial index idx_processing_jobs_stuck is on exactly this
/// expression, and it is compared with LOCALTIMESTAMP (a timestamp, like the columns) so the
/// index applies.
pub const LAST_ACTIVITY: &str =
    "COALESCE(GREATEST(started_at, updated_at, completed_at), created_at)";

/// The SQL for processing_jobs as this database has it. The deployment's init.sql makes neither
/// retry_count nor updated_at (`opsh migrate` adds them); without them reads go on, a missing
/// retry_count read as 0 and a missing updated_at as NULL.
pub(super) struct JobSql {
    pub(super) has: JobShape,
    pub(super) retry_count: &'static str,
    pub(super) updated_at: &'static str,
    pub(super) last_activity: &'static str,
}

impl JobSql {
    pub(super) async fn of(target: &Target) -> Result<JobSql, OpError> {
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

    pub(super) fn columns(&self) -> String {
        format!(
            "id, job_type, content_id, status, priority, {} AS retry_count, error_message, \
             created_at, started_at, completed_at, {} AS updated_at, \
             EXTRACT(EPOCH FROM (LOCALTIMESTAMP - {}))::float8 AS age",
            self.retry_count, self.updated_at, self.last_activity
        )
    }

    /// `, updated_at = LOCALTIMESTAMP` where the column exists: a write stamps it if it can.
    pub(super) fn touch(&self) -> &'static str {
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
