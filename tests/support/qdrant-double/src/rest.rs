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
        let code = match status.code() {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::DataLoss => StatusCode::BAD_REQUEST,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = json!({
            "status": {"error": status.message()},
            "time": start.elapsed().as_secs_f64(),
        });
        (code, axum::Json(body)).into_response()
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

/// A snapshot description in Qdrant's REST form (`creation_time` a naive UTC date-time).
pub fn snapshot_json(info: &SnapshotInfo) -> Value {
    let created: chrono::DateTime<chrono::Utc> = info.creation_time.into();
    let mut value = json!({
        "name": info.name,
        "creation_time": created.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
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
    if let Some(expected) = &query.checksum {
        let actual = sha256_hex(&bytes);
        if !expected.eq_ignore_ascii_case(&actual) {
            return Err(fail(Status::data_loss(format!(
                "Checksum mismatch: expected {expected}, actual {actual}"
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
    let request = q::CreateCollection {
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
    shared.store.create(&request).map_err(fail)?;
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
    let collection = shared.store.get(&collection).map_err(fail)?;
    let prepared = crate::store::read(&collection)
        .prepare_points(points)
        .map_err(fail)?;
    let operation_id = {
        let mut c = crate::store::write(&collection);
        c.points.extend(prepared);
        c.next_operation()
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
