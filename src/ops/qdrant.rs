//! `qdrant::` — the vector store: version, collections and their counts, point ids, get and
//! delete, recreate with the collection's own vector configuration, snapshots.
//!
//! Point ids are compared as Qdrant identifies them ([`PointKey`]): a u64, or a UUID read from
//! any text `Uuid::parse_str` accepts (hyphenated in any case, 32-hex such as an MD5 digest,
//! braced, urn) and always shown hyphenated lowercase.

use crate::config::key;
use std::collections::HashMap;
use std::path::Path;

use qdrant_client::qdrant::{
    self as q, CountPoints, DeletePoints, GetPoints, PointId, PointsIdsList, PointsSelector,
    ScrollPoints, WithPayloadSelector, WithVectorsSelector, points_selector::PointsSelectorOneOf,
    vectors_config, with_payload_selector,
};
use serde::Serialize;

use crate::ops::Target;
use crate::ops::budget::{self, MAX_DELETE};
pub use crate::ops::clients::qdrant::PointKey;
use crate::ops::clients::qdrant::{Qdrant, not_found, rest_download};
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Registrar, Spec};

/// Ids given by a script (text or integers) as point keys; one that Qdrant would refuse is an
/// `invalid` error naming it.
pub fn keys_of(ids: &[rhai::Dynamic]) -> Result<Vec<PointKey>, OpError> {
    ids.iter()
        .map(|v| {
            if let Ok(n) = v.as_int() {
                return u64::try_from(n)
                    .map(PointKey::Num)
                    .map_err(|_| OpError::invalid(format!("point id {n} is negative")));
            }
            let text = v.to_string();
            PointKey::parse(&text).ok_or_else(|| {
                OpError::invalid(format!(
                    "point id {text:?} is neither an unsigned integer nor a UUID"
                ))
            })
        })
        .collect()
}

/// Maps a NotFound answer to "collection `c` does not exist".
fn collection_err<'a>(
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

fn distance_name(d: i32) -> String {
    q::Distance::try_from(d)
        .map(|d| format!("{d:?}"))
        .unwrap_or_else(|_| d.to_string())
}

fn status_name(s: i32) -> String {
    q::CollectionStatus::try_from(s)
        .map(|s| format!("{s:?}").to_lowercase())
        .unwrap_or_else(|_| s.to_string())
}

