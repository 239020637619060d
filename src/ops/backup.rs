//! `backup::` — verified backups and restores of the deployment's data.
//!
//! `all` writes a timestamped folder (0700, files 0600) with the database in pg_dump's custom
//! format, the Redis RDB, the compose file and opsh's configuration (secrets left out) and a
//! manifest.json with each file's size and sha256, tool and server versions and the row count of
//! every table, counted in the very snapshot pg_dump dumps (`pg_export_snapshot` +
//! `pg_dump --snapshot`), so a restore can be checked against it exactly. `verify` re-checks a
//! folder; `restore_db` refuses a missing, truncated or corrupt dump before it touches anything
//! and restores in one transaction; `prune` deletes old backups through the destructive helper.
//!
//! Passwords reach pg_dump, pg_restore and psql only in PGPASSWORD, never on their command line
//! (where `ps` shows it) and never in a backup file.
//!
//! Where the tools run (setting backup.pg_tools): "auto" takes the host's pg_dump when it is at
//! least as new as the server, else the postgres service's container (found by its Compose
//! labels), and the host's pg_restore/psql unless they are missing or too old for the archive;
//! "host" and "container" fix the place. In the container they run through an Engine API exec:
//! pg_dump's stdout streams into the dump file (hashed on the way, never held in memory), a dump
//! to restore streams into pg_restore's stdin; they reach the server on its own unix socket
//! (the directory and port the server reports over postgres.url) as the URL's user, the
//! password in the exec's environment. The Redis RDB comes from the data dir when it is
//! readable here, else out of the redis service's container (the Engine's archive endpoint).

use crate::config::key;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{Backend, ErrorKind, OpError};
use crate::ops::qdrant;
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Registrar, Spec};

/// The manifest's format tag; a reader refuses others.
pub const FORMAT: &str = "opsh-backup/1";
const PREFIX: &str = "opsh-backup-";
const STAMP: &str = "%Y%m%dT%H%M%SZ";
const DUMP: &str = "postgres.dump";
const RDB: &str = "redis.rdb";
const CONFIG: &str = "opsh-config.json";
const MANIFEST: &str = "manifest.json";
/// What pg_dump writes at the end of a complete plain-format dump.
const PLAIN_END: &str = "-- PostgreSQL database dump complete";

// ---------------------------------------------------------------------------------------------
// Files: private, hashed

/// Creates `dir` and any missing parents 0700 (existing ones are left as they are).
fn private_dir_all(dir: &Path) -> Result<(), OpError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| file_err("cannot create", dir, e))
}

/// Creates a new file 0600 (never over an existing one).
fn private_file(path: &Path) -> Result<std::fs::File, OpError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err("cannot create", path, e))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), OpError> {
    private_file(path)?
        .write_all(bytes)
        .map_err(|e| file_err("cannot write", path, e))
}

/// A file or folder this run is making, removed when dropped before [`Unfinished::keep`]: a
/// backup cut short (a failure, Ctrl-C, the run's timeout all drop it) leaves nothing
/// half-written that prune would count or a restore might pick.
struct Unfinished {
    path: PathBuf,
    kept: bool,
}

impl Unfinished {
    fn new(path: &Path) -> Unfinished {
        Unfinished {
            path: path.to_path_buf(),
            kept: false,
        }
    }

    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.kept {
            let _ = if self.path.is_dir() {
                std::fs::remove_dir_all(&self.path)
            } else {
                std::fs::remove_file(&self.path)
            };
        }
    }
}

fn file_err(what: &str, path: &Path, e: std::io::Error) -> OpError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::Refused,
        _ => ErrorKind::Failed,
    };
    OpError::new(kind, None, format!("{what} {}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Size and sha256 of a file, read off the async runtime.
async fn sha256_file(path: &Path) -> Result<(u64, String), OpError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path).map_err(|e| file_err("cannot read", &path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| file_err("cannot read", &path, e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok((size, hex(&hasher.finalize())))
    })
    .await
    .map_err(|e| OpError::new(ErrorKind::Failed, None, e))?
}

/// Copies a file into a new private file, hashing on the way.
async fn copy_private(from: &Path, to: &Path) -> Result<(u64, String), OpError> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let mut src = std::fs::File::open(&from).map_err(|e| file_err("cannot read", &from, e))?;
        let mut dst = private_file(&to)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = src
                .read(&mut buf)
                .map_err(|e| file_err("cannot read", &from, e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
            dst.write_all(&buf[..n])
                .map_err(|e| file_err("cannot write", &to, e))?;
        }
        Ok((size, hex(&hasher.finalize())))
    })
    .await
    .map_err(|e| OpError::new(ErrorKind::Failed, None, e))?
}

/// A spinner on stderr for a long step, only when stderr is a terminal.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(message: impl Into<String>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    fn set(&self, message: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.into());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL tools

/// The configured database as the client tools take it: options and environment, the password
/// only in PGPASSWORD.
struct PgTarget {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    database: String,
}

