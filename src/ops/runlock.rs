//! The run lock: a procedure whose header says `// changes: data` runs under a PostgreSQL
//! session advisory lock named after it, so two runs of it never overlap (cron firing while an
//! operator runs it by hand, or two hosts' crons).
//!
//! - The lock lives on a connection of its own, outside the pool: `db::query` resets pool
//!   connections with `DISCARD ALL`, which would release it. The server frees it when that
//!   connection closes, so a run killed with `kill -9` frees it at once.
//! - That connection's application_name says who holds it:
//!   `opsh <procedure> pid=<pid> host=<host> started=<time>`. A second run reads the holder
//!   from pg_stat_activity (pid and host from the name, the start from backend_start, which
//!   PostgreSQL keeps exactly) and says so: "reset-stuck-jobs is already running (pid 4242 on
//!   host ops1, since 2026-11-26T02:00:00Z)".
//! - `--wait-lock DUR` waits for it instead, polling every 500 ms, Ctrl-C and --timeout aware.
//! - PostgreSQL unreachable: the procedure runs without the lock, with a warning. The lock only
//!   keeps runs of a procedure apart; a procedure that changes data needs PostgreSQL anyway
//!   and reports the outage itself (and with PostgreSQL down, a second run cannot change it
//!   either). Refusing would hide the outage behind "cannot lock".

use crate::config::key;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::ops::Target;
use crate::ops::error::{ErrorKind, OpError};

/// PostgreSQL cuts application_name at 63 bytes (NAMEDATALEN - 1).
const MAX_APPLICATION_NAME: usize = 63;

/// How often --wait-lock tries again.
const POLL: Duration = Duration::from_millis(500);

/// A held run lock; dropping it closes the connection, which frees the lock.
pub struct RunLock {
    conn: Option<PgConnection>,
    pub key: String,
}

impl RunLock {
    /// Closes the lock's connection (the server frees the lock).
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// Who holds a run lock, as pg_stat_activity shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Holder {
    pub pid: Option<i64>,
    pub host: Option<String>,
    pub started: Option<String>,
    /// The holder's application_name, as it is.
    pub application_name: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pid = self
            .pid
            .map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}"));
        let host = self.host.as_deref().unwrap_or("an unknown host");
        write!(f, "{pid} on host {host}")?;
        if let Some(started) = &self.started {
            write!(f, ", since {started}")?;
        }
        Ok(())
    }
}

/// Why the lock was not taken.
pub enum Refusal {
    /// Another run holds it (and --wait-lock, if given, ran out).
    Held {
        holder: Option<Holder>,
        waited: Option<Duration>,
    },
    /// PostgreSQL could not be reached: run without the lock.
    Unreachable(OpError),
    /// Ctrl-C or --timeout while waiting.
    Stopped(crate::bridge::Stop),
}

/// The advisory lock key of a procedure.
pub fn key(procedure: &str) -> String {
    format!("opsh procedure {procedure}")
}

/// `opsh <procedure> pid=<pid> host=<host> started=<time>`, cut to what PostgreSQL keeps.
pub fn application_name(procedure: &str, pid: u32, host: &str, started: &str) -> String {
    let full = format!("opsh {procedure} pid={pid} host={host} started={started}");
    if full.len() <= MAX_APPLICATION_NAME {
        return full;
    }
    // The start time is also in backend_start: drop it first, then shorten the host.
    let short = format!("opsh {procedure} pid={pid} host={host}");
    let mut cut = short;
    while cut.len() > MAX_APPLICATION_NAME {
        cut.pop();
    }
    cut
}

