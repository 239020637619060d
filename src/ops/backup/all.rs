//! `backup::all`: a timestamped folder (0700) with the dump, the Redis RDB, the Qdrant
//! snapshots, the compose file and configuration, and manifest.json listing them all — removed
//! again when the backup does not finish.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::ops::Target;
use crate::ops::backup::copies::{copy_compose, copy_config};
use crate::ops::backup::dump::dump_to;
use crate::ops::backup::manifest::{
    CONFIG, DUMP, FORMAT, FileEntry, MANIFEST, PREFIX, STAMP, Skipped,
};
use crate::ops::backup::private::{Unfinished, file_err, private_dir_all, write_private};
use crate::ops::backup::redis::backup_redis;
use crate::ops::backup::snapshots::backup_qdrant;
use crate::ops::error::{ErrorKind, OpError};

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

pub(super) async fn fill(
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

    let qdrant = backup_qdrant(target, folder).await?;
    files.extend(qdrant.files);
    if let Some(why) = &qdrant.skipped {
        skipped.push(Skipped {
            what: "qdrant".into(),
            why: why.clone(),
        });
    }

    let compose = copy_compose(target, folder, &mut files, &mut skipped).await?;
    copy_config(target, folder, &mut files).await?;

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
