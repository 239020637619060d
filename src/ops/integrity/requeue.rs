//! Rebuilding what is missing instead of deleting it. The vectorize workers rebuild a content
//! item (its chunks and summary) when a job for it is pending, and chunk point ids are
//! deterministic (uuid5 of content id, index and text), so a rebuild overwrites what exists and
//! adds what is missing: [`requeue`] marks items not vector_stored and queues one pending job
//! each. And the transcript_available flag, which the deployment's own fix script sets from
//! whether transcripts rows exist: [`transcript_flags`] finds the mismatches both ways,
//! [`fix_transcript_flags`] sets the flags to what the data shows.

use serde::Serialize;

use super::report::SAMPLE;
use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;

#[derive(Debug, Default, Serialize)]
pub struct Requeued {
    pub dry_run: bool,
    pub job_type: String,
    /// Content ids set vector_stored = false (with --dry-run: that would be), ascending.
    pub content_ids: Vec<i64>,
    /// Content ids a pending job was queued for.
    pub queued: Vec<i64>,
    /// Content ids that already had a pending or processing job of the type: none added.
    pub already_queued: Vec<i64>,
    /// Ids given that name no content row.
    pub unknown: Vec<i64>,
}

/// One statement: marks the items and queues the jobs; an item with a pending or processing
/// job of the type gets none. A transaction-scoped advisory lock keeps two runs from queueing
/// the same item twice.
const REQUEUE: &str = "
WITH given AS (SELECT id FROM content WHERE id = ANY($1)),
     marked AS (
         UPDATE content SET vector_stored = false, updated_at = CURRENT_TIMESTAMP
         WHERE id IN (SELECT id FROM given) RETURNING id),
     queued AS (
         INSERT INTO processing_jobs (job_type, content_id, status)
         SELECT $2, g.id, 'pending' FROM given g
         WHERE NOT EXISTS (SELECT 1 FROM processing_jobs j
                           WHERE j.content_id = g.id AND j.job_type = $2
                             AND j.status IN ('pending', 'processing'))
         ORDER BY g.id
         RETURNING content_id)
SELECT COALESCE((SELECT array_agg(id ORDER BY id) FROM marked), '{}'),
       COALESCE((SELECT array_agg(content_id ORDER BY content_id) FROM queued), '{}')";

/// What a requeue would do, read without writing.
const PLAN: &str = "
SELECT COALESCE(array_agg(g.id ORDER BY g.id), '{}'),
       COALESCE(array_agg(g.id ORDER BY g.id) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM processing_jobs j WHERE j.content_id = g.id AND j.job_type = $2
             AND j.status IN ('pending', 'processing'))), '{}')
FROM content g WHERE g.id = ANY($1)";

/// Sets the items not vector_stored and queues a `job_type` job for each (unless one is
/// pending or processing), in one transaction, after confirmation (the count is the items).
pub async fn requeue(
    target: &Target,
    content_ids: &[i64],
    job_type: &str,
) -> Result<Requeued, OpError> {
    let change = Change {
        op: "integrity::requeue",
        summary: format!(
            "mark {} content items not vector_stored and queue a pending {job_type} job for each",
            content_ids.len()
        ),
        count: content_ids.len() as i64,
        confirm: Confirm::Yes,
    };
    let go = proceed(target, &change)?;
    let result = requeue_now(target, content_ids, job_type, go).await?;
    if go && !content_ids.is_empty() {
        done(
            target,
            &change,
            &format!(
                "{} marked, {} jobs queued, {} already queued",
                result.content_ids.len(),
                result.queued.len(),
                result.already_queued.len()
            ),
        );
    }
    Ok(result)
}