/// The host name (uname's nodename).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Takes the run lock of `procedure` on the target's PostgreSQL, waiting up to `wait`.
pub fn acquire(
    target: &Target,
    procedure: &str,
    wait: Option<Duration>,
) -> Result<RunLock, Refusal> {
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let name = application_name(procedure, std::process::id(), &hostname(), &started);
    let key = key(procedure);
    let bridge = target.bridge.clone();
    let result = bridge.block_on(async {
        let mut conn = connect(target, &name).await.map_err(Refusal::Unreachable)?;
        let begun = Instant::now();
        loop {
            let got: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(&key)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| Refusal::Unreachable(target.pg_err()(e)))?;
            if got {
                return Ok(RunLock {
                    conn: Some(conn),
                    key: key.clone(),
                });
            }
            let waited = begun.elapsed();
            if wait.is_none_or(|w| waited >= w) {
                let holder = holder(&mut conn, &key).await.ok().flatten();
                let _ = conn.close().await;
                return Err(Refusal::Held {
                    holder,
                    waited: wait.map(|_| waited),
                });
            }
            if waited.as_secs() > 0 && waited.as_millis() % 10_000 < POLL.as_millis() {
                tracing::info!(
                    "{procedure} is running elsewhere; waited {} of {} for it",
                    crate::duration::format(Duration::from_secs(waited.as_secs())),
                    crate::duration::format(wait.unwrap_or_default())
                );
            }
            tokio::time::sleep(POLL).await;
        }
    });
    match result {
        Ok(inner) => inner,
        Err(stop) => Err(Refusal::Stopped(stop)),
    }
}

/// A connection of its own (not the pool's), named for pg_stat_activity.
async fn connect(target: &Target, application_name: &str) -> Result<PgConnection, OpError> {
    let backend = target.pg_backend();
    let options: PgConnectOptions = target
        .settings
        .text(key::POSTGRES_URL)
        .parse()
        .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
    let options = options
        .application_name(application_name)
        .log_statements(log::LevelFilter::Trace);
    match tokio::time::timeout(
        crate::ops::clients::CONNECT_TIMEOUT,
        PgConnection::connect_with(&options),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(target.pg_err()(e)),
        Err(_) => Err(OpError::backend(
            backend,
            ErrorKind::Timeout,
            "no answer within 10s",
        )),
    }
}

/// The session holding the advisory lock `key` in this database, from pg_locks and
/// pg_stat_activity. A bigint advisory key shows in pg_locks as classid (high 32 bits) and
/// objid (low 32 bits), objsubid 1.
async fn holder(conn: &mut PgConnection, key: &str) -> Result<Option<Holder>, sqlx::Error> {
    let row: Option<(Option<String>, i32, Option<String>)> = sqlx::query_as(
        "WITH k AS (SELECT hashtextextended($1, 0) AS key)
         SELECT a.application_name::text, a.pid,
                to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
         FROM pg_locks l
         JOIN pg_stat_activity a ON a.pid = l.pid, k
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ((l.classid::int8 << 32) | l.objid::int8) = k.key
         LIMIT 1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(name, _backend_pid, started)| {
        let name = name.unwrap_or_default();
        let field = |k: &str| {
            name.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(str::to_string)
        };
        Holder {
            pid: field("pid=").and_then(|p| p.parse().ok()),
            host: field("host="),
            started,
            application_name: name,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_name_fits_postgres_and_keeps_pid_and_host() {
        assert_eq!(
            application_name("safe-stop", 4242, "ops1", "2026-11-26T02:00:00Z"),
            "opsh safe-stop pid=4242 host=ops1 started=2026-11-26T02:00:00Z"
        );
        // Too long: the start time goes first (backend_start has it too).
        assert_eq!(
            application_name("reset-stuck-jobs", 4242, "ops1", "2026-11-26T02:00:00Z"),
            "opsh reset-stuck-jobs pid=4242 host=ops1"
        );
        let long = application_name("reset-stuck-jobs", 4242, &"h".repeat(80), "x");
        assert_eq!(long.len(), MAX_APPLICATION_NAME);
        assert!(long.starts_with("opsh reset-stuck-jobs pid=4242 host=hhh"));
    }
}
