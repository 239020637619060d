//! Collection snapshots on disk, named and described as Qdrant 1.x names and describes them.
//!
//! A snapshot lives at `<snapshots dir>/<collection>/<collection>-<peer id>-<UTC
//! %Y-%m-%d-%H-%M-%S>.snapshot`, with its sha256 in `<name>.checksum` beside it, as Qdrant keeps
//! them. The file's content is the double's own (Qdrant's is a tar of segments): a text header
//! saying what it is, then the collection's create request and its points as length-delimited
//! protobuf messages. Only the double reads it back.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use prost::Message as _;
use qdrant_client::qdrant::{CreateCollection, RetrievedPoint};
use sha2::{Digest, Sha256};
use tonic::Status;

use crate::cluster::{ClusterState, shard_of};
use crate::errors::{internal, snapshot_not_found, wrong_input};
use crate::ids::PointKey;
use crate::store::{
    Collection, PayloadSelection, Store, StoredPoint, VectorSelection, read, write,
};

const MAGIC: &[u8] = b"qdrant-double snapshot v1 (a test double's format, not a Qdrant snapshot)\n";

/// What Qdrant says of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The file name.
    pub name: String,
    /// The file's modification time.
    pub creation_time: SystemTime,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, lowercase hex.
    pub checksum: Option<String>,
}

/// The snapshot directory of one peer.
pub struct Snapshots {
    dir: PathBuf,
    peer_id: u64,
    cluster: Arc<ClusterState>,
}

impl Snapshots {
    /// Snapshots under `dir`, named with this peer's id.
    pub fn new(dir: PathBuf, peer_id: u64, cluster: Arc<ClusterState>) -> Self {
        Snapshots {
            dir,
            peer_id,
            cluster,
        }
    }

    /// The shards of a collection this peer holds: all of them on a single node.
    fn local_shards(&self, name: &str, c: &Collection) -> BTreeSet<u32> {
        self.cluster.local_shards(name, c, self.peer_id)
    }

    fn collection_dir(&self, collection: &str) -> PathBuf {
        self.dir.join(collection)
    }

    /// Writes a snapshot of a collection and describes it. In distributed mode it holds this
    /// peer's local shards only, as Qdrant's collection snapshot does (its name carries the
    /// peer id for that reason).
    pub fn create(&self, store: &Store, collection: &str) -> Result<SnapshotInfo, Status> {
        let shared = store.get(collection)?;
        let bytes = {
            let c = read(&shared);
            let local = self.local_shards(collection, &c);
            encode(collection, &c, |id| {
                local.contains(&shard_of(id, c.shard_number))
            })
        };
        let name = format!(
            "{collection}-{}-{}.snapshot",
            self.peer_id,
            chrono::Utc::now().format("%Y-%m-%d-%H-%M-%S")
        );
        let dir = self.collection_dir(collection);
        fs::create_dir_all(&dir).map_err(internal)?;
        let checksum = sha256_hex(&bytes);
        let path = dir.join(&name);
        write_atomically(&path, &bytes).map_err(internal)?;
        write_atomically(&checksum_path(&path), checksum.as_bytes()).map_err(internal)?;
        describe(&path, name)
    }

    /// The collection's snapshots, by name.
    pub fn list(&self, store: &Store, collection: &str) -> Result<Vec<SnapshotInfo>, Status> {
        store.get(collection)?;
        let dir = self.collection_dir(collection);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(internal(e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".snapshot"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| describe(&dir.join(&name), name))
            .collect()
    }

    /// The path of an existing snapshot file.
    pub fn path(&self, store: &Store, collection: &str, name: &str) -> Result<PathBuf, Status> {
        store.get(collection)?;
        if name.is_empty()
            || name.starts_with('.')
            || name.contains(['/', '\\', '\0'])
            || !name.ends_with(".snapshot")
        {
            return Err(snapshot_not_found(name));
        }
        let path = self.collection_dir(collection).join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(snapshot_not_found(name))
        }
    }

    /// Deletes a snapshot and its checksum file.
    pub fn delete(&self, store: &Store, collection: &str, name: &str) -> Result<(), Status> {
        let path = self.path(store, collection, name)?;
        fs::remove_file(&path).map_err(internal)?;
        let _ = fs::remove_file(checksum_path(&path));
        Ok(())
    }