/// The requeue itself, asked for already: `go` false reports what it would do.
pub(super) async fn requeue_now(
    target: &Target,
    content_ids: &[i64],
    job_type: &str,
    go: bool,
) -> Result<Requeued, OpError> {
    let mut ids: Vec<i32> = Vec::with_capacity(content_ids.len());
    for &id in content_ids {
        ids.push(
            i32::try_from(id)
                .map_err(|_| OpError::invalid(format!("content id {id} is out of range")))?,
        );
    }
    ids.sort_unstable();
    ids.dedup();
    let mut out = Requeued {
        dry_run: !go,
        job_type: job_type.to_string(),
        ..Requeued::default()
    };
    if ids.is_empty() {
        return Ok(out);
    }
    let pool = target.pg().await?;
    let (marked, queued): (Vec<i32>, Vec<i32>) = if go {
        let mut tx = pool.begin().await.map_err(target.pg_err())?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('opsh integrity::requeue'))")
            .execute(&mut *tx)
            .await
            .map_err(target.pg_err())?;
        let r = sqlx::query_as(REQUEUE)
            .bind(&ids)
            .bind(job_type)
            .fetch_one(&mut *tx)
            .await
            .map_err(target.pg_err())?;
        tx.commit().await.map_err(target.pg_err())?;
        r
    } else {
        sqlx::query_as(PLAN)
            .bind(&ids)
            .bind(job_type)
            .fetch_one(pool)
            .await
            .map_err(target.pg_err())?
    };
    let wide = |v: &[i32]| v.iter().map(|&i| i64::from(i)).collect::<Vec<_>>();
    out.content_ids = wide(&marked);
    out.queued = wide(&queued);
    out.already_queued = wide(
        &marked
            .iter()
            .copied()
            .filter(|i| !queued.contains(i))
            .collect::<Vec<_>>(),
    );
    out.unknown = wide(
        &ids.iter()
            .copied()
            .filter(|i| !marked.contains(i))
            .collect::<Vec<_>>(),
    );
    Ok(out)
}

/// transcript_available against the transcripts rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TranscriptFlags {
    /// Whether the check ran (both tables present and readable).
    pub checked: bool,
    /// Content flagged transcript_available without a transcripts row.
    pub flagged_without_rows: u64,
    /// Content with transcripts rows but not flagged (false or NULL).
    pub rows_without_flag: u64,
    pub sample_flagged_without_rows: Vec<i64>,
    pub sample_rows_without_flag: Vec<i64>,
}

const HAS_ROWS: &str = "EXISTS (SELECT 1 FROM transcripts t WHERE t.content_id = c.id)";

/// Counts the mismatches both ways, with samples.
pub async fn transcript_flags(target: &Target) -> Result<TranscriptFlags, OpError> {
    let pool = target.pg().await?;
    let sql = format!(
        "SELECT COALESCE(array_agg(c.id ORDER BY c.id) FILTER (WHERE c.transcript_available), '{{}}'),
                COALESCE(array_agg(c.id ORDER BY c.id) FILTER (WHERE NOT COALESCE(c.transcript_available, false)), '{{}}')
         FROM content c
         WHERE COALESCE(c.transcript_available, false) <> {HAS_ROWS}"
    );
    let (flagged, unflagged): (Vec<i32>, Vec<i32>) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .map_err(target.pg_err())?;
    let sample = |v: &[i32]| v.iter().take(SAMPLE).map(|&i| i64::from(i)).collect();
    Ok(TranscriptFlags {
        checked: true,
        flagged_without_rows: flagged.len() as u64,
        rows_without_flag: unflagged.len() as u64,
        sample_flagged_without_rows: sample(&flagged),
        sample_rows_without_flag: sample(&unflagged),
    })
}

#[derive(Debug, Default, Serialize)]
pub struct FlagsFixed {
    /// Set to false: flagged without transcripts rows (with --dry-run: would be).
    pub cleared: u64,
    /// Set to true: transcripts rows without the flag.
    pub set: u64,
}

/// Sets transcript_available to whether transcripts rows exist, where it differs; the
/// predicate is re-checked in the UPDATE itself. `go` false only counts.
pub(super) async fn fix_transcript_flags(target: &Target, go: bool) -> Result<FlagsFixed, OpError> {
    if !go {
        let now = transcript_flags(target).await?;
        return Ok(FlagsFixed {
            cleared: now.flagged_without_rows,
            set: now.rows_without_flag,
        });
    }
    let pool = target.pg().await?;
    let sql = format!(
        "WITH changed AS (
             UPDATE content c SET transcript_available = {HAS_ROWS}, updated_at = CURRENT_TIMESTAMP
             WHERE COALESCE(c.transcript_available, false) <> {HAS_ROWS}
             RETURNING c.transcript_available)
         SELECT count(*) FILTER (WHERE NOT transcript_available), count(*) FILTER (WHERE transcript_available)
         FROM changed"
    );
    let (cleared, set): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .map_err(target.pg_err())?;
    Ok(FlagsFixed {
        cleared: cleared as u64,
        set: set as u64,
    })
}
