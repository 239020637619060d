//! The audit of destructive actions: every change that goes through
//! `ops::destructive` (`proceed` under --dry-run, `done` after it was
//! made) becomes one record — OS user, host, procedure, its arguments, target, op, summary,
//! count, dry_run, outcome, when — appended to the `opsh_audit` table (`opsh migrate` makes it).
//!
//! When PostgreSQL cannot be reached, or the table is missing, the record goes to a local
//! JSON-lines file instead (setting `audit.file`, `~/.local/state/opsh/audit.jsonl` by default;
//! 0600 in a 0700 folder), and the next run that reaches the table writes the file's records
//! into it and empties the file. Each record carries a unique record_id, so a record is never
//! written twice, even when a flush is interrupted between the insert and emptying the file.
//!
//! Writing happens on a thread of its own with its own connection: `done` is called from inside
//! operations that are themselves running on the async bridge, and an audit record must not
//! depend on the state of the pool the operation used.

use crate::config::key;
use std::cell::{Cell, RefCell};
use std::io::{BufRead, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::config::Settings;
use crate::ops::Target;
use crate::ops::change::Change;

/// How long writing a record may wait for PostgreSQL before it goes to the file.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a flush waits for the file's lock before leaving the records to a later run.
const FLUSH_LOCK_WAIT: Duration = Duration::from_secs(5);

/// How long appending a record waits for the file's lock (a flush holds it while it inserts).
const APPEND_LOCK_WAIT: Duration = Duration::from_secs(60);

/// One destructive action: who, where, what, how many, whether it was a dry run, how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Unique per record (host, pid, time, sequence): a flush never writes one twice.
    pub record_id: String,
    /// When it was recorded, RFC 3339 UTC.
    pub at: String,
    pub os_user: String,
    pub host: String,
    /// The procedure that ran (`reset-stuck-jobs`), or None for `opsh -e` and the REPL.
    pub procedure: Option<String>,
    /// The procedure's arguments as it saw them (ARGS).
    pub arguments: serde_json::Value,
    /// The named target, or None for the configuration's top level.
    pub target: Option<String>,
    /// The operation (`jobs::reset_stuck`).
    pub op: String,
    pub summary: String,
    pub count: i64,
    pub dry_run: bool,
    pub outcome: String,
    /// When the run started, RFC 3339 UTC.
    pub run_started: Option<String>,
}

/// What the host knows about the run: set before the procedure runs.
#[derive(Debug, Clone, Default)]
struct Run {
    procedure: Option<String>,
    arguments: serde_json::Value,
    started: Option<String>,
}

/// The audit of one target: the records of this run, and where they are written.
#[derive(Default)]
pub struct Audit {
    records: RefCell<Vec<Record>>,
    run: RefCell<Run>,
    /// PostgreSQL was not reachable for an earlier record: later ones go straight to the file.
    unreachable: Cell<bool>,
    /// Set while a procedure confirmed as a whole (reset-soft: one "yes") runs its steps, so
    /// each step does not ask again; every step is still recorded.
    pub covered: Cell<bool>,
}

/// While alive, the steps of a confirmed procedure do not ask again.
pub struct Covered<'a> {
    audit: &'a Audit,
    before: bool,
}

