//! Seeds a Qdrant (the double) from a JSON description:
//! `{"collections": {"name": {"size": 4, "distance": "Cosine", "points": [{"id": 7 | "uuid", "payload": {…}}]}}}`.
//! Every point gets the vector [1, 0, 0, …] of the collection's size.
//!
//! Also the deployment's tables as the backup tests fill and compare them (rows, fingerprint),
//! shared by tests/backup.rs and tests/backup_containers.rs.
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

// ---------------------------------------------------------------------------------------------
// The deployment's tables, as the backup tests fill, back up and compare them.

/// The deployment database's password (its role in the backup tests), which no backup file may
/// hold.
pub const PASSWORD: &str = "youtube_pass";

/// Rows in every deployment table: 3 channels, 200 content rows (quoted and Korean titles),
/// 1000 transcripts, 300 jobs of each status, 500 vector mappings.
pub const DEPLOYMENT_ROWS: &str = "INSERT INTO channels (name, url, platform) SELECT 'ch' || i, 'https://yt/c/' || i, 'youtube' FROM generate_series(1, 3) i;
         INSERT INTO content (channel_id, external_id, title, url, description, vector_stored)
           SELECT 1 + i % 3, 'v' || i, 'title ' || i || ' ''quoted'' 한국어', 'https://yt/v/' || i, repeat('d', i), i % 2 = 0
           FROM generate_series(1, 200) i;
         INSERT INTO transcripts (content_id, text, segment_order) SELECT 1 + i % 200, 'segment ' || i, i FROM generate_series(1, 1000) i;
         INSERT INTO processing_jobs (job_type, content_id, status)
           SELECT 'vectorize', 1 + i % 200, (ARRAY['pending', 'processing', 'completed', 'failed'])[1 + i % 4] FROM generate_series(1, 300) i;
         INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text, chunk_order, chunk_metadata)
           SELECT 1 + i % 200, md5(i::text), 'youtube_content', 'chunk ' || i, i, jsonb_build_object('i', i) FROM generate_series(1, 500) i;";

/// Per table: row count, md5 of its rows in order, and its id sequence's position, each read
/// with `scalar` (one query's one value). opsh_audit's rows are left out: the restore itself is
/// audited there, after it.
pub fn fingerprint(scalar: impl Fn(&str) -> String) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let tables = scalar(
        "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class
         WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
    );
    assert!(tables.contains("vector_mappings"), "{tables}");
    out.push(("tables".to_string(), tables.clone()));
    for t in tables.split(',').filter(|t| *t != "opsh_audit") {
        out.push((
            format!("{t} rows"),
            scalar(&format!("SELECT count(*) FROM {t}")),
        ));
        out.push((
            format!("{t} md5"),
            scalar(&format!(
                "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {t} t"
            )),
        ));
    }
    for seq in [
        "channels_id_seq",
        "content_id_seq",
        "processing_jobs_id_seq",
    ] {
        out.push((
            seq.to_string(),
            scalar(&format!("SELECT last_value FROM {seq}")),
        ));
    }
    out
}

/// Redis db 15 of tools/with-services (its data dir is on this host).
pub fn redis_url() -> String {
    let server = std::env::var("REDIS_URL").expect("REDIS_URL (tools/with-services)");
    let mut url = url::Url::parse(&server).expect("REDIS_URL is a URL");
    url.set_path("15");
    url.to_string()
}

/// A file's or folder's permission bits.
pub fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
