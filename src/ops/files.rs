//! `files::` — files on the host: old logs removed from the configured log dirs.

use crate::config::key;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::spec::{Default, Example, Kind, Opt, Registrar, Spec};

#[derive(Debug, Serialize)]
pub struct Cleaned {
    pub dry_run: bool,
    pub older_than_seconds: u64,
    pub dirs: Vec<String>,
    /// Configured dirs that do not exist (nothing to clean there).
    pub missing_dirs: Vec<String>,
    /// Files removed (on a dry run: that would be).
    pub files: i64,
    pub bytes: u64,
    /// Up to 50 of them, oldest first.
    pub sample: Vec<String>,
}

struct Old {
    path: PathBuf,
    bytes: u64,
    modified: SystemTime,
}

/// Regular files (never symlinks, never followed) below `dir` modified before `cutoff` whose
/// name matches `pattern`.
fn walk(dir: &Path, pattern: &str, cutoff: SystemTime, out: &mut Vec<Old>) -> Result<(), OpError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        OpError::new(
            ErrorKind::Failed,
            None,
            format!("cannot read {}: {e}", dir.display()),
        )
    })?;
    for entry in entries.filter_map(|e| e.ok()) {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            walk(&entry.path(), pattern, cutoff, out)?;
        } else if meta.is_file()
            && crate::ops::cache::glob(pattern, &entry.file_name().to_string_lossy())
            && let Ok(modified) = meta.modified()
            && modified < cutoff
        {
            out.push(Old {
                path: entry.path(),
                bytes: meta.len(),
                modified,
            });
        }
    }
    Ok(())
}

pub fn clean_logs(
    target: &Target,
    dirs: &[PathBuf],
    older_than: Duration,
    pattern: &str,
) -> Result<Cleaned, OpError> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut old = Vec::new();
    let mut missing = Vec::new();
    for dir in dirs {
        let canonical = dir.canonicalize().ok();
        if canonical.as_deref() == Some(Path::new("/")) {
            return Err(OpError::invalid(format!(
                "refusing to clean logs in {}: it is the root directory",
                dir.display()
            )));
        }
        if !dir.is_dir() {
            missing.push(dir.display().to_string());
            continue;
        }
        walk(dir, pattern, cutoff, &mut old)?;
    }
    old.sort_by_key(|o| o.modified);
    let bytes: u64 = old.iter().map(|o| o.bytes).sum();
    let change = Change {
        op: "files::clean_logs",
        summary: format!(
            "delete {} log files ({bytes} bytes) older than {} from {}",
            old.len(),
            crate::duration::format(older_than),
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        count: old.len() as i64,
        confirm: Confirm::Yes,
    };
    let mut result = Cleaned {
        dry_run: true,
        older_than_seconds: older_than.as_secs(),
        dirs: dirs.iter().map(|d| d.display().to_string()).collect(),
        missing_dirs: missing,
        files: old.len() as i64,
        bytes,
        sample: old
            .iter()
            .take(50)
            .map(|o| o.path.display().to_string())
            .collect(),
    };
    if !proceed(target, &change)? {
        return Ok(result);
    }
    result.dry_run = false;
    let (mut files, mut freed) = (0i64, 0u64);
    for o in &old {
        match std::fs::remove_file(&o.path) {
            Ok(()) => {
                files += 1;
                freed += o.bytes;
            }
            // Rotated away meanwhile: nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(OpError::new(
                    ErrorKind::Failed,
                    None,
                    format!(
                        "cannot delete {}: {e} ({files} files deleted before it)",
                        o.path.display()
                    ),
                ));
            }
        }
    }
    result.files = files;
    result.bytes = freed;
    done(
        target,
        &change,
        &format!("{files} files deleted, {freed} bytes freed"),
    );
    Ok(result)
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

static CLEAN_LOGS: Spec = Spec {
    module: "files",
    name: "clean_logs",
    params: &[],
    options: &[
        Opt::new(
            "dirs",
            Kind::Strings,
            Default::Setting(key::LOGS_DIRS.name()),
            "the log dirs (searched recursively; symlinks are not followed)",
        ),
        Opt::new(
            "older_than",
            Kind::Duration,
            Default::Setting(key::LOGS_RETENTION.name()),
            "delete files last modified longer ago than this",
        ),
        Opt::new(
            "pattern",
            Kind::Str,
            Default::Value("*.log*"),
            "only files whose name matches this glob (\"*\" for all)",
        ),
    ],
    returns: "Map",
    doc: "Deletes old log files from the log dirs after confirmation (`yes`, or --yes); \
          --dry-run lists them. Returns dry_run, older_than_seconds, dirs, missing_dirs, files, \
          bytes (freed) and sample (up to 50 paths, oldest first).",
    examples: &[Example::new(
        r#"let c = files::clean_logs(#{dirs: ["no-such-logs"]}); [c.files, c.missing_dirs]"#,
        r#"[0, ["no-such-logs"]]"#,
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&CLEAN_LOGS, |c| {
        // A setting's list is `:`-separated; a script's list is an array.
        let dirs: Vec<PathBuf> = c
            .opt_strings("dirs")?
            .unwrap_or_default()
            .iter()
            .flat_map(|d| d.split(':').map(str::to_string).collect::<Vec<_>>())
            .filter(|d| !d.is_empty())
            .map(|d| expand_home(&d))
            .collect();
        Ok(clean_logs(
            c.target,
            &dirs,
            c.duration("older_than")?,
            &c.str("pattern")?,
        )?)
    });
}
