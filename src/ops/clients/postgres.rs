//! The PostgreSQL client: a small pool, and the one place that turns sqlx's errors into
//! operation errors.

use crate::config::key;
use std::time::Duration;

use log::LevelFilter;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::Connect;
use crate::config::{Settings, redact_url};
use crate::ops::error::{Backend, ErrorKind, OpError};

pub struct Postgres {
    pub pool: PgPool,
}

impl Connect for Postgres {
    const NAME: &'static str = "postgres";

    fn address(settings: &Settings) -> String {
        redact_url(settings.text(key::POSTGRES_URL))
    }

    async fn connect(settings: &Settings, backend: &Backend) -> Result<Postgres, OpError> {
        let options: PgConnectOptions = settings
            .text(key::POSTGRES_URL)
            .parse()
            .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
        // sqlx logs every statement, and slow ones as warnings with their whole text; they
        // are the library's detail (-vv). opsh logs its own timings at -v.
        let options = options
            .application_name("opsh")
            .log_statements(LevelFilter::Trace)
            .log_slow_statements(LevelFilter::Debug, Duration::from_secs(1));
        let failed = |e: sqlx::Error| connect_error(backend, &options, e);
        tracing::debug!("connecting to postgres at {}", backend.address);
        let started = std::time::Instant::now();
        let first = PgConnection::connect_with(&options).await.map_err(failed)?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(failed)?;
        tracing::debug!(
            "connected to postgres at {} in {:.1} ms",
            backend.address,
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(Postgres { pool })
    }
}

/// A sqlx error as an operation error naming the server, in the server's own words (without
/// sqlx's wrapping), plus its detail and hint, and for the mistakes a script author makes, how
/// to fix them.
pub fn error(backend: &Backend) -> impl Fn(sqlx::Error) -> OpError + '_ {
    move |e| OpError::backend(backend, kind(&e), describe(&e))
}

/// A failed connection attempt. A server that answers, but not in PostgreSQL's protocol (an
/// HTTP server, Redis or Qdrant on that port), makes sqlx report "expected to read 1414811696
/// bytes" or an unknown message; say what that means instead.
fn connect_error(backend: &Backend, options: &PgConnectOptions, e: sqlx::Error) -> OpError {
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
