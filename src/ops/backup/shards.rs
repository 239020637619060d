//! Qdrant in distributed mode: a collection snapshot holds only the shards local to the peer
//! that takes it, so backup-all saves every shard on its own — one shard snapshot each, taken
//! on a peer holding an Active replica of it, downloaded and checked against Qdrant's checksum,
//! then deleted there — all shards of a collection at once. Restore recovers each shard on a
//! peer holding it (priority snapshot); Qdrant then marks the shard's other replicas Dead and
//! transfers the recovered one to them (seen on Qdrant 1.18.3), which the restore waits for
//! before it counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::ops::Target;
use crate::ops::backup::manifest::FileEntry;
use crate::ops::backup::private::sha256_file;
use crate::ops::backup::spinner::Progress;
use crate::ops::clients::qdrant::rest::Rest;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::qdrant::{self, Cluster, Shards};

/// How long a restore waits for Qdrant to bring every replica of the recovered shards back to
/// Active (its own transfers from the recovered replica) before it says which are not.
const SETTLE: Duration = Duration::from_secs(30 * 60);

/// A path segment of Qdrant's REST API.
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn shard_path(collection: &str, shard: u64) -> String {
    format!(
        "/collections/{}/shards/{shard}/snapshots",
        segment(collection)
    )
}

/// The REST API of the peer with this id: the configured one on a single node (the only peer).
async fn rest_of(target: &Target, cluster: &Cluster, peer_id: u64) -> Result<Rest, OpError> {
    match cluster.peer(peer_id) {
        Some(peer) => qdrant::peer_rest(target, peer).await,
        None => Ok(target.qdrant().await?.rest.clone()),
    }
}

/// The same error with what it was about in front of its cause.
fn about(e: OpError, what: &str) -> OpError {
    OpError {
        cause: format!("{what}: {}", e.cause),
        ..e
    }
}

/// The peers that hold an Active replica of each shard, each shard's list with the peer to ask
/// first in front — chosen so the shards spread as evenly over the peers as their replicas
/// allow (they are saved at once, so the busiest peer sets the time) — or the first shard that
/// has none, with its replicas' states.
fn holders(shards: &Shards, collection: &str) -> Result<BTreeMap<u64, Vec<u64>>, String> {
    let mut active: Vec<(u64, Vec<u64>)> = Vec::new();
    for shard in &shards.shards {
        let peers: Vec<u64> = shard.active().map(|r| r.peer_id).collect();
        if peers.is_empty() {
            let states: Vec<String> = shard
                .replicas
                .iter()
                .map(|r| format!("peer {} {}", r.peer_id, r.state))
                .collect();
            return Err(format!(
                "collection `{collection}` shard {}: no Active replica ({}), so its points cannot be saved",
                shard.shard_id,
                if states.is_empty() {
                    "no replica at all".to_string()
                } else {
                    states.join(", ")
                }
            ));
        }
        active.push((shard.shard_id, peers));
    }
    let first = spread(&active);
    Ok(active
        .into_iter()
        .zip(first)
        .map(|((shard, mut peers), pick)| {
            peers.sort_by_key(|p| (*p != pick, *p));
            (shard, peers)
        })
        .collect())
}

/// One peer per shard, from its holders, with as few shards on the busiest peer as possible:
/// a matching of shards to peers (augmenting paths), each peer taking at most `cap` shards,
/// `cap` raised from 1 until every shard has a peer. Shards are few, so this is instant.
fn spread(shards: &[(u64, Vec<u64>)]) -> Vec<u64> {
    fn place(
        i: usize,
        shards: &[(u64, Vec<u64>)],
        cap: usize,
        taken: &mut BTreeMap<u64, Vec<usize>>,
        seen: &mut Vec<u64>,
    ) -> bool {
        for &peer in &shards[i].1 {
            if seen.contains(&peer) {
                continue;
            }
            seen.push(peer);
            let on = taken.get(&peer).cloned().unwrap_or_default();
            if on.len() < cap {
                taken.entry(peer).or_default().push(i);
                return true;
            }
            // Move one of this peer's shards elsewhere to make room.
            for j in on {
                if place(j, shards, cap, taken, seen) {
                    let list = taken.entry(peer).or_default();
                    list.retain(|k| *k != j);
                    list.push(i);
                    return true;
                }
            }
        }
        false
    }
    for cap in 1..=shards.len().max(1) {
        let mut taken: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        if (0..shards.len()).all(|i| place(i, shards, cap, &mut taken, &mut Vec::new())) {
            let mut pick = vec![0; shards.len()];
            for (peer, list) in taken {
                for i in list {
                    pick[i] = peer;
                }
            }
            return pick;
        }
    }
    shards.iter().map(|(_, peers)| peers[0]).collect()
}