    /// Replaces (or creates) a collection from a snapshot's bytes, as Qdrant's upload does. In
    /// distributed mode an existing collection keeps its configuration and other peers' shards:
    /// only this peer's local shards are replaced by the snapshot's points.
    pub fn recover(&self, store: &Store, collection: &str, bytes: &[u8]) -> Result<(), Status> {
        let restored = decode(collection, bytes)?;
        if self.cluster.enabled
            && let Ok(existing) = store.get(collection)
        {
            let mut c = write(&existing);
            let local = self.local_shards(collection, &c);
            let shard_number = c.shard_number;
            c.points
                .retain(|id, _| !local.contains(&shard_of(id, shard_number)));
            c.points.extend(restored.points);
            return Ok(());
        }
        store.replace(collection, restored);
        self.cluster.forget(collection);
        Ok(())
    }

    fn shard_dir(&self, collection: &str, shard_id: u32) -> PathBuf {
        self.collection_dir(collection)
            .join("shards")
            .join(shard_id.to_string())
    }

    /// Checks that the shard exists (Qdrant: 404 "Not found: shard {s} not found", seen on
    /// 1.18.3) and, when `local` says so, that this peer holds it, with Qdrant's text for
    /// what is asked (`not_local`).
    fn check_shard(
        &self,
        store: &Store,
        collection: &str,
        shard_id: u32,
        not_local: Option<&str>,
    ) -> Result<(), Status> {
        let shared = store.get(collection)?;
        let c = read(&shared);
        if shard_id >= c.shard_number {
            return Err(Status::not_found(format!(
                "Not found: shard {shard_id} not found"
            )));
        }
        if let Some(text) = not_local
            && !self.local_shards(collection, &c).contains(&shard_id)
        {
            return Err(wrong_input(format!("Shard {shard_id} is not {text}")));
        }
        Ok(())
    }

    /// That the collection and the shard exist (upload and recover check it before anything).
    pub fn check_shard_exists(
        &self,
        store: &Store,
        collection: &str,
        shard_id: u32,
    ) -> Result<(), Status> {
        self.check_shard(store, collection, shard_id, None)
    }

    /// `POST /collections/{c}/shards/{s}/snapshots`: a snapshot of that shard's points, named
    /// `{collection}-shard-{s}-{UTC %Y-%m-%d-%H-%M-%S}.snapshot` under
    /// `<dir>/{collection}/shards/{s}/` as Qdrant 1.18.3 names and keeps it. On a peer without
    /// the shard: "Wrong input: Shard {s} is not a local or queue proxy shard" (400, seen).
    pub fn create_shard(
        &self,
        store: &Store,
        collection: &str,
        shard_id: u32,
    ) -> Result<SnapshotInfo, Status> {
        self.check_shard(
            store,
            collection,
            shard_id,
            Some("a local or queue proxy shard"),
        )?;
        let shared = store.get(collection)?;
        let bytes = {
            let c = read(&shared);
            encode(collection, &c, |id| {
                shard_of(id, c.shard_number) == shard_id
            })
        };
        let name = format!(
            "{collection}-shard-{shard_id}-{}.snapshot",
            chrono::Utc::now().format("%Y-%m-%d-%H-%M-%S")
        );
        let dir = self.shard_dir(collection, shard_id);
        fs::create_dir_all(&dir).map_err(internal)?;
        let checksum = sha256_hex(&bytes);
        let path = dir.join(&name);
        write_atomically(&path, &bytes).map_err(internal)?;
        write_atomically(&checksum_path(&path), checksum.as_bytes()).map_err(internal)?;
        describe(&path, name)
    }

    /// `GET /collections/{c}/shards/{s}/snapshots`; on a peer without the shard: "Wrong
    /// input: Shard {s} is not a local shard" (400, seen on 1.18.3).
    pub fn list_shard(
        &self,
        store: &Store,
        collection: &str,
        shard_id: u32,
    ) -> Result<Vec<SnapshotInfo>, Status> {
        self.check_shard(store, collection, shard_id, Some("a local shard"))?;
        let dir = self.shard_dir(collection, shard_id);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(internal(e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".snapshot"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| describe(&dir.join(&name), name))
            .collect()
    }

    /// Where a shard snapshot file would be, `None` for a name that could leave the directory.
    /// The caller answers a missing file as Qdrant does.
    pub fn shard_file(
        &self,
        store: &Store,
        collection: &str,
        shard_id: u32,
        name: &str,
    ) -> Result<Option<PathBuf>, Status> {
        // Download and delete on a peer without the shard: 400 "Wrong input: Shard {s} is not a
        // local or queue proxy shard" (1.18.3).
        self.check_shard(
            store,
            collection,
            shard_id,
            Some("a local or queue proxy shard"),
        )?;
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
            return Ok(None);
        }
        Ok(Some(self.shard_dir(collection, shard_id).join(name)))
    }

