//! The Qdrant client: qdrant-client over gRPC (6334) for everything but snapshot download,
//! which is REST (6333); both addresses as the settings resolve them from qdrant.url,
//! qdrant.grpc_url and qdrant.rest_url (src/config/qdrant_urls.rs). The one place that turns its errors into
//! operation errors, naming the likely mistake (the REST port where gRPC is needed, an API key
//! refused, a collection that does not exist).
//!
//! qdrant-client's own version check is skipped: it `println!`s to stdout, which would break
//! `--json`. [`compatibility`] is opsh's own, and connect warns on stderr.

pub mod grpc;
pub mod ids;
mod point_key;

pub use point_key::PointKey;

use crate::config::key;
use std::time::Duration;

use grpc::Grpc;
use qdrant_client::QdrantError;

use super::Connect;
use crate::config::{Settings, redact_url};
use crate::ops::error::{Backend, ErrorKind, OpError};

/// The qdrant-client version opsh is built with (its minor version is what a server is compared
/// with).
pub const CLIENT_VERSION: &str = "1.20.0";

pub struct Qdrant {
    pub client: Grpc,
    /// A second connection, for scrolls that want only the ids (see [`ids`]).
    pub ids: ids::IdScroll,
    /// qdrant.ca_file's certificates: an `https://` REST URL trusts the same roots as gRPC.
    pub ca: Option<crate::tls::CaFile>,
    /// The REST base URL, without a trailing slash.
    pub rest_url: String,
    /// Its setting and where that came from, for an unreachable REST port's error.
    pub rest_setting: String,
    pub api_key: Option<String>,
    /// The server's version, from the health check made on connect.
    pub server_version: String,
    /// Why the server and client may not work together, if they may not.
    pub compatibility: Option<String>,
}

impl Connect for Qdrant {
    const NAME: &'static str = "qdrant";
    const SETTING: key::Text = key::QDRANT_URL;

    fn address(settings: &Settings) -> String {
        redact_url(&settings.qdrant_grpc_url().url)
    }

    async fn connect(settings: &Settings, backend: &Backend) -> Result<Qdrant, OpError> {
        let grpc_url = settings.qdrant_grpc_url().url;
        let url = grpc_url.as_str();
        url::Url::parse(url).map_err(|e| {
            let name = if settings.text(key::QDRANT_GRPC_URL).trim().is_empty() {
                key::QDRANT_URL.name()
            } else {
                key::QDRANT_GRPC_URL.name()
            };
            OpError::backend(backend, ErrorKind::Invalid, format!("{name}: {e}"))
        })?;
        let api_key =
            Some(settings.text(key::QDRANT_API_KEY).to_string()).filter(|k| !k.is_empty());
        let grpc = grpc_settings(settings, url, api_key.as_deref())
            .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
        let ids = ids::IdScroll::new(&grpc)
            .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
        // Connected now, so an unreachable server, a wrong port or a refused certificate shows
        // its real cause here.
        let client = Grpc::connect(&grpc).await.map_err(error(backend))?;
        let health = client.health_check().await.map_err(error(backend))?;
        // Qdrant answers the health check without the API key; a call that needs it tells a
        // refused key here rather than at the first real operation.
        client.list_collections().await.map_err(error(backend))?;
        let compatibility = compatibility(&health.version);
        if let Some(why) = &compatibility {
            tracing::warn!("{backend}: {why}");
        }
        Ok(Qdrant {
            client,
            ids,
            ca: grpc.ca,
            rest_url: settings
                .qdrant_rest_url()
                .url
                .trim_end_matches('/')
                .to_string(),
            rest_setting: settings.origin(key::QDRANT_REST_URL),
            api_key,
            server_version: health.version,
            compatibility,
        })
    }
}

