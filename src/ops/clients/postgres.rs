//! The PostgreSQL client: a small pool, and the one place that turns sqlx's errors into
//! operation errors.

use crate::config::key;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::LevelFilter;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Row};

use super::Connect;
pub use super::postgres_tls::PgTls;
use crate::config::{Settings, redact_url};
use crate::ops::error::{Backend, ErrorKind, OpError};

pub struct Postgres {
    pub pool: PgPool,
    /// The pool's server backends, so an interrupted run can stop their statements.
    pub backends: Arc<Backends>,
}

/// How often a backend checks that opsh is still connected while it runs a statement
/// (PostgreSQL 14+): a killed opsh, or one that exits on a second Ctrl-C, leaves nothing
/// running longer than this.
const CLIENT_CHECK_INTERVAL: &str = "2s";

/// The server backends of the pool's connections, each known by its pid and start time (a pid
/// alone may be reused by another session once ours has ended).
pub struct Backends {
    options: PgConnectOptions,
    known: Mutex<Vec<(i32, i64)>>,
}

impl Backends {
    /// Cancels the statements our connections are running, as psql does on Ctrl-C, through
    /// pg_cancel_backend on a connection of its own (the pool's may all be busy). sqlx keeps
    /// the key a protocol-level cancel request needs to itself.
    pub async fn cancel_active(&self) {
        let (pids, starts): (Vec<i32>, Vec<i64>) = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            known.iter().copied().unzip()
        };
        if pids.is_empty() {
            return;
        }
        let options = self.options.clone().application_name("opsh cancel");
        let cancelled = async {
            let mut conn = PgConnection::connect_with(&options).await?;
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FILTER (WHERE pg_cancel_backend(a.pid))
                 FROM pg_stat_activity a
                 JOIN unnest($1::int4[], $2::int8[]) AS k(pid, started) ON a.pid = k.pid
                 WHERE a.state = 'active'
                   AND round(extract(epoch FROM a.backend_start) * 1000000)::int8 = k.started",
            )
            .bind(&pids)
            .bind(&starts)
            .fetch_one(&mut conn)
            .await?;
            let _ = conn.close().await;
            Ok::<i64, sqlx::Error>(n)
        };
        match cancelled.await {
            Ok(0) => {}
            Ok(n) => tracing::debug!("cancelled {n} running statement(s) in postgres"),
            Err(e) => tracing::warn!(
                "could not cancel the running statement in postgres: {}",
                crate::redact::text(&e.to_string())
            ),
        }
    }

    fn remember(&self, pid: i32, started: i64) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        // Connections the pool closed stay listed (they match nothing); keep the list short.
        if known.len() >= 64 {
            known.remove(0);
        }
        known.push((pid, started));
    }
}

impl Connect for Postgres {
    const NAME: &'static str = "postgres";
    const SETTING: key::Text = key::POSTGRES_URL;

    fn address(settings: &Settings) -> String {
        redact_url(settings.text(key::POSTGRES_URL))
    }

    async fn connect(settings: &Settings, backend: &Backend) -> Result<Postgres, OpError> {
        let url = settings.text(key::POSTGRES_URL);
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
        // TLS as libpq reads it (sslmode, sslrootcert, … from the URL or PGSSL*), its files
        // checked before any connection is tried.
        let tls = PgTls::from_url(url)
            .and_then(|tls| tls.check().map(|()| tls))
            .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
        let options = tls.apply(options);
        // sqlx logs every statement, and slow ones as warnings with their whole text; they
        // are the library's detail (-vv). opsh logs its own timings at -v.
        let options = options
            .application_name("opsh")
            .log_statements(LevelFilter::Trace)
            .log_slow_statements(LevelFilter::Debug, Duration::from_secs(1));
        let failed = |e: sqlx::Error| connect_error(backend, &options, &tls, e);
        tracing::debug!("connecting to postgres at {}", backend.address);
        let started = std::time::Instant::now();
        let first = PgConnection::connect_with(&options).await.map_err(failed)?;
        let version = first.server_version_num().unwrap_or(0);
        let _ = first.close().await;
        // Older servers refuse a setting they do not know at connect.
        let pool_options = if version >= 140000 {
            options
                .clone()
                .options([("client_connection_check_interval", CLIENT_CHECK_INTERVAL)])
        } else {
            options.clone()
        };
        let backends = Arc::new(Backends {
            options: options.clone(),
            known: Mutex::default(),
        });
        let remember = backends.clone();
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                let backends = remember.clone();
                Box::pin(async move {
                    // One simple-protocol round trip (no prepare), on the function behind
                    // pg_stat_activity (not the view and its joins): a new connection pays it.
                    let row = sqlx::raw_sql(
                        "SELECT pid, round(extract(epoch FROM backend_start) * 1000000)::int8
                         FROM pg_stat_get_activity(pg_backend_pid())",
                    )
                    .fetch_one(&mut *conn)
                    .await?;
                    backends.remember(row.try_get(0)?, row.try_get(1)?);
                    Ok(())
                })
            })
            .connect_with(pool_options)
            .await
            .map_err(failed)?;
        tracing::debug!(
            "connected to postgres at {} in {:.1} ms",
            backend.address,
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(Postgres { pool, backends })
    }
}

