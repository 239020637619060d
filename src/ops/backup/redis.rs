//! The Redis RDB: a BGSAVE waited on, then the RDB copied from the server's data dir when it is
//! readable here, else out of the redis service's container (the Engine's archive endpoint).

use crate::config::key;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::ops::Target;
use crate::ops::backup::manifest::{FileEntry, RDB};
use crate::ops::backup::private::{copy_private, private_writer};
use crate::ops::backup::spinner::Progress;
use crate::ops::error::{ErrorKind, OpError};

pub(super) struct RedisPart {
    pub(super) manifest: Value,
    pub(super) file: Option<FileEntry>,
    pub(super) skipped: Option<String>,
}

/// BGSAVE, waited on, then the RDB copied from the server's data dir when it is on this host.
/// Never fails the backup: what could not be done is a skipped note.
pub(super) async fn backup_redis(target: &Target, folder: &Path) -> RedisPart {
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
pub(super) async fn rdb_from_container(
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

pub(super) struct Saved {
    pub(super) version: String,
    /// Unix time of the save (LASTSAVE).
    pub(super) at: i64,
}

/// Starts a background save and waits until it (not an earlier one) has finished.
pub(super) async fn bgsave(
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