impl Drop for Covered<'_> {
    fn drop(&mut self) {
        self.audit.covered.set(self.before);
    }
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Audit {
    /// Confirmations are taken as given until the guard drops (the caller asked for the whole).
    pub fn cover(&self) -> Covered<'_> {
        Covered {
            audit: self,
            before: self.covered.replace(true),
        }
    }

    /// Names the procedure that runs and its arguments, for the records that follow.
    pub fn set_run(&self, procedure: &str, arguments: serde_json::Value) {
        *self.run.borrow_mut() = Run {
            procedure: Some(procedure.to_string()),
            arguments,
            started: Some(now()),
        };
    }

    /// Records a change and writes it to the table, or the file when the table is out of reach.
    pub(crate) fn record(&self, target: &Target, change: &Change, dry_run: bool, outcome: &str) {
        let run = self.run.borrow().clone();
        let host = crate::ops::runlock::hostname();
        let record = Record {
            record_id: format!(
                "{host}-{}-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp_micros(),
                SEQUENCE.fetch_add(1, Ordering::SeqCst)
            ),
            at: now(),
            os_user: os_user(),
            host,
            procedure: run.procedure,
            // Masked before it is kept anywhere (table, file, listing): an argument or a
            // summary may quote a secret.
            arguments: if run.arguments.is_null() {
                serde_json::json!({})
            } else {
                let mut arguments = run.arguments;
                crate::redact::json(&mut arguments);
                arguments
            },
            target: target.name.clone(),
            op: change.op.to_string(),
            summary: crate::redact::text(&change.summary),
            count: change.count,
            dry_run,
            outcome: crate::redact::text(outcome),
            run_started: run.started,
        };
        tracing::debug!(target: "opsh::audit", op = %record.op, count = record.count, dry_run, "{}: {}", record.summary, record.outcome);
        let written = if self.unreachable.get() {
            Written::Unreachable("unreachable earlier in this run".into())
        } else {
            let record = &record;
            on_own_thread(&target.settings, async move |conn, file| {
                let flushed = flush_file(conn, &file).await;
                if let Ok(n @ 1..) = flushed {
                    tracing::info!(
                        "audit: wrote {n} records kept in {} to opsh_audit",
                        file.display()
                    );
                }
                insert(conn, record).await
            })
            .0
        };
        match written {
            Written::Table => {}
            Written::Unreachable(why) => {
                self.unreachable.set(true);
                self.to_file(&target.settings, &record, &format!("PostgreSQL: {why}"));
            }
            Written::NoTable => self.to_file(
                &target.settings,
                &record,
                "the table opsh_audit is missing (`opsh migrate` makes it)",
            ),
            Written::Failed(why) => self.to_file(&target.settings, &record, &why),
        }
        self.records.borrow_mut().push(record);
    }

    fn to_file(&self, settings: &Settings, record: &Record, why: &str) {
        let path = settings.path(key::AUDIT_FILE);
        match append(&path, record) {
            Ok(()) => tracing::debug!(
                "audit record kept in {} ({why}); a later run writes it to opsh_audit",
                path.display()
            ),
            Err(e) => tracing::error!(
                "audit record of {} lost: cannot write to opsh_audit ({why}) nor to {}: {e}",
                record.op,
                path.display()
            ),
        }
    }

    /// The records of this run, oldest first.
    pub fn records(&self) -> Vec<Record> {
        self.records.borrow().clone()
    }
}

/// Where a record went.
enum Written {
    Table,
    Unreachable(String),
    NoTable,
    Failed(String),
}

/// Runs `work` with a connection of its own on a thread of its own (safe to call from inside
/// an operation that runs on the bridge); where it went, and its value when it succeeded.
fn on_own_thread<T: Send>(
    settings: &Settings,
    work: impl AsyncFnOnce(&mut PgConnection, PathBuf) -> Result<T, sqlx::Error> + Send,
) -> (Written, Option<T>) {
    let url = settings.text(key::POSTGRES_URL).to_string();
    let file = settings.path(key::AUDIT_FILE);
    std::thread::scope(|s| {
        s.spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return (Written::Failed("cannot start a runtime".into()), None);
            };
            runtime.block_on(async move {
                let mut conn = match connect(&url).await {
                    Ok(conn) => conn,
                    Err(why) => return (Written::Unreachable(why), None),
                };
                let result = work(&mut conn, file).await;
                let _ = conn.close().await;
                match result {
                    Ok(value) => (Written::Table, Some(value)),
                    Err(e) if is_missing_table(&e) => (Written::NoTable, None),
                    Err(e) => (Written::Failed(e.to_string()), None),
                }
            })
        })
        .join()
        .unwrap_or_else(|_| (Written::Failed("the audit writer failed".into()), None))
    })
}

async fn connect(url: &str) -> Result<PgConnection, String> {
    let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| e.to_string())?;
    let options = sqlx::ConnectOptions::log_statements(
        options.application_name("opsh audit"),
        log::LevelFilter::Trace,
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(crate::redact::text(&e.to_string())),
        Err(_) => Err(format!(
            "no answer within {}",
            crate::duration::format(CONNECT_TIMEOUT)
        )),
    }
}

fn is_missing_table(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01")
}

async fn insert(conn: &mut PgConnection, r: &Record) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO opsh_audit (record_id, at, os_user, host, procedure, arguments, target, op,
                                 summary, count, dry_run, outcome, run_started)
         VALUES ($1, $2::timestamptz, $3, $4, $5, $6::text::jsonb, $7, $8, $9, $10, $11, $12,
                 $13::timestamptz)
         ON CONFLICT (record_id) DO NOTHING",
    )
    .bind(&r.record_id)
    .bind(&r.at)
    .bind(&r.os_user)
    .bind(&r.host)
    .bind(&r.procedure)
    .bind(r.arguments.to_string())
    .bind(&r.target)
    .bind(&r.op)
    .bind(&r.summary)
    .bind(r.count)
    .bind(r.dry_run)
    .bind(&r.outcome)
    .bind(&r.run_started)
    .execute(conn)
    .await
    .map(drop)
}

