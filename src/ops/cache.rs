//! `cache::` — the Redis db of the deployment: ping, info, keys by pattern (SCAN, never KEYS),
//! counts, TTLs, deletion in batches (UNLINK) and flushing the configured db only.
//!
//! The db is not only a cache: it holds real state (DESIGN.md), the STT approvals waiting in
//! the hash `stt:pending_approval` and the cost counters `stt:daily_cost:<date>` and
//! `stt:monthly_cost:<YYYY-MM>`. Whatever deletes keys says which of that state it deleted, and
//! `flush(#{keep: COST_COUNTERS})` keeps the counters (the soft reset's default).

use std::collections::BTreeMap;
use std::time::Instant;

use redis::aio::MultiplexedConnection;
use serde::Serialize;

use crate::ops::Target;
use crate::ops::budget::{self, MAX_DELETE};
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Registrar, Spec};

/// Keys asked for per SCAN step, and deleted per UNLINK.
const BATCH: usize = 1000;

/// The deployment's state kept in Redis: pattern and what it is.
pub const STATE: &[(&str, &str)] = &[
    (
        "stt:pending_approval",
        "STT jobs waiting for cost approval (hash)",
    ),
    ("stt:daily_cost:*", "daily STT cost counters"),
    ("stt:monthly_cost:*", "monthly STT cost counters"),
];

/// The cost counters a soft reset keeps unless asked otherwise.
pub const COST_COUNTERS: &[&str] = &["stt:daily_cost:*", "stt:monthly_cost:*"];

async fn conn(target: &Target) -> Result<(MultiplexedConnection, i64), OpError> {
    let r = target.redis().await?;
    Ok((r.conn.clone(), r.db))
}

#[derive(Debug, Serialize)]
pub struct Ping {
    pub address: String,
    pub db: i64,
    pub server_version: String,
    pub latency_ms: f64,
}

pub async fn ping(target: &Target) -> Result<Ping, OpError> {
    let (mut c, db) = conn(target).await?;
    let started = Instant::now();
    let _: String = redis::cmd("PING")
        .query_async(&mut c)
        .await
        .map_err(target.redis_err())?;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let server = info_section(target, &mut c, "server").await?;
    Ok(Ping {
        address: target.redis_backend().address.clone(),
        db,
        server_version: server.get("redis_version").cloned().unwrap_or_default(),
        latency_ms,
    })
}

/// One INFO section as field → value.
async fn info_section(
    target: &Target,
    c: &mut MultiplexedConnection,
    section: &str,
) -> Result<BTreeMap<String, String>, OpError> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(c)
        .await
        .map_err(target.redis_err())?;
    Ok(parse_info(&text))
}

fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[derive(Debug, Serialize)]
pub struct DbKeys {
    pub keys: i64,
    pub expires: i64,
}

#[derive(Debug, Serialize)]
pub struct Persistence {
    /// Unix time of the last successful save.
    pub rdb_last_save_time: i64,
    pub rdb_bgsave_in_progress: bool,
    /// "ok" or "err".
    pub rdb_last_bgsave_status: String,
    pub aof_enabled: bool,
}

#[derive(Debug, Serialize)]
pub struct Info {
    pub server_version: String,
    pub db: i64,
    /// Keys in the configured db.
    pub db_keys: i64,
    pub used_memory: i64,
    pub used_memory_human: String,
    /// 0: no limit.
    pub maxmemory: i64,
    pub maxmemory_policy: String,
    /// Every db that holds keys: "db0" → keys, expires.
    pub keyspace: BTreeMap<String, DbKeys>,
    pub persistence: Persistence,
}

