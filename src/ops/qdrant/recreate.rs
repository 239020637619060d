//! Recreating a collection empty with its own vector configuration (or one kept by an
//! interrupted reset, or the settings' when it does not exist).

use qdrant_client::qdrant::{self as q, vectors_config};
use serde::Serialize;

use super::collections::collection_err;
use super::collections::{Sharding, VectorConfig, distance_name, raw_info};
use crate::config::key;
use crate::ops::Target;
use crate::ops::clients::qdrant::Qdrant;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};

#[derive(Debug, Serialize)]
pub struct Recreated {
    pub dry_run: bool,
    pub collection: String,
    /// Points the old collection held.
    pub deleted_points: u64,
    pub vector_size: u64,
    pub distance: String,
    /// "collection": read from the collection before deleting it; "kept": it did not exist and
    /// an interrupted reset had kept its configuration; "settings": it did not exist,
    /// qdrant.vector_size and qdrant.distance.
    pub config_from: String,
}

fn configured_vectors(target: &Target) -> Result<q::VectorsConfig, OpError> {
    let size = target.settings.int(key::QDRANT_VECTOR_SIZE);
    let name = target.settings.text(key::QDRANT_DISTANCE);
    let distance = q::Distance::from_str_name(name)
        .or_else(|| {
            ["Cosine", "Euclid", "Dot", "Manhattan"]
                .into_iter()
                .find(|d| d.eq_ignore_ascii_case(name))
                .and_then(q::Distance::from_str_name)
        })
        .ok_or_else(|| {
            OpError::invalid(format!(
                "qdrant.distance {name:?}: expected Cosine, Euclid, Dot or Manhattan"
            ))
        })?;
    let size = u64::try_from(size)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| OpError::invalid(format!("qdrant.vector_size {size} is not positive")))?;
    Ok(q::VectorParamsBuilder::new(size, distance).build().into())
}

/// Deletes and creates a collection again, empty, with its own vector configuration (read before
/// deleting); the configured defaults only when it does not exist.
pub async fn recreate(target: &Target, collection: &str) -> Result<Recreated, OpError> {
    recreate_from(target, collection, None).await
}

/// What creating `collection` again takes: its own vector (and sparse vector) configuration, read
/// from the server; None when it does not exist. A reset keeps this before deleting, so a run
/// killed between the delete and the create can still create it as it was.
pub async fn creation_of(
    target: &Target,
    collection: &str,
) -> Result<Option<q::CreateCollection>, OpError> {
    let info = match raw_info(target, collection).await {
        Ok(info) => info,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let params = info.config.as_ref().and_then(|c| c.params.as_ref());
    Ok(Some(q::CreateCollection {
        collection_name: collection.into(),
        vectors_config: params.and_then(|p| p.vectors_config.clone()),
        sparse_vectors_config: params.and_then(|p| p.sparse_vectors_config.clone()),
        ..std::default::Default::default()
    }))
}

/// [`recreate`], where a missing collection is created from `when_missing` (its configuration
/// kept by an earlier, interrupted run) before falling back to the settings.
pub async fn recreate_from(
    target: &Target,
    collection: &str,
    when_missing: Option<&q::CreateCollection>,
) -> Result<Recreated, OpError> {
    let qdrant: &Qdrant = target.qdrant().await?;
    let existing = match raw_info(target, collection).await {
        Ok(info) => Some(info),
        Err(e) if e.kind == ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let kept = when_missing.and_then(|c| c.vectors_config.clone().map(|v| (v, c)));
    let (vectors, sparse, from, points) = match &existing {
        Some(info) => {
            let params = info.config.as_ref().and_then(|c| c.params.as_ref());
            let vectors = params.and_then(|p| p.vectors_config.clone());
            let Some(vectors) = vectors else {
                return Err(OpError::backend(
                    target.qdrant_backend(),
                    ErrorKind::Failed,
                    format!(
                        "collection `{collection}` reports no vector configuration; not deleting it"
                    ),
                ));
            };
            (
                vectors,
                params.and_then(|p| p.sparse_vectors_config.clone()),
                "collection",
                info.points_count.unwrap_or(0),
            )
        }
        None => match kept {
            Some((vectors, c)) => (vectors, c.sparse_vectors_config.clone(), "kept", 0),
            None => (configured_vectors(target)?, None, "settings", 0),
        },
    };
    let (size, distance) = match &vectors.config {
        Some(vectors_config::Config::Params(p)) => (p.size, distance_name(p.distance)),
        Some(vectors_config::Config::ParamsMap(m)) => m
            .map
            .values()
            .next()
            .map(|p| (p.size, distance_name(p.distance)))
            .unwrap_or_default(),
        None => (0, String::new()),
    };
    let change = Change {
        op: "qdrant::recreate",
        summary: format!(
            "delete collection {collection} ({points} points) and create it empty ({size} dims, {distance})"
        ),
        count: points.max(1) as i64,
        confirm: Confirm::Yes,
    };
    let result = |dry_run| Recreated {
        dry_run,
        collection: collection.into(),
        deleted_points: points,
        vector_size: size,
        distance: distance.clone(),
        config_from: from.into(),
    };
    if !proceed(target, &change)? {
        return Ok(result(true));
    }
    if existing.is_some() {
        qdrant
            .client
            .delete_collection(collection)
            .await
            .map_err(collection_err(target, collection))?;
        crate::failpoint::hit("qdrant_deleted");
    }
    qdrant
        .client
        .create_collection(q::CreateCollection {
            collection_name: collection.into(),
            vectors_config: Some(vectors),
            sparse_vectors_config: sparse,
            ..std::default::Default::default()
        })
        .await
        .map_err(target.qdrant_err())?;
    done(
        target,
        &change,
        &format!("recreated with {size} dims, {distance}"),
    );
    Ok(result(false))
}

/// Creates `collection` (which must not exist) with these vectors and this sharding: what a
/// restore of a cluster's backup does before it recovers each shard. Not destructive in itself;
/// the caller has asked.
pub async fn create(
    target: &Target,
    collection: &str,
    vectors: &[VectorConfig],
    sharding: Sharding,
) -> Result<(), OpError> {
    let params = |v: &VectorConfig| -> Result<q::VectorParams, OpError> {
        let distance = q::Distance::from_str_name(&v.distance).ok_or_else(|| {
            OpError::invalid(format!(
                "vector {:?}: distance {:?} is not one Qdrant knows",
                v.name, v.distance
            ))
        })?;
        Ok(q::VectorParamsBuilder::new(v.size, distance).build())
    };
    let vectors_config: q::VectorsConfig = match vectors {
        [] => {
            return Err(OpError::invalid(format!(
                "collection `{collection}`: no vector configuration to create it with"
            )));
        }
        [one] if one.name.is_empty() => params(one)?.into(),
        named => {
            let mut map = q::VectorParamsMap::default();
            for v in named {
                map.map.insert(v.name.clone(), params(v)?);
            }
            q::VectorsConfig {
                config: Some(vectors_config::Config::ParamsMap(map)),
            }
        }
    };
    let qdrant: &Qdrant = target.qdrant().await?;
    qdrant
        .client
        .create_collection(q::CreateCollection {
            collection_name: collection.into(),
            vectors_config: Some(vectors_config),
            shard_number: Some(sharding.shard_number),
            replication_factor: Some(sharding.replication_factor),
            write_consistency_factor: Some(sharding.write_consistency_factor),
            ..std::default::Default::default()
        })
        .await
        .map_err(target.qdrant_err())?;
    Ok(())
}