async fn raw_info(target: &Target, collection: &str) -> Result<q::CollectionInfo, OpError> {
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

fn no_vectors() -> Option<WithVectorsSelector> {
    Some(false.into())
}

fn payload_keys(keys: &[&str]) -> Option<WithPayloadSelector> {
    if keys.is_empty() {
        return Some(false.into());
    }
    Some(WithPayloadSelector {
        selector_options: Some(with_payload_selector::SelectorOptions::Include(
            q::PayloadIncludeSelector {
                fields: keys.iter().map(|k| k.to_string()).collect(),
            },
        )),
    })
}

/// One page of a scroll from `offset`: ids and the payload keys asked for, never vectors.
fn scroll_request(
    collection: &str,
    offset: Option<PointId>,
    page_size: u32,
    with_payload: Option<q::WithPayloadSelector>,
) -> ScrollPoints {
    ScrollPoints {
        collection_name: collection.into(),
        offset,
        limit: Some(page_size.max(1)),
        with_payload,
        with_vectors: no_vectors(),
        ..std::default::Default::default()
    }
}

/// Scrolls the whole collection in pages of `page_size`, without vectors and with only the
/// payload `keys`, handing each page to `each`. Qdrant's scroll is ordered by id (numbers, then
/// UUIDs), also across shards; ids that are not valid keys are skipped (a server never sends one).
pub async fn scroll(
    target: &Target,
    collection: &str,
    page_size: u32,
    keys: &[&str],
    each: impl FnMut(Vec<q::RetrievedPoint>),
) -> Result<(), OpError> {
    let qdrant = target.qdrant().await?;
    let with_payload = payload_keys(keys);
    let fetch = |offset: Option<PointKey>| {
        let client = qdrant.client.clone();
        let request = scroll_request(
            collection,
            offset.map(PointKey::to_grpc),
            page_size,
            with_payload.clone(),
        );
        async move {
            let mut reply = client.scroll(request).await?;
            let next = reply.next_page_offset.as_ref().map(PointKey::from_grpc);
            Ok((std::mem::take(&mut reply.result), next))
        }
    };
    pipelined(target, collection, fetch, each).await
}

/// Every point id of a collection, in Qdrant's order, a page at a time; read with opsh's own
/// id-only codec ([`ids`](crate::ops::clients::qdrant::ids)), so a million ids cost little CPU.
pub async fn scroll_ids(
    target: &Target,
    collection: &str,
    page_size: u32,
    each: impl FnMut(Vec<PointKey>),
) -> Result<(), OpError> {
    let qdrant = target.qdrant().await?;
    let fetch = |offset: Option<PointKey>| {
        let ids = qdrant.ids.clone();
        let request = scroll_request(
            collection,
            offset.map(PointKey::to_grpc),
            page_size,
            payload_keys(&[]),
        );
        async move {
            let page = ids.page(request).await?;
            Ok((page.keys, page.next.map(Some)))
        }
    };
    pipelined(target, collection, fetch, each).await
}

/// Pages one after another: each page and where the next starts (Some(None): an offset that
/// cannot be read). The next page is asked for before this one is handed on, so Qdrant reads
/// it while this one is processed: the scroll's round trips no longer wait on the caller.
async fn pipelined<P, F>(
    target: &Target,
    collection: &str,
    fetch: impl Fn(Option<PointKey>) -> F,
    mut each: impl FnMut(P),
) -> Result<(), OpError>
where
    P: Send + 'static,
    F: Future<Output = Result<(P, Option<Option<PointKey>>), qdrant_client::QdrantError>>
        + Send
        + 'static,
{
    let spawn = |offset| crate::ops::AbortOnDrop(tokio::spawn(fetch(offset)));
    let mut next = Some(spawn(None));
    while let Some(mut pending) = next.take() {
        let (page, offset) = match (&mut pending.0).await {
            Ok(reply) => reply.map_err(collection_err(target, collection))?,
            Err(e) => {
                return Err(OpError::backend(
                    target.qdrant_backend(),
                    ErrorKind::Failed,
                    e,
                ));
            }
        };
        match offset {
            Some(Some(offset)) => next = Some(spawn(Some(offset))),
            Some(None) => {
                return Err(OpError::backend(
                    target.qdrant_backend(),
                    ErrorKind::Failed,
                    format!("scroll of `{collection}`: the next page's offset is not a point id"),
                ));
            }
            None => {}
        }
        each(page);
    }
    Ok(())
}

/// Every point id of a collection, in Qdrant's order.
pub async fn ids(
    target: &Target,
    collection: &str,
    page_size: u32,
) -> Result<Vec<String>, OpError> {
    let mut out = Vec::new();
    scroll_ids(target, collection, page_size, |page| {
        out.extend(page.iter().map(ToString::to_string));
    })
    .await?;
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct Point {
    pub id: String,
    pub payload: serde_json::Value,
}

/// A payload value as JSON.
pub fn json_of(v: &q::Value) -> serde_json::Value {
    use q::value::Kind as K;
    match &v.kind {
        None | Some(K::NullValue(_)) => serde_json::Value::Null,
        Some(K::BoolValue(b)) => (*b).into(),
        Some(K::IntegerValue(i)) => (*i).into(),
        Some(K::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(K::StringValue(s)) => s.clone().into(),
        Some(K::ListValue(l)) => l.values.iter().map(json_of).collect(),
        Some(K::StructValue(s)) => s
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), json_of(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

fn payload_json(payload: &HashMap<String, q::Value>) -> serde_json::Value {
    let mut keys: Vec<_> = payload.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| (k.clone(), json_of(&payload[k])))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The points with these ids that exist, in Qdrant's id order; with payload unless told not.
pub async fn get(
    target: &Target,
    collection: &str,
    keys: &[PointKey],
    with_payload: bool,
) -> Result<Vec<Point>, OpError> {
    let qdrant = target.qdrant().await?;
    let mut out = Vec::new();
    for chunk in keys.chunks(1000) {
        let reply = qdrant
            .client
            .get_points(GetPoints {
                collection_name: collection.into(),
                ids: chunk.iter().map(|k| k.to_grpc()).collect(),
                with_payload: Some(with_payload.into()),
                with_vectors: no_vectors(),
                ..std::default::Default::default()
            })
            .await
            .map_err(collection_err(target, collection))?;
        for p in reply.result {
            let Some(key) = p.id.as_ref().and_then(PointKey::from_grpc) else {
                continue;
            };
            out.push((
                key,
                Point {
                    id: key.to_string(),
                    payload: payload_json(&p.payload),
                },
            ));
        }
    }
    out.sort_by_key(|(k, _)| *k);
    out.dedup_by_key(|(k, _)| *k);
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

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
    let result = rest_download(qdrant, backend, &url_path, &mut file).await;
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

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

const COLLECTION: Param = Param::new("collection", Kind::Str, "the collection");

static PING: Spec = Spec {
    module: "qdrant",
    name: "ping",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "Connects to Qdrant (gRPC, qdrant.url) and returns address, version, client_version and \
          compatibility (empty, or why server and client may not work together: their minor \
          versions differ by more than one; also warned on stderr).",
    examples: &[Example::new(
        "let p = qdrant::ping(); [p.version, p.compatibility]",
        r#"["1.20.0", ""]"#,
    )],
};

static COLLECTIONS: Spec = Spec {
    module: "qdrant",
    name: "collections",
    params: &[],
    options: &[],
    returns: "Array",
    doc: "Every collection, by name: name, status, points, indexed_vectors, segments, vectors \
          (name, size, distance each), vector_size and distance (of the first vector).",
    examples: &[Example::new(
        "qdrant::collections().map(|c| [c.name, c.points, c.vector_size, c.distance])",
        r#"[["youtube_content", 4, 4, "Cosine"], ["youtube_summaries", 2, 4, "Cosine"]]"#,
    )],
};

static INFO: Spec = Spec {
    module: "qdrant",
    name: "info",
    params: &[COLLECTION],
    options: &[],
    returns: "Map",
    doc: "One collection's status, counts and vector configuration (as in qdrant::collections); \
          a missing collection is a not_found error naming it.",
    examples: &[Example::new(
        r#"let i = qdrant::info("youtube_content"); [i.status, i.points, i.vector_size, i.distance]"#,
        r#"["green", 4, 4, "Cosine"]"#,
    )],
};

static COUNT: Spec = Spec {
    module: "qdrant",
    name: "count",
    params: &[COLLECTION],
    options: &[Opt::new(
        "exact",
        Kind::Bool,
        Default::Value("true"),
        "count exactly (false: Qdrant's estimate)",
    )],
    returns: "i64",
    doc: "The number of points in a collection.",
    examples: &[Example::new(r#"qdrant::count("youtube_content")"#, "4")],
};

const PAGE_SIZE: Opt = Opt::new(
    "page_size",
    Kind::Int,
    Default::Value("10000"),
    "points per scroll request",
);

static IDS: Spec = Spec {
    module: "qdrant",
    name: "ids",
    params: &[COLLECTION],
    options: &[PAGE_SIZE],
    returns: "Array",
    doc: "Every point id of a collection as text, in Qdrant's order (numbers first, then UUIDs, \
          hyphenated lowercase), by scrolling without payload or vectors. The whole list is \
          held (about 200 MB per million ids as Rhai strings): walk a large collection with \
          qdrant::ids_page instead.",
    examples: &[Example::new(
        r#"qdrant::ids("youtube_content", #{page_size: 2})"#,
        r#"["7", "4a7d1ed4-1447-4e40-33ac-29ccb8653d9b", "6f1ed002-ab5d-5c5c-8a8f-2f6a3c0f7e01", "9b2c58c1-1e7f-5a4e-9d8e-0a1b2c3d4e5f"]"#,
    )],
};

static IDS_PAGE: Spec = Spec {
    module: "qdrant",
    name: "ids_page",
    params: &[COLLECTION],
    options: &[
        Opt::new(
            "offset",
            Kind::Any,
            Default::None,
            "the id to start at (a page's `next`); absent: the first",
        ),
        PAGE_SIZE,
    ],
    returns: "Map",
    doc: "One page of a collection's point ids, for walking a large collection with bounded \
          memory: ids (as qdrant::ids gives them) and next, the offset of the following page (() \
          after the last). `let p = qdrant::ids_page(c); loop { …; if p.next == () { break } p = \
          qdrant::ids_page(c, #{offset: p.next}) }`.",
    examples: &[
        Example::new(
            r#"qdrant::ids_page("youtube_content", #{page_size: 2})"#,
            r#"{"ids": ["7", "4a7d1ed4-1447-4e40-33ac-29ccb8653d9b"], "next": "6f1ed002-ab5d-5c5c-8a8f-2f6a3c0f7e01"}"#,
        ),
        Example::new(
            r#"qdrant::ids_page("youtube_content", #{offset: "6f1ed002-ab5d-5c5c-8a8f-2f6a3c0f7e01"}).next"#,
            "null",
        ),
    ],
};

#[derive(Debug, Serialize)]
pub struct IdsPage {
    pub ids: Vec<String>,
    pub next: Option<String>,
}

/// One scroll request's ids and the offset of the next.
pub async fn ids_page(
    target: &Target,
    collection: &str,
    offset: Option<PointKey>,
    page_size: u32,
) -> Result<IdsPage, OpError> {
    let qdrant = target.qdrant().await?;
    let page = qdrant
        .ids
        .page(scroll_request(
            collection,
            offset.map(PointKey::to_grpc),
            page_size,
            payload_keys(&[]),
        ))
        .await
        .map_err(|e| collection_err(target, collection)(e.into()))?;
    Ok(IdsPage {
        ids: page.keys.iter().map(ToString::to_string).collect(),
        next: page.next.map(|k| k.to_string()),
    })
}

static GET: Spec = Spec {
    module: "qdrant",
    name: "get",
    params: &[
        COLLECTION,
        Param::new(
            "ids",
            Kind::Array,
            "point ids: integers or UUIDs in any form Qdrant accepts",
        ),
    ],
    options: &[Opt::new(
        "payload",
        Kind::Bool,
        Default::Value("true"),
        "include each point's payload",
    )],
    returns: "Array",
    doc: "The points among ids that exist, in Qdrant's id order: id (as Qdrant answers it) and \
          payload.",
    examples: &[Example::new(
        r#"qdrant::get("youtube_content", ["4A7D1ED414474E4033AC29CCB8653D9B", 99]).map(|p| [p.id, p.payload.content_id])"#,
        r#"[["4a7d1ed4-1447-4e40-33ac-29ccb8653d9b", 1]]"#,
    )],
};

static DELETE: Spec = Spec {
    module: "qdrant",
    name: "delete",
    params: &[
        COLLECTION,
        Param::new(
            "ids",
            Kind::Array,
            "point ids: integers or UUIDs in any form Qdrant accepts",
        ),
    ],
    options: &[MAX_DELETE],
    returns: "Map",
    doc: "Deletes points by id in batches of 1000, waiting for each. More than the deletion \
          budget (the larger of delete.max_count and delete.max_percent of the collection) \
          changes nothing and fails with kind over_budget unless max_delete is at least the \
          count; --yes never lifts it. Above delete.snapshot_above points a snapshot is taken \
          first; the deleted ids go to a 0600 file in delete.ids_dir; the audit names both. \
          Asks for confirmation (--yes answers it); with --dry-run nothing changes. Returns \
          dry_run, collection, deleted (the ids that existed), snapshot, ids_file.",
    examples: &[Example::new(
        r#"let d = qdrant::delete("youtube_content", [7, 8]); [d.deleted, qdrant::count("youtube_content")]"#,
        "[1, 3]",
    )],
};

static DELETE_BY_FILTER: Spec = Spec {
    module: "qdrant",
    name: "delete_by_filter",
    params: &[COLLECTION],
    options: &[
        Opt::new(
            "content_id",
            Kind::Int,
            Default::None,
            "delete the points whose payload content_id is this (required)",
        ),
        MAX_DELETE,
    ],
    returns: "Map",
    doc: "Deletes the points matching a payload filter: their ids are read, then deleted by id \
          (waiting for it), under the same deletion budget, snapshot and id file as \
          qdrant::delete. Asks for confirmation; with --dry-run nothing changes. Returns \
          dry_run, collection, deleted, snapshot, ids_file.",
    examples: &[Example::new(
        r#"qdrant::delete_by_filter("youtube_content", #{content_id: 1}).deleted"#,
        "2",
    )],
};

static RECREATE: Spec = Spec {
    module: "qdrant",
    name: "recreate",
    params: &[COLLECTION],
    options: &[],
    returns: "Map",
    doc: "Deletes a collection and creates it again, empty, with the vector configuration it had \
          (read before deleting); when it does not exist, with qdrant.vector_size and \
          qdrant.distance (1024, Cosine). Asks for confirmation; with --dry-run nothing changes. \
          Returns dry_run, collection, deleted_points, vector_size, distance, config_from.",
    examples: &[Example::new(
        r#"let r = qdrant::recreate("youtube_content"); [r.deleted_points, r.vector_size, r.config_from, qdrant::count("youtube_content")]"#,
        r#"[4, 4, "collection", 0]"#,
    )],
};

static SNAPSHOT: Spec = Spec {
    module: "qdrant",
    name: "snapshot",
    params: &[COLLECTION],
    options: &[],
    returns: "Map",
    doc: "Creates a snapshot of a collection: name, size, checksum (sha256), created_at.",
    examples: &[Example::new(
        r#"let s = qdrant::snapshot("youtube_summaries"); [s.size > 0, s.checksum.len()]"#,
        "[true, 64]",
    )],
};

static SNAPSHOTS: Spec = Spec {
    module: "qdrant",
    name: "snapshots",
    params: &[COLLECTION],
    options: &[],
    returns: "Array",
    doc: "The snapshots of a collection, by name: name, size, checksum, created_at.",
    examples: &[Example::new(
        r#"qdrant::snapshot("youtube_summaries"); qdrant::snapshots("youtube_summaries").len()"#,
        "1",
    )],
};

static DOWNLOAD_SNAPSHOT: Spec = Spec {
    module: "qdrant",
    name: "download_snapshot",
    params: &[
        COLLECTION,
        Param::new("name", Kind::Str, "the snapshot's name"),
        Param::new("path", Kind::Str, "the file to write (mode 0600)"),
    ],
    options: &[],
    returns: "Map",
    doc: "Downloads a snapshot over REST (qdrant.rest_url) to a file written 0600, checking its \
          sha256 against the server's; on a mismatch the file is removed and it fails. Returns \
          path, size, sha256, verified.",
    examples: &[Example::new(
        r#"let s = qdrant::snapshot("youtube_summaries"); let d = qdrant::download_snapshot("youtube_summaries", s.name, "s.snapshot"); [d.size == s.size, d.sha256 == s.checksum, d.verified]"#,
        "[true, true, true]",
    )],
};

fn page_size(c: &crate::ops::spec::Call) -> Result<u32, OpError> {
    let n = c.int("page_size")?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| OpError::invalid(format!("option `page_size`: {n} is not positive")))
}

pub fn register(reg: &mut Registrar) {
    reg.add(&PING, |c| c.block(ping(c.target)));
    reg.add(&COLLECTIONS, |c| c.block(collections(c.target)));
    reg.add(&INFO, |c| c.block(info(c.target, &c.str("collection")?)));
    reg.add(&COUNT, |c| {
        c.block(count(c.target, &c.str("collection")?, c.bool("exact")?))
    });
    reg.add(&IDS, |c| {
        let size = page_size(c)?;
        c.block(ids(c.target, &c.str("collection")?, size))
    });
    reg.add(&IDS_PAGE, |c| {
        let size = page_size(c)?;
        let offset = match c.value("offset") {
            Some(v) if !v.is_unit() => Some(keys_of(&[v])?[0]),
            _ => None,
        };
        c.block(ids_page(c.target, &c.str("collection")?, offset, size))
    });
    reg.add(&GET, |c| {
        let keys = keys_of(&c.array("ids")?)?;
        let payload = c.bool("payload")?;
        c.block(get(c.target, &c.str("collection")?, &keys, payload))
    });
    reg.add(&DELETE, |c| {
        let keys = keys_of(&c.array("ids")?)?;
        let max = budget::max_delete(c.opt_int("max_delete")?)?;
        c.block(delete(c.target, &c.str("collection")?, keys, max))
    });
    reg.add(&DELETE_BY_FILTER, |c| {
        let id = c.opt_int("content_id")?.ok_or_else(|| {
            OpError::invalid("option `content_id` is required (the only filter so far)")
        })?;
        let max = budget::max_delete(c.opt_int("max_delete")?)?;
        c.block(delete_by_filter(c.target, &c.str("collection")?, id, max))
    });
    reg.add(&RECREATE, |c| {
        c.block(recreate(c.target, &c.str("collection")?))
    });
    reg.add(&SNAPSHOT, |c| {
        c.block(snapshot(c.target, &c.str("collection")?))
    });
    reg.add(&SNAPSHOTS, |c| {
        c.block(snapshots(c.target, &c.str("collection")?))
    });
    reg.add(&DOWNLOAD_SNAPSHOT, |c| {
        let path = std::path::PathBuf::from(c.str("path")?);
        c.block(download_snapshot(
            c.target,
            &c.str("collection")?,
            &c.str("name")?,
            &path,
        ))
    });
}
