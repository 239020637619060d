//! The REST endpoints opsh uses: version, health and collection snapshots; plus creating a
//! collection and upserting points (`PUT /collections/{c}`, `PUT /collections/{c}/points`), so a
//! demo loader can seed real Qdrant or this double with the same curl commands.
//!
//! Bodies are shaped like Qdrant's: `{"result": …, "status": "ok", "time": …}`, errors
//! `{"status": {"error": "…"}, "time": …}` with Qdrant's HTTP status codes.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::{Code, Status};

use crate::Shared;
use crate::cluster::{collection_info_json, shard_of};
use crate::errors::{check_api_key, internal, wrong_input};
use crate::grpc::TITLE;
use crate::snapshots::{SnapshotInfo, sha256_hex};

/// The REST router over one shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(|| async { "healthz check passed" }))
        .route("/livez", get(|| async { "healthz check passed" }))
        .route("/readyz", get(|| async { "all shards are ready" }))
        .route(
            "/collections/{collection}",
            axum::routing::put(create_collection),
        )
        .route(
            "/collections/{collection}/points",
            axum::routing::put(upsert_points),
        )
        .route(
            "/collections/{collection}/snapshots",
            get(list_snapshots).post(create_snapshot),
        )
        .route(
            "/collections/{collection}/snapshots/upload",
            axum::routing::post(upload_snapshot),
        )
        .route(
            "/collections/{collection}/snapshots/{name}",
            get(download_snapshot).delete(delete_snapshot),
        )
        .route("/cluster", get(cluster_status))
        .route("/collections/{collection}/cluster", get(collection_cluster))
        .route(
            "/collections/{collection}/shards/{shard}/snapshots",
            get(list_shard_snapshots).post(create_shard_snapshot),
        )
        .route(
            "/collections/{collection}/shards/{shard}/snapshots/upload",
            axum::routing::post(upload_shard_snapshot),
        )
        .route(
            "/collections/{collection}/shards/{shard}/snapshots/recover",
            axum::routing::put(recover_shard_snapshot),
        )
        .route(
            "/collections/{collection}/shards/{shard}/snapshots/{name}",
            get(download_shard_snapshot).delete(delete_shard_snapshot),
        )
        .layer(middleware::from_fn_with_state(shared.clone(), api_key))
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

/// Qdrant lets these through without the API key.
fn whitelisted(path: &str) -> bool {
    path == "/" || path == "/healthz" || path.starts_with("/readyz") || path.starts_with("/livez")
}

async fn api_key(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if let Some(expected) = &shared.api_key
        && !whitelisted(request.uri().path())
    {
        let headers = request.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Err(message) = check_api_key(expected, header("api-key"), header("authorization")) {
            return (StatusCode::UNAUTHORIZED, message).into_response();
        }
    }
    next.run(request).await
}

/// A refusal in Qdrant's REST form.
struct Error(Status, Instant);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let Error(status, start) = self;
        let code = http_status(&status);
        let body = json!({
            "status": {"error": status.message()},
            "time": start.elapsed().as_secs_f64(),
        });
        (code, axum::Json(body)).into_response()
    }
}

/// The HTTP status Qdrant gives an error of this kind.
fn http_status(status: &Status) -> StatusCode {
    match status.code() {
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::DataLoss => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn ok(result: Value, start: Instant) -> Response {
    axum::Json(json!({
        "result": result,
        "status": "ok",
        "time": start.elapsed().as_secs_f64(),
    }))
    .into_response()
}

/// A snapshot description in Qdrant's REST form: `creation_time` a naive UTC date-time in
/// whole seconds (1.18.3 answered `"creation_time":"2026-12-02T15:23:19"` for collection and
/// shard snapshots alike).
pub fn snapshot_json(info: &SnapshotInfo) -> Value {
    let created: chrono::DateTime<chrono::Utc> = info.creation_time.into();
    let mut value = json!({
        "name": info.name,
        "creation_time": created.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "size": info.size,
    });
    if let Some(checksum) = &info.checksum {
        value["checksum"] = json!(checksum);
    }
    value
}

async fn root(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({"title": TITLE, "version": shared.server_version})).into_response()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work).await.map_err(internal)?
}

