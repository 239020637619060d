//! `reset::` — the guide's reset-soft and reset-hard: the content tables truncated with their
//! identities restarted in one transaction (soft keeps channels, hard does not), the Qdrant
//! collections recreated with their own vector configuration, the configured Redis db flushed
//! (soft keeps the cost counters), the temp dirs emptied.
//!
//! One confirmation covers the whole ("yes" for soft, "DELETE ALL" for hard). Every step is
//! idempotent and safe to repeat, so a run killed at any point is finished by running it again:
//! truncating empty tables, recreating an empty collection and flushing an empty db change
//! nothing. The one window a repeat cannot see through — a collection deleted and not yet
//! created — is covered by keeping the collection's CreateCollection message in the state dir
//! (`$XDG_STATE_HOME/opsh/reset/`, else `~/.local/state/opsh/reset/`) before deleting it; a run
//! that finds the collection missing creates it from there, never from a hard-coded size.
//!
//! Tests kill a run part-way at the points of [`crate::failpoint`] (`after_postgres`,
//! `after_qdrant`, `after_redis`; `qdrant_deleted` is in qdrant::recreate).

use crate::config::key;
use std::path::{Path, PathBuf};

use prost::Message;
use qdrant_client::qdrant as q;
use serde::Serialize;
use sqlx::AssertSqlSafe;

use crate::ops::Target;
use crate::ops::cache;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::host;
use crate::ops::qdrant;
use crate::ops::spec::{Default, Example, Kind, Opt, Registrar, Spec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Soft,
    Hard,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Soft => "soft",
            Mode::Hard => "hard",
        }
    }

    /// The tables emptied: the content and everything made from it; hard adds channels.
    fn tables(self) -> &'static [&'static str] {
        match self {
            Mode::Soft => &[
                "content",
                "transcripts",
                "processing_jobs",
                "vector_mappings",
            ],
            Mode::Hard => &[
                "channels",
                "content",
                "transcripts",
                "processing_jobs",
                "vector_mappings",
            ],
        }
    }
}

/// The cost counters a soft reset keeps unless asked (real state: what STT has spent).
pub const COST_PATTERNS: &[&str] = &["stt:daily_cost:*", "stt:monthly_cost:*"];

#[derive(Debug, Serialize)]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
}

#[derive(Debug, Serialize)]
pub struct CollectionReset {
    pub collection: String,
    /// Points it held (deleted, or on a dry run: that would be).
    pub points: u64,
    /// Whether it existed when the run began.
    pub exists: bool,
    /// An interrupted run had kept its configuration (it is created from that).
    pub resumed: bool,
    pub vector_size: u64,
    pub distance: String,
    /// collection, kept or settings (see qdrant::recreate); empty on a dry run.
    pub config_from: String,
}

#[derive(Debug, Serialize)]
pub struct RedisReset {
    pub db: i64,
    pub keys_before: i64,
    pub deleted: i64,
    pub kept: i64,
    pub keep: Vec<String>,
    pub state_deleted: Vec<cache::StateItem>,
    pub state_kept: Vec<cache::StateItem>,
}

#[derive(Debug, Serialize)]
pub struct TempReset {
    pub dir: String,
    pub exists: bool,
    pub entries: i64,
}

#[derive(Debug, Serialize)]
pub struct Reset {
    pub mode: &'static str,
    pub dry_run: bool,
    /// Rows per emptied table (deleted, or on a dry run: that would be).
    pub tables: Vec<TableRows>,
    /// Tables kept, with their rows (soft: channels).
    pub preserved_tables: Vec<TableRows>,
    pub collections: Vec<CollectionReset>,
    pub redis: RedisReset,
    pub temp: Vec<TempReset>,
    pub temp_bytes: i64,
    /// In words, for the report.
    pub deleted: Vec<String>,
    pub preserved: Vec<String>,
}

fn state_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("opsh").join("reset"))
}

/// The file keeping a collection's configuration while it is recreated: named by the Qdrant
/// address too, so two targets never share one.
fn kept_path(target: &Target, collection: &str) -> Option<PathBuf> {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in target.settings.qdrant_grpc_url().url.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    let safe: String = collection
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(state_dir()?.join(format!("{hash:016x}-{safe}.pb")))
}