/// How to reach the gRPC port: `https://` trusts the system's roots plus qdrant.ca_file.
fn grpc_settings(
    settings: &Settings,
    url: &str,
    api_key: Option<&str>,
) -> Result<grpc::Settings, String> {
    let ca = crate::tls::configured_ca(settings, key::QDRANT_CA_FILE)?;
    Ok(grpc::Settings {
        url: url.to_string(),
        api_key: ids::ApiKey::new(api_key)?,
        ca,
        connect_timeout: CONNECT_TIMEOUT,
        timeout: Duration::from_secs(300),
    })
}

/// The Qdrant releases opsh is tested against, as (major, minor) bounds: 1.18 (a real 1.18.3
/// server: the check-data benchmark and by hand, single and clustered) through the release of
/// its client (the test double speaks the client's API).
pub const TESTED: ((u64, u64), (u64, u64)) = ((1, 18), (1, 20));

/// Why a server of `server` version is outside what opsh is tested against, or None. Outside
/// is a warning, never a failure: Qdrant keeps its API across minor versions, and most calls
/// work; the check that relies on one that does not fails on its own.
pub fn compatibility(server: &str) -> Option<String> {
    let ((lo_major, lo_minor), (hi_major, hi_minor)) = TESTED;
    let range = format!("{lo_major}.{lo_minor} to {hi_major}.{hi_minor}");
    let mut parts = server.trim_start_matches('v').split('.');
    let version = (|| Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?)))();
    match version {
        None => Some(format!(
            "cannot read the server version {server:?}; opsh is tested against Qdrant {range}"
        )),
        Some(v) if v < (lo_major, lo_minor) || v > (hi_major, hi_minor) => Some(format!(
            "server version {server} is outside the versions opsh is tested against ({range}); \
             most calls work across versions, some may fail"
        )),
        Some(_) => None,
    }
}

/// A qdrant-client error as an operation error naming the server and, where it is one of the
/// common mistakes, what to do about it.
pub fn error(backend: &Backend) -> impl Fn(QdrantError) -> OpError + '_ {
    move |e| {
        let (kind, cause) = describe(backend, &e);
        OpError::backend(backend, kind, cause)
    }
}

/// What to do about a certificate opsh does not trust.
const TLS_HINT: &str = "trust its CA with qdrant.ca_file (a PEM file)";

/// How long a gRPC connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

fn describe(backend: &Backend, e: &QdrantError) -> (ErrorKind, String) {
    use tonic::Code;
    let status = match e {
        QdrantError::ResponseError { status } => status,
        QdrantError::ResourceExhaustedError { status, .. } => status,
        QdrantError::InvalidUri(u) => return (ErrorKind::Invalid, format!("invalid URL: {u}")),
        other => return (ErrorKind::Failed, other.to_string()),
    };
    let detail = {
        let mut text = status.message().to_string();
        if let Some(source) = std::error::Error::source(status) {
            let more = chain(source);
            if !text.contains(&more) {
                text = if text.is_empty() {
                    more
                } else {
                    format!("{text}: {more}")
                };
            }
        }
        text
    };
    let lower = detail.to_lowercase();
    // An HTTP/1 server (Qdrant's REST port, or any web server) answering a gRPC (HTTP/2) call.
    if lower.contains("h2 protocol error")
        || lower.contains("http2 error")
        || lower.contains("frame with invalid size")
        || lower.contains("invalid http version")
        || lower.contains("grpc-status header missing")
        || lower.contains("connection reset") && status.code() == Code::Unknown
    {
        return (
            ErrorKind::Unreachable,
            format!(
                "the server does not speak gRPC ({detail}); is the gRPC address Qdrant's REST \
                 port? opsh needs the gRPC port, 6334 by default: a qdrant.url on 6333 is read \
                 as REST with gRPC on 6334, any other is used as the gRPC address; set \
                 qdrant.grpc_url when gRPC is elsewhere"
            ),
        );
    }
    // A failure on the way to the server (refused, unresolved, TLS, no answer) in words.
    // (qdrant-client reports a failed connect as `internal`, with the Debug text of the cause.)
    if matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
    ) && let Some((kind, words)) = super::transport(backend, status, Some(CONNECT_TIMEOUT))
    {
        return (kind, super::tls_hint(words, TLS_HINT, None));
    }
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => (
            ErrorKind::Refused,
            format!("the API key was refused ({detail}); check qdrant.api_key (QDRANT_API_KEY)"),
        ),
        Code::NotFound => (ErrorKind::NotFound, detail),
        Code::Unavailable => (ErrorKind::Unreachable, detail),
        Code::DeadlineExceeded => (ErrorKind::Timeout, detail),
        Code::InvalidArgument => (ErrorKind::Invalid, detail),
        Code::Cancelled if lower.contains("timeout") || lower.contains("timed out") => {
            (ErrorKind::Timeout, detail)
        }
        _ if lower.contains("transport error") || lower.contains("connect") => {
            (ErrorKind::Unreachable, detail)
        }
        _ => (ErrorKind::Failed, detail),
    }
}