fn pg_target(target: &Target) -> Result<PgTarget, OpError> {
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
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => env.push(("PGSSLMODE", v.into_owned())),
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

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

/// A client tool on the configured database: connection options, PGPASSWORD (and nothing of
/// the caller's PG* environment that could point it elsewhere), killed when dropped.
fn pg_tool(pg: &PgTarget, program: &str, with_db: bool) -> tokio::process::Command {
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
async fn run_tool(
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

fn missing_tool(backend: &Backend, program: &str, e: std::io::Error) -> OpError {
    OpError::backend(
        backend,
        ErrorKind::Failed,
        format!("cannot run {program}: {e} (install the postgresql-client package)"),
    )
}

/// The last lines of a tool's stderr, on one line.
fn tail(stderr: &[u8]) -> String {
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
fn parse_tool_version(text: &str) -> Option<(String, u32)> {
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
async fn tool_version(backend: &Backend, program: &str) -> Result<(String, u32), OpError> {
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

async fn server_version(target: &Target) -> Result<(String, u32), OpError> {
    let (version, num): (String, i32) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
    )
    .fetch_one(target.pg().await?)
    .await
    .map_err(target.pg_err())?;
    Ok((version, (num / 10000) as u32))
}

/// Where the PostgreSQL client tools run: setting backup.pg_tools.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// The host's when they can do the job, else the postgres container's.
    Auto,
    Host,
    Container,
}

fn mode(target: &Target) -> Mode {
    match target.settings.text(key::BACKUP_PG_TOOLS).trim() {
        "host" => Mode::Host,
        "container" => Mode::Container,
        _ => Mode::Auto,
    }
}

/// The postgres service's running container (compose.postgres_service, by its Compose labels).
#[derive(Debug, Clone)]
struct InContainer {
    id: String,
    name: String,
    image: String,
}

impl InContainer {
    fn describe(&self) -> String {
        format!("in container {}", self.name)
    }
}

async fn in_container(target: &Target) -> Result<InContainer, OpError> {
    let service = target.settings.text(key::COMPOSE_POSTGRES_SERVICE);
    let running = crate::ops::docker::running(target, service).await?;
    Ok(InContainer {
        id: running.id,
        name: running.name,
        image: running.image,
    })
}

/// How a tool in the container reaches the server: its own unix socket directory and port
/// (asked of the server over postgres.url, so nothing about the container is assumed), the
/// URL's user and database, the password only in the exec's environment.
struct InsideConnection {
    /// --host, --port, --username, --dbname.
    args: Vec<String>,
    /// PGPASSWORD=… (the exec's environment; never its command line).
    env: Vec<String>,
}

async fn inside_connection(target: &Target) -> Result<InsideConnection, OpError> {
    let (sockets, port): (String, String) = sqlx::query_as(
        "SELECT current_setting('unix_socket_directories'), current_setting('port')",
    )
    .fetch_one(target.pg().await?)
    .await
    .map_err(target.pg_err())?;
    // The first socket directory (an abstract one, `@…`, is not a path); TCP on loopback when
    // the server has none.
    let host = sockets
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty() && !s.starts_with('@'))
        .unwrap_or("127.0.0.1")
        .to_string();
    let url = url::Url::parse(target.settings.text(key::POSTGRES_URL))
        .map_err(|e| OpError::backend(target.pg_backend(), ErrorKind::Invalid, e))?;
    let mut args = vec![format!("--host={host}"), format!("--port={port}")];
    if !url.username().is_empty() {
        args.push(format!("--username={}", percent_decode(url.username())));
    }
    args.push(format!(
        "--dbname={}",
        percent_decode(url.path().trim_start_matches('/'))
    ));
    let env = url
        .password()
        .map(|p| vec![format!("PGPASSWORD={}", percent_decode(p))])
        .unwrap_or_default();
    Ok(InsideConnection { args, env })
}

/// A tool's version inside the container (`pg_dump --version` through an exec).
async fn container_tool_version(
    target: &Target,
    c: &InContainer,
    program: &str,
) -> Result<(String, u32), OpError> {
    let mut out = Vec::new();
    let ran = crate::ops::docker::exec_stream(
        target,
        &c.id,
        vec![program.to_string(), "--version".to_string()],
        Vec::new(),
        crate::ops::docker::Input::None,
        &mut out,
    )
    .await?;
    let text = String::from_utf8_lossy(&out);
    if ran.exit_code != 0 {
        return Err(OpError::backend(
            target.docker_backend(),
            ErrorKind::Failed,
            format!(
                "{program} --version {} failed (exit {}): {}",
                c.describe(),
                ran.exit_code,
                tail(ran.stderr.as_bytes())
            ),
        ));
    }
    parse_tool_version(&text).ok_or_else(|| {
        OpError::backend(
            target.docker_backend(),
            ErrorKind::Failed,
            format!(
                "cannot read the version of {program} {} from `{}`",
                c.describe(),
                text.trim()
            ),
        )
    })
}

/// Where a tool runs.
#[derive(Debug, Clone)]
enum Place {
    Host,
    Container(Box<InContainer>),
}

impl Place {
    fn describe(&self) -> String {
        match self {
            Place::Host => "on this host".into(),
            Place::Container(c) => c.describe(),
        }
    }

    fn container(&self) -> Option<&InContainer> {
        match self {
            Place::Host => None,
            Place::Container(c) => Some(c),
        }
    }
}

/// The pg_dump that will dump the server: the host's when it is at least as new as the server
/// (pg_dump cannot dump a newer server), else — or always, with backup.pg_tools = "container" —
/// the one in the postgres container. Returns the server's version, the tool's, and where.
async fn choose_pg_dump(target: &Target) -> Result<(String, String, Place), OpError> {
    let backend = target.pg_backend();
    let (server, server_major) = server_version(target).await?;
    let host_refusal = |tool: &str| {
        format!(
            "pg_dump {tool} on this host is older than the server ({server}) and cannot dump it"
        )
    };
    let container_dump = async |why_not_host: Option<String>| {
        let c = match in_container(target).await {
            Ok(c) => c,
            Err(e) => {
                return Err(match why_not_host {
                    Some(why) => OpError::backend(
                        backend,
                        ErrorKind::Failed,
                        format!(
                            "{why}, and it cannot be dumped in the postgres container either ({}); \
                             install postgresql-client-{server_major} on this host, or set \
                             compose.postgres_service/compose.project to the container's",
                            e.cause
                        ),
                    ),
                    None => e,
                });
            }
        };
        let (tool, major) = container_tool_version(target, &c, "pg_dump").await?;
        if major < server_major {
            return Err(OpError::backend(
                backend,
                ErrorKind::Failed,
                format!(
                    "pg_dump {tool} {} is older than the server ({server}): is it the container of this server?",
                    c.describe()
                ),
            ));
        }
        Ok((tool, Place::Container(Box::new(c))))
    };
    let (tool, place) = match mode(target) {
        Mode::Container => container_dump(None).await?,
        Mode::Host => {
            let (tool, major) = tool_version(backend, "pg_dump").await?;
            if major < server_major {
                return Err(OpError::backend(
                    backend,
                    ErrorKind::Failed,
                    format!(
                        "{}; install postgresql-client-{server_major} on this host, or let opsh \
                         dump inside the postgres container (backup.pg_tools = \"auto\" or \"container\")",
                        host_refusal(&tool)
                    ),
                ));
            }
            (tool, Place::Host)
        }
        Mode::Auto => match tool_version(backend, "pg_dump").await {
            Ok((tool, major)) if major >= server_major => (tool, Place::Host),
            Ok((tool, _)) => container_dump(Some(host_refusal(&tool))).await?,
            Err(e) => container_dump(Some(e.cause)).await?,
        },
    };
    if let Place::Container(c) = &place {
        tracing::debug!("pg_dump {tool} runs {} ({})", c.describe(), c.image);
    }
    Ok((server, tool, place))
}

/// A writer that hashes (sha256) and counts what passes through it.
struct Hashed<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W> Hashed<W> {
    fn new(inner: W) -> Hashed<W> {
        Hashed {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (u64, String) {
        (self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Hashed<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = polled {
            self.hasher.update(&buf[..n]);
            self.bytes += n as u64;
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A new private file (0600) to stream into, hashing on the way.
fn private_writer(path: &Path) -> Result<Hashed<tokio::io::BufWriter<tokio::fs::File>>, OpError> {
    Ok(hashed_writer(private_file(path)?))
}

fn hashed_writer(file: std::fs::File) -> Hashed<tokio::io::BufWriter<tokio::fs::File>> {
    let file = tokio::fs::File::from_std(file);
    Hashed::new(tokio::io::BufWriter::with_capacity(1 << 20, file))
}

/// pg_dump of the container, its archive streamed out of the exec's stdout into `file` and
/// hashed on the way. Returns the file's size and sha256.
async fn dump_in_container(
    target: &Target,
    c: &InContainer,
    snapshot: &str,
    file: std::fs::File,
) -> Result<(u64, String), OpError> {
    let mut cmd = vec!["pg_dump".to_string()];
    let conn = inside_connection(target).await?;
    cmd.extend(conn.args);
    cmd.push("--format=custom".into());
    cmd.push(format!("--snapshot={snapshot}"));
    let mut out = hashed_writer(file);
    // Guarded: interrupted or killed, opsh takes pg_dump down with it, not leaving it to run to
    // the end of a large database holding its snapshot.
    let ran = crate::ops::docker::exec_stream(
        target,
        &c.id,
        crate::ops::docker::guarded(cmd),
        conn.env,
        crate::ops::docker::Input::Held,
        &mut out,
    )
    .await?;
    if ran.exit_code != 0 {
        return Err(OpError::backend(
            target.pg_backend(),
            ErrorKind::Failed,
            format!(
                "pg_dump {} failed (exit {}): {}",
                c.describe(),
                ran.exit_code,
                tail(ran.stderr.as_bytes())
            ),
        ));
    }
    Ok(out.finish())
}

/// Exact row counts of the current schema's tables.
async fn row_counts(
    target: &Target,
    conn: &mut PgConnection,
) -> Result<BTreeMap<String, i64>, OpError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(target.pg_err())?;
    let mut counts = BTreeMap::new();
    for name in names {
        let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(target.pg_err())?;
        counts.insert(name, n);
    }
    Ok(counts)
}

async fn connect(target: &Target) -> Result<PgConnection, OpError> {
    // A connection of its own (not the pool's): it holds the exported snapshot open.
    let options: sqlx::postgres::PgConnectOptions = target
        .settings
        .text(key::POSTGRES_URL)
        .parse()
        .map_err(|e| OpError::backend(target.pg_backend(), ErrorKind::Invalid, e))?;
    PgConnection::connect_with(&options.application_name("opsh backup"))
        .await
        .map_err(target.pg_err())
}

#[derive(Debug, Serialize)]
pub struct Dumped {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub database: String,
    pub server_version: String,
    pub pg_dump_version: String,
    /// Where pg_dump ran: "host" or "container".
    pub pg_dump_in: &'static str,
    /// The container it ran in (and its image), when it did.
    pub container: Option<String>,
    pub container_image: Option<String>,
    /// Rows per table, counted in the snapshot the dump was taken from.
    pub tables: BTreeMap<String, i64>,
    pub seconds: f64,
}

/// Dumps the configured database to `path` (custom format, 0600), counting every table's rows
/// in the same snapshot while pg_dump runs. pg_dump imports the snapshot this connection
/// exported, so a pg_dump that reached another server (a container that is not postgres.url's)
/// fails instead of dumping something else.
async fn dump_to(target: &Target, path: &Path) -> Result<Dumped, OpError> {
    let started = Instant::now();
    let backend = target.pg_backend();
    let (server, tool, place) = choose_pg_dump(target).await?;
    let pg = pg_target(target)?;
    let mut conn = connect(target).await?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(target.pg_err())?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await
        .map_err(target.pg_err())?;
    let progress = Progress::new(format!(
        "pg_dump {} → {} ({})",
        pg.database,
        path.display(),
        place.describe()
    ));
    // Made before anything can fail, so a failure below removes only what this run made.
    let file = private_file(path)?;
    let unfinished = Unfinished::new(path);
    let dumping = async {
        match &place {
            Place::Host => {
                drop(file);
                let mut cmd = pg_tool(&pg, "pg_dump", true);
                cmd.arg("--format=custom")
                    .arg(format!("--snapshot={snapshot}"))
                    .arg(format!("--file={}", path.display()));
                run_tool(backend, "pg_dump", cmd).await?;
                Ok(None)
            }
            Place::Container(c) => dump_in_container(target, c, &snapshot, file)
                .await
                .map(Some),
        }
    };
    let (dumped, counted) = tokio::join!(dumping, row_counts(target, &mut conn));
    let _ = sqlx::raw_sql("COMMIT").execute(&mut conn).await;
    let _ = conn.close().await;
    let hashed = match (dumped, &counted) {
        (Ok(hashed), Ok(_)) => hashed,
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e.clone()),
    };
    let (bytes, sha256) = match hashed {
        Some(h) => h,
        None => {
            progress.set("sha256 of the dump");
            sha256_file(path).await?
        }
    };
    let container = place.container();
    unfinished.keep();
    Ok(Dumped {
        file: path.display().to_string(),
        bytes,
        sha256,
        database: pg.database,
        server_version: server,
        pg_dump_version: tool,
        pg_dump_in: if container.is_some() {
            "container"
        } else {
            "host"
        },
        container: container.map(|c| c.name.clone()),
        container_image: container.map(|c| c.image.clone()),
        tables: counted?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn stamp() -> String {
    chrono::Utc::now().format(STAMP).to_string()
}

/// backup::db: the database alone, `<dir>/<database>-<stamp>.dump` plus a `.sha256` beside it
/// (the `sha256sum -c` format), both 0600.
pub async fn db(target: &Target, dir: &Path) -> Result<Dumped, OpError> {
    private_dir_all(dir)?;
    let pg = pg_target(target)?;
    let mut name = format!("{}-{}.dump", pg.database, stamp());
    for _ in 0..3 {
        if !dir.join(&name).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        name = format!("{}-{}.dump", pg.database, stamp());
    }
    let path = dir.join(&name);
    let dumped = dump_to(target, &path).await?;
    write_private(
        &dir.join(format!("{name}.sha256")),
        format!("{}  {name}\n", dumped.sha256).as_bytes(),
    )?;
    Ok(dumped)
}

// ---------------------------------------------------------------------------------------------
// backup::all

#[derive(Debug, Serialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub what: String,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct Backup {
    pub dir: String,
    pub files: Vec<FileEntry>,
    pub skipped: Vec<Skipped>,
    pub tables: BTreeMap<String, i64>,
    /// Where pg_dump ran: "host" or "container", and the container's name when it did.
    pub pg_dump_in: &'static str,
    pub pg_dump_container: Option<String>,
    /// The manifest's redis slot: file (or null and skipped), copied_from ("host" or
    /// "container"), container, rdb_source, server_version, saved_at.
    pub redis: Value,
    /// The manifest's qdrant slot: included, and per collection its snapshot file, bytes, sha256,
    /// Qdrant's checksum, points and vector configuration.
    pub qdrant: Value,
    pub total_bytes: u64,
    pub seconds: f64,
}

struct RedisPart {
    manifest: Value,
    file: Option<FileEntry>,
    skipped: Option<String>,
}

pub async fn all(target: &Target, dir: &Path) -> Result<Backup, OpError> {
    let started = Instant::now();
    private_dir_all(dir)?;
    // Names are to the second: a second backup within the same second waits for the next.
    let mut tries = 0;
    let (folder, started_at) = loop {
        let at = chrono::Utc::now();
        let folder = dir.join(format!("{PREFIX}{}", at.format(STAMP)));
        match std::fs::DirBuilder::new().mode(0o700).create(&folder) {
            Ok(()) => break (folder, at),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 3 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(
                    1000 - u64::from(at.timestamp_subsec_millis()).min(999),
                ))
                .await;
            }
            Err(e) => return Err(file_err("cannot create", &folder, e)),
        }
    };
    let unfinished = Unfinished::new(&folder);
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| file_err("cannot chmod", &folder, e))?;
    let mut backup = fill(target, &folder, started_at).await?;
    unfinished.keep();
    backup.seconds = started.elapsed().as_secs_f64();
    Ok(backup)
}

async fn fill(
    target: &Target,
    folder: &Path,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<Backup, OpError> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();

    let dumped = dump_to(target, &folder.join(DUMP)).await?;
    files.push(FileEntry {
        name: DUMP.into(),
        bytes: dumped.bytes,
        sha256: dumped.sha256.clone(),
    });

    let redis = backup_redis(target, folder).await;
    if let Some(f) = redis.file {
        files.push(f);
    }
    if let Some(why) = &redis.skipped {
        skipped.push(Skipped {
            what: "redis".into(),
            why: why.clone(),
        });
    }

    let qdrant = backup_qdrant(target, folder).await;
    files.extend(qdrant.files);
    if let Some(why) = &qdrant.skipped {
        skipped.push(Skipped {
            what: "qdrant".into(),
            why: why.clone(),
        });
    }

    let compose_path = PathBuf::from(target.settings.text(key::COMPOSE_FILE));
    let compose = match std::fs::read_to_string(&compose_path) {
        Ok(text) => {
            // The one redaction of everything opsh writes (crate::redact).
            let (clean, redacted) = crate::redact::counted(&text);
            let name = compose_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "docker-compose.yml".into());
            write_private(&folder.join(&name), clean.as_bytes())?;
            let (bytes, sha256) = sha256_file(&folder.join(&name)).await?;
            files.push(FileEntry {
                name: name.clone(),
                bytes,
                sha256,
            });
            json!({"file": name, "source": compose_path.display().to_string(), "secrets_redacted": redacted})
        }
        Err(e) => {
            let why = format!("compose file {}: {e}", compose_path.display());
            skipped.push(Skipped {
                what: "compose".into(),
                why: why.clone(),
            });
            json!({"file": null, "source": compose_path.display().to_string(), "skipped": why})
        }
    };

    let mut config = serde_json::to_value(target.settings.shown())
        .map_err(|e| OpError::new(ErrorKind::Failed, None, e))?;
    crate::redact::json(&mut config);
    let config =
        serde_json::to_vec_pretty(&config).map_err(|e| OpError::new(ErrorKind::Failed, None, e))?;
    write_private(&folder.join(CONFIG), &config)?;
    let (bytes, sha256) = sha256_file(&folder.join(CONFIG)).await?;
    files.push(FileEntry {
        name: CONFIG.into(),
        bytes,
        sha256,
    });

    let finished_at = chrono::Utc::now();
    let manifest = json!({
        "format": FORMAT,
        "opsh_version": env!("CARGO_PKG_VERSION"),
        "started_at": started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "finished_at": finished_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "postgres": {
            "address": target.pg_backend().address,
            "database": dumped.database,
            "server_version": dumped.server_version,
            "pg_dump_version": dumped.pg_dump_version,
            "pg_dump_in": dumped.pg_dump_in,
            "container": dumped.container,
            "container_image": dumped.container_image,
            "file": DUMP,
            "format": "custom",
            "tables": dumped.tables,
        },
        "redis": redis.manifest.clone(),
        "qdrant": qdrant.manifest.clone(),
        "compose": compose,
        "config": {"file": CONFIG, "secrets": "redacted"},
        "files": files,
        "skipped": skipped,
    });
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| OpError::new(ErrorKind::Failed, None, e))?;
    write_private(&folder.join(MANIFEST), &text)?;
    let total_bytes = files.iter().map(|f| f.bytes).sum::<u64>() + text.len() as u64;
    Ok(Backup {
        dir: folder.display().to_string(),
        files,
        skipped,
        tables: dumped.tables,
        pg_dump_in: dumped.pg_dump_in,
        pg_dump_container: dumped.container,
        redis: redis.manifest,
        qdrant: qdrant.manifest,
        total_bytes,
        seconds: 0.0,
    })
}

struct QdrantPart {
    manifest: Value,
    files: Vec<FileEntry>,
    skipped: Option<String>,
}

/// A snapshot of each collection, created by Qdrant and downloaded over REST into the folder
/// (0600), its sha256 checked against Qdrant's checksum. Never fails the backup: a Qdrant that
/// cannot be reached or a snapshot that does not arrive whole is a skipped note (and no file).
async fn backup_qdrant(target: &Target, folder: &Path) -> QdrantPart {
    let address = target.qdrant_backend().address.clone();
    let mut snapshots = Vec::new();
    let mut files = Vec::new();
    let result: Result<(), OpError> = async {
        let names = qdrant::names(target).await?;
        for name in names {
            let progress = Progress::new(format!("qdrant snapshot {name}"));
            let info = qdrant::info(target, &name).await?;
            let points = qdrant::count(target, &name, true).await?;
            let snap = qdrant::snapshot(target, &name).await?;
            let file = format!("qdrant-{}.snapshot", file_safe(&name));
            let got =
                qdrant::download_snapshot(target, &name, &snap.name, &folder.join(&file)).await;
            // The snapshot was made for this backup only: once it is here (checked against
            // Qdrant's checksum, or at least its size), or could not be had, it goes, so
            // backups do not fill Qdrant's storage.
            let complete = got
                .as_ref()
                .is_ok_and(|g| g.verified || g.size == snap.size as u64);
            let deleted = qdrant::delete_snapshot(target, &name, &snap.name).await;
            let got = got?;
            if !complete {
                let _ = std::fs::remove_file(folder.join(&file));
                return Err(OpError::backend(
                    target.qdrant_backend(),
                    ErrorKind::Failed,
                    format!(
                        "snapshot {} of {name}: {} bytes arrived, Qdrant listed {} and no checksum",
                        snap.name, got.size, snap.size
                    ),
                ));
            }
            drop(progress);
            files.push(FileEntry {
                name: file.clone(),
                bytes: got.size,
                sha256: got.sha256.clone(),
            });
            snapshots.push(json!({
                "collection": name,
                "file": file,
                "snapshot": snap.name,
                "bytes": got.size,
                "sha256": got.sha256,
                "qdrant_checksum": snap.checksum,
                "checksum_verified": got.verified,
                "deleted_on_server": deleted.is_ok(),
                "delete_error": deleted.err().map(|e| e.cause),
                "points": points,
                "vector_size": info.vector_size,
                "distance": info.distance,
            }));
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => QdrantPart {
            manifest: json!({"included": true, "address": address, "snapshots": snapshots}),
            files,
            skipped: None,
        },
        Err(e) => {
            for f in &files {
                let _ = std::fs::remove_file(folder.join(&f.name));
            }
            let why = e.to_string();
            QdrantPart {
                manifest: json!({"included": false, "address": address, "why": why, "snapshots": []}),
                files: Vec::new(),
                skipped: Some(why),
            }
        }
    }
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct QdrantRestored {
    pub dry_run: bool,
    pub collection: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// Points the collection held before (0 when it did not exist).
    pub points_before: u64,
    /// Points after the restore (on a dry run: the backup's manifest count, when listed).
    pub points_after: Option<u64>,
    /// The backup's manifest count equals the restored collection's.
    pub matches_manifest: Option<bool>,
}

/// Replaces a collection with its snapshot from a backup folder (or a .snapshot file): the file's
/// sha256 is checked against the manifest first, then it is uploaded through Qdrant's REST API
/// (multipart, with the checksum, so Qdrant checks it too) and recovered with priority to the
/// snapshot.
pub async fn restore_qdrant(
    target: &Target,
    dir: &Path,
    collection: &str,
) -> Result<QdrantRestored, OpError> {
    let (file, listed) = if dir.is_dir() {
        let manifest = read_manifest(dir).map_err(OpError::invalid)?;
        let entry = manifest
            .pointer("/qdrant/snapshots")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|e| e["collection"] == collection))
            .cloned()
            .ok_or_else(|| {
                OpError::new(
                    ErrorKind::NotFound,
                    None,
                    format!(
                        "{}: the manifest lists no snapshot of collection `{collection}`",
                        dir.display()
                    ),
                )
            })?;
        let name = entry["file"].as_str().unwrap_or_default().to_string();
        (dir.join(name), Some(entry))
    } else {
        (dir.to_path_buf(), None)
    };
    let (bytes, sha256) = sha256_file(&file).await?;
    if let Some(entry) = &listed {
        let expected = entry["sha256"].as_str().unwrap_or_default();
        if !expected.eq_ignore_ascii_case(&sha256) || entry["bytes"].as_u64() != Some(bytes) {
            return Err(OpError::invalid(format!(
                "{}: {bytes} bytes with sha256 {sha256}, the manifest lists {} bytes with {expected}: refusing a damaged snapshot",
                file.display(),
                entry["bytes"]
            )));
        }
    }
    let listed_points = listed.as_ref().and_then(|e| e["points"].as_u64());
    let points_before = match qdrant::count(target, collection, true).await {
        Ok(n) => n,
        Err(e) if e.kind == ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let change = Change {
        op: "backup::restore_qdrant",
        summary: format!(
            "replace collection {collection} ({points_before} points) with the snapshot {} ({}points)",
            file.display(),
            listed_points.map(|n| format!("{n} ")).unwrap_or_default()
        ),
        count: points_before.max(1) as i64,
        confirm: Confirm::Yes,
    };
    let mut out = QdrantRestored {
        dry_run: true,
        collection: collection.into(),
        file: file.display().to_string(),
        bytes,
        sha256: sha256.clone(),
        points_before,
        points_after: listed_points,
        matches_manifest: None,
    };
    if !proceed(target, &change)? {
        return Ok(out);
    }
    out.dry_run = false;
    let client = target.qdrant().await?;
    let encoded: String = url::form_urlencoded::byte_serialize(collection.as_bytes()).collect();
    let progress = Progress::new(format!("uploading {} to {collection}", file.display()));
    crate::ops::clients::qdrant::rest_upload(
        client,
        target.qdrant_backend(),
        &format!(
            "/collections/{}/snapshots/upload?wait=true&priority=snapshot&checksum={sha256}",
            encoded.replace('+', "%20")
        ),
        &file,
    )
    .await?;
    drop(progress);
    let after = qdrant::count(target, collection, true).await?;
    out.points_after = Some(after);
    out.matches_manifest = listed_points.map(|n| n == after);
    done(target, &change, &format!("restored: {after} points"));
    Ok(out)
}

/// BGSAVE, waited on, then the RDB copied from the server's data dir when it is on this host.
/// Never fails the backup: what could not be done is a skipped note.
async fn backup_redis(target: &Target, folder: &Path) -> RedisPart {
    let address = target.redis_backend().address.clone();
    let skip = |why: String| RedisPart {
        manifest: json!({"address": address, "file": null, "skipped": why}),
        file: None,
        skipped: Some(why),
    };
    let redis = match target.redis().await {
        Ok(r) => r,
        Err(e) => return skip(e.to_string()),
    };
    let progress = Progress::new("redis BGSAVE");
    let saved = match bgsave(target, redis.conn.clone()).await {
        Ok(s) => s,
        Err(e) => return skip(e.to_string()),
    };
    drop(progress);
    let mut c = redis.conn.clone();
    let config = async {
        let dir: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("dir")
            .query_async(&mut c)
            .await?;
        let file: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("dbfilename")
            .query_async(&mut c)
            .await?;
        Ok::<_, redis::RedisError>((dir.get(1).cloned(), file.get(1).cloned()))
    }
    .await;
    let path = match config {
        Ok((Some(dir), Some(file))) => Path::new(&dir).join(file),
        Ok(_) => return skip("CONFIG GET did not name the RDB file".into()),
        Err(e) => {
            return skip(format!(
                "CONFIG GET dir/dbfilename refused ({e}): the RDB's place is unknown"
            ));
        }
    };
    let mut manifest = json!({
        "address": address,
        "db": redis.db,
        "server_version": saved.version,
        "saved_at": saved.at,
        "rdb_source": path.display().to_string(),
    });
    // The host's copy first (the data dir is here and readable), else out of the container.
    let on_host: Result<(u64, String), String> = if !redis.local {
        Err(format!(
            "Redis runs on another host: its RDB {} cannot be read here",
            path.display()
        ))
    } else {
        match std::fs::metadata(&path) {
            Err(e) => Err(format!(
                "the RDB {} is not readable on this host ({e})",
                path.display()
            )),
            Ok(m) if m.mtime() + 2 < saved.at => Err(format!(
                "the RDB {} on this host is older than the save just made: it is not this server's",
                path.display()
            )),
            Ok(_) => copy_private(&path, &folder.join(RDB)).await.map_err(|e| {
                let _ = std::fs::remove_file(folder.join(RDB));
                e.to_string()
            }),
        }
    };
    let copied = match on_host {
        Ok(done) => {
            manifest["copied_from"] = json!("host");
            Ok(done)
        }
        Err(why_not_host) => match rdb_from_container(target, &path, folder, saved.at).await {
            Ok((done, container)) => {
                manifest["copied_from"] = json!("container");
                manifest["container"] = json!(container);
                Ok(done)
            }
            Err(e) => Err(format!(
                "{why_not_host}; copying it out of the Redis container did not work either: {}",
                e.cause
            )),
        },
    };
    match copied {
        Ok((bytes, sha256)) => {
            manifest["file"] = json!(RDB);
            RedisPart {
                manifest,
                file: Some(FileEntry {
                    name: RDB.into(),
                    bytes,
                    sha256,
                }),
                skipped: None,
            }
        }
        Err(why) => {
            manifest["file"] = Value::Null;
            manifest["skipped"] = json!(why);
            RedisPart {
                manifest,
                file: None,
                skipped: Some(why),
            }
        }
    }
}

/// The RDB copied out of the Redis service's container (the Engine API's archive endpoint),
/// extracted from the tar stream as it arrives into a private file, hashed on the way; refused
/// (and removed) when it is older than the save just made, so another server's file is never
/// taken for this one's. Returns size, sha256 and the container's name.
async fn rdb_from_container(
    target: &Target,
    path: &Path,
    folder: &Path,
    saved_at: i64,
) -> Result<((u64, String), String), OpError> {
    let service = target.settings.text(key::COMPOSE_REDIS_SERVICE);
    let running = crate::ops::docker::running(target, service).await?;
    let to = folder.join(RDB);
    let mut out = private_writer(&to)?;
    let progress = Progress::new(format!(
        "copying {} out of {}",
        path.display(),
        running.name
    ));
    let copied =
        crate::ops::docker::copy_out(target, &running.id, &path.to_string_lossy(), &mut out).await;
    drop(progress);
    let entry = match copied {
        Ok(entry) => entry,
        Err(e) => {
            let _ = std::fs::remove_file(&to);
            return Err(e);
        }
    };
    if entry.mtime + 2 < saved_at {
        let _ = std::fs::remove_file(&to);
        return Err(OpError::backend(
            target.docker_backend(),
            ErrorKind::Failed,
            format!(
                "the RDB {} in container {} is older than the save just made: it is not this server's",
                path.display(),
                running.name
            ),
        ));
    }
    Ok((out.finish(), running.name))
}

struct Saved {
    version: String,
    /// Unix time of the save (LASTSAVE).
    at: i64,
}

/// Starts a background save and waits until it (not an earlier one) has finished.
async fn bgsave(
    target: &Target,
    mut c: redis::aio::MultiplexedConnection,
) -> Result<Saved, OpError> {
    let err = target.redis_err();
    let info = async |c: &mut redis::aio::MultiplexedConnection| -> Result<BTreeMap<String, String>, OpError> {
        let text: String = redis::cmd("INFO").arg("persistence").arg("server").query_async(c).await.map_err(target.redis_err())?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect())
    };
    let num = |m: &BTreeMap<String, String>, k: &str| m.get(k).and_then(|v| v.parse::<i64>().ok());
    let mut attempts = 0;
    let (saves_before, started) = loop {
        let before = info(&mut c).await?;
        let started = chrono::Utc::now().timestamp();
        match redis::cmd("BGSAVE")
            .arg("SCHEDULE")
            .query_async::<String>(&mut c)
            .await
        {
            Ok(_) => break (num(&before, "rdb_saves"), started),
            // One already running began before this call: wait for it, then start ours.
            Err(e) if attempts < 50 && e.to_string().contains("in progress") => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(err(e)),
        }
    };
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = info(&mut c).await?;
        if num(&now, "rdb_bgsave_in_progress") == Some(1) {
            continue;
        }
        let lastsave = num(&now, "rdb_last_save_time").unwrap_or(0);
        let ours = match (saves_before, num(&now, "rdb_saves")) {
            (Some(before), Some(after)) => after > before,
            _ => lastsave >= started,
        };
        if !ours {
            // Scheduled behind an AOF rewrite, or not yet begun.
            continue;
        }
        if now.get("rdb_last_bgsave_status").map(String::as_str) == Some("err") {
            return Err(OpError::backend(
                target.redis_backend(),
                ErrorKind::Failed,
                "BGSAVE failed (rdb_last_bgsave_status:err); the Redis log says why",
            ));
        }
        return Ok(Saved {
            version: now.get("redis_version").cloned().unwrap_or_default(),
            at: lastsave,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// verify

#[derive(Debug, Serialize)]
pub struct Verified {
    pub dir: String,
    pub ok: bool,
    pub files_checked: i64,
    pub problems: Vec<String>,
}

fn read_manifest(dir: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(dir.join(MANIFEST))
        .map_err(|e| format!("{MANIFEST}: cannot read it: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{MANIFEST}: not valid JSON: {e}"))
}

/// Runs `program` (pg_restore or psql) on `file` with `args`: on the host, the file as its
/// argument; in the container, the file streamed to its stdin (nothing is copied into the
/// container). `connect`: with the configured database's connection options. Returns stdout
/// when `keep_stdout`.
async fn run_on_file(
    target: &Target,
    place: &Place,
    program: &str,
    args: &[&str],
    connect: bool,
    file: &Path,
    keep_stdout: bool,
) -> Result<Vec<u8>, OpError> {
    let what = match args.first() {
        Some(a) if a.starts_with("--list") => format!("{program} --list"),
        _ => program.to_string(),
    };
    let psql = program == "psql";
    match place {
        Place::Host => {
            let mut cmd = if connect {
                pg_tool(&pg_target(target)?, program, true)
            } else {
                let mut cmd = tokio::process::Command::new(program);
                cmd.stdin(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                cmd
            };
            cmd.args(args).stdout(if keep_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            });
            if psql {
                cmd.arg(format!("--file={}", file.display()));
            } else {
                cmd.arg(file);
            }
            Ok(run_tool(target.pg_backend(), &what, cmd).await?.stdout)
        }
        Place::Container(c) => {
            let mut cmd = vec![program.to_string()];
            let mut env = Vec::new();
            if connect {
                let conn = inside_connection(target).await?;
                cmd.extend(conn.args);
                env = conn.env;
            }
            let opened = tokio::fs::File::open(file)
                .await
                .map_err(|e| file_err("cannot read", file, e))?;
            let input: Box<dyn tokio::io::AsyncRead + Send + Unpin> = if psql {
                // The file comes on stdin, so its end cannot tell a finished restore from one
                // cut off (opsh interrupted: the engine closes the input), and psql's
                // --single-transaction would COMMIT at that end either way. The transaction is
                // in the stream instead: BEGIN, the --command statements, the file, COMMIT; a
                // stream that stops early never reaches COMMIT and the server rolls back.
                let mut head = String::from("BEGIN;\n");
                let mut rest = args.iter();
                let mut kept_args = Vec::new();
                while let Some(a) = rest.next() {
                    match *a {
                        "--single-transaction" => {}
                        "--command" => {
                            if let Some(sql) = rest.next() {
                                head.push_str(sql);
                                head.push('\n');
                            }
                        }
                        other => kept_args.push(other),
                    }
                }
                cmd.extend(kept_args.iter().map(|a| a.to_string()));
                cmd.push("--file=-".into());
                let begin = std::io::Cursor::new(head.into_bytes());
                let commit = std::io::Cursor::new(b"\nCOMMIT;\n".to_vec());
                Box::new(tokio::io::AsyncReadExt::chain(
                    tokio::io::AsyncReadExt::chain(begin, opened),
                    commit,
                ))
            } else {
                cmd.extend(args.iter().map(|a| a.to_string()));
                Box::new(opened)
            };
            let mut kept = Vec::new();
            let mut sink = tokio::io::sink();
            let out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send) =
                if keep_stdout { &mut kept } else { &mut sink };
            let ran = crate::ops::docker::exec_stream(
                target,
                &c.id,
                cmd,
                env,
                crate::ops::docker::Input::Reader(input),
                out,
            )
            .await?;
            if ran.exit_code != 0 {
                return Err(OpError::backend(
                    target.pg_backend(),
                    ErrorKind::Failed,
                    format!(
                        "{what} {} failed (exit {}): {}",
                        c.describe(),
                        ran.exit_code,
                        tail(ran.stderr.as_bytes())
                    ),
                ));
            }
            Ok(kept)
        }
    }
}

/// Whether a host tool's failure means the host cannot do it (the tool is missing, or too old
/// for the archive's format), not that the file is bad.
fn host_cannot(e: &OpError) -> bool {
    e.cause.starts_with("cannot run ") || e.cause.contains("unsupported version")
}

/// `pg_restore --list`: the archive's table of contents, and where pg_restore could read it.
/// With backup.pg_tools = "auto" the host's pg_restore reads it unless it is missing or too old
/// for the archive (a dump by a newer pg_dump), then the postgres container's does.
async fn pg_list(target: &Target, file: &Path) -> Result<(String, Place), OpError> {
    let list = async |place: Place| {
        let out = run_on_file(target, &place, "pg_restore", &["--list"], false, file, true).await?;
        Ok::<_, OpError>((String::from_utf8_lossy(&out).into_owned(), place))
    };
    match mode(target) {
        Mode::Host => list(Place::Host).await,
        Mode::Container => list(Place::Container(Box::new(in_container(target).await?))).await,
        Mode::Auto => match list(Place::Host).await {
            Err(e) if host_cannot(&e) => match in_container(target).await {
                Ok(c) => list(Place::Container(Box::new(c))).await,
                Err(ce) => Err(OpError {
                    cause: format!(
                        "{}; and there is no postgres container to run it in ({})",
                        e.cause, ce.cause
                    ),
                    ..e
                }),
            },
            other => other,
        },
    }
}

/// Where psql runs for a plain dump: the host's when it has one (with "auto").
async fn psql_place(target: &Target) -> Result<Place, OpError> {
    let on_host = async || {
        tokio::process::Command::new("psql")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    };
    match mode(target) {
        Mode::Host => Ok(Place::Host),
        Mode::Auto if on_host().await => Ok(Place::Host),
        _ => Ok(Place::Container(Box::new(in_container(target).await?))),
    }
}

pub async fn verify(target: &Target, dir: &Path) -> Result<Verified, OpError> {
    if !dir.is_dir() {
        return Err(OpError::new(
            ErrorKind::NotFound,
            None,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let mut problems = Vec::new();
    let mut checked = 0i64;
    let manifest = match read_manifest(dir) {
        Ok(m) => m,
        Err(why) => {
            problems.push(why);
            return Ok(Verified {
                dir: dir.display().to_string(),
                ok: false,
                files_checked: 0,
                problems,
            });
        }
    };
    for field in [
        "/format",
        "/opsh_version",
        "/started_at",
        "/finished_at",
        "/postgres/server_version",
        "/postgres/pg_dump_version",
        "/postgres/file",
        "/postgres/tables",
        "/redis",
        "/qdrant",
        "/files",
    ] {
        if manifest.pointer(field).is_none_or(Value::is_null) {
            problems.push(format!(
                "{MANIFEST}: `{}` is missing",
                &field[1..].replace('/', ".")
            ));
        }
    }
    if let Some(f) = manifest.get("format").and_then(Value::as_str)
        && f != FORMAT
    {
        problems.push(format!("{MANIFEST}: format `{f}` is not {FORMAT}"));
    }
    if mode_of(dir) & 0o077 != 0 {
        problems.push(format!(
            "the folder is readable by others (mode {:o}); chmod 700 it",
            mode_of(dir)
        ));
    }
    let listed: Vec<&Value> = manifest
        .get("files")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut names = vec![MANIFEST.to_string()];
    for entry in listed {
        let (Some(name), Some(bytes), Some(sha)) = (
            entry.get("name").and_then(Value::as_str),
            entry.get("bytes").and_then(Value::as_u64),
            entry.get("sha256").and_then(Value::as_str),
        ) else {
            problems.push(format!(
                "{MANIFEST}: a files entry lacks name, bytes or sha256: {entry}"
            ));
            continue;
        };
        names.push(name.to_string());
        let path = dir.join(name);
        if name.contains('/') || !path.is_file() {
            problems.push(format!("{name}: missing"));
            continue;
        }
        checked += 1;
        let (size, sum) = sha256_file(&path).await?;
        if size != bytes {
            problems.push(format!("{name}: {size} bytes, the manifest says {bytes}"));
        } else if sum != sha {
            problems.push(format!(
                "{name}: sha256 {sum} differs from the manifest's {sha}"
            ));
        }
        if mode_of(&path) & 0o077 != 0 {
            problems.push(format!(
                "{name}: readable by others (mode {:o})",
                mode_of(&path)
            ));
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut extra: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !names.contains(n))
            .collect();
        extra.sort();
        for n in extra {
            problems.push(format!("{n}: not in the manifest"));
        }
    }
    let dump = manifest
        .pointer("/postgres/file")
        .and_then(Value::as_str)
        .unwrap_or(DUMP);
    if !names.iter().any(|n| n == dump) {
        problems.push(format!(
            "{MANIFEST}: the database dump {dump} is not among its files"
        ));
    } else if dir.join(dump).is_file()
        && let Err(e) = pg_list(target, &dir.join(dump)).await
    {
        problems.push(format!("{dump}: pg_restore cannot read it: {}", e.cause));
    }
    Ok(Verified {
        dir: dir.display().to_string(),
        ok: problems.is_empty(),
        files_checked: checked,
        problems,
    })
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// prune

#[derive(Debug, Serialize)]
pub struct Pruned {
    pub dry_run: bool,
    pub dir: String,
    pub kept: Vec<String>,
    pub deleted: Vec<String>,
    pub bytes_freed: u64,
}

/// A backup in the backup dir: a folder from `all`, or a dump from `db` (with its .sha256).
struct Found {
    name: String,
    series: &'static str,
    at: chrono::NaiveDateTime,
    paths: Vec<PathBuf>,
}

fn find_backups(dir: &Path) -> Result<Vec<Found>, OpError> {
    if !dir.exists() {
        // No backup made yet: nothing to prune.
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| file_err("cannot read", dir, e))?;
    let mut found = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir()
            && let Some(ts) = name.strip_prefix(PREFIX)
            && let Ok(at) = chrono::NaiveDateTime::parse_from_str(ts, STAMP)
        {
            found.push(Found {
                name: name.clone(),
                series: "all",
                at,
                paths: vec![entry.path()],
            });
        } else if kind.is_file()
            && let Some(stem) = name.strip_suffix(".dump")
            && let Some((_, ts)) = stem.rsplit_once('-')
            && let Ok(at) = chrono::NaiveDateTime::parse_from_str(ts, STAMP)
        {
            let mut paths = vec![entry.path()];
            let sidecar = dir.join(format!("{name}.sha256"));
            if sidecar.is_file() {
                paths.push(sidecar);
            }
            found.push(Found {
                name,
                series: "db",
                at,
                paths,
            });
        }
    }
    found.sort_by(|a, b| b.at.cmp(&a.at).then(b.name.cmp(&a.name)));
    Ok(found)
}

fn size_of(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| size_of(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// Deletes backups beyond the newest `keep_last` of each kind that are also older than
/// `keep_days` days: a backup stays when either rule keeps it.
pub async fn prune(
    target: &Target,
    dir: &Path,
    keep_last: i64,
    keep_days: i64,
) -> Result<Pruned, OpError> {
    if keep_last < 0 || keep_days < 0 {
        return Err(OpError::invalid(
            "keep_last and keep_days must not be negative",
        ));
    }
    let found = find_backups(dir)?;
    let cutoff = chrono::Utc::now().naive_utc() - chrono::Duration::days(keep_days);
    let mut kept = Vec::new();
    let mut gone = Vec::new();
    let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
    for f in &found {
        let rank = seen.entry(f.series).or_default();
        *rank += 1;
        if *rank <= keep_last || f.at >= cutoff {
            kept.push(f.name.clone());
        } else {
            gone.push(f);
        }
    }
    let bytes: u64 = gone.iter().flat_map(|f| &f.paths).map(|p| size_of(p)).sum();
    let change = Change {
        op: "backup::prune",
        summary: format!(
            "delete {} backups from {} (keeping the newest {keep_last} of each kind and those under {keep_days} days old)",
            gone.len(),
            dir.display()
        ),
        count: gone.len() as i64,
        confirm: Confirm::Yes,
    };
    let mut result = Pruned {
        dry_run: true,
        dir: dir.display().to_string(),
        kept,
        deleted: gone.iter().map(|f| f.name.clone()).collect(),
        bytes_freed: bytes,
    };
    if !proceed(target, &change)? {
        return Ok(result);
    }
    result.dry_run = false;
    for f in gone {
        for p in &f.paths {
            let r = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
            r.map_err(|e| file_err("cannot delete", p, e))?;
        }
    }
    done(
        target,
        &change,
        &format!(
            "{} backups deleted, {} bytes freed",
            result.deleted.len(),
            bytes
        ),
    );
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// restore_db

#[derive(Debug, Serialize)]
pub struct Restored {
    pub dry_run: bool,
    pub file: String,
    /// "custom" or "plain".
    pub format: &'static str,
    /// The checks the file passed before anything was touched.
    pub checks: Vec<String>,
    /// Tables whose data the dump holds.
    pub tables_in_dump: i64,
    /// Rows per table after the restore (empty on a dry run).
    pub tables: BTreeMap<String, i64>,
    /// Whether the counts equal the manifest's; () without a manifest.
    pub matches_manifest: Option<bool>,
    /// Where pg_restore (or psql) ran: "host" or "container".
    pub tools_in: &'static str,
    /// The container it ran in, when it did.
    pub container: Option<String>,
    pub seconds: f64,
}

fn refuse(file: &Path, why: impl std::fmt::Display) -> OpError {
    OpError::new(
        ErrorKind::Invalid,
        None,
        format!(
            "refusing to restore {}: {why}; the database was not touched",
            file.display()
        ),
    )
}

/// The dump to restore and what is known of it: a backup folder's postgres.dump with its
/// manifest, or a file (with a `.sha256` beside it, or a manifest in its folder).
struct Source {
    file: PathBuf,
    sha256: Option<String>,
    expected: Option<BTreeMap<String, i64>>,
}

fn source(path: &Path) -> Result<Source, OpError> {
    let (dir, file) = if path.is_dir() {
        (path.to_path_buf(), path.join(DUMP))
    } else {
        (
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
            path.to_path_buf(),
        )
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut src = Source {
        file: file.clone(),
        sha256: None,
        expected: None,
    };
    if let Ok(manifest) = read_manifest(&dir)
        && manifest.pointer("/postgres/file").and_then(Value::as_str) == Some(name.as_str())
    {
        src.sha256 = manifest
            .get("files")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|f| f.get("name").and_then(Value::as_str) == Some(&name))
            })
            .and_then(|f| f.get("sha256").and_then(Value::as_str))
            .map(str::to_string);
        src.expected = manifest
            .pointer("/postgres/tables")
            .and_then(|t| serde_json::from_value(t.clone()).ok());
    }
    if src.sha256.is_none()
        && let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.sha256")))
    {
        src.sha256 = text.split_whitespace().next().map(str::to_string);
    }
    Ok(src)
}

pub async fn restore_db(target: &Target, path: &Path) -> Result<Restored, OpError> {
    let started = Instant::now();
    let backend = target.pg_backend().clone();
    let src = source(path)?;
    let file = &src.file;
    let meta = std::fs::metadata(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => OpError::new(
            ErrorKind::NotFound,
            None,
            format!(
                "refusing to restore {}: no such file; the database was not touched",
                file.display()
            ),
        ),
        _ => refuse(file, e),
    })?;
    if !meta.is_file() || meta.len() == 0 {
        return Err(refuse(file, "it is empty or not a file"));
    }
    let mut head = [0u8; 4096];
    let n = std::fs::File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| refuse(file, e))?;
    let head = &head[..n];
    let format = if head.starts_with(b"PGDMP") {
        "custom"
    } else if String::from_utf8_lossy(head).contains("PostgreSQL database dump") {
        "plain"
    } else {
        return Err(refuse(
            file,
            "it is neither a pg_dump custom archive nor a plain pg_dump SQL file",
        ));
    };
    let mut checks = Vec::new();
    if let Some(expected) = &src.sha256 {
        let (_, sum) = sha256_file(file).await?;
        if &sum != expected {
            return Err(refuse(
                file,
                format!(
                    "its sha256 {sum} differs from the recorded {expected} (changed or truncated)"
                ),
            ));
        }
        checks.push("sha256 matches the recorded one".to_string());
    }
    let tables_in_dump;
    let place;
    if format == "custom" {
        let progress = Progress::new(format!("checking {}", file.display()));
        let (list, at) = pg_list(target, file)
            .await
            .map_err(|e| refuse(file, format!("pg_restore cannot read it: {}", e.cause)))?;
        place = at;
        let where_ = match &place {
            Place::Host => String::new(),
            Place::Container(c) => format!(" ({})", c.describe()),
        };
        tables_in_dump = list.lines().filter(|l| l.contains(" TABLE DATA ")).count() as i64;
        checks.push(format!(
            "pg_restore --list reads {} entries{where_}",
            list.lines().filter(|l| !l.starts_with(';')).count()
        ));
        if src.sha256.is_none() {
            // Nothing to compare with: read the whole archive, so truncated or corrupt data is
            // found now and not halfway through the restore.
            run_on_file(
                target,
                &place,
                "pg_restore",
                &["--file=/dev/null"],
                false,
                file,
                false,
            )
            .await
            .map_err(|e| {
                refuse(
                    file,
                    format!("its data cannot be read to the end: {}", e.cause),
                )
            })?;
            checks.push(format!("pg_restore reads all its data{where_}"));
        }
        drop(progress);
    } else {
        let text_tail = read_tail(file, 8192).map_err(|e| refuse(file, e))?;
        if !text_tail.contains(PLAIN_END) {
            return Err(refuse(
                file,
                format!(
                    "it does not end with `{PLAIN_END}` as a complete pg_dump plain dump does (truncated?)"
                ),
            ));
        }
        checks.push("ends as a complete pg_dump plain dump".to_string());
        tables_in_dump = count_copies(file).map_err(|e| refuse(file, e))?;
        place = psql_place(target).await?;
    }

    let pg = pg_target(target)?;
    let change = Change {
        op: "backup::restore_db",
        summary: format!(
            "replace the contents of database {} at {} with {} ({tables_in_dump} tables)",
            pg.database,
            backend.address,
            file.display()
        ),
        count: tables_in_dump.max(1),
        confirm: Confirm::Yes,
    };
    let mut result = Restored {
        dry_run: true,
        file: file.display().to_string(),
        format,
        checks,
        tables_in_dump,
        tables: BTreeMap::new(),
        matches_manifest: None,
        tools_in: if place.container().is_some() {
            "container"
        } else {
            "host"
        },
        container: place.container().map(|c| c.name.clone()),
        seconds: 0.0,
    };
    if !proceed(target, &change)? {
        result.seconds = started.elapsed().as_secs_f64();
        return Ok(result);
    }
    result.dry_run = false;
    let progress = Progress::new(format!(
        "restoring {} ({})",
        file.display(),
        place.describe()
    ));
    if format == "custom" {
        let args = [
            "--single-transaction",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--exit-on-error",
        ];
        run_on_file(target, &place, "pg_restore", &args, true, file, false).await?;
    } else {
        let mut args = vec![
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "-v",
            "ON_ERROR_STOP=1",
        ];
        if !plain_cleans(file).map_err(|e| refuse(file, e))? {
            // A dump made without --clean creates tables that exist: empty the schema first,
            // inside the same transaction, so a failure leaves the database as it was.
            args.extend([
                "--command",
                "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;",
            ]);
        }
        run_on_file(target, &place, "psql", &args, true, file, false).await?;
    }
    drop(progress);
    let mut conn = connect(target).await?;
    result.tables = row_counts(target, &mut conn).await?;
    let _ = conn.close().await;
    result.matches_manifest = src.expected.as_ref().map(|e| e == &result.tables);
    result.seconds = started.elapsed().as_secs_f64();
    done(
        target,
        &change,
        &format!(
            "restored: {} tables, {} rows",
            result.tables.len(),
            result.tables.values().sum::<i64>()
        ),
    );
    Ok(result)
}

fn read_tail(file: &Path, n: u64) -> std::io::Result<String> {
    use std::io::Seek;
    let mut f = std::fs::File::open(file)?;
    let len = f.metadata()?.len();
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(n)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Tables a plain dump loads (its COPY … FROM stdin statements).
fn count_copies(file: &Path) -> std::io::Result<i64> {
    use std::io::BufRead;
    let reader = std::io::BufReader::new(std::fs::File::open(file)?);
    let mut n = 0;
    for line in reader.split(b'\n') {
        let line = line?;
        if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;") {
            n += 1;
        }
    }
    Ok(n)
}

/// Whether a plain dump drops its objects itself (pg_dump --clean) and makes schema public.
fn plain_cleans(file: &Path) -> std::io::Result<bool> {
    use std::io::BufRead;
    let reader = std::io::BufReader::new(std::fs::File::open(file)?);
    for line in reader.split(b'\n') {
        let line = line?;
        if line.starts_with(b"DROP ") {
            return Ok(true);
        }
        if line.starts_with(b"CREATE TABLE") || line.starts_with(b"COPY ") {
            return Ok(false);
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------------
// Specs

/// The manifest of the newest backup-all folder in `dir` (what monthly-check compares this
/// month's sizes with), or None when there is none; a folder whose manifest cannot be read is
/// passed over for the one before it.
pub fn latest(dir: &Path) -> Result<Option<Value>, OpError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(OpError::invalid(format!(
                "cannot read {}: {e}",
                dir.display()
            )));
        }
    };
    let mut folders: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(PREFIX))
        })
        .collect();
    // The UTC stamp in the name sorts by time.
    folders.sort();
    for folder in folders.iter().rev() {
        let Ok(text) = std::fs::read(folder.join(MANIFEST)) else {
            continue;
        };
        if let Ok(mut manifest) = serde_json::from_slice::<Value>(&text) {
            manifest["dir"] = Value::String(folder.display().to_string());
            return Ok(Some(manifest));
        }
    }
    Ok(None)
}

fn dir_of(c: &crate::ops::spec::Call, name: &str) -> Result<PathBuf, OpError> {
    Ok(expand_home(&c.str(name)?))
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

static DB: Spec = Spec {
    module: "backup",
    name: "db",
    params: &[],
    options: &[Opt::new(
        "dir",
        Kind::Str,
        Default::Setting(key::BACKUP_DIR.name()),
        "where the dump goes (made 0700 when missing)",
    )],
    returns: "Map",
    doc: "Dumps the configured database in pg_dump's custom format to <dir>/<database>-<UTC \
          stamp>.dump (0600) with a .sha256 beside it. pg_dump runs on this host when it is at \
          least as new as the server, else in the postgres service's container (an Engine API \
          exec, its output streamed into the file; the password only in the exec's \
          environment); backup.pg_tools = \"host\" or \"container\" fixes the place. Returns \
          file, bytes, sha256, database, server_version, pg_dump_version, pg_dump_in (\"host\" \
          or \"container\"), container, container_image, tables (rows per table, counted in the \
          dump's own snapshot), seconds.",
    examples: &[Example::new(
        r#"let d = backup::db(#{dir: "backups"}); [d.tables.processing_jobs, d.sha256.len()]"#,
        "[8, 64]",
    )],
};

static ALL: Spec = Spec {
    module: "backup",
    name: "all",
    params: &[],
    options: &[Opt::new(
        "dir",
        Kind::Str,
        Default::Setting(key::BACKUP_DIR.name()),
        "where the backup folder goes",
    )],
    returns: "Map",
    doc: "Backs up the deployment into <dir>/opsh-backup-<UTC stamp>/ (0700, files 0600): \
          postgres.dump (custom format; pg_dump on this host or in the postgres container, as \
          backup::db), redis.rdb (BGSAVE waited on, then copied from the server's data dir when \
          it is readable here, else out of the redis service's container), a snapshot per \
          Qdrant collection (made, downloaded, checked against Qdrant's checksum, then deleted \
          on the server), the compose file and opsh-config.json with secrets masked, and \
          manifest.json (each file's size and sha256, tool and server versions, where pg_dump \
          ran and where the RDB came from, row counts, opsh version, timestamps). What could \
          not be included is listed in `skipped`. Returns dir, files, skipped, tables, \
          pg_dump_in, pg_dump_container, redis, qdrant, total_bytes, seconds.",
    examples: &[Example::new(
        r#"let b = backup::all(#{dir: "backups"}); [b.files[0].name, b.tables.processing_jobs]"#,
        r#"["postgres.dump", 8]"#,
    )],
};

static VERIFY: Spec = Spec {
    module: "backup",
    name: "verify",
    params: &[Param::new(
        "dir",
        Kind::Str,
        "a backup folder made by backup::all",
    )],
    options: &[],
    returns: "Map",
    doc: "Checks a backup folder: every file's size and sha256 against the manifest, files \
          missing or not listed, permissions, the manifest's completeness, and that pg_restore \
          can read the dump (the host's, or the postgres container's when the host has none or \
          one too old for the archive; see backup.pg_tools). Returns dir, ok, files_checked and \
          problems (one line each).",
    examples: &[Example::new(
        r#"let b = backup::all(#{dir: "backups"}); let v = backup::verify(b.dir); [v.ok, v.problems]"#,
        "[true, []]",
    )],
};

/// The folder the backup folders are in (latest, prune).
const BACKUP_DIR: Opt = Opt::new(
    "dir",
    Kind::Str,
    Default::Setting(key::BACKUP_DIR.name()),
    "the backup dir",
);

static LATEST: Spec = Spec {
    module: "backup",
    name: "latest",
    params: &[],
    options: &[BACKUP_DIR],
    returns: "Map",
    doc: "The manifest of the newest backup-all folder in dir (postgres.tables row counts, \
          qdrant.snapshots with points, finished_at, and dir), or () when there is none: what \
          monthly-check compares this month's sizes with.",
    examples: &[Example::new(
        r#"backup::latest(#{dir: "no-backups-here"})"#,
        "null",
    )],
};

static PRUNE: Spec = Spec {
    module: "backup",
    name: "prune",
    params: &[],
    options: &[
        BACKUP_DIR,
        Opt::new(
            "keep_last",
            Kind::Int,
            Default::Setting(key::BACKUP_KEEP_LAST.name()),
            "keep the newest this many of each kind (folders, dumps)",
        ),
        Opt::new(
            "keep_days",
            Kind::Int,
            Default::Setting(key::BACKUP_KEEP_DAYS.name()),
            "keep those younger than this many days",
        ),
    ],
    returns: "Map",
    doc: "Deletes old backups (opsh-backup-* folders and <database>-<stamp>.dump files) that \
          neither rule keeps, after confirmation (`yes`, or --yes); --dry-run lists them. \
          Returns dry_run, dir, kept, deleted (names), bytes_freed.",
    examples: &[Example::new(
        r#"backup::prune(#{dir: "backups"}).deleted"#,
        "[]",
    )],
};

static RESTORE_DB: Spec = Spec {
    module: "backup",
    name: "restore_db",
    params: &[Param::new(
        "file",
        Kind::Str,
        "a .dump (custom format), a plain .sql dump, or a backup folder",
    )],
    options: &[],
    returns: "Map",
    doc: "Restores the configured database from a dump. First checks it and refuses a missing, \
          truncated or corrupt one before touching anything (sha256 against the manifest or the \
          .sha256 beside it; pg_restore must read it; a plain .sql must end as pg_dump ends \
          one); then asks for confirmation (`yes`, or --yes; --dry-run stops here) and restores \
          in one transaction (pg_restore --single-transaction --clean --if-exists, or psql -1 \
          with ON_ERROR_STOP). pg_restore and psql run on this host, or in the postgres \
          container with the file on their stdin when the host has none or one too old for the \
          archive (backup.pg_tools). Returns dry_run, file, format, checks, tables_in_dump, \
          tables (rows after), matches_manifest, tools_in (\"host\" or \"container\"), \
          container, seconds.",
    examples: &[Example::new(
        r#"let k = (); try { backup::restore_db("nowhere.dump") } catch (e) { k = e.kind } k"#,
        r#""not_found""#,
    )],
};

static RESTORE_QDRANT: Spec = Spec {
    module: "backup",
    name: "restore_qdrant",
    params: &[
        Param::new(
            "dir",
            Kind::Str,
            "a backup-all folder (its manifest names the snapshot) or a .snapshot file",
        ),
        Param::new("collection", Kind::Str, "the collection to replace"),
    ],
    options: &[],
    returns: "Map",
    doc: "Replaces a Qdrant collection with its snapshot from a backup: the file's size and sha256 \
          are checked against the manifest first (a damaged one is refused), then, after \
          confirmation (`yes`, or --yes; --dry-run stops here), it is streamed from the file \
          through Qdrant's REST API (multipart POST /collections/{c}/snapshots/upload, priority \
          snapshot, with its checksum). Returns dry_run, collection, file, bytes, sha256, points_before, \
          points_after, matches_manifest (the manifest's point count equals the restored one).",
    examples: &[Example::new(
        r#"let k = (); try { backup::restore_qdrant("nowhere", "youtube_content") } catch (e) { k = e.kind } k"#,
        r#""not_found""#,
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&RESTORE_QDRANT, |c| {
        let dir = dir_of(c, "dir")?;
        let collection = c.str("collection")?;
        c.block(restore_qdrant(c.target, &dir, &collection))
    });
    reg.add(&DB, |c| {
        let dir = dir_of(c, "dir")?;
        c.block(db(c.target, &dir))
    });
    reg.add(&ALL, |c| {
        let dir = dir_of(c, "dir")?;
        c.block(all(c.target, &dir))
    });
    reg.add(&VERIFY, |c| {
        let dir = dir_of(c, "dir")?;
        c.block(verify(c.target, &dir))
    });
    reg.add(&LATEST, |c| Ok(latest(&dir_of(c, "dir")?)?));
    reg.add(&PRUNE, |c| {
        let dir = dir_of(c, "dir")?;
        c.block(prune(
            c.target,
            &dir,
            c.int("keep_last")?,
            c.int("keep_days")?,
        ))
    });
    reg.add(&RESTORE_DB, |c| {
        let file = dir_of(c, "file")?;
        c.block(restore_db(c.target, &file))
    });
}