fn read_kept(path: &Path) -> Option<q::CreateCollection> {
    let bytes = std::fs::read(path).ok()?;
    q::CreateCollection::decode(bytes.as_slice()).ok()
}

fn write_kept(path: &Path, create: &q::CreateCollection) -> Result<(), OpError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| {
        OpError::invalid(format!(
            "cannot keep the collection's configuration in {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&create.encode_to_vec()).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

fn collections(target: &Target) -> Vec<String> {
    let mut out = Vec::new();
    for key in [
        key::QDRANT_CONTENT_COLLECTION,
        key::QDRANT_SUMMARIES_COLLECTION,
    ] {
        let name = target.settings.text(key).to_string();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

async fn existing_tables(target: &Target, names: &[&str]) -> Result<Vec<String>, OpError> {
    let pool = target.pg().await?;
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) \
         WHERE to_regclass(format('%I', t)) IS NOT NULL ORDER BY i",
    )
    .bind(&names)
    .fetch_all(pool)
    .await
    .map_err(target.pg_err())?;
    Ok(found)
}

async fn row_counts(target: &Target, tables: &[String]) -> Result<Vec<TableRows>, OpError> {
    let pool = target.pg().await?;
    let mut out = Vec::new();
    for table in tables {
        let rows: i64 =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM \"{table}\"")))
                .fetch_one(pool)
                .await
                .map_err(target.pg_err())?;
        out.push(TableRows {
            table: table.clone(),
            rows,
        });
    }
    Ok(out)
}

/// Empties the tables and restarts their identities, in one transaction: all or nothing.
async fn truncate(target: &Target, tables: &[String]) -> Result<(), OpError> {
    if tables.is_empty() {
        return Ok(());
    }
    let pool = target.pg().await?;
    let list: Vec<String> = tables.iter().map(|t| format!("\"{t}\"")).collect();
    let mut tx = pool.begin().await.map_err(target.pg_err())?;
    sqlx::query(AssertSqlSafe(format!(
        "TRUNCATE TABLE {} RESTART IDENTITY",
        list.join(", ")
    )))
    .execute(&mut *tx)
    .await
    .map_err(target.pg_err())?;
    tx.commit().await.map_err(target.pg_err())?;
    Ok(())
}

fn words(items: &[cache::StateItem]) -> Vec<String> {
    items
        .iter()
        .map(|s| match s.fields {
            Some(f) => format!("{} ({}, {f} entries)", s.pattern, s.what),
            None => format!("{} {} ({})", s.keys, s.pattern, s.what),
        })
        .collect()
}

