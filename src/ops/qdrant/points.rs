//! Reading points by id: the points that exist, with their payload as JSON.

use std::collections::HashMap;

use qdrant_client::qdrant::{self as q, GetPoints};
use serde::Serialize;

use super::collections::collection_err;
use super::scroll::no_vectors;
use crate::ops::Target;
use crate::ops::clients::qdrant::PointKey;
use crate::ops::error::OpError;

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