/// One shard saved into the backup.
struct Saved {
    peer_id: u64,
    snapshot: String,
    bytes: u64,
    sha256: String,
    checksum: Option<String>,
    deleted: Result<(), OpError>,
}

/// A shard snapshot made on `rest`'s peer, downloaded to `path` (0600) with its sha256 checked
/// against Qdrant's checksum (its size when Qdrant lists none), then deleted on the peer
/// whatever happened, so backups do not fill its storage.
async fn save_shard(
    target: &Target,
    rest: &Rest,
    collection: &str,
    shard: u64,
    path: &Path,
) -> Result<Saved, OpError> {
    let backend = target.qdrant_backend();
    let base = shard_path(collection, shard);
    let made = rest
        .json(
            backend,
            hyper::Method::POST,
            &format!("{base}?wait=true"),
            None,
        )
        .await?;
    let made = &made["result"];
    let Some(name) = made["name"].as_str() else {
        return Err(OpError::backend(
            backend,
            ErrorKind::Failed,
            format!(
                "REST {}: the shard snapshot has no name: {made}",
                rest.shown()
            ),
        ));
    };
    let listed_size = made["size"].as_u64();
    let checksum = made["checksum"].as_str().map(str::to_lowercase);
    let io = |e: std::io::Error| OpError::invalid(format!("{}: {e}", path.display()));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let got = match options.open(path).await.map_err(io) {
        Ok(mut file) => {
            rest.download(backend, &format!("{base}/{}", segment(name)), &mut file)
                .await
        }
        Err(e) => Err(e),
    };
    let deleted = rest
        .json(
            backend,
            hyper::Method::DELETE,
            &format!("{base}/{}?wait=true", segment(name)),
            None,
        )
        .await
        .map(|_| ());
    let fail = |why: String| {
        let _ = std::fs::remove_file(path);
        OpError::backend(backend, ErrorKind::Failed, why)
    };
    let (bytes, sha256) = match got {
        Ok(got) => got,
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    };
    match (&checksum, listed_size) {
        (Some(sum), _) if *sum != sha256 => {
            return Err(fail(format!(
                "snapshot {name}: sha256 {sha256} of the {bytes} bytes that arrived does not match Qdrant's checksum {sum}"
            )));
        }
        (None, Some(size)) if size != bytes => {
            return Err(fail(format!(
                "snapshot {name}: {bytes} bytes arrived, Qdrant listed {size} and no checksum"
            )));
        }
        _ => {}
    }
    Ok(Saved {
        peer_id: 0,
        snapshot: name.to_string(),
        bytes,
        sha256,
        checksum,
        deleted,
    })
}