/// A missing collection as Qdrant says it ("Collection `x` doesn't exist!"), normalised.
pub fn not_found(backend: &Backend, collection: &str) -> OpError {
    OpError::backend(
        backend,
        ErrorKind::NotFound,
        format!("collection `{collection}` does not exist"),
    )
}

/// A REST request that got no answer: what happened in words where the chain tells, else the
/// chain itself.
fn rest_error(
    backend: &Backend,
    shown: &str,
    setting: &str,
    e: &(dyn std::error::Error + 'static),
) -> OpError {
    let label = format!("{backend} (REST {shown})");
    let (kind, cause) =
        super::transport(&label, e, None).unwrap_or_else(|| (ErrorKind::Unreachable, chain(e)));
    let cause = super::tls_hint(cause, TLS_HINT, None);
    // The REST port has a setting of its own (qdrant.rest_url): that one is named.
    let rest = Backend {
        setting: setting.to_string(),
        ..backend.clone()
    };
    OpError::backend(&rest, kind, format!("REST {shown}: {cause}"))
}

/// The REST address of `path` (http, or https with the roots gRPC trusts).
fn rest_uri(qdrant: &Qdrant, backend: &Backend, path: &str) -> Result<hyper::Uri, OpError> {
    let url = format!("{}{path}", qdrant.rest_url);
    url.parse()
        .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, format!("qdrant.rest_url: {e}")))
}

/// Sends one REST request: the one place a request is built (plain http, the api-key header when
/// one is configured) and sent; a request that got no answer is an error in words.
async fn rest_send<B>(
    qdrant: &Qdrant,
    backend: &Backend,
    request: hyper::http::request::Builder,
    body: B,
) -> Result<hyper::Response<hyper::body::Incoming>, OpError>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    let mut request = request;
    if let Some(key) = &qdrant.api_key {
        request = request.header("api-key", key);
    }
    let request = request
        .body(body)
        .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
    let shown = redact_url(&qdrant.rest_url);
    let sent = if qdrant.rest_url.starts_with("https:") {
        let tls = crate::tls::client_config(qdrant.ca.as_ref(), None, &[])
            .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        builder.build::<_, B>(https).request(request).await
    } else {
        builder.build_http::<B>().request(request).await
    };
    sent.map_err(|e| rest_error(backend, &shown, &qdrant.rest_setting, &e))
}

