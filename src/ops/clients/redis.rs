//! The Redis client: one multiplexed connection (cheap to clone, safe to share), made with one
//! direct attempt so the error names the real cause, and the one place that turns the redis
//! crate's errors into operation errors.

use crate::config::key;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, ServerErrorKind};

use super::Connect;
use crate::config::{Settings, redact_url};
use crate::ops::error::{Backend, ErrorKind, OpError};

pub struct Redis {
    pub conn: MultiplexedConnection,
    /// The database number the URL selects (`redis://host:6379/2` → 2).
    pub db: i64,
    /// Whether the server is on this host (loopback or a unix socket): only then can files it
    /// names (its RDB) be read here.
    pub local: bool,
}

impl Connect for Redis {
    const NAME: &'static str = "redis";
    const SETTING: key::Text = key::REDIS_URL;

    fn address(settings: &Settings) -> String {
        redact_url(settings.text(key::REDIS_URL))
    }

    async fn connect(settings: &Settings, backend: &Backend) -> Result<Redis, OpError> {
        let client = client(settings, backend)?;
        let info = client.get_connection_info();
        let db = info.redis_settings().db();
        let local = match info.addr() {
            redis::ConnectionAddr::Tcp(host, _) | redis::ConnectionAddr::TcpTls { host, .. } => {
                is_loopback(host)
            }
            redis::ConnectionAddr::Unix(_) => true,
            _ => false,
        };
        // No response timeout of the crate's own (500 ms would cut FLUSHDB of a large db short):
        // the run's --timeout and Ctrl-C bound every call.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(error(backend))?;
        // A server that wants a password the URL lacks accepts the connection and refuses the
        // first command (NOAUTH): ask once here so that shows as the connection's error.
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(error(backend))?;
        Ok(Redis { conn, db, local })
    }
}

/// The client for redis.url: `rediss://` speaks TLS (rustls), trusting the system's roots plus
/// redis.ca_file and showing redis.cert_file/redis.key_file when they are set.
fn client(settings: &Settings, backend: &Backend) -> Result<Client, OpError> {
    let invalid = |e: String| OpError::backend(backend, ErrorKind::Invalid, e);
    let info = redis::IntoConnectionInfo::into_connection_info(settings.text(key::REDIS_URL))
        .map_err(|e| invalid(describe(&e)))?;
    let ca = crate::tls::configured_ca(settings, key::REDIS_CA_FILE).map_err(invalid)?;
    let identity =
        crate::tls::configured_identity(settings, key::REDIS_CERT_FILE, key::REDIS_KEY_FILE)
            .map_err(invalid)?;
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    if !tls {
        if ca.is_some() || identity.is_some() {
            tracing::warn!(
                "{backend}: redis.ca_file/redis.cert_file are set but redis.url is not \
                 rediss://, so the connection is not encrypted"
            );
        }
        return Client::open(info).map_err(|e| invalid(describe(&e)));
    }
    // The redis crate builds its rustls configuration with the process's default provider.
    crate::tls::install_default_provider();
    if ca.is_none() && identity.is_none() {
        return Client::open(info).map_err(|e| invalid(describe(&e)));
    }
    let certificates = redis::TlsCertificates {
        client_tls: identity.map(|id| redis::ClientTlsConfig {
            client_cert: id.cert_pem,
            client_key: id.key_pem,
        }),
        // In place of the system's roots, so they go along.
        root_cert: ca.as_ref().map(|ca| crate::tls::roots_pem(Some(ca))),
    };
    Client::build_with_tls(info, certificates).map_err(|e| invalid(describe(&e)))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A redis error as an operation error naming the server.
pub fn error(backend: &Backend) -> impl Fn(RedisError) -> OpError + '_ {
    move |e| {
        // A failure on the way to the server in words; the server's own errors keep its words.
        if e.kind() == redis::ErrorKind::Io
            && let Some((kind, words)) = super::transport(backend, &e, None)
        {
            let words = super::tls_hint(
                words,
                "trust its CA with redis.ca_file (a PEM file)",
                Some("show one with redis.cert_file and redis.key_file"),
            );
            return OpError::backend(backend, kind, words);
        }
        OpError::backend(backend, kind(&e), describe(&e))
    }
}

fn kind(e: &RedisError) -> ErrorKind {
    if matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM")) {
        return ErrorKind::Refused;
    }
    match e.kind() {
        redis::ErrorKind::AuthenticationFailed
        | redis::ErrorKind::Server(ServerErrorKind::NoPerm) => ErrorKind::Refused,
        redis::ErrorKind::InvalidClientConfig => ErrorKind::Invalid,
        _ if e.is_timeout() => ErrorKind::Timeout,
        redis::ErrorKind::Io => ErrorKind::Unreachable,
        _ => ErrorKind::Failed,
    }
}

fn describe(e: &RedisError) -> String {
    let text = e.to_string();
    match e.code() {
        Some("NOAUTH") => {
            format!("{text} (the server wants a password: redis://:PASSWORD@host:port/db)")
        }
        _ => text,
    }
}
