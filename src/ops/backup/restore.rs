//! `backup::restore_db`: a dump (custom or plain) checked before anything is touched — sha256
//! against the manifest or the .sha256 beside it, readable to the end, a plain dump complete —
//! then restored in one transaction, on this host or in the postgres container.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use sqlx::Connection;

use crate::ops::Target;
use crate::ops::backup::dump::{connect, row_counts};
use crate::ops::backup::manifest::{DUMP, read_manifest};
use crate::ops::backup::place::{Place, pg_list, psql_place, run_on_file};
use crate::ops::backup::private::sha256_file;
use crate::ops::backup::spinner::Progress;
use crate::ops::backup::tools::pg_target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};

/// What pg_dump writes at the end of a complete plain-format dump.
pub(super) const PLAIN_END: &str = "-- PostgreSQL database dump complete";

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

pub(super) fn refuse(file: &Path, why: impl std::fmt::Display) -> OpError {
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
pub(super) struct Source {
    pub(super) file: PathBuf,
    pub(super) sha256: Option<String>,
    pub(super) expected: Option<BTreeMap<String, i64>>,
}

pub(super) fn source(path: &Path) -> Result<Source, OpError> {
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

pub(super) fn read_tail(file: &Path, n: u64) -> std::io::Result<String> {
    use std::io::Seek;
    let mut f = std::fs::File::open(file)?;
    let len = f.metadata()?.len();
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(n)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Tables a plain dump loads (its COPY … FROM stdin statements).
pub(super) fn count_copies(file: &Path) -> std::io::Result<i64> {
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
pub(super) fn plain_cleans(file: &Path) -> std::io::Result<bool> {
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
