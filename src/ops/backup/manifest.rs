//! A backup's names and its manifest: the format, the folder's and files' names, the stamp in
//! them, a manifest's file entries, reading a folder's manifest, and `backup::latest`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::ops::error::OpError;

/// The manifest's format tag; verify reports any other.
pub const FORMAT: &str = "opsh-backup/1";
/// A backup-all folder is PREFIX + the UTC stamp (STAMP, which sorts by time).
pub(super) const PREFIX: &str = "opsh-backup-";
pub(super) const STAMP: &str = "%Y%m%dT%H%M%SZ";
/// The files of a backup-all folder.
pub(super) const DUMP: &str = "postgres.dump";
pub(super) const RDB: &str = "redis.rdb";
pub(super) const CONFIG: &str = "opsh-config.json";
pub(super) const MANIFEST: &str = "manifest.json";

pub(super) fn stamp() -> String {
    chrono::Utc::now().format(STAMP).to_string()
}

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

pub(super) fn read_manifest(dir: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(dir.join(MANIFEST))
        .map_err(|e| format!("{MANIFEST}: cannot read it: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{MANIFEST}: not valid JSON: {e}"))
}

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
