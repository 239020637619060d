//! Qdrant snapshots: one per collection made, downloaded into the backup and checked against
//! Qdrant's checksum, then deleted on the server; `backup::restore_qdrant` uploads one back.

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::ops::Target;
use crate::ops::backup::manifest::{FileEntry, read_manifest};
use crate::ops::backup::private::sha256_file;
use crate::ops::backup::shards::{self, ShardRestored};
use crate::ops::backup::spinner::Progress;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::qdrant;

pub(super) struct QdrantPart {
    pub(super) manifest: Value,
    pub(super) files: Vec<FileEntry>,
    pub(super) skipped: Option<String>,
}

/// A snapshot of each collection, created by Qdrant and downloaded over REST into the folder
/// (0600), its sha256 checked against Qdrant's checksum. On a single node it never fails the
/// backup: a Qdrant that cannot be reached or a snapshot that does not arrive whole is a
/// skipped note (and no file). In distributed mode every shard of every collection is saved
/// on its own (`shards`), and a shard that cannot be saved fails the whole backup: one that
/// silently lacked a shard would pass verify with a fraction of the points.
pub(super) async fn backup_qdrant(target: &Target, folder: &Path) -> Result<QdrantPart, OpError> {
    let address = target.qdrant_backend().address.clone();
    match qdrant::cluster(target).await {
        Ok(cluster) if cluster.enabled => {
            return backup_cluster(target, &cluster, folder, address).await;
        }
        Ok(_) => {}
        Err(e) => {
            let why = e.to_string();
            return Ok(QdrantPart {
                manifest: json!({"included": false, "address": address, "why": why, "snapshots": []}),
                files: Vec::new(),
                skipped: Some(why),
            });
        }
    }
    Ok(backup_single(target, folder, address).await)
}

