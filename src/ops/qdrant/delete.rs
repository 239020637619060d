//! Deleting points: by id in waited batches, by payload filter, and the scripted deletes that
//! go through the deletion budget, a snapshot above the threshold, the ids file and the audit.

use qdrant_client::qdrant::{
    self as q, DeletePoints, PointsIdsList, PointsSelector, points_selector::PointsSelectorOneOf,
};
use serde::Serialize;

use super::collections::collection_err;
use super::collections::count;
use super::points::get;
use super::scroll::{payload_keys, scroll_request};
use super::snapshots::snapshot;
use crate::config::key;
use crate::ops::Target;
use crate::ops::budget;
use crate::ops::clients::qdrant::PointKey;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;

/// How many ids one delete request carries; each waits for Qdrant to apply it.
pub const DELETE_BATCH: usize = 1000;

/// Deletes points by id in batches, waiting for each. Missing ids are not an error. Returns how
/// many ids were sent (Qdrant does not say how many existed).
pub async fn delete_keys(
    target: &Target,
    collection: &str,
    keys: &[PointKey],
) -> Result<u64, OpError> {
    let qdrant = target.qdrant().await?;
    for chunk in keys.chunks(DELETE_BATCH) {
        qdrant
            .client
            .delete_points(DeletePoints {
                collection_name: collection.into(),
                wait: Some(true),
                points: Some(PointsSelector {
                    points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                        ids: chunk.iter().map(|k| k.to_grpc()).collect(),
                    })),
                }),
                ..std::default::Default::default()
            })
            .await
            .map_err(collection_err(target, collection))?;
    }
    Ok(keys.len() as u64)
}

fn content_filter(content_id: i64) -> q::Filter {
    q::Filter::must([q::Condition::matches("content_id", content_id)])
}

/// Deletes the points whose payload content_id is this, waiting for it.
pub async fn delete_filter_raw(
    target: &Target,
    collection: &str,
    content_id: i64,
) -> Result<(), OpError> {
    let qdrant = target.qdrant().await?;
    qdrant
        .client
        .delete_points(DeletePoints {
            collection_name: collection.into(),
            wait: Some(true),
            points: Some(PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Filter(content_filter(
                    content_id,
                ))),
            }),
            ..std::default::Default::default()
        })
        .await
        .map_err(collection_err(target, collection))?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub dry_run: bool,
    pub collection: String,
    /// Points deleted (with --dry-run: that would be).
    pub deleted: u64,
    /// The snapshot taken before the delete (more than delete.snapshot_above points).
    pub snapshot: Option<String>,
    /// The 0600 file the deleted ids were written to.
    pub ids_file: Option<String>,
}

pub async fn delete(
    target: &Target,
    collection: &str,
    keys: Vec<PointKey>,
    max_delete: Option<u64>,
) -> Result<Deleted, OpError> {
    // Only the ids that exist count, so a report says what really went.
    let present: Vec<PointKey> = get(target, collection, &keys, false)
        .await?
        .iter()
        .filter_map(|p| PointKey::parse(&p.id))
        .collect();
    let change = Change {
        op: "qdrant::delete",
        summary: format!("delete {} points from {collection}", present.len()),
        count: present.len() as i64,
        confirm: Confirm::Yes,
    };
    delete_listed(target, collection, present, change, max_delete).await
}

/// A delete of these (existing) points within the deletion budget: checked, confirmed, with a
/// snapshot above the threshold, the ids written as they go, and audited.
async fn delete_listed(
    target: &Target,
    collection: &str,
    present: Vec<PointKey>,
    change: Change<'_>,
    max_delete: Option<u64>,
) -> Result<Deleted, OpError> {
    let count = present.len() as u64;
    let bulk = budget::Bulk {
        op: change.op,
        what: format!("collection {collection}"),
        unit: "points",
        count,
        total: self::count(target, collection, true).await?,
        matched_nothing: None,
    };
    budget::check(target, &change, &bulk, max_delete)?;
    let mut result = Deleted {
        dry_run: true,
        collection: collection.into(),
        deleted: count,
        snapshot: None,
        ids_file: None,
    };
    if !proceed(target, &change)? {
        return Ok(result);
    }
    result.dry_run = false;
    let mut kept = String::new();
    if count > 0 {
        if let Some(taken) = snapshot_before_delete(target, collection, count).await? {
            kept += &format!("; {}", taken.words());
            result.snapshot = Some(taken.name);
        }
        let mut ids = budget::IdFile::create(&target.settings, change.op, &bulk.what)?;
        kept += &format!("; ids in {}", ids.path.display());
        result.ids_file = Some(ids.path.display().to_string());
        for chunk in present.chunks(DELETE_BATCH) {
            delete_keys(target, collection, chunk).await?;
            ids.write(chunk.iter().map(ToString::to_string))?;
        }
    }
    done(target, &change, &format!("{count} points deleted{kept}"));
    Ok(result)
}

/// Takes a snapshot of the collection when more than delete.snapshot_above points are about to
/// go; a snapshot that fails stops the delete (there would be no way back).
pub async fn snapshot_before_delete(
    target: &Target,
    collection: &str,
    count: u64,
) -> Result<Option<budget::Taken>, OpError> {
    let above = u64::try_from(target.settings.int(key::DELETE_SNAPSHOT_ABOVE)).unwrap_or(0);
    if count <= above {
        return Ok(None);
    }
    let s = snapshot(target, collection)
        .await
        .map_err(|e| {
            OpError::new(
                e.kind,
                e.backend.as_ref(),
                format!(
                    "nothing was deleted: the snapshot of {collection} taken before deleting {count} points failed: {}",
                    e.cause
                ),
            )
        })?;
    Ok(Some(budget::Taken {
        collection: collection.to_string(),
        name: s.name,
        server: target.qdrant_backend().address.clone(),
    }))
}

/// The ids of the points whose payload content_id is this.
async fn ids_of_content(
    target: &Target,
    collection: &str,
    content_id: i64,
) -> Result<Vec<PointKey>, OpError> {
    let qdrant = target.qdrant().await?;
    let mut out = Vec::new();
    let mut offset = None;
    loop {
        let mut request = scroll_request(collection, offset, 1000, payload_keys(&[]));
        request.filter = Some(content_filter(content_id));
        let reply = qdrant
            .client
            .scroll(request)
            .await
            .map_err(collection_err(target, collection))?;
        out.extend(
            reply
                .result
                .iter()
                .filter_map(|p| p.id.as_ref().and_then(PointKey::from_grpc)),
        );
        match reply.next_page_offset {
            Some(next) => offset = Some(next),
            None => return Ok(out),
        }
    }
}

/// Deletes the points of one content item: the ids the filter matches are read first and
/// deleted by id, so the id file lists exactly what went.
pub async fn delete_by_filter(
    target: &Target,
    collection: &str,
    content_id: i64,
    max_delete: Option<u64>,
) -> Result<Deleted, OpError> {
    let present = ids_of_content(target, collection, content_id).await?;
    let change = Change {
        op: "qdrant::delete_by_filter",
        summary: format!(
            "delete {} points of content {content_id} from {collection}",
            present.len()
        ),
        count: present.len() as i64,
        confirm: Confirm::Yes,
    };
    delete_listed(target, collection, present, change, max_delete).await
}
