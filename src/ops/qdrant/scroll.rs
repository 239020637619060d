//! Point ids and scrolls: ids given by a script as keys, the whole-collection scroll (with
//! payload keys, or ids only through opsh's id codec) split into ranges scrolled at once, each
//! a page ahead ([`partition`]), and one page.

use qdrant_client::qdrant::{
    self as q, PointId, ScrollPoints, WithPayloadSelector, WithVectorsSelector,
    with_payload_selector,
};
use serde::Serialize;

use super::collections::collection_err;
use super::partition;
use crate::config::key;
use crate::ops::Target;
use crate::ops::clients::qdrant::PointKey;
use crate::ops::error::{ErrorKind, OpError};

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

pub(super) fn no_vectors() -> Option<WithVectorsSelector> {
    Some(false.into())
}

pub(super) fn payload_keys(keys: &[&str]) -> Option<WithPayloadSelector> {
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
pub(super) fn scroll_request(
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
/// payload `keys`, handing each page to `each`: the id space split into ranges scrolled at
/// once ([`partition`]), so the pages come in Qdrant's id order within a range but the ranges'
/// pages interleave. Ids that are not valid keys are skipped (a server never sends one).
pub async fn scroll(
    target: &Target,
    collection: &str,
    page_size: u32,
    keys: &[&str],
    each: impl FnMut(Vec<q::RetrievedPoint>),
) -> Result<(), OpError> {
    let qdrant = target.qdrant().await?;
    let starts = ranges(target, collection).await?;
    let with_payload = payload_keys(keys);
    let (client, name) = (qdrant.client.clone(), collection.to_string());
    let fetch = move |offset: Option<PointKey>| {
        let client = client.clone();
        let request = scroll_request(
            &name,
            offset.map(PointKey::to_grpc),
            page_size,
            with_payload.clone(),
        );
        async move {
            let mut reply = client.scroll(request).await?;
            let next = reply.next_page_offset.as_ref().map(PointKey::from_grpc);
            Ok::<_, qdrant_client::QdrantError>((std::mem::take(&mut reply.result), next))
        }
    };
    let fail = failure(target, collection, |e| e);
    partition::run(&starts, fetch, fail, &mut partition::AsTheyCome(each)).await
}

/// Every point id of a collection, in Qdrant's order, a page at a time; read with opsh's own
/// id-only codec ([`ids`](crate::ops::clients::qdrant::ids)), so a million ids cost little CPU.
/// The id space is split into ranges scrolled at once ([`partition`]); a range's ids wait
/// (in memory, then in a temp file) until the ranges before it have been handed on.
pub async fn scroll_ids(
    target: &Target,
    collection: &str,
    page_size: u32,
    each: impl FnMut(Vec<PointKey>),
) -> Result<(), OpError> {
    let qdrant = target.qdrant().await?;
    let starts = ranges(target, collection).await?;
    let (ids, name) = (qdrant.ids.clone(), collection.to_string());
    let fetch = move |offset: Option<PointKey>| {
        let ids = ids.clone();
        let request = scroll_request(
            &name,
            offset.map(PointKey::to_grpc),
            page_size,
            payload_keys(&[]),
        );
        async move {
            let page = ids.page(request).await?;
            Ok::<_, tonic::Status>((page.keys, page.next.map(Some)))
        }
    };
    let fail = failure(target, collection, |e: tonic::Status| e.into());
    let mut sink = partition::Ordered::new(starts.len() + 1, each);
    partition::run(&starts, fetch, fail, &mut sink).await
}

/// How many ranges a whole-collection scroll is split into: the setting
/// `qdrant.scroll_partitions`, or with 0 (the default) as many as this machine's cores (opsh
/// runs beside the stack it checks), at least 2 and at most 8.
pub fn partitions(target: &Target) -> usize {
    match usize::try_from(target.settings.int(key::QDRANT_SCROLL_PARTITIONS)) {
        Ok(n) if n > 0 => n,
        _ => std::thread::available_parallelism()
            .map_or(2, usize::from)
            .clamp(2, 8),
    }
}

/// Where the ranges of a whole-collection scroll start (after the first), asked of Qdrant
/// with a few one-id pages ([`partition::plan`]).
async fn ranges(target: &Target, collection: &str) -> Result<Vec<PointKey>, OpError> {
    let k = partitions(target);
    if k <= 1 {
        return Ok(Vec::new());
    }
    let qdrant = target.qdrant().await?;
    let probe = |from: PointKey, n: u32| {
        let request = scroll_request(collection, Some(from.to_grpc()), n, payload_keys(&[]));
        async move { qdrant.ids.page(request).await.map(|p| p.keys) }
    };
    partition::plan(k, probe)
        .await
        .map_err(|e| collection_err(target, collection)(e.into()))
}

/// Why a partitioned scroll stopped short, as an operation error naming the collection.
fn failure<'a, E>(
    target: &'a Target,
    collection: &'a str,
    read: impl Fn(E) -> qdrant_client::QdrantError + 'a,
) -> impl Fn(partition::Failure<E>) -> OpError + 'a {
    move |f| match f {
        partition::Failure::Read(e) => collection_err(target, collection)(read(e)),
        partition::Failure::BadOffset => OpError::backend(
            target.qdrant_backend(),
            ErrorKind::Failed,
            format!("scroll of `{collection}`: the next page's offset is not a point id"),
        ),
        partition::Failure::Lost(e) => {
            OpError::backend(target.qdrant_backend(), ErrorKind::Failed, e)
        }
    }
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
