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
        let client = Client::open(settings.text(key::REDIS_URL))
            .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, describe(&e)))?;
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