/// Every shard of `collection` saved into `folder`, all at once: its manifest entry and files.
/// Fails, naming the shard, the peer and why, when any shard cannot be saved (after trying each
/// peer with an Active replica of it); the files of the other shards are removed then.
pub(super) async fn backup_collection(
    target: &Target,
    cluster: &Cluster,
    folder: &Path,
    collection: &str,
) -> Result<(Value, Vec<FileEntry>), OpError> {
    let backend = target.qdrant_backend();
    let progress = Progress::new(format!("qdrant shard snapshots of {collection}"));
    // Where each shard is first: a shard nobody can give is named before anything else (a
    // count through the cluster would only fail without saying which).
    let shards = qdrant::shards_in(target, cluster, collection).await?;
    let holders = holders(&shards, collection)
        .map_err(|why| OpError::backend(backend, ErrorKind::Failed, why))?;
    let safe = super::snapshots::file_safe(collection);
    let jobs = shards.shards.iter().map(|shard| {
        let file = format!("qdrant-{safe}-shard-{}.snapshot", shard.shard_id);
        let path = folder.join(&file);
        let peers = holders[&shard.shard_id].clone();
        async move {
            let mut failures = Vec::new();
            for peer_id in peers {
                let what = format!(
                    "collection `{collection}` shard {} on peer {peer_id}",
                    shard.shard_id
                );
                let tried = async {
                    let rest = rest_of(target, cluster, peer_id).await?;
                    save_shard(target, &rest, collection, shard.shard_id, &path).await
                }
                .await;
                match tried {
                    Ok(saved) => return Ok((file, Saved { peer_id, ..saved })),
                    Err(e) => failures.push(about(e, &what)),
                }
            }
            // Every holder failed.
            Err(joined(failures))
        }
    });
    let results = futures_util::future::join_all(jobs).await;
    drop(progress);
    let mut entries = Vec::new();
    let mut files = Vec::new();
    let mut failed = None;
    for (shard, result) in shards.shards.iter().zip(results) {
        match result {
            Ok((file, saved)) => {
                let peer = cluster.peer(saved.peer_id);
                let replica_points = shard
                    .replicas
                    .iter()
                    .find(|r| r.peer_id == saved.peer_id)
                    .and_then(|r| r.points);
                files.push(FileEntry {
                    name: file.clone(),
                    bytes: saved.bytes,
                    sha256: saved.sha256.clone(),
                });
                entries.push(json!({
                    "shard_id": shard.shard_id,
                    "peer_id": saved.peer_id,
                    "peer_uri": peer.map(|p| p.uri.clone()),
                    "file": file,
                    "snapshot": saved.snapshot,
                    "bytes": saved.bytes,
                    "sha256": saved.sha256,
                    "qdrant_checksum": saved.checksum,
                    "checksum_verified": saved.checksum.is_some(),
                    "points": replica_points.or(shard.points),
                    "deleted_on_server": saved.deleted.is_ok(),
                    "delete_error": saved.deleted.err().map(|e| e.cause),
                }));
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        for f in &files {
            let _ = std::fs::remove_file(folder.join(&f.name));
        }
        return Err(e);
    }
    let described = async {
        Ok::<_, OpError>((
            qdrant::info(target, collection).await?,
            qdrant::sharding(target, collection).await?,
            qdrant::count(target, collection, true).await?,
        ))
    }
    .await;
    let (info, sharding, points) = match described {
        Ok(d) => d,
        Err(e) => {
            for f in &files {
                let _ = std::fs::remove_file(folder.join(&f.name));
            }
            return Err(about(
                e,
                &format!("collection `{collection}`: counting its points"),
            ));
        }
    };
    let all = |field: &str| entries.iter().all(|e| e[field] == true);
    let entry = json!({
        "collection": collection,
        "points": points,
        "vector_size": info.vector_size,
        "distance": info.distance,
        "vectors": info.vectors,
        "shard_count": shards.shard_count,
        "replication_factor": sharding.replication_factor,
        "write_consistency_factor": sharding.write_consistency_factor,
        "bytes": files.iter().map(|f| f.bytes).sum::<u64>(),
        "checksum_verified": all("checksum_verified"),
        "deleted_on_server": all("deleted_on_server"),
        "shards": entries,
    });
    Ok((entry, files))
}

#[derive(Debug, Serialize)]
pub struct ShardRestored {
    pub shard_id: u64,
    /// The peer the shard's snapshot was recovered on; Qdrant copies it to the other replicas.
    pub peer_id: Option<u64>,
    pub file: String,
    pub bytes: u64,
    /// The shard's points when it was saved.
    pub points: Option<u64>,
}

/// What a restore of a cluster's backup did, besides what a single snapshot's restore reports.
pub(super) struct ShardedRestore {
    pub(super) dry_run: bool,
    pub(super) created: bool,
    pub(super) shards: Vec<ShardRestored>,
    pub(super) points_before: u64,
    pub(super) points_after: Option<u64>,
    pub(super) replicas: Vec<String>,
}

/// The manifest's shard list of one collection, each file checked (size and sha256) before
/// anything is touched.
async fn checked_shards(dir: &Path, entry: &Value) -> Result<Vec<ShardRestored>, OpError> {
    let mut out = Vec::new();
    for s in entry["shards"].as_array().into_iter().flatten() {
        let (Some(shard_id), Some(file), Some(bytes), Some(sha)) = (
            s["shard_id"].as_u64(),
            s["file"].as_str(),
            s["bytes"].as_u64(),
            s["sha256"].as_str(),
        ) else {
            return Err(OpError::invalid(format!(
                "{}: a shard entry lacks shard_id, file, bytes or sha256: {s}",
                dir.display()
            )));
        };
        let path = dir.join(file);
        let (size, sum) = sha256_file(&path).await?;
        if size != bytes || !sum.eq_ignore_ascii_case(sha) {
            return Err(OpError::invalid(format!(
                "{}: shard {shard_id}: {size} bytes with sha256 {sum}, the manifest lists {bytes} bytes with {sha}: refusing a damaged snapshot; nothing was touched",
                path.display()
            )));
        }
        out.push(ShardRestored {
            shard_id,
            peer_id: None,
            file: path.display().to_string(),
            bytes,
            points: s["points"].as_u64(),
        });
    }
    let count = entry["shard_count"].as_u64().unwrap_or(0);
    let ids: Vec<u64> = out.iter().map(|s| s.shard_id).collect();
    if count == 0 || ids != (0..count).collect::<Vec<_>>() {
        return Err(OpError::invalid(format!(
            "{}: the manifest lists shards {ids:?} of collection `{}` with shard_count {count}: not a whole backup",
            dir.display(),
            entry["collection"].as_str().unwrap_or_default()
        )));
    }
    Ok(out)
}

fn vectors_of(entry: &Value) -> Vec<qdrant::VectorConfig> {
    match entry["vectors"].as_array() {
        Some(list) => list
            .iter()
            .map(|v| qdrant::VectorConfig {
                name: v["name"].as_str().unwrap_or_default().to_string(),
                size: v["size"].as_u64().unwrap_or(0),
                distance: v["distance"].as_str().unwrap_or_default().to_string(),
            })
            .collect(),
        None => vec![qdrant::VectorConfig {
            name: String::new(),
            size: entry["vector_size"].as_u64().unwrap_or(0),
            distance: entry["distance"].as_str().unwrap_or_default().to_string(),
        }],
    }
}

/// Replaces `collection` with the shard snapshots a backup of a cluster holds: creates it with
/// the manifest's shards, replication and vectors when it does not exist, recovers each shard
/// on a peer holding an Active replica (all at once), waits until Qdrant has copied each to
/// its other replicas, and counts.
pub(super) async fn restore_collection(
    target: &Target,
    dir: &Path,
    collection: &str,
    entry: &Value,
) -> Result<ShardedRestore, OpError> {
    let backend = target.qdrant_backend();
    let mut shards = checked_shards(dir, entry).await?;
    let shard_count = shards.len() as u64;
    let listed_points = entry["points"].as_u64();
    let cluster = qdrant::cluster(target).await?;
    let points_before = match qdrant::count(target, collection, true).await {
        Ok(n) => Some(n),
        Err(e) if e.kind == ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if points_before.is_some() {
        let now = qdrant::shards_in(target, &cluster, collection).await?;
        if now.shard_count != shard_count {
            return Err(OpError::invalid(format!(
                "collection `{collection}` has {} shards, the backup {shard_count}: a shard snapshot recovers only into the shard it was taken from; delete the collection first (the restore creates it with {shard_count} shards); nothing was touched",
                now.shard_count
            )));
        }
    }
    let change = Change {
        op: "backup::restore_qdrant",
        summary: format!(
            "replace collection {collection} ({}) with the {shard_count} shard snapshots in {} ({}points)",
            match points_before {
                Some(n) => format!("{n} points"),
                None => "absent: created".into(),
            },
            dir.display(),
            listed_points.map(|n| format!("{n} ")).unwrap_or_default()
        ),
        count: points_before.unwrap_or(0).max(1) as i64,
        confirm: Confirm::Yes,
    };
    let mut out = ShardedRestore {
        dry_run: true,
        created: points_before.is_none(),
        shards: Vec::new(),
        points_before: points_before.unwrap_or(0),
        points_after: listed_points,
        replicas: Vec::new(),
    };
    if !proceed(target, &change)? {
        out.shards = shards;
        return Ok(out);
    }
    out.dry_run = false;
    let progress = Progress::new(format!("restoring {shard_count} shards of {collection}"));
    if points_before.is_none() {
        let sharding = qdrant::Sharding {
            shard_number: shard_count as u32,
            replication_factor: entry["replication_factor"].as_u64().unwrap_or(1) as u32,
            write_consistency_factor: entry["write_consistency_factor"].as_u64().unwrap_or(1)
                as u32,
        };
        qdrant::create(target, collection, &vectors_of(entry), sharding).await?;
    }
    // A collection just made: its replicas become Active as the peers apply it.
    let placed = settle(target, &cluster, collection, |s| {
        s.shards.iter().all(|sh| sh.active().next().is_some())
    })
    .await?;
    let holders = holders(&placed, collection)
        .map_err(|why| OpError::backend(backend, ErrorKind::Failed, why))?;
    let jobs = shards.iter().map(|shard| {
        let peers = holders.get(&shard.shard_id).cloned().unwrap_or_default();
        let cluster = &cluster;
        async move {
            let mut failures = Vec::new();
            for peer_id in peers {
                let what = format!(
                    "collection `{collection}` shard {} on peer {peer_id}",
                    shard.shard_id
                );
                let tried = async {
                    let rest = rest_of(target, cluster, peer_id).await?;
                    let sum = sha256_file(Path::new(&shard.file)).await?.1;
                    rest.upload(
                        backend,
                        &format!(
                            "{}/upload?wait=true&priority=snapshot&checksum={sum}",
                            shard_path(collection, shard.shard_id)
                        ),
                        Path::new(&shard.file),
                    )
                    .await
                }
                .await;
                match tried {
                    Ok(_) => return Ok(peer_id),
                    Err(e) => failures.push(about(e, &what)),
                }
            }
            Err(joined(failures))
        }
    });
    let results = futures_util::future::join_all(jobs).await;
    let mut failed = None;
    for (shard, result) in shards.iter_mut().zip(results) {
        match result {
            Ok(peer) => shard.peer_id = Some(peer),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    // Qdrant marks the other replicas of a recovered shard Dead and transfers the recovered one
    // to them: wait until every peer that answers sees each replica Active and no transfer.
    progress.set(format!(
        "waiting for the replicas of {collection} to take the recovered shards"
    ));
    let recovered: BTreeMap<u64, u64> = shards
        .iter()
        .filter_map(|s| Some((s.shard_id, s.peer_id?)))
        .collect();
    out.replicas = synced(target, &cluster, collection, &recovered).await?;
    drop(progress);
    let after = qdrant::count(target, collection, true).await?;
    out.points_after = Some(after);
    out.shards = shards;
    done(
        target,
        &change,
        &format!("restored {shard_count} shards: {after} points"),
    );
    Ok(out)
}

/// Each peer's own view of the collection (`GET /collections/{c}/cluster` on it): the
/// configured peer's view alone can still call a replica Active that its holder has already
/// marked Dead, right after a recovery.
async fn views(target: &Target, cluster: &Cluster, collection: &str) -> Vec<(u64, Option<Value>)> {
    let backend = target.qdrant_backend();
    let path = format!("/collections/{}/cluster", segment(collection));
    let peers: Vec<Option<u64>> = if cluster.enabled {
        cluster.peers.iter().map(|p| Some(p.id)).collect()
    } else {
        vec![None]
    };
    let asks = peers.iter().map(|peer| {
        let path = path.clone();
        async move {
            let rest = match peer {
                Some(id) => rest_of(target, cluster, *id).await.ok()?,
                None => target.qdrant().await.ok()?.rest.clone(),
            };
            rest.get_result(backend, &path).await.ok()
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    peers
        .into_iter()
        .zip(answers)
        .map(|(peer, answer)| (peer.unwrap_or(0), answer))
        .collect()
}

/// What is not yet in place in these views: replicas not Active (but those of peers that do not
/// answer), transfers, and replicas holding another number of points than the one a shard was
/// recovered on (`recovered`: shard → peer).
fn pending(views: &[(u64, Option<Value>)], recovered: &BTreeMap<u64, u64>) -> Vec<String> {
    let silent: Vec<u64> = views
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(p, _)| *p)
        .collect();
    let mut out = std::collections::BTreeSet::new();
    // (shard, peer) → points, as each holder counts its own replica.
    let mut points = BTreeMap::new();
    for (_, view) in views {
        let Some(view) = view else { continue };
        let me = view["peer_id"].as_u64().unwrap_or(0);
        let replicas = view["local_shards"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| (l["shard_id"].as_u64(), Some(me), l["state"].as_str()))
            .chain(
                view["remote_shards"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        (
                            r["shard_id"].as_u64(),
                            r["peer_id"].as_u64(),
                            r["state"].as_str(),
                        )
                    }),
            );
        for (shard, peer, state) in replicas {
            if state != Some("Active") && !peer.is_some_and(|p| silent.contains(&p)) {
                out.insert(format!(
                    "shard {} on peer {}: {}",
                    shard.unwrap_or_default(),
                    peer.unwrap_or_default(),
                    state.unwrap_or("no state")
                ));
            }
        }
        for local in view["local_shards"].as_array().into_iter().flatten() {
            if let (Some(shard), Some(n)) =
                (local["shard_id"].as_u64(), local["points_count"].as_u64())
            {
                points.insert((shard, me), n);
            }
        }
        for t in view["shard_transfers"].as_array().into_iter().flatten() {
            out.insert(format!(
                "transfer of shard {} from peer {} to {}",
                t["shard_id"], t["from"], t["to"]
            ));
        }
    }
    // Right after a recovery every view can still call every replica Active, before Qdrant has
    // marked the shard's other replicas Dead (seen taking 2 s on 1.18.3): a replica counts as
    // given the shard once it holds as many points as the one recovered.
    for (&shard, &from) in recovered {
        let Some(&want) = points.get(&(shard, from)) else {
            continue;
        };
        for (&(s, peer), &n) in &points {
            if s == shard && n != want {
                out.insert(format!(
                    "shard {shard} on peer {peer}: {n} points, the recovered replica on peer {from} {want}"
                ));
            }
        }
    }
    out.into_iter().collect()
}

/// Waits, for up to [`SETTLE`], until every peer that answers sees each replica of the
/// collection Active and no transfer running; returns the replicas on peers that do not answer
/// which are not Active (Qdrant gives them the shard when they are back).
async fn synced(
    target: &Target,
    cluster: &Cluster,
    collection: &str,
    recovered: &BTreeMap<u64, u64>,
) -> Result<Vec<String>, OpError> {
    let started = Instant::now();
    loop {
        let views = views(target, cluster, collection).await;
        let waiting = pending(&views, recovered);
        if waiting.is_empty() {
            let silent: Vec<u64> = views
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(p, _)| *p)
                .collect();
            let shards = qdrant::shards_in(target, cluster, collection).await?;
            return Ok(shards
                .shards
                .iter()
                .flat_map(|sh| {
                    sh.replicas
                        .iter()
                        .filter(|r| silent.contains(&r.peer_id) && r.state != "Active")
                        .map(move |r| {
                            format!(
                                "shard {} on peer {}: {} (the peer does not answer; Qdrant copies the shard to it when it is back)",
                                sh.shard_id, r.peer_id, r.state
                            )
                        })
                })
                .collect());
        }
        if started.elapsed() > SETTLE {
            return Err(OpError::backend(
                target.qdrant_backend(),
                ErrorKind::Timeout,
                format!(
                    "collection `{collection}`: the shards were recovered, but after {} minutes Qdrant is still at {}",
                    SETTLE.as_secs() / 60,
                    waiting.join(", ")
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Reads the collection's shards until `ready` holds, for up to [`SETTLE`]; then fails naming
/// the replicas that are not Active and the transfers still running.
async fn settle(
    target: &Target,
    cluster: &Cluster,
    collection: &str,
    ready: impl Fn(&Shards) -> bool,
) -> Result<Shards, OpError> {
    let started = Instant::now();
    loop {
        let shards = qdrant::shards_in(target, cluster, collection).await?;
        if ready(&shards) {
            return Ok(shards);
        }
        if started.elapsed() > SETTLE {
            let waiting: Vec<String> = shards
                .shards
                .iter()
                .flat_map(|sh| {
                    sh.replicas
                        .iter()
                        .filter(|r| r.state != "Active")
                        .map(move |r| {
                            format!("shard {} on peer {}: {}", sh.shard_id, r.peer_id, r.state)
                        })
                })
                .chain(shards.transfers.iter().map(|t| {
                    format!(
                        "transfer of shard {} from peer {} to {}",
                        t.shard_id, t.from, t.to
                    )
                }))
                .collect();
            return Err(OpError::backend(
                target.qdrant_backend(),
                ErrorKind::Timeout,
                format!(
                    "collection `{collection}`: after {} minutes still waiting for {}",
                    SETTLE.as_secs() / 60,
                    waiting.join(", ")
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The first failure, with the others' causes after it (every holder of a shard failed).
fn joined(mut failures: Vec<OpError>) -> OpError {
    let mut first = failures.remove(0);
    for other in failures {
        first.cause = format!("{}; {}", first.cause, other.cause);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::qdrant::{Replica, Shard};

    fn shard(id: u64, replicas: &[(u64, &str)]) -> Shard {
        Shard {
            shard_id: id,
            replicas: replicas
                .iter()
                .map(|(peer_id, state)| Replica {
                    peer_id: *peer_id,
                    state: state.to_string(),
                    points: Some(10),
                })
                .collect(),
            points: Some(10),
        }
    }

    fn shards(list: Vec<Shard>) -> Shards {
        Shards {
            collection: "c".into(),
            shard_count: list.len() as u64,
            shards: list,
            transfers: vec![],
            unanswered: vec![],
        }
    }

    #[test]
    fn shards_spread_over_the_peers_with_active_replicas() {
        // Placement as a real 3-peer cluster made it with replication_factor 2.
        let s = shards(vec![
            shard(0, &[(2, "Active"), (3, "Active")]),
            shard(1, &[(1, "Active"), (3, "Active")]),
            shard(2, &[(1, "Dead"), (2, "Active")]),
        ]);
        let h = holders(&s, "c").unwrap();
        // Peer 2 is the only Active holder of shard 2, so shard 0 goes to peer 3.
        assert_eq!(h[&0], vec![3, 2]);
        assert_eq!(h[&1], vec![1, 3]);
        assert_eq!(h[&2], vec![2]);
    }

    #[test]
    fn a_ring_of_replicas_gives_each_peer_one_shard_whatever_the_peer_ids() {
        // Replicas of shard s on peers s and s+1 (mod 3), in every order of the peers' ids: a
        // greedy choice can put two shards on one peer; the matching never does.
        for ids in [
            [1, 2, 3],
            [1, 3, 2],
            [2, 1, 3],
            [2, 3, 1],
            [3, 1, 2],
            [3, 2, 1],
        ] {
            let s = shards(
                (0..3)
                    .map(|i| {
                        shard(
                            i as u64,
                            &[(ids[i], "Active"), (ids[(i + 1) % 3], "Active")],
                        )
                    })
                    .collect(),
            );
            let h = holders(&s, "c").unwrap();
            let mut first: Vec<u64> = h.values().map(|p| p[0]).collect();
            first.sort();
            assert_eq!(first, [1, 2, 3], "{ids:?}: {h:?}");
            assert!(h.values().all(|p| p.len() == 2), "{h:?}");
        }
    }

    #[test]
    fn more_shards_than_peers_share_them_evenly() {
        let s = shards(
            (0..6)
                .map(|i| shard(i, &[(1, "Active"), (2, "Active")]))
                .collect(),
        );
        let h = holders(&s, "c").unwrap();
        let on_1 = h.values().filter(|p| p[0] == 1).count();
        assert_eq!(on_1, 3, "{h:?}");
    }

    #[test]
    fn a_shard_without_an_active_replica_is_named_with_its_replicas() {
        let s = shards(vec![
            shard(0, &[(1, "Active")]),
            shard(1, &[(1, "Dead"), (2, "Partial")]),
        ]);
        assert_eq!(
            holders(&s, "youtube_content").unwrap_err(),
            "collection `youtube_content` shard 1: no Active replica (peer 1 Dead, peer 2 Partial), so its points cannot be saved"
        );
    }
}
