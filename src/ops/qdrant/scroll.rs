//! Point ids and scrolls: ids given by a script as keys, the whole-collection scroll (with
//! payload keys, or ids only through opsh's id codec) pipelined a page ahead, and one page.

use qdrant_client::qdrant::{
    self as q, PointId, ScrollPoints, WithPayloadSelector, WithVectorsSelector,
    with_payload_selector,
};
use serde::Serialize;

use super::collections::collection_err;
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
