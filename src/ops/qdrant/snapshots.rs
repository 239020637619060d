//! Snapshots: create, list, delete on the server, and download over REST with the sha256
//! checked against the server's.

use std::path::Path;

use qdrant_client::qdrant as q;
use serde::Serialize;

use super::collections::collection_err;
use crate::ops::Target;
use crate::ops::error::{ErrorKind, OpError};

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub name: String,
    pub size: i64,
    pub checksum: String,
    pub created_at: String,
}

fn snapshot_of(d: q::SnapshotDescription) -> Snapshot {
    let created_at = d
        .creation_time
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Snapshot {
        name: d.name,
        size: d.size,
        checksum: d.checksum.unwrap_or_default(),
        created_at,
    }
}

pub async fn snapshot(target: &Target, collection: &str) -> Result<Snapshot, OpError> {
    let qdrant = target.qdrant().await?;
    let reply = qdrant
        .client
        .create_snapshot(collection)
        .await
        .map_err(collection_err(target, collection))?;
    reply.snapshot_description.map(snapshot_of).ok_or_else(|| {
        OpError::backend(
            target.qdrant_backend(),
            ErrorKind::Failed,
            "the server created no snapshot description",
        )
    })
}

pub async fn snapshots(target: &Target, collection: &str) -> Result<Vec<Snapshot>, OpError> {
    let qdrant = target.qdrant().await?;
    let reply = qdrant
        .client
        .list_snapshots(collection)
        .await
        .map_err(collection_err(target, collection))?;
    let mut list: Vec<Snapshot> = reply
        .snapshot_descriptions
        .into_iter()
        .map(snapshot_of)
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list)
}

/// Deletes a snapshot from the server (what backup-all does with the ones it made once they
/// are downloaded, so they do not pile up in Qdrant's storage).
pub async fn delete_snapshot(target: &Target, collection: &str, name: &str) -> Result<(), OpError> {
    let qdrant = target.qdrant().await?;
    qdrant
        .client
        .delete_snapshot(q::DeleteSnapshotRequestBuilder::new(collection, name))
        .await
        .map_err(collection_err(target, collection))?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Downloaded {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Whether the server's checksum was known and matched.
    pub verified: bool,
}

/// Downloads a snapshot over REST to `path` (0600), verifying its sha256 against the one the
/// server lists. A mismatch removes the file and fails.
pub async fn download_snapshot(
    target: &Target,
    collection: &str,
    name: &str,
    path: &Path,
) -> Result<Downloaded, OpError> {
    let qdrant = target.qdrant().await?;
    let backend = target.qdrant_backend();
    let listed = snapshots(target, collection).await?;
    let Some(expected) = listed.iter().find(|s| s.name == name) else {
        return Err(OpError::backend(
            backend,
            ErrorKind::NotFound,
            format!("collection `{collection}` has no snapshot {name}"),
        ));
    };
    let io = |e: std::io::Error| OpError::invalid(format!("{}: {e}", path.display()));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o600);
    let mut file = options.open(path).await.map_err(io)?;
    let url_path = format!(
        "/collections/{}/snapshots/{}",
        encode(collection),
        encode(name)
    );
    let result = qdrant.rest.download(backend, &url_path, &mut file).await;
    drop(file);
    let (size, sha256) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    };
    let verified = !expected.checksum.is_empty();
    if verified && !expected.checksum.eq_ignore_ascii_case(&sha256) {
        let _ = std::fs::remove_file(path);
        return Err(OpError::backend(
            backend,
            ErrorKind::Failed,
            format!(
                "snapshot {name}: sha256 {sha256} does not match the server's {}; the file was removed",
                expected.checksum
            ),
        ));
    }
    Ok(Downloaded {
        path: path.display().to_string(),
        size,
        sha256,
        verified,
    })
}

pub(super) fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