async fn list_snapshots(
    State(shared): State<Arc<Shared>>,
    Path(collection): Path<String>,
) -> Result<Response, Error> {
    let start = Instant::now();
    let list = shared
        .snapshots
        .list(&shared.store, &collection)
        .map_err(|e| Error(e, start))?;
    let list: Vec<Value> = list.iter().map(snapshot_json).collect();
    Ok(ok(json!(list), start))
}

async fn create_snapshot(
    State(shared): State<Arc<Shared>>,
    Path(collection): Path<String>,
) -> Result<Response, Error> {
    let start = Instant::now();
    let info = blocking(move || shared.snapshots.create(&shared.store, &collection))
        .await
        .map_err(|e| Error(e, start))?;
    Ok(ok(snapshot_json(&info), start))
}

async fn download_snapshot(
    State(shared): State<Arc<Shared>>,
    Path((collection, name)): Path<(String, String)>,
) -> Result<Response, Error> {
    let start = Instant::now();
    let path = shared
        .snapshots
        .path(&shared.store, &collection, &name)
        .map_err(|e| Error(e, start))?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| Error(internal(e), start))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

async fn delete_snapshot(
    State(shared): State<Arc<Shared>>,
    Path((collection, name)): Path<(String, String)>,
) -> Result<Response, Error> {
    let start = Instant::now();
    shared
        .snapshots
        .delete(&shared.store, &collection, &name)
        .map_err(|e| Error(e, start))?;
    Ok(ok(json!(true), start))
}

#[derive(Deserialize)]
struct UploadQuery {
    wait: Option<bool>,
    checksum: Option<String>,
}

async fn upload_snapshot(
    State(shared): State<Arc<Shared>>,
    Path(collection): Path<String>,
    Query(query): Query<UploadQuery>,
    mut multipart: Multipart,
) -> Result<Response, Error> {
    let start = Instant::now();
    let fail = |e: Status| Error(e, start);
    let mut snapshot = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| fail(wrong_input(format!("Invalid multipart body: {e}"))))?
    {
        if field.name() == Some("snapshot") {
            let bytes = field
                .bytes()
                .await
                .map_err(|e| fail(wrong_input(format!("Invalid multipart body: {e}"))))?;
            snapshot = Some(bytes);
        }
    }
    let bytes =
        snapshot.ok_or_else(|| fail(wrong_input("Multipart field `snapshot` is missing")))?;
    // Qdrant 1.18.3 names the file's sum "expected" and the given one "actual" (its
    // `StorageError::ChecksumMismatch`, lib/storage/src/content_manager/errors.rs, called with the
    // arguments that way round): "Checksum mismatch: expected <file's>, actual <given>", 400.
    if let Some(given) = &query.checksum {
        let actual = sha256_hex(&bytes);
        if !given.eq_ignore_ascii_case(&actual) {
            return Err(fail(Status::data_loss(format!(
                "Checksum mismatch: expected {actual}, actual {given}"
            ))));
        }
    }
    crate::store::validate_collection_name(&collection).map_err(fail)?;
    blocking(move || shared.snapshots.recover(&shared.store, &collection, &bytes))
        .await
        .map_err(fail)?;
    if query.wait == Some(false) {
        let body =
            json!({"result": null, "status": "accepted", "time": start.elapsed().as_secs_f64()});
        return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
    }
    Ok(ok(json!(true), start))
}

#[derive(Deserialize)]
struct CreateBody {
    vectors: VectorsBody,
    shard_number: Option<u32>,
    replication_factor: Option<u32>,
}

#[derive(Deserialize)]
struct VectorsBody {
    size: u64,
    distance: String,
}