/// Every shard of every collection of a cluster, or the reason one could not be saved.
async fn backup_cluster(
    target: &Target,
    cluster: &qdrant::Cluster,
    folder: &Path,
    address: String,
) -> Result<QdrantPart, OpError> {
    let mut snapshots = Vec::new();
    let mut files: Vec<FileEntry> = Vec::new();
    let result: Result<(), OpError> = async {
        for name in qdrant::names(target).await? {
            let (entry, saved) = shards::backup_collection(target, cluster, folder, &name).await?;
            snapshots.push(entry);
            files.extend(saved);
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        for f in &files {
            let _ = std::fs::remove_file(folder.join(&f.name));
        }
        return Err(OpError {
            cause: format!(
                "{}; the Qdrant cluster's backup is incomplete, so no backup was kept",
                e.cause
            ),
            ..e
        });
    }
    let peers: Vec<Value> = cluster
        .peers
        .iter()
        .map(|p| json!({"peer_id": p.id, "uri": p.uri, "rest_url": crate::config::redact_url(&p.rest_url)}))
        .collect();
    Ok(QdrantPart {
        manifest: json!({
            "included": true,
            "address": address,
            "cluster": {"peer_id": cluster.peer_id, "leader": cluster.leader, "peers": peers},
            "snapshots": snapshots,
        }),
        files,
        skipped: None,
    })
}

async fn backup_single(target: &Target, folder: &Path, address: String) -> QdrantPart {
    let mut snapshots = Vec::new();
    let mut files = Vec::new();
    let result: Result<(), OpError> = async {
        let names = qdrant::names(target).await?;
        for name in names {
            let progress = Progress::new(format!("qdrant snapshot {name}"));
            let info = qdrant::info(target, &name).await?;
            let points = qdrant::count(target, &name, true).await?;
            let snap = qdrant::snapshot(target, &name).await?;
            let file = format!("qdrant-{}.snapshot", file_safe(&name));
            let got =
                qdrant::download_snapshot(target, &name, &snap.name, &folder.join(&file)).await;
            // The snapshot was made for this backup only: once it is here (checked against
            // Qdrant's checksum, or at least its size), or could not be had, it goes, so
            // backups do not fill Qdrant's storage.
            let complete = got
                .as_ref()
                .is_ok_and(|g| g.verified || g.size == snap.size as u64);
            let deleted = qdrant::delete_snapshot(target, &name, &snap.name).await;
            let got = got?;
            if !complete {
                let _ = std::fs::remove_file(folder.join(&file));
                return Err(OpError::backend(
                    target.qdrant_backend(),
                    ErrorKind::Failed,
                    format!(
                        "snapshot {} of {name}: {} bytes arrived, Qdrant listed {} and no checksum",
                        snap.name, got.size, snap.size
                    ),
                ));
            }
            drop(progress);
            files.push(FileEntry {
                name: file.clone(),
                bytes: got.size,
                sha256: got.sha256.clone(),
            });
            snapshots.push(json!({
                "collection": name,
                "file": file,
                "snapshot": snap.name,
                "bytes": got.size,
                "sha256": got.sha256,
                "qdrant_checksum": snap.checksum,
                "checksum_verified": got.verified,
                "deleted_on_server": deleted.is_ok(),
                "delete_error": deleted.err().map(|e| e.cause),
                "points": points,
                "vector_size": info.vector_size,
                "distance": info.distance,
            }));
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => QdrantPart {
            manifest: json!({"included": true, "address": address, "snapshots": snapshots}),
            files,
            skipped: None,
        },
        Err(e) => {
            for f in &files {
                let _ = std::fs::remove_file(folder.join(&f.name));
            }
            let why = e.to_string();
            QdrantPart {
                manifest: json!({"included": false, "address": address, "why": why, "snapshots": []}),
                files: Vec::new(),
                skipped: Some(why),
            }
        }
    }
}

pub(super) fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct QdrantRestored {
    pub dry_run: bool,
    pub collection: String,
    pub file: String,
    pub bytes: u64,
    /// The snapshot's sha256; () for a cluster's backup, whose shards each have their own.
    pub sha256: Option<String>,
    /// Points the collection held before (0 when it did not exist).
    pub points_before: u64,
    /// Points after the restore (on a dry run: the backup's manifest count, when listed).
    pub points_after: Option<u64>,
    /// The backup's manifest count equals the restored collection's.
    pub matches_manifest: Option<bool>,
    /// A cluster's backup: whether the collection was created (it did not exist)…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// …each shard and the peer it was recovered on…
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRestored>,
    /// …and the replicas not yet given the recovered shard, on peers that do not answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas_behind: Vec<String>,
}

/// Replaces a collection with its snapshot from a backup folder (or a .snapshot file): the file's
/// sha256 is checked against the manifest first, then it is uploaded through Qdrant's REST API
/// (multipart, with the checksum, so Qdrant checks it too) and recovered with priority to the
/// snapshot.
pub async fn restore_qdrant(
    target: &Target,
    dir: &Path,
    collection: &str,
) -> Result<QdrantRestored, OpError> {
    let (file, listed) = if dir.is_dir() {
        let manifest = read_manifest(dir).map_err(OpError::invalid)?;
        let entry = manifest
            .pointer("/qdrant/snapshots")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|e| e["collection"] == collection))
            .cloned()
            .ok_or_else(|| {
                OpError::new(
                    ErrorKind::NotFound,
                    None,
                    format!(
                        "{}: the manifest lists no snapshot of collection `{collection}`",
                        dir.display()
                    ),
                )
            })?;
        if entry["shards"].is_array() {
            return restore_sharded(target, dir, collection, &entry).await;
        }
        let name = entry["file"].as_str().unwrap_or_default().to_string();
        (dir.join(name), Some(entry))
    } else {
        (dir.to_path_buf(), None)
    };
    let (bytes, sha256) = sha256_file(&file).await?;
    if let Some(entry) = &listed {
        let expected = entry["sha256"].as_str().unwrap_or_default();
        if !expected.eq_ignore_ascii_case(&sha256) || entry["bytes"].as_u64() != Some(bytes) {
            return Err(OpError::invalid(format!(
                "{}: {bytes} bytes with sha256 {sha256}, the manifest lists {} bytes with {expected}: refusing a damaged snapshot",
                file.display(),
                entry["bytes"]
            )));
        }
    }
    let listed_points = listed.as_ref().and_then(|e| e["points"].as_u64());
    let points_before = match qdrant::count(target, collection, true).await {
        Ok(n) => n,
        Err(e) if e.kind == ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let change = Change {
        op: "backup::restore_qdrant",
        summary: format!(
            "replace collection {collection} ({points_before} points) with the snapshot {} ({}points)",
            file.display(),
            listed_points.map(|n| format!("{n} ")).unwrap_or_default()
        ),
        count: points_before.max(1) as i64,
        confirm: Confirm::Yes,
    };
    let mut out = QdrantRestored {
        dry_run: true,
        collection: collection.into(),
        file: file.display().to_string(),
        bytes,
        sha256: Some(sha256.clone()),
        points_before,
        points_after: listed_points,
        matches_manifest: None,
        created: None,
        shards: Vec::new(),
        replicas_behind: Vec::new(),
    };
    if !proceed(target, &change)? {
        return Ok(out);
    }
    out.dry_run = false;
    let client = target.qdrant().await?;
    let encoded: String = url::form_urlencoded::byte_serialize(collection.as_bytes()).collect();
    let progress = Progress::new(format!("uploading {} to {collection}", file.display()));
    client
        .rest
        .upload(
            target.qdrant_backend(),
            &format!(
                "/collections/{}/snapshots/upload?wait=true&priority=snapshot&checksum={sha256}",
                encoded.replace('+', "%20")
            ),
            &file,
        )
        .await?;
    drop(progress);
    let after = qdrant::count(target, collection, true).await?;
    out.points_after = Some(after);
    out.matches_manifest = listed_points.map(|n| n == after);
    done(target, &change, &format!("restored: {after} points"));
    Ok(out)
}

/// A cluster's backup of `collection`: its shard snapshots recovered shard by shard.
async fn restore_sharded(
    target: &Target,
    dir: &Path,
    collection: &str,
    entry: &Value,
) -> Result<QdrantRestored, OpError> {
    let listed_points = entry["points"].as_u64();
    let r = shards::restore_collection(target, dir, collection, entry).await?;
    Ok(QdrantRestored {
        dry_run: r.dry_run,
        collection: collection.into(),
        file: dir.display().to_string(),
        bytes: r.shards.iter().map(|s| s.bytes).sum(),
        sha256: None,
        points_before: r.points_before,
        points_after: r.points_after,
        matches_manifest: if r.dry_run {
            None
        } else {
            listed_points.zip(r.points_after).map(|(a, b)| a == b)
        },
        created: Some(r.created),
        shards: r.shards,
        replicas_behind: r.replicas,
    })
}
