//! `backup::prune`: the backups in the backup dir (folders from `all`, dumps from `db`) beyond
//! what keep_last and keep_days keep, deleted through the destructive helper.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ops::Target;
use crate::ops::backup::manifest::{PREFIX, STAMP};
use crate::ops::backup::private::file_err;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;

#[derive(Debug, Serialize)]
pub struct Pruned {
    pub dry_run: bool,
    pub dir: String,
    pub kept: Vec<String>,
    pub deleted: Vec<String>,
    pub bytes_freed: u64,
}

/// A backup in the backup dir: a folder from `all`, or a dump from `db` (with its .sha256).
pub(super) struct Found {
    pub(super) name: String,
    pub(super) series: &'static str,
    pub(super) at: chrono::NaiveDateTime,
    pub(super) paths: Vec<PathBuf>,
}

pub(super) fn find_backups(dir: &Path) -> Result<Vec<Found>, OpError> {
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

pub(super) fn size_of(path: &Path) -> u64 {
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