/// Writes the file's records to the table in one transaction and empties the file; the number
/// written. The file is locked (flock) meanwhile, so a concurrent run neither appends into a
/// flush nor flushes the same records.
async fn flush_file(conn: &mut PgConnection, path: &Path) -> Result<usize, sqlx::Error> {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return Ok(0);
    };
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(0);
    }
    // Without the lock a record appended meanwhile could be emptied away unwritten: leave the
    // file to a later run.
    let _lock = match Flock::exclusive(&file, FLUSH_LOCK_WAIT) {
        Ok(lock) => lock,
        Err(e) => {
            tracing::warn!(
                "audit: records kept in {} not written to opsh_audit now, its lock: {e}; a later run writes them",
                path.display()
            );
            return Ok(0);
        }
    };
    let records = read_records(&file, path);
    if records.is_empty() {
        empty(&file, path);
        return Ok(0);
    }
    let mut tx = conn.begin().await?;
    for r in &records {
        insert(&mut tx, r).await?;
    }
    tx.commit().await?;
    empty(&file, path);
    Ok(records.len())
}

/// Empties the file after its records were written. When that fails the records are offered
/// again by the next run, which is harmless: each carries its record_id, inserted ON CONFLICT
/// DO NOTHING.
fn empty(file: &std::fs::File, path: &Path) {
    if let Err(e) = file.set_len(0) {
        tracing::warn!(
            "audit: cannot empty {} after writing its records to opsh_audit ({e}); the next run offers them again and they are kept once",
            path.display()
        );
    }
}

fn read_records(file: &std::fs::File, path: &Path) -> Vec<Record> {
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .filter_map(|(n, l)| match serde_json::from_str(&l) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(
                    "{}:{}: not an audit record ({e}); left out",
                    path.display(),
                    n + 1
                );
                None
            }
        })
        .collect()
}

/// Appends a record to the file: folder 0700, file 0600, under an exclusive flock.
fn append(path: &Path, record: &Record) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let _lock = Flock::exclusive(&file, APPEND_LOCK_WAIT)?;
    let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
    (&file).write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()
}

/// An exclusive flock held until dropped.
struct Flock<'a>(&'a std::fs::File);

impl<'a> Flock<'a> {
    /// Takes the lock, waiting at most `wait` for another process to release it; an error when
    /// it cannot be taken (still held, or flock refused), so that no caller goes on unlocked.
    fn exclusive(file: &'a std::fs::File, wait: Duration) -> std::io::Result<Flock<'a>> {
        use std::os::fd::AsRawFd;
        let deadline = std::time::Instant::now() + wait;
        loop {
            // SAFETY: flock on a file descriptor this File owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Flock(file));
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => {}
                std::io::ErrorKind::WouldBlock if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::io::ErrorKind::WouldBlock => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!(
                            "held by another process for more than {}",
                            crate::duration::format(wait)
                        ),
                    ));
                }
                _ => return Err(e),
            }
        }
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The user opsh runs as: the passwd entry's name, else $USER, else the uid.
pub fn os_user() -> String {
    // SAFETY: getuid cannot fail; getpwuid_r writes into the buffers given.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) == 0
            && !result.is_null()
            && !pwd.pw_name.is_null()
        {
            return std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned();
        }
        std::env::var("USER").unwrap_or_else(|_| format!("uid {uid}"))
    }
}

/// Writes the records kept in the file to opsh_audit, when there are any and PostgreSQL can be
/// reached (each run calls this: the file empties on the first run after an outage).
pub fn flush_pending(settings: &Settings) {
    let file = settings.path(key::AUDIT_FILE);
    if std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) == 0 {
        return;
    }
    let (_, flushed) = on_own_thread(settings, async |conn, file| flush_file(conn, &file).await);
    if let Some(n @ 1..) = flushed {
        tracing::info!(
            "audit: wrote {n} records kept in {} to opsh_audit",
            file.display()
        );
    }
}