/// A sqlx error as an operation error naming the server, in the server's own words (without
/// sqlx's wrapping), plus its detail and hint, and for the mistakes a script author makes, how
/// to fix them.
pub fn error(backend: &Backend) -> impl Fn(sqlx::Error) -> OpError + '_ {
    move |e| {
        // A failure on the way to the server (refused, unresolved, TLS) in words; the server's
        // own errors keep its words.
        if matches!(e, sqlx::Error::Io(_) | sqlx::Error::Tls(_))
            && let Some((kind, words)) = super::transport(backend, &e, None)
        {
            return OpError::backend(backend, kind, words);
        }
        OpError::backend(backend, kind(&e), describe(&e))
    }
}

/// A failed connection attempt. A server that answers, but not in PostgreSQL's protocol (an
/// HTTP server, Redis or Qdrant on that port), makes sqlx report "expected to read 1414811696
/// bytes" or an unknown message; say what that means instead.
fn connect_error(
    backend: &Backend,
    options: &PgConnectOptions,
    tls: &PgTls,
    e: sqlx::Error,
) -> OpError {
    let mut e = connect_error_words(backend, options, e);
    e.cause = super::tls_hint(
        std::mem::take(&mut e.cause),
        &tls.untrusted_hint(),
        Some("show one with sslcert and sslkey in postgres.url (or PGSSLCERT and PGSSLKEY)"),
    );
    e
}

/// [`connect_error`] before the TLS hint.
fn connect_error_words(backend: &Backend, options: &PgConnectOptions, e: sqlx::Error) -> OpError {
    let foreign = match &e {
        sqlx::Error::Protocol(_) | sqlx::Error::Decode(_) => true,
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    };
    if !foreign {
        return error(backend)(e);
    }
    let (host, port) = (options.get_host(), options.get_port());
    let address = if host.starts_with('/') {
        format!("{host} (port {port})")
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    OpError::backend(
        backend,
        ErrorKind::Unreachable,
        format!("the server at {address} did not answer as PostgreSQL (is the port right?)"),
    )
}

/// A failed migration in the server's words (sqlx's own text would end in "at line 948", a
/// line of PostgreSQL's C source that reads like a line of the script).
fn describe_migrate(e: &sqlx::migrate::MigrateError) -> String {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::Execute(inner) => describe(inner),
        MigrateError::ExecuteMigration(inner, version) => {
            format!("migration {version}: {}", describe(inner))
        }
        other => other.to_string(),
    }
}

fn kind(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
            ErrorKind::Unreachable
        }
        sqlx::Error::PoolTimedOut => ErrorKind::Timeout,
        sqlx::Error::Configuration(_) => ErrorKind::Invalid,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // invalid_authorization_specification, invalid_password, insufficient_privilege
            Some("28000" | "28P01" | "42501") => ErrorKind::Refused,
            // undefined_table, undefined_column
            Some("42P01" | "42703") => ErrorKind::MissingSchema,
            // query_canceled (statement_timeout)
            Some("57014") => ErrorKind::Timeout,
            // invalid_catalog_name: the database does not exist
            Some("3D000") => ErrorKind::NotFound,
            Some(c) if c.starts_with("22") || c.starts_with("42") => ErrorKind::Invalid,
            _ => ErrorKind::Failed,
        },
        _ => ErrorKind::Failed,
    }
}

fn describe(e: &sqlx::Error) -> String {
    let Some(db) = e.as_database_error() else {
        return match e {
            sqlx::Error::Migrate(m) => describe_migrate(m),
            other => other.to_string(),
        };
    };
    let mut text = db.message().to_string();
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        if let Some(detail) = pg.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = pg.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
    }
    match db.code().as_deref() {
        // undefined_function (operator does not exist), datatype_mismatch, invalid text
        Some("42883" | "42804" | "22P02") => format!(
            "{text} (parameters are bound as int8, float8, text, bool or arrays of them; cast in SQL, e.g. $1::timestamp)"
        ),
        Some("25006") => format!("{text} (db::query runs in a read-only transaction)"),
        Some("42P01" | "42703") => format!("{text} (run `opsh migrate`)"),
        _ => text,
    }
}

/// A postgres URL's user, password or database as the server takes it: percent-escapes
/// decoded, a `+` kept as it is (a URL's user info is not a form). Used where the URL's parts
/// go to the client tools (pg_dump, pg_restore, psql) as options or PGPASSWORD.
pub fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

/// Timestamps without time zone as ISO 8601 text, e.g. "2026-11-26T02:00:00".
pub fn fmt_ts(ts: chrono::NaiveDateTime) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decode_decodes_escapes_and_keeps_a_plus() {
        assert_eq!(percent_decode("p%40ss%2Fw+rd%20x"), "p@ss/w+rd x");
        assert_eq!(percent_decode("youtube_user"), "youtube_user");
    }
}