/// `PUT /collections/{c}` with `{"vectors": {"size": n, "distance": "Cosine"}}`, as Qdrant takes it.
async fn create_collection(
    State(shared): State<Arc<Shared>>,
    Path(collection): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    use qdrant_client::qdrant as q;
    let start = Instant::now();
    let fail = |e: Status| Error(e, start);
    let body: CreateBody = serde_json::from_slice(&body)
        .map_err(|e| fail(wrong_input(format!("Json deserialize error: {e}"))))?;
    let distance = ["Cosine", "Euclid", "Dot", "Manhattan"]
        .into_iter()
        .find(|d| d.eq_ignore_ascii_case(&body.vectors.distance))
        .and_then(q::Distance::from_str_name)
        .ok_or_else(|| {
            fail(wrong_input(format!(
                "Json deserialize error: unknown variant `{}`, expected one of `Cosine`, `Euclid`, `Dot`, `Manhattan`",
                body.vectors.distance
            )))
        })?;
    let mut request = q::CreateCollection {
        shard_number: body.shard_number,
        replication_factor: body.replication_factor,
        collection_name: collection,
        vectors_config: Some(q::VectorsConfig {
            config: Some(q::vectors_config::Config::Params(q::VectorParams {
                size: body.vectors.size,
                distance: distance as i32,
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    shared.cluster.fill_defaults(&mut request);
    shared.store.create(&request).map_err(fail)?;
    shared.cluster.forget(&request.collection_name);
    Ok(ok(json!(true), start))
}

#[derive(Deserialize)]
struct UpsertBody {
    points: Vec<PointBody>,
}

#[derive(Deserialize)]
struct PointBody {
    id: Value,
    vector: Vec<f32>,
    #[serde(default)]
    payload: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct WaitQuery {
    wait: Option<bool>,
}

/// A JSON value as a payload value.
fn payload_value(v: &Value) -> qdrant_client::qdrant::Value {
    use qdrant_client::qdrant::value::Kind;
    use qdrant_client::qdrant::{ListValue, NullValue, Struct, Value as Q};
    let kind = match v {
        Value::Null => Kind::NullValue(NullValue::NullValue as i32),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(payload_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(Struct {
            fields: o
                .iter()
                .map(|(k, v)| (k.clone(), payload_value(v)))
                .collect(),
        }),
    };
    Q { kind: Some(kind) }
}

/// `PUT /collections/{c}/points?wait=true` with `{"points": [{"id", "vector", "payload"}]}`.
async fn upsert_points(
    State(shared): State<Arc<Shared>>,
    Path(collection): Path<String>,
    Query(query): Query<WaitQuery>,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    use qdrant_client::qdrant as q;
    let start = Instant::now();
    let fail = |e: Status| Error(e, start);
    let body: UpsertBody = serde_json::from_slice(&body)
        .map_err(|e| fail(wrong_input(format!("Json deserialize error: {e}"))))?;
    let mut points = Vec::with_capacity(body.points.len());
    for p in body.points {
        let id = match &p.id {
            Value::Number(n) => n.as_u64().map(q::PointId::from),
            Value::String(s) => Some(q::PointId::from(s.clone())),
            _ => None,
        }
        .ok_or_else(|| {
            fail(wrong_input(format!(
                "Json deserialize error: {} is neither an unsigned integer nor a UUID",
                p.id
            )))
        })?;
        points.push(q::PointStruct {
            id: Some(id),
            vectors: Some(p.vector.into()),
            payload: p
                .payload
                .iter()
                .map(|(k, v)| (k.clone(), payload_value(v)))
                .collect(),
        });
    }
    let name = collection;
    let collection = shared.store.get(&name).map_err(fail)?;
    let prepared = crate::store::read(&collection)
        .prepare_points(points)
        .map_err(fail)?;
    let operation_id = {
        let mut c = crate::store::write(&collection);
        let shard_number = c.shard_number;
        let shards = prepared
            .iter()
            .map(|(id, _)| shard_of(id, shard_number))
            .collect();
        let (failed, error) = shared
            .cluster
            .check_write(&name, &c, &shards, shared.peer_id());
        c.points.extend(
            prepared
                .into_iter()
                .filter(|(id, _)| !failed.contains(&shard_of(id, shard_number))),
        );
        let operation_id = c.next_operation();
        if let Some(error) = error {
            return Err(fail(error));
        }
        operation_id
    };
    let status = if query.wait == Some(false) {
        "acknowledged"
    } else {
        "completed"
    };
    Ok(ok(
        json!({"operation_id": operation_id, "status": status}),
        start,
    ))
}

/// `GET /cluster`: Qdrant's cluster status (src/actix/api/cluster_api.rs), see
/// [`crate::cluster::ClusterState::status_json`].
async fn cluster_status(State(shared): State<Arc<Shared>>) -> Response {
    let start = Instant::now();
    ok(shared.cluster.status_json(shared.peer_index), start)
}

/// `GET /collections/{c}/cluster`: the collection's shards as this peer sees them
/// (src/actix/api/collections_api.rs `get_cluster_info`).
async fn collection_cluster(
    State(shared): State<Arc<Shared>>,
    Path(collection): Path<String>,
) -> Result<Response, Error> {
    let start = Instant::now();
    let c = shared.store.get(&collection).map_err(|e| Error(e, start))?;
    let info =
        shared
            .cluster
            .collection_info(&collection, &crate::store::read(&c), shared.peer_id());
    Ok(ok(collection_info_json(&info), start))
}

async fn list_shard_snapshots(
    State(shared): State<Arc<Shared>>,
    Path((collection, shard)): Path<(String, u32)>,
) -> Result<Response, Error> {
    let start = Instant::now();
    let list = shared
        .snapshots
        .list_shard(&shared.store, &collection, shard)
        .map_err(|e| Error(e, start))?;
    let list: Vec<Value> = list.iter().map(snapshot_json).collect();
    Ok(ok(json!(list), start))
}

async fn create_shard_snapshot(
    State(shared): State<Arc<Shared>>,
    Path((collection, shard)): Path<(String, u32)>,
) -> Result<Response, Error> {
    let start = Instant::now();
    let info = blocking(move || {
        shared
            .snapshots
            .create_shard(&shared.store, &collection, shard)
    })
    .await
    .map_err(|e| Error(e, start))?;
    Ok(ok(snapshot_json(&info), start))
}

/// Downloads a shard snapshot. Every refusal is plain text, as 1.18.3 answers this endpoint: a
/// missing file 404 "File not found: No such file or directory (os error 2)", a peer without
/// the shard 400 "Wrong input: Shard {s} is not a local or queue proxy shard", no such shard 404
/// "Not found: shard {s} not found", no such collection 404 "Not found: Collection …".
async fn download_shard_snapshot(
    State(shared): State<Arc<Shared>>,
    Path((collection, shard, name)): Path<(String, u32, String)>,
) -> Response {
    let path = match shared
        .snapshots
        .shard_file(&shared.store, &collection, shard, &name)
    {
        Ok(path) => path,
        Err(e) => return (http_status(&e), e.message().to_string()).into_response(),
    };
    let bytes = match path {
        Some(path) => tokio::fs::read(&path).await.ok(),
        None => None,
    };
    let Some(bytes) = bytes else {
        return (
            StatusCode::NOT_FOUND,
            "File not found: No such file or directory (os error 2)",
        )
            .into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response()
}

async fn delete_shard_snapshot(
    State(shared): State<Arc<Shared>>,
    Path((collection, shard, name)): Path<(String, u32, String)>,
) -> Result<Response, Error> {
    let start = Instant::now();
    shared
        .snapshots
        .delete_shard(&shared.store, &collection, shard, &name)
        .map_err(|e| Error(e, start))?;
    Ok(ok(json!(true), start))
}

/// `POST /collections/{c}/shards/{s}/snapshots/upload?priority=…&checksum=…&wait=…` with the
/// multipart field `snapshot`. As 1.18.3 answers: `{"result":null,"status":"ok"}`; with
/// wait=false 202 `{"status":"accepted","time":…}`; a checksum that differs is 400 "Checksum
/// mismatch: expected {actual}, actual {given}" (sic: Qdrant names the file's sum "expected").
async fn upload_shard_snapshot(
    State(shared): State<Arc<Shared>>,
    Path((collection, shard)): Path<(String, u32)>,
    Query(query): Query<UploadQuery>,
    mut multipart: Multipart,
) -> Result<Response, Error> {
    let start = Instant::now();
    let fail = |e: Status| Error(e, start);
    let mut snapshot = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| fail(wrong_input(format!("Invalid multipart body: {e}"))))?
    {
        if field.name() == Some("snapshot") {
            let bytes = field
                .bytes()
                .await
                .map_err(|e| fail(wrong_input(format!("Invalid multipart body: {e}"))))?;
            snapshot = Some(bytes);
        }
    }
    let bytes =
        snapshot.ok_or_else(|| fail(wrong_input("Multipart field `snapshot` is missing")))?;
    if let Some(given) = &query.checksum {
        let actual = sha256_hex(&bytes);
        if !given.eq_ignore_ascii_case(&actual) {
            return Err(fail(Status::invalid_argument(format!(
                "Checksum mismatch: expected {actual}, actual {given}"
            ))));
        }
    }
    blocking(move || {
        shared
            .snapshots
            .recover_shard(&shared.store, &collection, shard, &bytes)
    })
    .await
    .map_err(fail)?;
    if query.wait == Some(false) {
        let body = json!({"status": "accepted", "time": start.elapsed().as_secs_f64()});
        return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
    }
    Ok(ok(Value::Null, start))
}

#[derive(Deserialize)]
struct RecoverBody {
    location: String,
    checksum: Option<String>,
    api_key: Option<String>,
}

/// `PUT /collections/{c}/shards/{s}/snapshots/recover` with `{"location", "priority",
/// "checksum", "api_key"}`, as 1.18.3 answers it: `{"result":true}`; a checksum that is not
/// 64 characters is 422 "Validation error in JSON body: [checksum: …invalid_sha256_hash…]"; one
/// that differs is 400 "Wrong input: Snapshot checksum mismatch: expected {given}, got
/// {actual}"; a file:// location is refused for shards ("URLs with file scheme are not
/// supported"); a location that answers non-200 is "Wrong input: Failed to download tar from
/// {url}: status - {status}". The double fetches http:// only (https:// answers that it does
/// not).
async fn recover_shard_snapshot(
    State(shared): State<Arc<Shared>>,
    Path((collection, shard)): Path<(String, u32)>,
    Query(query): Query<WaitQuery>,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    let start = Instant::now();
    let fail = |e: Status| Error(e, start);
    let body: RecoverBody = serde_json::from_slice(&body)
        .map_err(|e| fail(wrong_input(format!("Json deserialize error: {e}"))))?;
    if let Some(sum) = &body.checksum
        && sum.len() != 64
    {
        let message = format!(
            "Validation error in JSON body: [checksum: Validation error: invalid_sha256_hash [{{\"length\": Number({}), \"expected_length\": Number(64), \"value\": String({:?})}}]]",
            sum.len(),
            sum
        );
        let body = json!({"status": {"error": message}, "time": 0.0});
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response());
    }
    shared
        .snapshots
        .check_shard_exists(&shared.store, &collection, shard)
        .map_err(fail)?;
    let location = body.location.clone();
    let bytes = if location.starts_with("file:") {
        return Err(fail(wrong_input(format!(
            "Invalid snapshot URL {location}: URLs with file scheme are not supported"
        ))));
    } else if location.starts_with("http://") {
        fetch(&location, body.api_key.as_deref())
            .await
            .map_err(fail)?
    } else if location.starts_with("https://") {
        return Err(fail(crate::errors::unimplemented(
            "recovering a shard snapshot from an https:// location",
        )));
    } else {
        return Err(fail(wrong_input(format!(
            "Invalid snapshot URL {location}: relative URL without a base"
        ))));
    };
    if let Some(given) = &body.checksum {
        let actual = sha256_hex(&bytes);
        if !given.eq_ignore_ascii_case(&actual) {
            return Err(fail(wrong_input(format!(
                "Snapshot checksum mismatch: expected {given}, got {actual}"
            ))));
        }
    }
    blocking(move || {
        shared
            .snapshots
            .recover_shard(&shared.store, &collection, shard, &bytes)
    })
    .await
    .map_err(fail)?;
    if query.wait == Some(false) {
        let body = json!({"status": "accepted", "time": start.elapsed().as_secs_f64()});
        return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
    }
    Ok(ok(json!(true), start))
}

/// GETs an http:// URL's body, as Qdrant downloads a snapshot location.
async fn fetch(url: &str, api_key: Option<&str>) -> Result<Vec<u8>, Status> {
    use http_body_util::{BodyExt as _, Empty};
    let failed = |e: String| wrong_input(format!("Failed to download tar from {url}: {e}"));
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| wrong_input(format!("Invalid snapshot URL {url}: {e}")))?;
    let host = uri.host().unwrap_or("localhost").to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = axum::http::Request::get(path).header(header::HOST, host);
    if let Some(key) = api_key {
        request = request.header("api-key", key);
    }
    let request = request
        .body(Empty::<axum::body::Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    if response.status() != StatusCode::OK {
        return Err(failed(format!("status - {}", response.status())));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(body.to_bytes().to_vec())
}