/// Resets the deployment's data (see the module's doc). `keep_costs`: keep the Redis cost
/// counters (soft's default).
pub async fn run(target: &Target, mode: Mode, keep_costs: bool) -> Result<Reset, OpError> {
    // The plan: everything counted before anything is touched; a backend that cannot be reached
    // stops the reset here.
    let all_tables = existing_tables(target, Mode::Hard.tables()).await?;
    let (emptied, kept_tables): (Vec<String>, Vec<String>) = all_tables
        .into_iter()
        .partition(|t| mode.tables().contains(&t.as_str()));
    let tables = row_counts(target, &emptied).await?;
    let preserved_tables = row_counts(target, &kept_tables).await?;

    let mut plans = Vec::new();
    for name in collections(target) {
        let own = qdrant::creation_of(target, &name).await?;
        let kept = kept_path(target, &name).as_deref().and_then(read_kept);
        let points = if own.is_some() {
            qdrant::count(target, &name, true).await?
        } else {
            0
        };
        plans.push((name, own, kept, points));
    }

    let keep: Vec<String> = if keep_costs {
        COST_PATTERNS.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    let redis = target.redis().await?;
    let db = redis.db;
    let mut conn = redis.conn.clone();
    let keys_before: i64 = ::redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .map_err(target.redis_err())?;
    let mut kept_keys = 0;
    for k in &keep {
        kept_keys += cache::count(target, k).await?;
    }
    let (state_kept, state_deleted): (Vec<cache::StateItem>, Vec<cache::StateItem>) =
        cache::state(target)
            .await?
            .into_iter()
            .filter(|s| s.keys > 0)
            .partition(|s| keep.iter().any(|k| k == s.pattern));

    let temp_dirs = target.settings.paths(key::FILES_TEMP_DIRS);
    let temp: Vec<TempReset> = host::survey(target, &temp_dirs)
        .await?
        .into_iter()
        .map(|(dir, exists, entries)| TempReset {
            dir,
            exists,
            entries,
        })
        .collect();

    let rows: i64 = tables.iter().map(|t| t.rows).sum();
    let points: u64 = plans.iter().map(|p| p.3).sum();
    let resumed = plans
        .iter()
        .filter(|p| p.1.is_none() && p.2.is_some())
        .count();
    let files: i64 = temp.iter().map(|t| t.entries).sum();
    let redis_deleted = keys_before - kept_keys;

    let mut deleted = vec![format!(
        "{rows} rows from {}",
        tables
            .iter()
            .map(|t| format!("{} ({})", t.table, t.rows))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    deleted.push(format!(
        "{points} points from {}",
        plans
            .iter()
            .map(|p| format!("{} ({})", p.0, p.3))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut redis_words = format!("{redis_deleted} keys of redis db {db}");
    if !state_deleted.is_empty() {
        redis_words += &format!(", among them {}", words(&state_deleted).join(", "));
    }
    deleted.push(redis_words);
    deleted.push(format!(
        "{files} entries in the temp dirs {}",
        temp.iter()
            .map(|t| t.dir.clone())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut preserved: Vec<String> = preserved_tables
        .iter()
        .map(|t| format!("table {} ({} rows)", t.table, t.rows))
        .collect();
    if !keep.is_empty() {
        preserved.push(format!(
            "{kept_keys} redis keys matching {}{}",
            keep.join(", "),
            if state_kept.is_empty() {
                String::new()
            } else {
                format!(" ({})", words(&state_kept).join(", "))
            }
        ));
    }
    preserved.push(
        "each collection's vector configuration (size, distance, sparse vectors)".to_string(),
    );

    let change = Change {
        op: if mode == Mode::Soft {
            "reset::soft"
        } else {
            "reset::hard"
        },
        summary: format!("delete {}", deleted.join("; ")),
        count: rows + points as i64 + redis_deleted + files + resumed as i64,
        confirm: match mode {
            Mode::Soft => Confirm::Yes,
            Mode::Hard => Confirm::Phrase("DELETE ALL"),
        },
    };
    let mut out = Reset {
        mode: mode.name(),
        dry_run: true,
        tables,
        preserved_tables,
        collections: plans
            .iter()
            .map(|(name, own, kept, points)| {
                let (vector_size, distance) = own
                    .as_ref()
                    .or(kept.as_ref())
                    .map(size_of)
                    .unwrap_or_default();
                CollectionReset {
                    collection: name.clone(),
                    points: *points,
                    exists: own.is_some(),
                    resumed: own.is_none() && kept.is_some(),
                    vector_size,
                    distance,
                    config_from: String::new(),
                }
            })
            .collect(),
        redis: RedisReset {
            db,
            keys_before,
            deleted: redis_deleted,
            kept: kept_keys,
            keep: keep.clone(),
            state_deleted,
            state_kept,
        },
        temp,
        temp_bytes: 0,
        deleted,
        preserved,
    };
    if !proceed(target, &change)? {
        return Ok(out);
    }
    out.dry_run = false;
    let _covered = target.audit.cover();

    truncate(target, &emptied).await?;
    crate::failpoint::hit("after_postgres");

    for ((name, own, kept, _), report) in plans.iter().zip(out.collections.iter_mut()) {
        let path = kept_path(target, name);
        // Keep the configuration before deleting; a kept one from an interrupted run is used
        // only while the collection is missing.
        if let (Some(own), Some(path)) = (own, &path) {
            write_kept(path, own)?;
        }
        let recreated = qdrant::recreate_from(target, name, kept.as_ref().or(own.as_ref())).await?;
        if let Some(path) = &path {
            let _ = std::fs::remove_file(path);
        }
        report.vector_size = recreated.vector_size;
        report.distance = recreated.distance;
        report.config_from = recreated.config_from;
    }
    crate::failpoint::hit("after_qdrant");

    let flushed = cache::flush(target, &keep).await?;
    out.redis.deleted = flushed.deleted;
    out.redis.kept = flushed.kept;
    crate::failpoint::hit("after_redis");

    let cleaned = host::clean_dirs(target, &temp_dirs, None).await?;
    out.temp_bytes = cleaned.bytes;
    for (t, c) in out.temp.iter_mut().zip(cleaned.dirs.iter()) {
        t.entries = c.removed;
    }
    let errors: Vec<String> = cleaned.dirs.iter().flat_map(|d| d.errors.clone()).collect();
    if !errors.is_empty() {
        return Err(OpError::new(
            ErrorKind::Failed,
            None,
            format!(
                "the data was reset but {} temp entries could not be removed: {}",
                errors.len(),
                errors.join("; ")
            ),
        ));
    }
    done(target, &change, &out.deleted.join("; "));
    Ok(out)
}

fn size_of(c: &q::CreateCollection) -> (u64, String) {
    use q::vectors_config::Config;
    let params = match c.vectors_config.as_ref().and_then(|v| v.config.as_ref()) {
        Some(Config::Params(p)) => Some(p),
        Some(Config::ParamsMap(m)) => m.map.values().next(),
        None => None,
    };
    params
        .map(|p| {
            let d = q::Distance::try_from(p.distance)
                .map(|d| d.as_str_name().to_string())
                .unwrap_or_default();
            (p.size, d)
        })
        .unwrap_or_default()
}

const KEEP_COSTS_SOFT: Opt = Opt::new(
    "keep_costs",
    Kind::Bool,
    Default::Value("true"),
    "keep the Redis cost counters stt:daily_cost:* and stt:monthly_cost:*",
);
const KEEP_COSTS_HARD: Opt = Opt::new(
    "keep_costs",
    Kind::Bool,
    Default::Value("false"),
    "keep the Redis cost counters stt:daily_cost:* and stt:monthly_cost:*",
);

macro_rules! reset_doc {
    () => {
        " mode, dry_run, tables (table, rows: deleted), preserved_tables, \
    collections (collection, points, exists, resumed, vector_size, distance, config_from), redis \
    (db, keys_before, deleted, kept, keep, state_deleted, state_kept), temp (dir, exists, \
    entries), temp_bytes, and deleted / preserved in words. The tables are truncated with their \
    identities restarted in one transaction; each collection is recreated with its own vector \
    configuration; only the configured Redis db is flushed. Idempotent: a run killed at any point \
    is finished by running it again. With --dry-run it counts and changes nothing."
    };
}

static SOFT: Spec = Spec {
    module: "reset",
    name: "soft",
    params: &[],
    options: &[KEEP_COSTS_SOFT],
    returns: "Map",
    doc: concat!(
        "The guide's reset-soft: deletes the content, transcripts, jobs and vector mappings, the \
         vectors, the Redis cache (with stt:pending_approval) and the temp files; keeps the \
         channels and the cost counters. Asks for `yes`. Returns",
        reset_doc!()
    ),
    examples: &[Example::new(
        r#"let r = reset::soft(); [r.tables.len(), r.preserved_tables[0].table, r.collections[0].vector_size]"#,
        r#"[4, "channels", 4]"#,
    )],
};

static HARD: Spec = Spec {
    module: "reset",
    name: "hard",
    params: &[],
    options: &[KEEP_COSTS_HARD],
    returns: "Map",
    doc: concat!(
        "The guide's reset-hard: reset-soft plus the channels and the cost counters. Asks for \
         `DELETE ALL`. Returns",
        reset_doc!()
    ),
    examples: &[Example::new(
        r#"let r = reset::hard(); [r.tables.len(), r.preserved_tables.len(), r.collections[1].vector_size]"#,
        r#"[5, 0, 4]"#,
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&SOFT, |c| {
        let keep = c.bool("keep_costs")?;
        c.block(run(c.target, Mode::Soft, keep))
    });
    reg.add(&HARD, |c| {
        let keep = c.bool("keep_costs")?;
        c.block(run(c.target, Mode::Hard, keep))
    });
}