/// An answer that is not a success: Qdrant's own message (`status.error`) when the body has
/// one, else the body's start; refused for 401/403, not found for 404.
fn rest_status_error(
    backend: &Backend,
    shown: &str,
    status: hyper::StatusCode,
    text: &str,
) -> OpError {
    let message = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["status"]["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().chars().take(200).collect());
    let kind = match status.as_u16() {
        401 | 403 => ErrorKind::Refused,
        404 => ErrorKind::NotFound,
        _ => ErrorKind::Failed,
    };
    OpError::backend(
        backend,
        kind,
        format!("REST {shown}: HTTP {status}: {message}"),
    )
}

/// One REST GET into a file: the status checked, the body streamed to `out`, hashed on the way.
/// Returns the byte count and the sha256 as lowercase hex.
pub async fn rest_download(
    qdrant: &Qdrant,
    backend: &Backend,
    path: &str,
    out: &mut tokio::fs::File,
) -> Result<(u64, String), OpError> {
    use http_body_util::BodyExt;
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;

    let uri = rest_uri(qdrant, backend, path)?;
    let response = rest_send(
        qdrant,
        backend,
        hyper::Request::get(uri),
        http_body_util::Empty::<hyper::body::Bytes>::new(),
    )
    .await?;
    let shown = redact_url(&qdrant.rest_url);
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(rest_status_error(
            backend,
            &shown,
            status,
            &String::from_utf8_lossy(&bytes),
        ));
    }
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            OpError::backend(backend, ErrorKind::Failed, format!("REST {shown}: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            size += data.len() as u64;
            out.write_all(&data).await.map_err(|e| {
                OpError::backend(backend, ErrorKind::Failed, format!("writing: {e}"))
            })?;
        }
    }
    out.flush()
        .await
        .map_err(|e| OpError::backend(backend, ErrorKind::Failed, format!("writing: {e}")))?;
    let digest = hasher.finalize();
    let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((size, hex))
}

/// One multipart REST POST of a file as the form field `snapshot` (Qdrant's snapshot upload):
/// `path` carries the query (`?wait=true&checksum=…`, so Qdrant checks what arrived). The file
/// is streamed from disk in 256 KiB chunks behind the multipart head (with a Content-Length),
/// never read into memory whole.
pub async fn rest_upload(
    qdrant: &Qdrant,
    backend: &Backend,
    path: &str,
    file: &std::path::Path,
) -> Result<serde_json::Value, OpError> {
    use futures_util::StreamExt;
    use http_body_util::BodyExt;
    use hyper::body::{Bytes, Frame};
    use tokio::io::AsyncReadExt;

    let uri = rest_uri(qdrant, backend, path)?;
    let unreadable = |e: std::io::Error| {
        OpError::new(
            ErrorKind::Failed,
            None,
            format!("cannot read {}: {e}", file.display()),
        )
    };
    let opened = tokio::fs::File::open(file).await.map_err(unreadable)?;
    let size = opened.metadata().await.map_err(unreadable)?.len();
    let boundary = format!("opsh-{:016x}", rand_u64());
    let safe_name: String = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into())
        .chars()
        .filter(|c| !matches!(c, '"' | '\\' | '\r' | '\n'))
        .collect();
    let head = Bytes::from(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"{safe_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ));
    let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let length = head.len() as u64 + size + tail.len() as u64;
    let chunks = futures_util::stream::unfold(Some(opened), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let frames = futures_util::stream::iter([Ok::<_, std::io::Error>(Frame::data(head))])
        .chain(chunks)
        .chain(futures_util::stream::iter([Ok(Frame::data(tail))]));
    let body = http_body_util::StreamBody::new(frames).boxed_unsync();
    let request = hyper::Request::post(uri)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("content-length", length);
    let response = rest_send(qdrant, backend, request, body).await?;
    let shown = redact_url(&qdrant.rest_url);
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        return Err(rest_status_error(backend, &shown, status, &text));
    }
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Ok(value)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::compatibility;

    #[test]
    fn versions_inside_the_tested_range_give_no_warning() {
        assert_eq!(compatibility("1.18.3"), None);
        assert_eq!(compatibility("1.19.0"), None);
        assert_eq!(compatibility("1.20.1"), None);
        assert!(compatibility("1.17.9").unwrap().contains("outside"));
        assert!(compatibility("1.21.0").unwrap().contains("(1.18 to 1.20)"));
        assert!(compatibility("2.0.0").is_some());
        assert!(compatibility("garbage").unwrap().contains("cannot read"));
    }
}
