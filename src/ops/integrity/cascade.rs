//! The guide's cascade delete of one content item: its points in Qdrant, then its rows in one
//! PostgreSQL transaction.

use serde::Serialize;

use crate::config::key;
use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;
use crate::ops::qdrant::{self as qd, PointKey};

#[derive(Debug, Serialize)]
pub struct ContentDeleted {
    pub dry_run: bool,
    pub content_id: i64,
    /// Whether the content row existed.
    pub existed: bool,
    pub chunk_points: u64,
    pub summary_points: u64,
    pub transcripts: i64,
    pub jobs: i64,
    pub mappings: i64,
}

/// The guide's cascade delete of one content item. Qdrant first (its chunk points by id from
/// the mappings and by payload content_id, its summary point), then one PostgreSQL transaction
/// (transcripts, jobs, mappings, the row). A crash between the two leaves mappings whose points
/// are missing — check-data reports them — and running it again finishes the job.
pub async fn delete_content(target: &Target, content_id: i64) -> Result<ContentDeleted, OpError> {
    let pool = target.pg().await?;
    let content_collection = target
        .settings
        .text(key::QDRANT_CONTENT_COLLECTION)
        .to_string();
    let summaries = target
        .settings
        .text(key::QDRANT_SUMMARIES_COLLECTION)
        .to_string();
    let id32 = i32::try_from(content_id)
        .map_err(|_| OpError::invalid(format!("content id {content_id} is out of range")))?;
    let (existed, transcripts, jobs_n, mappings): (bool, i64, i64, i64) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM content WHERE id = $1),
                (SELECT count(*) FROM transcripts WHERE content_id = $1),
                (SELECT count(*) FROM processing_jobs WHERE content_id = $1),
                (SELECT count(*) FROM vector_mappings WHERE content_id = $1)",
    )
    .bind(id32)
    .fetch_one(pool)
    .await
    .map_err(target.pg_err())?;
    let chunk_ids: Vec<String> = sqlx::query_scalar(
        "SELECT chunk_id FROM vector_mappings WHERE content_id = $1 AND vector_collection = $2",
    )
    .bind(id32)
    .bind(&content_collection)
    .fetch_all(pool)
    .await
    .map_err(target.pg_err())?;
    let chunk_keys: Vec<PointKey> = chunk_ids
        .iter()
        .filter_map(|t| PointKey::parse(t))
        .collect();
    let qdrant = target.qdrant().await?;
    let count_filter = |collection: String| async move {
        let existing = qd::names(target).await?;
        if !existing.contains(&collection) {
            return Ok::<u64, OpError>(0);
        }
        let n = qdrant
            .client
            .count(qdrant_client::qdrant::CountPoints {
                collection_name: collection.clone(),
                filter: Some(qdrant_client::qdrant::Filter::must([
                    qdrant_client::qdrant::Condition::matches("content_id", content_id),
                ])),
                exact: Some(true),
                ..std::default::Default::default()
            })
            .await
            .map_err(target.qdrant_err())?
            .result
            .map(|r| r.count)
            .unwrap_or(0);
        Ok(n)
    };
    let by_filter = count_filter(content_collection.clone()).await?;
    let by_id = if chunk_keys.is_empty() {
        0
    } else {
        qd::get(target, &content_collection, &chunk_keys, false)
            .await
            .map(|p| p.len() as u64)
            .unwrap_or(0)
    };
    let chunk_points = by_filter.max(by_id);
    let summary_points = count_filter(summaries.clone()).await?;
    let result = |dry_run| ContentDeleted {
        dry_run,
        content_id,
        existed,
        chunk_points,
        summary_points,
        transcripts,
        jobs: jobs_n,
        mappings,
    };
    let change = Change {
        op: "integrity::delete_content",
        summary: format!(
            "delete content {content_id} everywhere: {transcripts} transcripts, {jobs_n} jobs, {mappings} mappings, {chunk_points} chunk points, {summary_points} summary points"
        ),
        count: i64::from(existed)
            + transcripts
            + jobs_n
            + mappings
            + (chunk_points + summary_points) as i64,
        confirm: Confirm::Yes,
    };
    if !proceed(target, &change)? {
        return Ok(result(true));
    }
    let names = qd::names(target).await?;
    if names.contains(&content_collection) {
        if !chunk_keys.is_empty() {
            qd::delete_keys(target, &content_collection, &chunk_keys).await?;
        }
        qd::delete_filter_raw(target, &content_collection, content_id).await?;
    }
    if names.contains(&summaries) {
        qd::delete_filter_raw(target, &summaries, content_id).await?;
    }
    let mut tx = pool.begin().await.map_err(target.pg_err())?;
    for sql in [
        "DELETE FROM transcripts WHERE content_id = $1",
        "DELETE FROM processing_jobs WHERE content_id = $1",
        "DELETE FROM vector_mappings WHERE content_id = $1",
        "DELETE FROM content WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(id32)
            .execute(&mut *tx)
            .await
            .map_err(target.pg_err())?;
    }
    tx.commit().await.map_err(target.pg_err())?;
    done(target, &change, "deleted");
    Ok(result(false))
}
