//! Collection snapshots on disk, named and described as Qdrant 1.x names and describes them.
//!
//! A snapshot lives at `<snapshots dir>/<collection>/<collection>-<peer id>-<UTC
//! %Y-%m-%d-%H-%M-%S>.snapshot`, with its sha256 in `<name>.checksum` beside it, as Qdrant keeps
//! them. The file's content is the double's own (Qdrant's is a tar of segments): a text header
//! saying what it is, then the collection's create request and its points as length-delimited
//! protobuf messages. Only the double reads it back.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use prost::Message as _;
use qdrant_client::qdrant::{CreateCollection, RetrievedPoint};
use sha2::{Digest, Sha256};
use tonic::Status;

use crate::errors::{internal, snapshot_not_found, wrong_input};
use crate::ids::PointKey;
use crate::store::{Collection, PayloadSelection, Store, StoredPoint, VectorSelection, read};

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

/// The snapshot directory of one server.
pub struct Snapshots {
    dir: PathBuf,
    peer_id: u64,
}

impl Snapshots {
    /// Snapshots under `dir`, named with this server's peer id.
    pub fn new(dir: PathBuf, peer_id: u64) -> Self {
        Snapshots { dir, peer_id }
    }

    fn collection_dir(&self, collection: &str) -> PathBuf {
        self.dir.join(collection)
    }

    /// Writes a snapshot of a collection and describes it.
    pub fn create(&self, store: &Store, collection: &str) -> Result<SnapshotInfo, Status> {
        let shared = store.get(collection)?;
        let bytes = {
            let c = read(&shared);
            encode(collection, &c)
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

    /// Replaces (or creates) a collection from a snapshot's bytes, as Qdrant's upload does.
    pub fn recover(&self, store: &Store, collection: &str, bytes: &[u8]) -> Result<(), Status> {
        let restored = decode(collection, bytes)?;
        store.replace(collection, restored);
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

fn encode(name: &str, collection: &Collection) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 64 + collection.points.len() * 32);
    out.extend_from_slice(MAGIC);
    collection
        .create_request(name)
        .encode_length_delimited(&mut out)
        .expect("a Vec grows");
    for (id, point) in &collection.points {
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
