//! The PostgreSQL client tools on this host: the configured database as pg_dump, pg_restore and
//! psql take it (the password only in PGPASSWORD), running a tool to its end, and reading the
//! versions of a tool and of the server.

use crate::config::key;
use std::process::Stdio;

use crate::ops::Target;
use crate::ops::clients::postgres::{PgTls, percent_decode};
use crate::ops::error::{Backend, ErrorKind, OpError};

/// The configured database as the client tools take it: options and environment, the password
/// only in PGPASSWORD.
pub(super) struct PgTarget {
    pub(super) args: Vec<String>,
    pub(super) env: Vec<(&'static str, String)>,
    pub(super) database: String,
}

pub(super) fn pg_target(target: &Target) -> Result<PgTarget, OpError> {
    let backend = target.pg_backend();
    let url = url::Url::parse(target.settings.text(key::POSTGRES_URL))
        .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
    let mut args = Vec::new();
    let mut env = Vec::new();
    if let Some(host) = url.host_str() {
        args.push(format!("--host={}", host.trim_matches(['[', ']'])));
    }
    if let Some(port) = url.port() {
        args.push(format!("--port={port}"));
    }
    if !url.username().is_empty() {
        args.push(format!("--username={}", percent_decode(url.username())));
    }
    if let Some(password) = url.password() {
        env.push(("PGPASSWORD", percent_decode(password)));
    }
    // TLS as opsh's own connection makes it (sslmode, sslrootcert, sslcert, sslkey).
    let tls = PgTls::from_url(target.settings.text(key::POSTGRES_URL))
        .and_then(|tls| tls.check().map(|()| tls))
        .map_err(|e| OpError::backend(backend, ErrorKind::Invalid, e))?;
    env.extend(tls.tool_env());
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "host" => args.push(format!("--host={v}")),
            "port" => args.push(format!("--port={v}")),
            _ => {}
        }
    }
    let database = percent_decode(url.path().trim_start_matches('/'));
    Ok(PgTarget {
        args,
        env,
        database,
    })
}

/// A client tool on the configured database: connection options, PGPASSWORD (and nothing of
/// the caller's PG* environment that could point it elsewhere), killed when dropped.
pub(super) fn pg_tool(pg: &PgTarget, program: &str, with_db: bool) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for var in [
        "PGPASSWORD",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGSERVICE",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(&pg.args);
    for (k, v) in &pg.env {
        cmd.env(k, v);
    }
    if with_db {
        cmd.arg(format!("--dbname={}", pg.database));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs a tool to its end; a failure carries the tail of its stderr.
pub(super) async fn run_tool(
    backend: &Backend,
    what: &str,
    mut cmd: tokio::process::Command,
) -> Result<std::process::Output, OpError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let out = cmd
        .spawn()
        .map_err(|e| missing_tool(backend, &program, e))?
        .wait_with_output()
        .await
        .map_err(|e| OpError::backend(backend, ErrorKind::Failed, e))?;
    if !out.status.success() {
        return Err(OpError::backend(
            backend,
            ErrorKind::Failed,
            format!("{what} failed: {}", tail(&out.stderr)),
        ));
    }
    Ok(out)
}

pub(super) fn missing_tool(backend: &Backend, program: &str, e: std::io::Error) -> OpError {
    OpError::backend(
        backend,
        ErrorKind::Failed,
        format!("cannot run {program}: {e} (install the postgresql-client package)"),
    )
}

/// The last lines of a tool's stderr, on one line.
pub(super) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    let joined = lines[start..].join("; ");
    if joined.is_empty() {
        "no message".into()
    } else {
        joined
    }
}

/// `pg_dump (PostgreSQL) 15.18 (Debian …)` → ("15.18", 15).
pub(super) fn parse_tool_version(text: &str) -> Option<(String, u32)> {
    let version = text
        .split(')')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("")
        .to_string();
    let major = version
        .split(['.', 'b', 'r'])
        .next()
        .and_then(|m| m.parse().ok())?;
    Some((version, major))
}

/// The host's `program --version`.
pub(super) async fn tool_version(
    backend: &Backend,
    program: &str,
) -> Result<(String, u32), OpError> {
    let out = tokio::process::Command::new(program)
        .arg("--version")
        .output()
        .await
        .map_err(|e| missing_tool(backend, program, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_tool_version(&text).ok_or_else(|| {
        OpError::backend(
            backend,
            ErrorKind::Failed,
            format!(
                "cannot read the version of {program} from `{}`",
                text.trim()
            ),
        )
    })
}

pub(super) async fn server_version(target: &Target) -> Result<(String, u32), OpError> {
    let (version, num): (String, i32) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
    )
    .fetch_one(target.pg().await?)
    .await
    .map_err(target.pg_err())?;
    Ok((version, (num / 10000) as u32))
}
