//! The server and its collections: ping (versions), info (status, counts, vector
//! configuration), the collection names and point counts.

use qdrant_client::qdrant::{self as q, CountPoints, vectors_config};
use serde::Serialize;

use crate::ops::Target;
use crate::ops::clients::qdrant::not_found;
use crate::ops::error::{ErrorKind, OpError};

/// Maps a NotFound answer to "collection `c` does not exist".
pub(super) fn collection_err<'a>(
    target: &'a Target,
    collection: &'a str,
) -> impl Fn(qdrant_client::QdrantError) -> OpError + 'a {
    move |e| {
        let e = target.qdrant_err()(e);
        if e.kind == ErrorKind::NotFound {
            not_found(target.qdrant_backend(), collection)
        } else {
            e
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Ping {
    pub address: String,
    pub version: String,
    pub client_version: String,
    /// Empty when server and client go together, else why they may not.
    pub compatibility: String,
}

pub async fn ping(target: &Target) -> Result<Ping, OpError> {
    let qdrant = target.qdrant().await?;
    Ok(Ping {
        address: target.qdrant_backend().address.clone(),
        version: qdrant.server_version.clone(),
        client_version: crate::ops::clients::qdrant::CLIENT_VERSION.to_string(),
        compatibility: qdrant.compatibility.clone().unwrap_or_default(),
    })
}

#[derive(Debug, Serialize, Clone)]
pub struct VectorConfig {
    /// "" for the unnamed vector.
    pub name: String,
    pub size: u64,
    pub distance: String,
}

#[derive(Debug, Serialize)]
pub struct Info {
    pub name: String,
    pub status: String,
    pub points: u64,
    pub indexed_vectors: u64,
    pub segments: u64,
    pub vectors: Vec<VectorConfig>,
    /// The first vector's size and distance (the deployment's collections have one).
    pub vector_size: u64,
    pub distance: String,
}

pub(super) fn distance_name(d: i32) -> String {
    q::Distance::try_from(d)
        .map(|d| format!("{d:?}"))
        .unwrap_or_else(|_| d.to_string())
}

fn status_name(s: i32) -> String {
    q::CollectionStatus::try_from(s)
        .map(|s| format!("{s:?}").to_lowercase())
        .unwrap_or_else(|_| s.to_string())
}

pub(super) async fn raw_info(
    target: &Target,
    collection: &str,
) -> Result<q::CollectionInfo, OpError> {
    let qdrant = target.qdrant().await?;
    let reply = qdrant
        .client
        .collection_info(collection)
        .await
        .map_err(collection_err(target, collection))?;
    reply
        .result
        .ok_or_else(|| not_found(target.qdrant_backend(), collection))
}

fn vectors_of(info: &q::CollectionInfo) -> Option<&q::VectorsConfig> {
    info.config
        .as_ref()?
        .params
        .as_ref()?
        .vectors_config
        .as_ref()
}

pub async fn info(target: &Target, collection: &str) -> Result<Info, OpError> {
    let info = raw_info(target, collection).await?;
    let mut vectors = Vec::new();
    match vectors_of(&info).and_then(|v| v.config.as_ref()) {
        Some(vectors_config::Config::Params(p)) => vectors.push(VectorConfig {
            name: String::new(),
            size: p.size,
            distance: distance_name(p.distance),
        }),
        Some(vectors_config::Config::ParamsMap(m)) => {
            let mut names: Vec<_> = m.map.iter().collect();
            names.sort_by(|a, b| a.0.cmp(b.0));
            for (name, p) in names {
                vectors.push(VectorConfig {
                    name: name.clone(),
                    size: p.size,
                    distance: distance_name(p.distance),
                });
            }
        }
        None => {}
    }
    let first = vectors.first().cloned();
    Ok(Info {
        name: collection.to_string(),
        status: status_name(info.status),
        points: info.points_count.unwrap_or(0),
        indexed_vectors: info.indexed_vectors_count.unwrap_or(0),
        segments: info.segments_count,
        vector_size: first.as_ref().map(|v| v.size).unwrap_or(0),
        distance: first.map(|v| v.distance).unwrap_or_default(),
        vectors,
    })
}

/// The names of the collections, sorted.
pub async fn names(target: &Target) -> Result<Vec<String>, OpError> {
    let qdrant = target.qdrant().await?;
    let list = qdrant
        .client
        .list_collections()
        .await
        .map_err(target.qdrant_err())?;
    let mut names: Vec<String> = list.collections.into_iter().map(|c| c.name).collect();
    names.sort();
    Ok(names)
}

pub async fn collections(target: &Target) -> Result<Vec<Info>, OpError> {
    let mut out = Vec::new();
    for name in names(target).await? {
        out.push(info(target, &name).await?);
    }
    Ok(out)
}

pub async fn count(target: &Target, collection: &str, exact: bool) -> Result<u64, OpError> {
    let qdrant = target.qdrant().await?;
    let reply = qdrant
        .client
        .count(CountPoints {
            collection_name: collection.into(),
            exact: Some(exact),
            ..std::default::Default::default()
        })
        .await
        .map_err(collection_err(target, collection))?;
    Ok(reply.result.map(|r| r.count).unwrap_or(0))
}

/// How a collection is split over a cluster: its shards, the replicas of each, and how many
/// replicas confirm a write.
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
pub struct Sharding {
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
}

pub async fn sharding(target: &Target, collection: &str) -> Result<Sharding, OpError> {
    let info = raw_info(target, collection).await?;
    let params = info.config.as_ref().and_then(|c| c.params.as_ref());
    Ok(Sharding {
        shard_number: params.map(|p| p.shard_number).unwrap_or(1).max(1),
        replication_factor: params.and_then(|p| p.replication_factor).unwrap_or(1),
        write_consistency_factor: params.and_then(|p| p.write_consistency_factor).unwrap_or(1),
    })
}
