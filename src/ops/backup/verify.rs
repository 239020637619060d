//! `backup::verify`: a backup folder against its manifest — each file's size and sha256, files
//! missing or not listed, permissions, the manifest's fields — and the dump read by pg_restore.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::ops::Target;
use crate::ops::backup::manifest::{DUMP, FORMAT, MANIFEST, read_manifest};
use crate::ops::backup::place::pg_list;
use crate::ops::backup::private::sha256_file;
use crate::ops::error::{ErrorKind, OpError};

#[derive(Debug, Serialize)]
pub struct Verified {
    pub dir: String,
    pub ok: bool,
    pub files_checked: i64,
    pub problems: Vec<String>,
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
    let shard_of = shard_files(&manifest, &listed, &mut problems);
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
        let outside = name.contains('/');
        // A shard's file says which shard it holds.
        let name = &match shard_of.get(name) {
            Some(shard) => format!("{name} ({shard})"),
            None => name.to_string(),
        };
        if outside || !path.is_file() {
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

pub(super) fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

/// A cluster's backup: every shard of each collection is listed, and each shard's file is among
/// the manifest's files with the same size and sha256. Returns each shard file's name →
/// "collection `c` shard n", for the problems found on the file itself.
fn shard_files(
    manifest: &Value,
    files: &[&Value],
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let snapshots = manifest
        .pointer("/qdrant/snapshots")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for snap in snapshots {
        let Some(shards) = snap["shards"].as_array() else {
            continue;
        };
        let collection = snap["collection"].as_str().unwrap_or_default();
        let count = snap["shard_count"].as_u64().unwrap_or(0);
        if count == 0 {
            problems.push(format!(
                "{MANIFEST}: collection `{collection}` lists shards but no shard_count"
            ));
        }
        for id in 0..count {
            if !shards.iter().any(|s| s["shard_id"].as_u64() == Some(id)) {
                problems.push(format!(
                    "collection `{collection}` shard {id}: not in the backup (the manifest lists no snapshot of it)"
                ));
            }
        }
        for shard in shards {
            let id = shard["shard_id"].as_u64().unwrap_or(u64::MAX);
            let label = format!("collection `{collection}` shard {id}");
            let Some(file) = shard["file"].as_str() else {
                problems.push(format!("{MANIFEST}: {label} names no file"));
                continue;
            };
            out.insert(file.to_string(), label.clone());
            match files.iter().find(|f| f["name"].as_str() == Some(file)) {
                None => problems.push(format!(
                    "{label}: its file {file} is not among the manifest's files"
                )),
                Some(f) if f["sha256"] != shard["sha256"] || f["bytes"] != shard["bytes"] => {
                    problems.push(format!(
                        "{label}: {file} is listed with a different size or sha256 among the manifest's files"
                    ))
                }
                Some(_) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cluster_backup_lacking_a_shard_or_listing_another_file_is_a_problem() {
        let manifest = json!({"qdrant": {"snapshots": [{"collection": "c", "shard_count": 3,
        "shards": [
            {"shard_id": 0, "file": "qdrant-c-shard-0.snapshot", "bytes": 10, "sha256": "aa"},
            {"shard_id": 2, "file": "qdrant-c-shard-2.snapshot", "bytes": 12, "sha256": "bb"}
        ]}]}});
        let files = [
            json!({"name": "qdrant-c-shard-0.snapshot", "bytes": 10, "sha256": "aa"}),
            json!({"name": "qdrant-c-shard-2.snapshot", "bytes": 12, "sha256": "cc"}),
        ];
        let listed: Vec<&Value> = files.iter().collect();
        let mut problems = Vec::new();
        let labels = shard_files(&manifest, &listed, &mut problems);
        assert_eq!(
            problems,
            [
                "collection `c` shard 1: not in the backup (the manifest lists no snapshot of it)",
                "collection `c` shard 2: qdrant-c-shard-2.snapshot is listed with a different size or sha256 among the manifest's files",
            ]
        );
        assert_eq!(
            labels["qdrant-c-shard-0.snapshot"],
            "collection `c` shard 0"
        );
    }
}