pub async fn info(target: &Target) -> Result<Info, OpError> {
    let (mut c, db) = conn(target).await?;
    let all = info_section(target, &mut c, "everything").await?;
    let db_keys: i64 = redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .map_err(target.redis_err())?;
    let int = |k: &str| {
        all.get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_default()
    };
    let text = |k: &str| all.get(k).cloned().unwrap_or_default();
    let keyspace = all
        .iter()
        .filter(|(k, _)| k.starts_with("db") && k[2..].parse::<u32>().is_ok())
        .map(|(k, v)| {
            let field = |name: &str| {
                v.split(',')
                    .filter_map(|p| p.split_once('='))
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or_default()
            };
            (
                k.clone(),
                DbKeys {
                    keys: field("keys"),
                    expires: field("expires"),
                },
            )
        })
        .collect();
    Ok(Info {
        server_version: text("redis_version"),
        db,
        db_keys,
        used_memory: int("used_memory"),
        used_memory_human: text("used_memory_human"),
        maxmemory: int("maxmemory"),
        maxmemory_policy: text("maxmemory_policy"),
        keyspace,
        persistence: Persistence {
            rdb_last_save_time: int("rdb_last_save_time"),
            rdb_bgsave_in_progress: int("rdb_bgsave_in_progress") == 1,
            rdb_last_bgsave_status: text("rdb_last_bgsave_status"),
            aof_enabled: int("aof_enabled") == 1,
        },
    })
}

