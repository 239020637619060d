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
pub mod rest;

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
    /// The REST API (qdrant.rest_url), with the same API key and roots.
    pub rest: rest::Rest,
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
            rest: rest::Rest::new(
                &settings.qdrant_rest_url().url,
                settings.origin(key::QDRANT_REST_URL),
                api_key,
                grpc.ca,
            ),
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
