//! Seeds a Qdrant (the double) from a JSON description:
//! `{"collections": {"name": {"size": 4, "distance": "Cosine", "points": [{"id": 7 | "uuid", "payload": {…}}]}}}`.
//! Every point gets the vector [1, 0, 0, …] of the collection's size.
#![allow(dead_code)]

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, Distance, PointId, PointStruct, UpsertPointsBuilder,
    VectorParamsBuilder,
};
use serde_json::Value;

/// A point id from JSON: a number, or UUID text (sent as it is; Qdrant parses it).
pub fn point_id(v: &Value) -> PointId {
    match v {
        Value::Number(n) => PointId::from(n.as_u64().expect("u64 id")),
        Value::String(s) => PointId::from(s.clone()),
        other => panic!("bad id {other}"),
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn client(url: &str) -> Qdrant {
    client_with_key(url, None)
}

pub fn client_with_key(url: &str, key: Option<&str>) -> Qdrant {
    Qdrant::from_url(url)
        .api_key(key.map(str::to_string))
        .skip_compatibility_check()
        .build()
        .expect("qdrant client")
}

/// Creates the collections and upserts their points.
pub fn seed(url: &str, spec: &Value) {
    seed_with_key(url, spec, None)
}

/// The same, on a server that wants an API key.
pub fn seed_with_key(url: &str, spec: &Value, key: Option<&str>) {
    let rt = runtime();
    let client = client_with_key(url, key);
    rt.block_on(async {
        for (name, c) in spec["collections"].as_object().expect("collections") {
            let size = c["size"].as_u64().expect("size");
            let distance = Distance::from_str_name(c["distance"].as_str().unwrap_or("Cosine"))
                .expect("distance");
            client
                .create_collection(
                    CreateCollectionBuilder::new(name)
                        .vectors_config(VectorParamsBuilder::new(size, distance)),
                )
                .await
                .expect("create collection");
            let points: Vec<PointStruct> = c["points"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let mut v = vec![0.0f32; size as usize];
                    v[0] = 1.0;
                    PointStruct::new(point_id(&p["id"]), v, payload(&p["payload"]))
                })
                .collect();
            if !points.is_empty() {
                client
                    .upsert_points(UpsertPointsBuilder::new(name, points).wait(true))
                    .await
                    .expect("upsert");
            }
        }
    });
}

/// Upserts points into an existing collection of `size` dims.
pub fn upsert(url: &str, collection: &str, size: usize, points: &[(Value, Value)]) {
    let rt = runtime();
    let client = client(url);
    let points: Vec<PointStruct> = points
        .iter()
        .map(|(id, p)| {
            let mut v = vec![0.0f32; size];
            v[0] = 1.0;
            PointStruct::new(point_id(id), v, payload(p))
        })
        .collect();
    rt.block_on(client.upsert_points(UpsertPointsBuilder::new(collection, points).wait(true)))
        .expect("upsert");
}

/// A flat JSON object (numbers, strings, booleans) as a payload.
pub fn payload(v: &Value) -> qdrant_client::Payload {
    use qdrant_client::qdrant::Value as Q;
    let mut out = std::collections::HashMap::<String, Q>::new();
    for (k, v) in v.as_object().into_iter().flatten() {
        let q: Q = match v {
            Value::Number(n) if n.is_i64() => n.as_i64().unwrap().into(),
            Value::Number(n) => n.as_f64().unwrap().into(),
            Value::String(s) => s.clone().into(),
            Value::Bool(b) => (*b).into(),
            other => panic!("unsupported payload value {other}"),
        };
        out.insert(k.clone(), q);
    }
    out.into()
}