/// Walks the keys matching `pattern` with SCAN, a batch at a time; `each` returns false to stop.
async fn scan<F>(
    target: &Target,
    c: &mut MultiplexedConnection,
    pattern: &str,
    mut each: F,
) -> Result<(), OpError>
where
    F: AsyncFnMut(&mut MultiplexedConnection, Vec<String>) -> Result<bool, OpError>,
{
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(c)
            .await
            .map_err(target.redis_err())?;
        if !batch.is_empty() && !each(c, batch).await? {
            return Ok(());
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

pub async fn keys(target: &Target, pattern: &str, limit: i64) -> Result<Vec<String>, OpError> {
    let limit = usize::try_from(limit).map_err(|_| OpError::invalid("`limit` is negative"))?;
    let (mut c, _) = conn(target).await?;
    let mut found = Vec::new();
    if limit > 0 {
        scan(target, &mut c, pattern, async |_, batch| {
            found.extend(batch);
            Ok(found.len() < limit)
        })
        .await?;
    }
    // SCAN may return a key twice (while the table rehashes) and in no useful order.
    found.sort();
    found.dedup();
    found.truncate(limit);
    Ok(found)
}

pub async fn count(target: &Target, pattern: &str) -> Result<i64, OpError> {
    let (mut c, _) = conn(target).await?;
    if pattern == "*" {
        return redis::cmd("DBSIZE")
            .query_async(&mut c)
            .await
            .map_err(target.redis_err());
    }
    let mut n = 0i64;
    scan(target, &mut c, pattern, async |_, batch| {
        n += batch.len() as i64;
        Ok(true)
    })
    .await?;
    Ok(n)
}

/// How much of one kind of the deployment's state a set of keys holds.
#[derive(Debug, Clone, Serialize)]
pub struct StateItem {
    pub pattern: &'static str,
    pub what: &'static str,
    pub keys: i64,
    /// For the hash stt:pending_approval: its fields (the approvals waiting).
    pub fields: Option<i64>,
}

/// Each kind of the deployment's state, none counted yet.
fn state_items() -> Vec<StateItem> {
    STATE
        .iter()
        .map(|(pattern, what)| StateItem {
            pattern,
            what,
            keys: 0,
            fields: None,
        })
        .collect()
}

/// Counts `key` in the kind of state whose pattern it matches, if any.
fn tally(items: &mut [StateItem], key: &str) {
    if let Some(item) = items.iter_mut().find(|s| glob(s.pattern, key)) {
        item.keys += 1;
    }
}

/// The deployment's state in the configured db: each kind with its key count.
pub async fn state(target: &Target) -> Result<Vec<StateItem>, OpError> {
    let (mut c, _) = conn(target).await?;
    let mut out = state_items();
    let mut found: Vec<String> = Vec::new();
    scan(target, &mut c, "stt:*", async |_, batch| {
        found.extend(batch);
        Ok(true)
    })
    .await?;
    found.sort();
    found.dedup();
    for key in &found {
        tally(&mut out, key);
    }
    if out[0].keys > 0 {
        let n: i64 = redis::cmd("HLEN")
            .arg(out[0].pattern)
            .query_async(&mut c)
            .await
            .map_err(target.redis_err())?;
        out[0].fields = Some(n);
    }
    Ok(out)
}

fn state_words(items: &[StateItem]) -> String {
    let words: Vec<String> = items
        .iter()
        .filter(|s| s.keys > 0)
        .map(|s| match s.fields {
            Some(f) => format!("{} ({f} entries)", s.pattern),
            None => format!("{} {}", s.keys, s.pattern),
        })
        .collect();
    if words.is_empty() {
        "no deployment state".into()
    } else {
        format!("deployment state {}", words.join(", "))
    }
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub dry_run: bool,
    pub pattern: String,
    /// Keys matching when the call began.
    pub matched: i64,
    /// Keys deleted (0 on a dry run).
    pub deleted: i64,
    /// Up to 20 of the matching keys, sorted.
    pub sample: Vec<String>,
    /// The deployment's state among the matching keys.
    pub state: Vec<StateItem>,
    /// The 0600 file the deleted keys were written to.
    pub ids_file: Option<String>,
}

/// Deletes the keys matching `pattern`: SCAN, then UNLINK in batches (the server frees memory in
/// the background, so a large delete never blocks it).
pub async fn delete(
    target: &Target,
    pattern: &str,
    max_delete: Option<u64>,
) -> Result<Deleted, OpError> {
    let (mut c, db) = conn(target).await?;
    let mut matched = 0i64;
    let mut sample = Vec::new();
    let mut state = state_items();
    scan(target, &mut c, pattern, async |_, batch| {
        matched += batch.len() as i64;
        for key in batch {
            tally(&mut state, &key);
            if sample.len() < 20 {
                sample.push(key);
            }
        }
        Ok(true)
    })
    .await?;
    sample.sort();
    let change = Change {
        op: "cache::delete",
        summary: format!(
            "delete {matched} keys matching `{pattern}` from redis db {db} ({})",
            state_words(&state)
        ),
        count: matched,
        confirm: Confirm::Yes,
    };
    let total: u64 = redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .map_err(target.redis_err())?;
    let bulk = budget::Bulk {
        op: change.op,
        what: format!("redis db {db}"),
        unit: "keys",
        count: matched as u64,
        total,
        matched_nothing: None,
    };
    budget::check(target, &change, &bulk, max_delete)?;
    // Keys written meanwhile may match too: the delete stops at what the budget allowed.
    let limit = max_delete.unwrap_or_else(|| budget::allowed(&target.settings, total));
    let mut result = Deleted {
        dry_run: true,
        pattern: pattern.to_string(),
        matched,
        deleted: 0,
        sample,
        state,
        ids_file: None,
    };
    if !proceed(target, &change)? {
        return Ok(result);
    }
    result.dry_run = false;
    let mut kept = String::new();
    if matched > 0 {
        let mut ids = budget::IdFile::create(&target.settings, change.op, &bulk.what)?;
        kept = format!("; keys in {}", ids.path.display());
        result.ids_file = Some(ids.path.display().to_string());
        let mut deleted = 0i64;
        scan(target, &mut c, pattern, async |c, mut batch| {
            let room = usize::try_from(limit.saturating_sub(deleted as u64)).unwrap_or(usize::MAX);
            batch.truncate(room);
            deleted += unlink(target, c, &batch).await?;
            ids.write(&batch)?;
            Ok(room > batch.len())
        })
        .await?;
        result.deleted = deleted;
    }
    done(
        target,
        &change,
        &format!("{} keys deleted{kept}", result.deleted),
    );
    Ok(result)
}

async fn unlink(
    target: &Target,
    c: &mut MultiplexedConnection,
    keys: &[String],
) -> Result<i64, OpError> {
    if keys.is_empty() {
        return Ok(0);
    }
    redis::cmd("UNLINK")
        .arg(keys)
        .query_async(c)
        .await
        .map_err(target.redis_err())
}

#[derive(Debug, Serialize)]
pub struct Flushed {
    pub dry_run: bool,
    pub db: i64,
    /// Keys in the db when the call began.
    pub keys_before: i64,
    /// Keys deleted (on a dry run: that would be).
    pub deleted: i64,
    /// Keys kept because they match a `keep` pattern.
    pub kept: i64,
    pub keep: Vec<String>,
    /// The deployment's state deleted (on a dry run: that would be).
    pub state_deleted: Vec<StateItem>,
    /// The deployment's state kept.
    pub state_kept: Vec<StateItem>,
}

/// Empties the configured db (never another: FLUSHDB, not FLUSHALL). With `keep` patterns, the
/// keys matching any of them stay and the rest are deleted with SCAN + UNLINK.
pub async fn flush(target: &Target, keep: &[String]) -> Result<Flushed, OpError> {
    let (mut c, db) = conn(target).await?;
    let keys_before: i64 = redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .map_err(target.redis_err())?;
    let present = state(target).await?;
    let (state_kept, state_deleted): (Vec<StateItem>, Vec<StateItem>) =
        present.into_iter().partition(|s| {
            keep.iter()
                .any(|k| glob(k, s.pattern) || glob(k, &s.pattern.replace('*', "x")))
        });
    let kept = if keep.is_empty() {
        0
    } else {
        let mut n = 0i64;
        scan(target, &mut c, "*", async |_, batch| {
            n += batch
                .iter()
                .filter(|key| keep.iter().any(|k| glob(k, key)))
                .count() as i64;
            Ok(true)
        })
        .await?;
        n
    };
    let mut result = Flushed {
        dry_run: true,
        db,
        keys_before,
        deleted: keys_before - kept,
        kept,
        keep: keep.to_vec(),
        state_deleted: state_deleted.into_iter().filter(|s| s.keys > 0).collect(),
        state_kept: state_kept.into_iter().filter(|s| s.keys > 0).collect(),
    };
    let kept_words = if keep.is_empty() {
        String::new()
    } else {
        format!(", keeping {kept} keys matching {}", keep.join(", "))
    };
    let change = Change {
        op: "cache::flush",
        summary: format!(
            "delete {} of {keys_before} keys of redis db {db}, {}{kept_words}",
            result.deleted,
            state_words(&result.state_deleted)
        ),
        count: result.deleted,
        confirm: Confirm::Yes,
    };
    if !proceed(target, &change)? {
        return Ok(result);
    }
    result.dry_run = false;
    if keep.is_empty() {
        let _: () = redis::cmd("FLUSHDB")
            .query_async(&mut c)
            .await
            .map_err(target.redis_err())?;
    } else {
        let mut deleted = 0i64;
        scan(target, &mut c, "*", async |c, batch| {
            let gone: Vec<String> = batch
                .into_iter()
                .filter(|key| !keep.iter().any(|k| glob(k, key)))
                .collect();
            deleted += unlink(target, c, &gone).await?;
            Ok(true)
        })
        .await?;
        result.deleted = deleted;
    }
    done(
        target,
        &change,
        &format!("{} keys deleted, {} kept", result.deleted, result.kept),
    );
    Ok(result)
}

#[derive(Debug, Serialize)]
pub struct TtlSummary {
    pub pattern: String,
    pub keys: i64,
    pub with_ttl: i64,
    pub without_ttl: i64,
    /// Seconds; () when no key has a TTL.
    pub min_ttl: Option<i64>,
    pub max_ttl: Option<i64>,
}

pub async fn ttl_summary(target: &Target, pattern: &str) -> Result<TtlSummary, OpError> {
    let (mut c, _) = conn(target).await?;
    let mut s = TtlSummary {
        pattern: pattern.to_string(),
        keys: 0,
        with_ttl: 0,
        without_ttl: 0,
        min_ttl: None,
        max_ttl: None,
    };
    scan(target, &mut c, pattern, async |c, batch| {
        let mut pipe = redis::pipe();
        for key in &batch {
            pipe.cmd("TTL").arg(key);
        }
        let ttls: Vec<i64> = pipe.query_async(c).await.map_err(target.redis_err())?;
        for ttl in ttls {
            match ttl {
                // Deleted or expired between SCAN and TTL.
                -2 => continue,
                -1 => s.without_ttl += 1,
                t => {
                    s.with_ttl += 1;
                    s.min_ttl = Some(s.min_ttl.map_or(t, |m| m.min(t)));
                    s.max_ttl = Some(s.max_ttl.map_or(t, |m| m.max(t)));
                }
            }
            s.keys += 1;
        }
        Ok(true)
    })
    .await?;
    Ok(s)
}

/// Redis's glob (as SCAN MATCH and KEYS read it): `*`, `?`, `[abc]`, `[a-z]`, `[^a]`, `\x`.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some('[') => {
                let Some(&c) = t.first() else { return false };
                let mut i = 1;
                let negate = p.get(1) == Some(&'^');
                if negate {
                    i += 1;
                }
                let mut matched = false;
                while i < p.len() && p[i] != ']' {
                    if p[i] == '\\' && i + 1 < p.len() {
                        matched |= p[i + 1] == c;
                        i += 2;
                    } else if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                        let (lo, hi) = (p[i].min(p[i + 2]), p[i].max(p[i + 2]));
                        matched |= lo <= c && c <= hi;
                        i += 3;
                    } else {
                        matched |= p[i] == c;
                        i += 1;
                    }
                }
                // An unclosed class matches as far as it goes, as Redis does.
                let rest = if i < p.len() { &p[i + 1..] } else { &p[i..] };
                matched != negate && go(rest, &t[1..])
            }
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && go(&p[2..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

static PING: Spec = Spec {
    module: "cache",
    name: "ping",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "Connects to Redis and reports address (password masked), db (the configured db \
          number), server_version and latency_ms.",
    examples: &[Example::new(
        r#"let p = cache::ping(); [p.db, p.server_version == env("EXAMPLES_REDIS_VERSION"), p.latency_ms > 0.0]"#,
        "[9, true, true]",
    )],
};

static INFO: Spec = Spec {
    module: "cache",
    name: "info",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "The server's state: server_version, db, db_keys (keys in the configured db), \
          used_memory (bytes), used_memory_human, maxmemory, maxmemory_policy, keyspace (each db \
          holding keys: keys, expires) and persistence (rdb_last_save_time as unix time, \
          rdb_bgsave_in_progress, rdb_last_bgsave_status, aof_enabled).",
    examples: &[Example::new(
        "let i = cache::info(); [i.db, i.db_keys, i.persistence.aof_enabled, i.used_memory > 0]",
        "[9, 4, false, true]",
    )],
};

static KEYS: Spec = Spec {
    module: "cache",
    name: "keys",
    params: &[Param::new(
        "pattern",
        Kind::Str,
        "a Redis glob: *, ?, [abc]; e.g. \"embedding:*\"",
    )],
    options: &[Opt::new(
        "limit",
        Kind::Int,
        Default::Value("100"),
        "at most this many keys: the first SCAN finds, not the smallest",
    )],
    returns: "Array",
    doc: "Keys of the configured db matching a pattern, sorted, found with SCAN (never KEYS, \
          which blocks the server on a large db).",
    examples: &[Example::new(
        r#"cache::keys("opsh-example:*", #{limit: 10})"#,
        r#"["opsh-example:a", "opsh-example:b", "opsh-example:c"]"#,
    )],
};

static COUNT: Spec = Spec {
    module: "cache",
    name: "count",
    params: &[Param::new("pattern", Kind::Str, "a Redis glob")],
    options: &[],
    returns: "i64",
    doc: "How many keys of the configured db match a pattern (SCAN; \"*\" reads DBSIZE).",
    examples: &[Example::new(r#"cache::count("opsh-example:*")"#, "3")],
};

static STATE_SPEC: Spec = Spec {
    module: "cache",
    name: "state",
    params: &[],
    options: &[],
    returns: "Array",
    doc: "The deployment's real state kept in the configured db, one entry per kind: pattern \
          (stt:pending_approval, stt:daily_cost:*, stt:monthly_cost:*), what, keys, and fields \
          (the approvals waiting in the hash; () when it is absent).",
    examples: &[Example::new(
        "cache::state().map(|s| [s.pattern, s.keys])",
        r#"[["stt:pending_approval", 0], ["stt:daily_cost:*", 1], ["stt:monthly_cost:*", 0]]"#,
    )],
};

static DELETE: Spec = Spec {
    module: "cache",
    name: "delete",
    params: &[Param::new("pattern", Kind::Str, "a Redis glob")],
    options: &[MAX_DELETE],
    returns: "Map",
    doc: "Deletes the keys matching a pattern (SCAN, then UNLINK in batches of 1000) after \
          confirmation (`yes`, or --yes). More keys than the deletion budget (the larger of \
          delete.max_count and delete.max_percent of the db) changes nothing and fails with \
          kind over_budget unless max_delete is at least the count; --yes never lifts it. The \
          deleted keys go to a 0600 file in delete.ids_dir, named in the audit. Returns \
          dry_run, pattern, matched, deleted, sample (up to 20 keys), state (the deployment's \
          state among them) and ids_file. With --dry-run it deletes nothing and reports what \
          it would.",
    examples: &[Example::new(
        r#"let d = cache::delete("opsh-example:*"); [d.matched, d.deleted, cache::count("*")]"#,
        "[3, 3, 1]",
    )],
};

static FLUSH: Spec = Spec {
    module: "cache",
    name: "flush",
    params: &[],
    options: &[Opt::new(
        "keep",
        Kind::Strings,
        Default::None,
        "patterns of keys to keep, e.g. [\"stt:daily_cost:*\", \"stt:monthly_cost:*\"]",
    )],
    returns: "Map",
    doc: "Empties the configured Redis db, never another (FLUSHDB), after confirmation (`yes`, \
          or --yes); with `keep`, deletes all keys but those matching a keep pattern. Names the \
          deployment state it deletes and keeps: state_deleted, state_kept (pattern, what, keys, \
          fields), besides db, keys_before, deleted, kept. With --dry-run it deletes nothing.",
    examples: &[Example::new(
        r#"let f = cache::flush(#{keep: ["stt:daily_cost:*", "stt:monthly_cost:*"]}); [f.deleted, cache::keys("*")]"#,
        r#"[3, ["stt:daily_cost:2026-11-26"]]"#,
    )],
};

static TTL_SUMMARY: Spec = Spec {
    module: "cache",
    name: "ttl_summary",
    params: &[Param::new("pattern", Kind::Str, "a Redis glob")],
    options: &[],
    returns: "Map",
    doc: "How the keys matching a pattern expire: keys, with_ttl, without_ttl, min_ttl and \
          max_ttl in seconds (() when none has a TTL). The embedding cache should have a TTL of \
          at most 7 days on every key.",
    examples: &[Example::new(
        r#"let t = cache::ttl_summary("opsh-example:*"); [t.keys, t.with_ttl, t.without_ttl]"#,
        "[3, 1, 2]",
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&PING, |c| c.block(ping(c.target)));
    reg.add(&INFO, |c| c.block(info(c.target)));
    reg.add(&KEYS, |c| {
        c.block(keys(c.target, &c.str("pattern")?, c.int("limit")?))
    });
    reg.add(&COUNT, |c| c.block(count(c.target, &c.str("pattern")?)));
    reg.add(&STATE_SPEC, |c| c.block(state(c.target)));
    reg.add(&DELETE, |c| {
        let max = budget::max_delete(c.opt_int("max_delete")?)?;
        c.block(delete(c.target, &c.str("pattern")?, max))
    });
    reg.add(&FLUSH, |c| {
        let keep = c.opt_strings("keep")?.unwrap_or_default();
        c.block(flush(c.target, &keep))
    });
    reg.add(&TTL_SUMMARY, |c| {
        c.block(ttl_summary(c.target, &c.str("pattern")?))
    });
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_as_redis_does() {
        assert!(glob("stt:daily_cost:*", "stt:daily_cost:2026-11-26"));
        assert!(!glob("stt:daily_cost:*", "stt:monthly_cost:2026-11"));
        assert!(glob("*", ""));
        assert!(glob("h?llo", "hello"));
        assert!(glob("h[ae]llo", "hallo"));
        assert!(!glob("h[^e]llo", "hello"));
        assert!(glob("h[a-c]llo", "hbllo"));
        assert!(glob("a\\*", "a*"));
        assert!(!glob("a\\*", "ab"));
        assert!(glob("stt:pending_approval", "stt:pending_approval"));
    }
}