    /// `DELETE /collections/{c}/shards/{s}/snapshots/{name}`; a missing one is Qdrant's 404
    /// "Not found: Snapshot \"{path}\" not found" with the file's path (seen on 1.18.3).
    pub fn delete_shard(
        &self,
        store: &Store,
        collection: &str,
        shard_id: u32,
        name: &str,
    ) -> Result<(), Status> {
        let path = self
            .shard_file(store, collection, shard_id, name)?
            .unwrap_or_else(|| self.shard_dir(collection, shard_id).join(name));
        if !path.is_file() {
            return Err(Status::not_found(format!(
                "Not found: Snapshot {:?} not found",
                path.display().to_string()
            )));
        }
        fs::remove_file(&path).map_err(internal)?;
        let _ = fs::remove_file(checksum_path(&path));
        Ok(())
    }

    /// Recovers one shard from a shard snapshot's bytes: that shard's points are replaced by the
    /// snapshot's on every replica (the double keeps one copy). A peer without the shard gets a
    /// replica of it, Active, as Qdrant 1.18.3 did when a shard snapshot was uploaded there.
    pub fn recover_shard(
        &self,
        store: &Store,
        collection: &str,
        shard_id: u32,
        bytes: &[u8],
    ) -> Result<(), Status> {
        self.check_shard(store, collection, shard_id, None)?;
        let restored = decode(collection, bytes)?;
        let shared = store.get(collection)?;
        let mut c = write(&shared);
        let shard_number = c.shard_number;
        c.points
            .retain(|id, _| shard_of(id, shard_number) != shard_id);
        c.points.extend(restored.points);
        if !self.local_shards(collection, &c).contains(&shard_id) {
            self.cluster.add_replica(collection, shard_id, self.peer_id);
        }
        Ok(())
    }
}

/// The sha256 of bytes as Qdrant gives it: lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn checksum_path(snapshot: &Path) -> PathBuf {
    let mut name = snapshot.as_os_str().to_owned();
    name.push(".checksum");
    PathBuf::from(name)
}

fn describe(path: &Path, name: String) -> Result<SnapshotInfo, Status> {
    let meta = fs::metadata(path).map_err(internal)?;
    let checksum = match fs::read_to_string(checksum_path(path)) {
        Ok(sum) => Some(sum.trim().to_string()),
        Err(_) => fs::read(path).ok().map(|bytes| sha256_hex(&bytes)),
    };
    Ok(SnapshotInfo {
        name,
        creation_time: meta.modified().unwrap_or_else(|_| SystemTime::now()),
        size: meta.len(),
        checksum,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

fn encode(name: &str, collection: &Collection, keep: impl Fn(&PointKey) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 64 + collection.points.len() * 32);
    out.extend_from_slice(MAGIC);
    collection
        .create_request(name)
        .encode_length_delimited(&mut out)
        .expect("a Vec grows");
    for (id, point) in collection.points.iter().filter(|(id, _)| keep(id)) {
        collection
            .retrieved(*id, point, &PayloadSelection::All, &VectorSelection::All)
            .encode_length_delimited(&mut out)
            .expect("a Vec grows");
    }
    out
}

fn decode(name: &str, bytes: &[u8]) -> Result<Collection, Status> {
    let bad = |what: String| wrong_input(format!("Invalid snapshot: {what}"));
    let mut buf = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("not a snapshot made by qdrant-double".to_string()))?;
    let mut create = CreateCollection::decode_length_delimited(&mut buf)
        .map_err(|e| bad(format!("collection header: {e}")))?;
    create.collection_name = name.to_string();
    let mut collection = Collection::new(&create)?;
    while !buf.is_empty() {
        let point = RetrievedPoint::decode_length_delimited(&mut buf)
            .map_err(|e| bad(format!("point: {e}")))?;
        let id = point
            .id
            .as_ref()
            .ok_or_else(|| bad("point without id".to_string()))
            .and_then(PointKey::from_grpc)?;
        let stored = StoredPoint {
            payload: (!point.payload.is_empty()).then(|| Box::new(point.payload)),
            vectors: point.vectors.map(Box::new),
        };
        collection.points.insert(id, stored);
    }
    Ok(collection)
}
