//! Helpers of the double's own tests: a client connected to a fresh double, and a minimal
//! HTTP/1.1 client so the REST tests see the exact bytes on the wire.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, Distance, PointId, PointStruct, UpsertPointsBuilder,
    VectorParamsBuilder,
};
use qdrant_double::{Options, QdrantDouble, Running};

/// A double and a client of it, as opsh builds its client (no compatibility check).
pub fn start(options: Options) -> (Running, Qdrant) {
    let double = QdrantDouble::start(options).expect("the double starts");
    let client = client_with_key(&double, None);
    (double, client)
}

/// A client with an API key.
pub fn client_with_key(double: &Running, key: Option<&str>) -> Qdrant {
    let mut builder = Qdrant::from_url(&double.grpc_url()).skip_compatibility_check();
    if let Some(key) = key {
        builder = builder.api_key(key);
    }
    builder.build().expect("a client")
}

/// Creates `name` with one unnamed 4-dim cosine vector.
pub async fn create_small(client: &Qdrant, name: &str) {
    client
        .create_collection(
            CreateCollectionBuilder::new(name)
                .vectors_config(VectorParamsBuilder::new(4, Distance::Cosine)),
        )
        .await
        .expect("collection created");
}

/// Upserts points with the given ids (in any textual form), payload content_id = i.
pub async fn upsert_ids(client: &Qdrant, name: &str, ids: &[PointId]) {
    let points: Vec<PointStruct> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            PointStruct::new(
                id.clone(),
                vec![1.0, 0.0, 0.0, 0.0],
                [("content_id", (i as i64).into())],
            )
        })
        .collect();
    client
        .upsert_points(UpsertPointsBuilder::new(name, points).wait(true))
        .await
        .expect("points upserted");
}

/// A point id as text, the way opsh compares it.
pub fn id_text(id: &PointId) -> String {
    match &id.point_id_options {
        Some(PointIdOptions::Num(n)) => n.to_string(),
        Some(PointIdOptions::Uuid(u)) => u.clone(),
        None => panic!("point without id"),
    }
}

/// A point id as Qdrant orders them: every number, then every UUID by its 128-bit value.
pub fn order_key(id: &PointId) -> (u8, u128) {
    match &id.point_id_options {
        Some(PointIdOptions::Num(n)) => (0, u128::from(*n)),
        Some(PointIdOptions::Uuid(u)) => (1, uuid::Uuid::parse_str(u).expect("a UUID").as_u128()),
        None => panic!("point without id"),
    }
}

/// The status of a failed call.
pub fn status_of(err: qdrant_client::QdrantError) -> tonic::Status {
    match err {
        qdrant_client::QdrantError::ResponseError { status } => status,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .expect("hex chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A multipart/form-data body with one file field.
pub fn multipart(field: &str, filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "qdrant-double-test-boundary-7c1f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