/// The newest record of `op`, from opsh_audit or still waiting in the local file (PostgreSQL
/// was down, or the table is missing), through the target's own pool: for `opsh top`, which
/// shows the last integrity check. Nothing is flushed here. A missing table is no record.
pub async fn last(target: &Target, op: &str) -> Result<Option<Record>, crate::ops::error::OpError> {
    let pool = target.pg().await?;
    let row: Result<Option<(String,)>, sqlx::Error> = sqlx::query_as(
        "SELECT row_to_json(r)::text FROM (
            SELECT record_id,
                   to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at,
                   os_user, host, procedure, arguments, target, op, summary, count, dry_run,
                   outcome,
                   to_char(run_started AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS run_started
            FROM opsh_audit WHERE op = $1 ORDER BY at DESC, id DESC LIMIT 1) r",
    )
    .bind(op)
    .fetch_optional(pool)
    .await;
    let table = match row {
        Ok(row) => row.and_then(|(json,)| serde_json::from_str::<Record>(&json).ok()),
        Err(e) if is_missing_table(&e) => None,
        Err(e) => return Err(target.pg_err()(e)),
    };
    let file = target.settings.path(key::AUDIT_FILE);
    let kept = std::fs::File::open(&file)
        .map(|f| read_records(&f, &file))
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.op == op);
    // RFC 3339 UTC times sort as text.
    Ok(table.into_iter().chain(kept).max_by(|a, b| a.at.cmp(&b.at)))
}

/// The recent records for `opsh audit`: newest first, at most `limit`, those still waiting in
/// the file (PostgreSQL was down) among them, marked pending.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub records: Vec<Listed>,
    /// Records still in the local file (not yet in opsh_audit).
    pub pending: usize,
    /// Why the table could not be read, if it could not.
    pub warning: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub record: Record,
    /// True while the record is only in the local file.
    pub pending: bool,
}

/// Flushes the file into the table when it can, then lists the newest records.
pub fn list(settings: &Settings, limit: i64) -> Listing {
    let file = settings.path(key::AUDIT_FILE);
    let mut warning = None;
    let (written, value) = on_own_thread(settings, async move |conn, file| {
        let flushed = flush_file(conn, &file).await.err().map(|e| e.to_string());
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT row_to_json(r)::text FROM (
                SELECT record_id,
                       to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at,
                       os_user, host, procedure, arguments, target, op, summary, count, dry_run,
                       outcome,
                       to_char(run_started AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS run_started
                FROM opsh_audit ORDER BY at DESC, id DESC LIMIT $1) r",
        )
        .bind(limit)
        .fetch_all(conn)
        .await?;
        let records: Vec<Record> = rows
            .into_iter()
            .filter_map(|(json,)| serde_json::from_str(&json).ok())
            .collect();
        Ok((records, flushed))
    });
    let (table, flushed_error) = value.unwrap_or_default();
    match written {
        Written::Table => {}
        Written::Unreachable(why) => {
            warning = Some(format!(
                "PostgreSQL is unreachable ({why}): only the records kept in {} are shown",
                file.display()
            ))
        }
        Written::NoTable => {
            warning = Some(format!(
                "the table opsh_audit is missing (`opsh migrate` makes it): only the records kept in {} are shown",
                file.display()
            ))
        }
        Written::Failed(why) => warning = Some(format!("cannot read opsh_audit: {why}")),
    }
    if let Some(e) = flushed_error {
        warning.get_or_insert(format!(
            "cannot write the records kept in {} to opsh_audit: {e}",
            file.display()
        ));
    }
    let pending: Vec<Record> = std::fs::File::open(&file)
        .map(|f| read_records(&f, &file))
        .unwrap_or_default();
    let count = pending.len();
    let mut records: Vec<Listed> = table
        .into_iter()
        .map(|record| Listed {
            record,
            pending: false,
        })
        .chain(pending.into_iter().map(|record| Listed {
            record,
            pending: true,
        }))
        .collect();
    records.sort_by(|a, b| b.record.at.cmp(&a.record.at));
    records.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
    Listing {
        records,
        pending: count,
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_0600_in_a_0700_folder_and_holds_one_record_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/opsh/audit.jsonl");
        let r = Record {
            record_id: "h-1-2-3".into(),
            at: "2026-11-26T02:00:00.000Z".into(),
            os_user: "ops".into(),
            host: "h".into(),
            procedure: Some("reset-stuck-jobs".into()),
            arguments: serde_json::json!({"older_than": "1h"}),
            target: None,
            op: "jobs::reset_stuck".into(),
            summary: "reset".into(),
            count: 2,
            dry_run: false,
            outcome: "2 pending again".into(),
            run_started: None,
        };
        append(&path, &r).unwrap();
        append(&path, &r).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let f = std::fs::File::open(&path).unwrap();
        assert_eq!(read_records(&f, &path), vec![r.clone(), r]);
    }
}
