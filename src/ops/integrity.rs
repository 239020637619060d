//! `integrity::` — the guide's PostgreSQL ↔ Qdrant consistency check (make check-data), its
//! fix (check-data-fix, clean-orphans) and the cascade delete of one content item.
//!
//! What is compared is configuration: a [`Pair`] is a table (its id column and a row filter) and
//! a collection, matched either by point id (the row's column holds the point id as text) or by
//! a payload key naming the row. The deployment's two pairs are the defaults:
//! vector_mappings rows of youtube_content ↔ youtube_content by chunk_id, and content ↔
//! youtube_summaries by payload content_id (plus: content marked vector_stored must have its
//! summary and its chunks). A site adds pairs with the setting `integrity.pairs`
//! (`[[integrity.pairs]]` tables in opsh.toml).
//!
//! Ids are compared as Qdrant identifies points ([`PointKey`]): `"4a7d…9b"` (an MD5 hex digest)
//! and `"4a7d1ed4-1447-…"` are the same point. A chunk id Qdrant would refuse is "invalid":
//! listed, never matching, never deleted.
//!
//! Memory and time. Both sides are read at once: the rows by COPY on a task of their own, each
//! chunk id parsed into a point key and pushed into a [`Spill`] (an external sort: runs of about
//! a million keys sorted in memory, and written to an unnamed temp file when there are more),
//! numbers and UUIDs apart; the points by a scroll that reads only their ids
//! ([`ids`](crate::ops::clients::qdrant::ids)), whose next page is asked for before the last one
//! is processed. Once the rows are read and sorted (on their own task too), the points are
//! merged against them as they arrive, in Qdrant's id order; the points that came before that
//! wait in a spill of their own, written in order and read back in one pass. What stays in
//! memory is a run or two of keys (16 MB each at most), a read-ahead buffer per run and the
//! differences (missing, orphans, invalid), whatever N is, plus 16 bytes per id of temp file in
//! TMPDIR beyond the first million. A report carries counts plus a bounded sample.

use crate::config::key;
use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use sqlx::SqlSafeStr;

use crate::ops::Target;
use crate::ops::budget::{self, Bulk, IdFile, MAX_DELETE};
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::jobs;
use crate::ops::qdrant::{self as qd, PointKey};
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Registrar, Spec};
use crate::ops::spill::{Record, Sorted, Spill};

/// The deployment's tables check-data requires.
pub const REQUIRED_TABLES: [&str; 5] = [
    "channels",
    "content",
    "transcripts",
    "processing_jobs",
    "vector_mappings",
];

/// How many ids of each kind a report shows.
pub const SAMPLE: usize = 20;

/// One table ↔ collection comparison.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pair {
    pub name: String,
    pub table: String,
    pub id_column: String,
    /// A SQL predicate selecting the table's rows that belong to the collection.
    #[serde(default)]
    pub filter: Option<String>,
    pub collection: String,
    /// None: the id column holds the point id. Some(key): a point's payload `key` holds the
    /// row's id.
    #[serde(default)]
    pub payload_key: Option<String>,
    /// Rows that must have a point: a SQL predicate (by payload pairs; by id pairs: every row).
    #[serde(default)]
    pub required: Option<String>,
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The deployment's pairs, with the configured collection names.
pub fn default_pairs(target: &Target) -> Vec<Pair> {
    let content = target
        .settings
        .text(key::QDRANT_CONTENT_COLLECTION)
        .to_string();
    let summaries = target
        .settings
        .text(key::QDRANT_SUMMARIES_COLLECTION)
        .to_string();
    vec![
        Pair {
            name: "chunks".into(),
            table: "vector_mappings".into(),
            id_column: "chunk_id".into(),
            filter: Some(format!("vector_collection = {}", literal(&content))),
            collection: content,
            payload_key: None,
            required: None,
        },
        Pair {
            name: "summaries".into(),
            table: "content".into(),
            id_column: "id".into(),
            filter: None,
            collection: summaries,
            payload_key: Some("content_id".into()),
            required: Some("vector_stored".into()),
        },
    ]
}

/// The default pairs plus those of the setting `integrity.pairs` (TOML tables, kept as JSON).
pub fn configured_pairs(target: &Target) -> Result<Vec<Pair>, OpError> {
    let mut pairs = default_pairs(target);
    let extra = target.settings.text(key::INTEGRITY_PAIRS).trim();
    if !extra.is_empty() {
        let more: Vec<Pair> = serde_json::from_str(extra).map_err(|e| {
            OpError::invalid(format!(
                "setting integrity.pairs: {e} (each pair needs name, table, id_column and collection; filter, payload_key and required are optional)"
            ))
        })?;
        for p in more {
            pairs.retain(|q| q.name != p.name);
            pairs.push(p);
        }
    }
    Ok(pairs)
}

#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    pub ok: bool,
    pub address: String,
    /// "connected", the server version, or the error.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CollectionState {
    pub name: String,
    pub exists: bool,
    pub points: u64,
}

/// One pair's result: counts and bounded samples (the full lists stay in [`Full`]).
#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub name: String,
    pub table: String,
    pub collection: String,
    pub compared: bool,
    /// Why it was not compared (a missing table or collection, an error).
    pub error: String,
    pub rows: u64,
    pub points: u64,
    pub matched: u64,
    /// Rows whose point is absent (by payload: required rows without a point).
    pub missing: u64,
    /// Points with no row.
    pub orphans: u64,
    /// Row ids (or payload values) Qdrant could not hold: neither u64 nor UUID; never matched,
    /// never deleted. By payload: points without the key.
    pub invalid: u64,
    pub sample_missing: Vec<String>,
    pub sample_orphans: Vec<String>,
    pub sample_invalid: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobsState {
    pub checked: bool,
    pub older_than: String,
    pub stuck: u64,
    pub sample_stuck_ids: Vec<i64>,
}

/// The check's report data, as the guide lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// healthy, warning or critical.
    pub status: String,
    pub connections: Connections,
    pub tables: Tables,
    pub collections: Vec<CollectionState>,
    pub pairs: Vec<PairResult>,
    /// Content marked vector_stored whose chunks or summary are missing.
    pub content_missing_vectors: u64,
    pub sample_content_missing_vectors: Vec<i64>,
    pub jobs: JobsState,
    /// One line per problem, in words.
    pub issues: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    pub postgres: Connection,
    pub qdrant: Connection,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tables {
    pub required: Vec<String>,
    pub missing: Vec<String>,
}

/// The full lists of the last check, for fix and for scripts.
#[derive(Debug, Clone, Default)]
pub struct Full {
    pub pairs: Vec<(Pair, Lists)>,
}

#[derive(Debug, Clone, Default)]
pub struct Lists {
    pub missing: Vec<String>,
    pub orphans: Vec<PointKey>,
    pub invalid: Vec<String>,
}

thread_local! {
    /// The full lists of this run's last check (the engine runs on one thread).
    static LAST: RefCell<Option<Full>> = const { RefCell::new(None) };
}

fn sample<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().take(SAMPLE).map(ToString::to_string).collect()
}

/// Point keys on their way to being sorted, numbers and UUIDs apart: Qdrant orders every
/// number before every UUID, so the numbers read back first and then the UUIDs are in its order,
/// and each sorts as a plain integer (half the bytes of the enum, and no tag to compare).
#[derive(Default)]
struct KeySpill {
    nums: Spill<u64>,
    uuids: Spill<u128>,
}

impl KeySpill {
    #[cfg(test)]
    fn with_run(run: usize) -> KeySpill {
        KeySpill {
            nums: Spill::with_run(run),
            uuids: Spill::with_run(run),
        }
    }

    fn push(&mut self, key: PointKey) -> std::io::Result<()> {
        match key {
            PointKey::Num(n) => self.nums.push(n),
            PointKey::Uuid(u) => self.uuids.push(u),
        }
    }

    /// The numbers in order, then the UUIDs in order.
    fn into_sorted(self) -> std::io::Result<(Sorted<u64>, Sorted<u128>)> {
        Ok((self.nums.into_sorted()?, self.uuids.into_sorted()?))
    }
}

fn spill_err(e: std::io::Error) -> OpError {
    OpError::new(
        ErrorKind::Failed,
        None,
        format!(
            "cannot spill ids to a temp file in {}: {e} (set TMPDIR to a writable directory with room)",
            std::env::temp_dir().display()
        ),
    )
}

/// Decodes one field of COPY's text format.
fn unescape(field: &[u8]) -> String {
    if !field.contains(&b'\\') {
        return String::from_utf8_lossy(field).into_owned();
    }
    let mut out = Vec::with_capacity(field.len());
    let mut it = field.iter().copied();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'b') => out.push(8),
            Some(b'f') => out.push(12),
            Some(b'v') => out.push(11),
            Some(other) => out.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Streams one text column out of PostgreSQL with COPY on a task of its own (so its parsing
/// runs beside the Qdrant scroll, not between its pages), handing each value to `each`; the
/// task ends with what `finish` makes of them.
async fn copy_column<T: Send + 'static>(
    target: &Target,
    select: &str,
    mut state: T,
    mut each: impl FnMut(&mut T, &[u8]) + Send + 'static,
    finish: impl FnOnce(T) -> T + Send + 'static,
) -> Result<crate::ops::AbortOnDrop<Result<T, OpError>>, OpError> {
    let pool = target.pg().await?.clone();
    let backend = target.pg_backend().clone();
    // `select` was prepared whole by `refuse_bad_sql` (one statement); the line break keeps a
    // trailing `--` comment of a filter from swallowing the closing parenthesis.
    let statement = format!("COPY ({select}\n) TO STDOUT");
    let task = tokio::spawn(async move {
        let pg_err = crate::ops::clients::postgres::error(&backend);
        let mut conn = Closing(pool.acquire().await.map_err(&pg_err)?, false);
        // A configured filter runs inside the COPY: whatever it tries to write is refused.
        sqlx::raw_sql("START TRANSACTION READ ONLY")
            .execute(&mut *conn.0)
            .await
            .map_err(&pg_err)?;
        let mut stream = conn.0.copy_out_raw(&statement).await.map_err(&pg_err)?;
        // PostgreSQL sends each row as a message of its own, but a line may still be split
        // across messages (or several share one): `rest` holds a line not yet ended.
        let mut rest: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(&pg_err)?;
            let mut data: &[u8] = &chunk;
            if !rest.is_empty() {
                let Some(nl) = memchr::memchr(b'\n', data) else {
                    rest.extend_from_slice(data);
                    continue;
                };
                rest.extend_from_slice(&data[..nl]);
                each(&mut state, &rest);
                rest.clear();
                data = &data[nl + 1..];
            }
            while let Some(nl) = memchr::memchr(b'\n', data) {
                each(&mut state, &data[..nl]);
                data = &data[nl + 1..];
            }
            rest.extend_from_slice(data);
        }
        if !rest.is_empty() {
            each(&mut state, &rest);
        }
        drop(stream);
        sqlx::raw_sql("COMMIT")
            .execute(&mut *conn.0)
            .await
            .map_err(&pg_err)?;
        conn.1 = true;
        Ok::<T, OpError>(finish(state))
    });
    Ok(crate::ops::AbortOnDrop(task))
}

/// A pooled connection that goes back to the pool only when its work ended cleanly (`.1`): a
/// COPY that failed or was dropped half read leaves the connection out of step with the
/// server (the next query would read the COPY's leftovers), so it is closed instead.
struct Closing(sqlx::pool::PoolConnection<sqlx::Postgres>, bool);

impl Drop for Closing {
    fn drop(&mut self) {
        if !self.1 {
            self.0.close_on_drop();
        }
    }
}

/// The statement that reads a by-id pair's rows (COPY'd whole).
fn by_id_select(pair: &Pair) -> String {
    format!(
        "SELECT {}::text FROM {}{}",
        ident(&pair.id_column),
        ident(&pair.table),
        where_clause(&pair.filter)
    )
}

/// The statement that reads a by-payload pair's rows and whether each needs a point.
fn by_payload_select(pair: &Pair) -> String {
    let required = pair
        .required
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("false");
    format!(
        "SELECT {col}::text, COALESCE(({required}), false) FROM {table}{filter}",
        col = ident(&pair.id_column),
        table = ident(&pair.table),
        filter = where_clause(&pair.filter)
    )
}

/// The configured SQL of each pair (`filter`, `required`) must be one SQL expression: the
/// statement that will read the pair is prepared (the extended protocol refuses a second
/// statement, and the server parses the rest) before anything runs. A refusal is a
/// configuration error naming the pair. Pairs whose table is missing are left to the check.
async fn refuse_bad_sql(
    target: &Target,
    pairs: &[Pair],
    missing: &[String],
) -> Result<(), OpError> {
    let pool = target.pg().await?;
    for pair in pairs.iter().filter(|p| !missing.contains(&p.table)) {
        let select = match pair.payload_key {
            None => by_id_select(pair),
            Some(_) => by_payload_select(pair),
        };
        if let Err(e) =
            sqlx::Executor::prepare(pool, sqlx::AssertSqlSafe(select).into_sql_str()).await
        {
            let cause = e
                .as_database_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            return Err(OpError::invalid(format!(
                "integrity pair `{}`: its filter and required must each be one SQL expression on table `{}` ({cause}); fix setting integrity.pairs",
                pair.name, pair.table
            )));
        }
    }
    Ok(())
}

fn where_clause(filter: &Option<String>) -> String {
    match filter {
        Some(f) if !f.trim().is_empty() => format!(" WHERE ({f})"),
        _ => String::new(),
    }
}

/// The rows of a by-id pair as the COPY task leaves them.
#[derive(Default)]
struct Rows {
    keys: KeySpill,
    invalid: Vec<String>,
    count: u64,
    spilled: Option<std::io::Error>,
    /// The keys in order, once [`Rows::sort`] ran.
    sorted: Option<std::io::Result<(Sorted<u64>, Sorted<u128>)>>,
}

impl Rows {
    /// Sorts the keys; run at the end of the COPY task, beside the scroll rather than in its way.
    fn sort(mut self) -> Rows {
        let keys = std::mem::take(&mut self.keys);
        self.sorted = Some(match self.spilled.take() {
            Some(e) => Err(e),
            None => keys.into_sorted(),
        });
        self
    }
}

/// A by-id comparison in progress: the rows' keys, sorted, walked along with the points as the
/// scroll hands them over in Qdrant's id order, numbers and UUIDs each in a walk of their own
/// (every number comes before every UUID on both sides). Only the differences are kept.
#[derive(Default)]
struct Merging {
    walks: Option<(Walk<u64>, Walk<u128>)>,
    last: Option<PointKey>,
    error: Option<OpError>,
}

impl Merging {
    /// Takes the rows once their task ended, then catches up with the points read meanwhile.
    fn start(&mut self, done: Result<Rows, OpError>, early: KeySpill) -> Option<Rows> {
        let mut rows = match done {
            Ok(rows) => rows,
            Err(e) => {
                self.error = Some(e);
                return None;
            }
        };
        let walks = rows
            .sorted
            .take()
            .unwrap_or_else(|| Err(std::io::Error::other("the rows were not sorted")))
            .and_then(|(nums, uuids)| Ok((Walk::new(nums)?, Walk::new(uuids)?)));
        match walks {
            Ok(walks) => self.walks = Some(walks),
            Err(e) => {
                self.error = Some(spill_err(e));
                return None;
            }
        }
        let replayed = early.into_sorted().and_then(|(mut nums, mut uuids)| {
            while let Some(n) = nums.next_record()? {
                self.point(PointKey::Num(n));
            }
            while let Some(u) = uuids.next_record()? {
                self.point(PointKey::Uuid(u));
            }
            Ok(())
        });
        if let Err(e) = replayed {
            self.error.get_or_insert(spill_err(e));
        }
        Some(rows)
    }

    fn point(&mut self, k: PointKey) {
        if self.error.is_some() {
            return;
        }
        if let Some(last) = self.last
            && k <= last
        {
            // Qdrant scrolls in id order, each id once; a merge cannot trust anything else.
            self.error = Some(OpError::new(
                ErrorKind::Failed,
                None,
                format!("the scroll returned point {k} after {last}, out of Qdrant's id order"),
            ));
            return;
        }
        self.last = Some(k);
        let Some((nums, uuids)) = self.walks.as_mut() else {
            return;
        };
        let walked = match k {
            PointKey::Num(n) => nums.point(n),
            PointKey::Uuid(u) => uuids.point(u),
        };
        if let Err(e) = walked {
            self.error = Some(spill_err(e));
        }
    }

    /// (matched, missing, orphans), each list in Qdrant's order; the rows after the last point
    /// are missing too.
    fn finish(self) -> Result<(u64, Vec<PointKey>, Vec<PointKey>), OpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (nums, uuids) = self
            .walks
            .ok_or_else(|| OpError::new(ErrorKind::Failed, None, "the comparison never started"))?;
        let (n, u) = (
            nums.finish().map_err(spill_err)?,
            uuids.finish().map_err(spill_err)?,
        );
        let keys = |nums: Vec<u64>, uuids: Vec<u128>| -> Vec<PointKey> {
            let nums = nums.into_iter().map(PointKey::Num);
            nums.chain(uuids.into_iter().map(PointKey::Uuid)).collect()
        };
        Ok((
            n.matched + u.matched,
            keys(n.missing, u.missing),
            keys(n.orphans, u.orphans),
        ))
    }
}

/// One kind of key merged: the rows in order, the next one not yet passed, the differences.
struct Walk<T> {
    rows: Sorted<T>,
    row: Option<T>,
    matched: u64,
    missing: Vec<T>,
    orphans: Vec<T>,
}

impl<T: Record + Copy> Walk<T> {
    fn new(mut rows: Sorted<T>) -> std::io::Result<Walk<T>> {
        let row = rows.next_record()?;
        Ok(Walk {
            rows,
            row,
            matched: 0,
            missing: Vec::new(),
            orphans: Vec::new(),
        })
    }

    /// The next point, in order: the rows before it are missing, a row equal to it matches,
    /// and with none it is an orphan.
    fn point(&mut self, k: T) -> std::io::Result<()> {
        while let Some(row) = self.row {
            if row > k {
                break;
            }
            self.row = self.rows.next_record()?;
            if row == k {
                self.matched += 1;
                return Ok(());
            }
            self.missing.push(row);
        }
        self.orphans.push(k);
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<Walk<T>> {
        while let Some(row) = self.row {
            self.missing.push(row);
            self.row = self.rows.next_record()?;
        }
        Ok(self)
    }
}

/// A by-id pair: the rows read on a task of their own into a spill, sorted as Qdrant orders
/// ids, while the scroll's points are merged against them as they come.
async fn compare_by_id(
    target: &Target,
    pair: &Pair,
    page: u32,
) -> Result<(PairResult, Lists), OpError> {
    let select = by_id_select(pair);
    let each_row = |rows: &mut Rows, line: &[u8]| {
        rows.count += 1;
        // A backslash is COPY's escape, and no id form has one: such a line is read unescaped.
        let key = PointKey::parse_bytes(line).or_else(|| {
            line.contains(&b'\\')
                .then(|| PointKey::parse(&unescape(line)))?
        });
        match key {
            Some(k) => {
                if let Err(e) = rows.keys.push(k) {
                    rows.spilled = Some(e);
                }
            }
            None if line == b"\\N" => rows.invalid.push("NULL".into()),
            None => rows.invalid.push(unescape(line)),
        }
    };
    let mut rows_task = copy_column(target, &select, Rows::default(), each_row, Rows::sort).await?;
    let pg_backend = target.pg_backend().clone();
    let joined = move |r: Result<Result<Rows, OpError>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(OpError::new(ErrorKind::Failed, Some(&pg_backend), e)))
    };
    // Points are merged against the sorted rows as they arrive; the ones that come before the
    // rows are ready wait in a spill (in order, so it is read back without a merge).
    let mut merging = Merging::default();
    let mut early = KeySpill::default();
    let mut rows: Option<Rows> = None;
    let mut point_count = 0u64;
    qd::scroll_ids(target, &pair.collection, page, |page| {
        if rows.is_none()
            && merging.error.is_none()
            && let Some(done) = (&mut rows_task.0).now_or_never()
        {
            rows = merging.start(joined(done), std::mem::take(&mut early));
        }
        point_count += page.len() as u64;
        for k in page {
            if rows.is_some() {
                merging.point(k);
            } else if let Err(e) = early.push(k) {
                merging.error.get_or_insert(spill_err(e));
            }
        }
    })
    .await?;
    if rows.is_none() && merging.error.is_none() {
        let done = (&mut rows_task.0).await;
        rows = merging.start(joined(done), early);
    }
    let (matched, missing, orphans) = merging.finish()?;
    let Rows {
        mut invalid,
        count: row_count,
        ..
    } = rows.expect("the rows were read");
    let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
    invalid.sort();
    Ok(compared(
        pair,
        row_count,
        point_count,
        matched,
        Lists {
            missing,
            orphans,
            invalid,
        },
    ))
}

/// A payload value naming a row, as text (integers in decimal, strings as they are).
fn payload_text(v: &qdrant_client::qdrant::Value) -> Option<String> {
    match qd::json_of(v) {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

/// A by-payload pair: the rows' ids (and the required ones) first, then the points' payload
/// values looked up among them.
async fn compare_by_payload(
    target: &Target,
    pair: &Pair,
    key: &str,
    page: u32,
) -> Result<(PairResult, Lists), OpError> {
    let pool = target.pg().await?;
    // Read-only, as the COPY of a by-id pair: the configured SQL may not write.
    let mut tx = pool.begin().await.map_err(target.pg_err())?;
    sqlx::raw_sql("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(target.pg_err())?;
    let all: Vec<(Option<String>, bool)> =
        sqlx::query_as(sqlx::AssertSqlSafe(by_payload_select(pair)))
            .fetch_all(&mut *tx)
            .await
            .map_err(target.pg_err())?;
    tx.commit().await.map_err(target.pg_err())?;
    let rows = all.len() as u64;
    let mut ids: Vec<String> = all.iter().filter_map(|(id, _)| id.clone()).collect();
    ids.sort_unstable();
    let mut seen: HashSet<String> = HashSet::new();
    let (mut orphans, mut invalid) = (Vec::new(), Vec::new());
    let mut points = 0u64;
    let mut matched = 0u64;
    qd::scroll(target, &pair.collection, page, &[key], |page| {
        for p in page {
            let Some(id) = p.id.as_ref().and_then(PointKey::from_grpc) else {
                continue;
            };
            points += 1;
            match p.payload.get(key).and_then(payload_text) {
                None => invalid.push(id.to_string()),
                Some(value) => {
                    if ids.binary_search(&value).is_ok() {
                        matched += 1;
                        seen.insert(value);
                    } else {
                        orphans.push(id);
                    }
                }
            }
        }
    })
    .await?;
    let mut missing: Vec<String> = all
        .into_iter()
        .filter(|(id, req)| *req && id.as_ref().is_some_and(|i| !seen.contains(i)))
        .filter_map(|(id, _)| id)
        .collect();
    missing.sort_by(|a, b| (a.len(), a.as_str()).cmp(&(b.len(), b.as_str())));
    orphans.sort();
    invalid.sort();
    Ok(compared(
        pair,
        rows,
        points,
        matched,
        Lists {
            missing,
            orphans,
            invalid,
        },
    ))
}

/// A compared pair's report entry (counts and samples) beside its full lists.
fn compared(
    pair: &Pair,
    rows: u64,
    points: u64,
    matched: u64,
    lists: Lists,
) -> (PairResult, Lists) {
    let result = PairResult {
        name: pair.name.clone(),
        table: pair.table.clone(),
        collection: pair.collection.clone(),
        compared: true,
        error: String::new(),
        rows,
        points,
        matched,
        missing: lists.missing.len() as u64,
        orphans: lists.orphans.len() as u64,
        invalid: lists.invalid.len() as u64,
        sample_missing: sample(&lists.missing),
        sample_orphans: sample(&lists.orphans),
        sample_invalid: sample(&lists.invalid),
    };
    (result, lists)
}

fn not_compared(pair: &Pair, why: String) -> PairResult {
    PairResult {
        name: pair.name.clone(),
        table: pair.table.clone(),
        collection: pair.collection.clone(),
        compared: false,
        error: why,
        rows: 0,
        points: 0,
        matched: 0,
        missing: 0,
        orphans: 0,
        invalid: 0,
        sample_missing: Vec::new(),
        sample_orphans: Vec::new(),
        sample_invalid: Vec::new(),
    }
}

pub struct CheckOptions {
    pub pairs: Vec<Pair>,
    pub stuck_after: Duration,
    pub page_size: u32,
}

/// Runs the check. Never fails on a backend: a connection that fails, a missing table or a
/// missing collection is a critical finding in the result. Fails only on configuration: a
/// pair whose SQL is not one expression ([`refuse_bad_sql`]).
pub async fn check(target: &Target, opts: &CheckOptions) -> Result<(Check, Full), OpError> {
    let mut issues = Vec::new();
    let mut critical = false;
    let mut warning = false;

    let pg_address = target.pg_backend().address.clone();
    let postgres = match target.pg().await {
        Ok(_) => Connection {
            ok: true,
            address: pg_address,
            detail: "connected".into(),
        },
        Err(e) => {
            critical = true;
            issues.push(format!("PostgreSQL connection failed: {e}"));
            Connection {
                ok: false,
                address: pg_address,
                detail: e.to_string(),
            }
        }
    };
    let q_address = target.qdrant_backend().address.clone();
    let qdrant = match target.qdrant().await {
        Ok(q) => Connection {
            ok: true,
            address: q_address,
            detail: format!("version {}", q.server_version),
        },
        Err(e) => {
            critical = true;
            issues.push(format!("Qdrant connection failed: {e}"));
            Connection {
                ok: false,
                address: q_address,
                detail: e.to_string(),
            }
        }
    };

    let mut required: Vec<String> = REQUIRED_TABLES.iter().map(|t| t.to_string()).collect();
    for p in &opts.pairs {
        if !required.contains(&p.table) {
            required.push(p.table.clone());
        }
    }
    let mut missing_tables = Vec::new();
    if postgres.ok {
        match existing_tables(target, &required).await {
            Ok(present) => {
                missing_tables = required
                    .iter()
                    .filter(|t| !present.contains(*t))
                    .cloned()
                    .collect();
            }
            Err(e) => {
                critical = true;
                issues.push(format!("cannot list tables: {e}"));
            }
        }
        for t in &missing_tables {
            critical = true;
            issues.push(format!(
                "required table `{t}` is missing (run `opsh migrate`)"
            ));
        }
    }

    if postgres.ok {
        refuse_bad_sql(target, &opts.pairs, &missing_tables).await?;
    }

    let mut collections = Vec::new();
    let mut existing: Vec<String> = Vec::new();
    if qdrant.ok {
        match qd::names(target).await {
            Ok(names) => existing = names,
            Err(e) => {
                critical = true;
                issues.push(format!("cannot list collections: {e}"));
            }
        }
        let mut wanted: Vec<&str> = Vec::new();
        for p in &opts.pairs {
            if !wanted.contains(&p.collection.as_str()) {
                wanted.push(&p.collection);
            }
        }
        for name in wanted {
            let exists = existing.iter().any(|n| n == name);
            let points = if exists {
                match qd::count(target, name, true).await {
                    Ok(n) => n,
                    Err(e) => {
                        warning = true;
                        issues.push(format!("cannot count `{name}`: {e}"));
                        0
                    }
                }
            } else {
                critical = true;
                issues.push(format!("Qdrant collection `{name}` does not exist"));
                0
            };
            collections.push(CollectionState {
                name: name.to_string(),
                exists,
                points,
            });
        }
    }

    let mut pairs = Vec::new();
    let mut full = Full::default();
    for pair in &opts.pairs {
        let why = if !postgres.ok || !qdrant.ok {
            Some("a connection failed".to_string())
        } else if missing_tables.contains(&pair.table) {
            Some(format!("table `{}` is missing", pair.table))
        } else if !existing.contains(&pair.collection) {
            Some(format!("collection `{}` does not exist", pair.collection))
        } else {
            None
        };
        if let Some(why) = why {
            pairs.push(not_compared(pair, why));
            continue;
        }
        let compared = match &pair.payload_key {
            None => compare_by_id(target, pair, opts.page_size).await,
            Some(key) => compare_by_payload(target, pair, key, opts.page_size).await,
        };
        match compared {
            Ok((result, lists)) => {
                if result.missing > 0 {
                    warning = true;
                    let what = if pair.payload_key.is_some() {
                        format!("rows of {} without a point", pair.table)
                    } else {
                        format!("{} rows whose point is missing", pair.table)
                    };
                    issues.push(format!(
                        "{}: {} {what} in {}",
                        pair.name, result.missing, pair.collection
                    ));
                }
                if result.orphans > 0 {
                    warning = true;
                    issues.push(format!(
                        "{}: {} orphan vectors in {} (no row in {}); delete them with: opsh clean-orphans",
                        pair.name, result.orphans, pair.collection, pair.table
                    ));
                }
                if result.invalid > 0 {
                    warning = true;
                    let what = if pair.payload_key.is_some() {
                        format!(
                            "points without a usable payload `{}`",
                            pair.payload_key.as_deref().unwrap_or_default()
                        )
                    } else {
                        format!(
                            "{} values that are neither an integer nor a UUID (never deleted)",
                            pair.id_column
                        )
                    };
                    issues.push(format!("{}: {} {what}", pair.name, result.invalid));
                }
                pairs.push(result);
                full.pairs.push((pair.clone(), lists));
            }
            Err(e) => {
                critical = true;
                issues.push(format!("{}: comparison failed: {e}", pair.name));
                pairs.push(not_compared(pair, e.to_string()));
            }
        }
    }

    // Content marked vector_stored whose chunks or summary are missing (deployment pairs).
    let mut content_missing: Vec<i64> = Vec::new();
    if postgres.ok && missing_tables.is_empty() {
        match content_missing_vectors(target, &pairs, &full).await {
            Ok(ids) => content_missing = ids,
            Err(e) => issues.push(format!("cannot check vector_stored content: {e}")),
        }
        if !content_missing.is_empty() {
            warning = true;
            issues.push(format!(
                "{} content items are marked vector_stored but their chunks or summary are missing",
                content_missing.len()
            ));
        }
    }

    let mut jobs_state = JobsState {
        checked: false,
        older_than: crate::duration::format(opts.stuck_after),
        stuck: 0,
        sample_stuck_ids: Vec::new(),
    };
    if postgres.ok && !missing_tables.iter().any(|t| t == "processing_jobs") {
        match jobs::stuck(target, opts.stuck_after, None, 100_000).await {
            Ok(stuck) => {
                jobs_state.checked = true;
                jobs_state.stuck = stuck.len() as u64;
                jobs_state.sample_stuck_ids = stuck.iter().take(SAMPLE).map(|j| j.id).collect();
                if !stuck.is_empty() {
                    warning = true;
                    issues.push(format!(
                        "{} jobs processing for more than {}; reset them with: opsh reset-stuck-jobs",
                        stuck.len(),
                        jobs_state.older_than
                    ));
                }
            }
            Err(e) => issues.push(format!("cannot check stuck jobs: {e}")),
        }
    }

    let status = if critical {
        "critical"
    } else if warning {
        "warning"
    } else {
        "healthy"
    };
    Ok((
        Check {
            status: status.into(),
            connections: Connections { postgres, qdrant },
            tables: Tables {
                required,
                missing: missing_tables,
            },
            collections,
            pairs,
            content_missing_vectors: content_missing.len() as u64,
            sample_content_missing_vectors: content_missing.iter().take(SAMPLE).copied().collect(),
            jobs: jobs_state,
            issues,
        },
        full,
    ))
}

async fn existing_tables(target: &Target, names: &[String]) -> Result<Vec<String>, OpError> {
    let pool = target.pg().await?;
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         WHERE c.relname = ANY($1) AND c.relkind IN ('r', 'p', 'v', 'm')
           AND pg_table_is_visible(c.oid)",
    )
    .bind(names)
    .fetch_all(pool)
    .await
    .map_err(target.pg_err())
}

/// Every text form of a point id Qdrant reads as that id, lowercase, for looking rows up in SQL.
fn text_forms(key: PointKey) -> Vec<String> {
    match key {
        PointKey::Num(n) => vec![n.to_string()],
        PointKey::Uuid(u) => {
            let u = uuid::Uuid::from_u128(u);
            let h = u.hyphenated().to_string();
            vec![
                u.simple().to_string(),
                format!("{{{h}}}"),
                format!("urn:uuid:{h}"),
                h,
            ]
        }
    }
}

/// The deployment's extra check: content marked vector_stored with no chunk mapping, with a
/// mapping whose point is missing, or (for the summaries pair) without its summary point.
async fn content_missing_vectors(
    target: &Target,
    pairs: &[PairResult],
    full: &Full,
) -> Result<Vec<i64>, OpError> {
    let defaults = default_pairs(target);
    let (chunks, summaries) = (&defaults[0], &defaults[1]);
    let mut ids: Vec<i64> = Vec::new();
    let compared = |name: &str| pairs.iter().any(|p| p.name == name && p.compared);
    if compared(&chunks.name) {
        let missing_forms: Vec<String> = full
            .pairs
            .iter()
            .filter(|(p, _)| p == chunks)
            .flat_map(|(_, l)| l.missing.iter())
            .filter_map(|t| PointKey::parse(t))
            .flat_map(text_forms)
            .collect();
        let pool = target.pg().await?;
        let found: Vec<i32> = sqlx::query_scalar(
            "SELECT c.id FROM content c
             WHERE c.vector_stored
               AND (NOT EXISTS (SELECT 1 FROM vector_mappings m
                                WHERE m.content_id = c.id AND m.vector_collection = $1)
                    OR (cardinality($2::text[]) > 0 AND EXISTS (
                         SELECT 1 FROM vector_mappings m
                         WHERE m.content_id = c.id AND m.vector_collection = $1
                           AND lower(m.chunk_id) = ANY($2))))",
        )
        .bind(&chunks.collection)
        .bind(&missing_forms)
        .fetch_all(pool)
        .await
        .map_err(target.pg_err())?;
        ids.extend(found.into_iter().map(i64::from));
    }
    if compared(&summaries.name) {
        for (p, l) in &full.pairs {
            if p == summaries {
                ids.extend(l.missing.iter().filter_map(|t| t.parse::<i64>().ok()));
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Which of these orphan candidates have a row now (read at this moment).
async fn live_now(
    target: &Target,
    pair: &Pair,
    keys: &[PointKey],
) -> Result<HashSet<PointKey>, OpError> {
    let pool = target.pg().await?;
    let filter = match &pair.filter {
        Some(f) if !f.trim().is_empty() => format!("({f}) AND "),
        _ => String::new(),
    };
    let col = ident(&pair.id_column);
    let table = ident(&pair.table);
    match &pair.payload_key {
        None => {
            let forms: Vec<String> = keys.iter().copied().flat_map(text_forms).collect();
            let sql = format!(
                "SELECT {col}::text FROM {table} WHERE {filter}lower({col}::text) = ANY($1)"
            );
            let texts: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(&forms)
                .fetch_all(pool)
                .await
                .map_err(target.pg_err())?;
            Ok(texts.iter().filter_map(|t| PointKey::parse(t)).collect())
        }
        Some(key) => {
            // The points' payload values, read again now, then their rows.
            let points = qd::get(target, &pair.collection, keys, true).await?;
            let values: Vec<(PointKey, String)> = points
                .iter()
                .filter_map(|p| {
                    let k = PointKey::parse(&p.id)?;
                    let v = match &p.payload[key.as_str()] {
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::String(s) => s.clone(),
                        _ => return None,
                    };
                    Some((k, v))
                })
                .collect();
            let texts: Vec<String> = values.iter().map(|(_, v)| v.clone()).collect();
            let sql =
                format!("SELECT {col}::text FROM {table} WHERE {filter}{col}::text = ANY($1)");
            let rows: HashSet<String> = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                .bind(&texts)
                .fetch_all(pool)
                .await
                .map_err(target.pg_err())?
                .into_iter()
                .collect();
            // A point whose payload lost its key, or that is gone, is left alone too.
            let mut live: HashSet<PointKey> = keys.iter().copied().collect();
            for (k, v) in values {
                if !rows.contains(&v) {
                    live.remove(&k);
                }
            }
            Ok(live)
        }
    }
}

#[derive(Debug, Serialize, Default)]
pub struct PairFix {
    pub name: String,
    pub collection: String,
    pub orphans: u64,
    /// Deleted (with --dry-run: would be).
    pub deleted: u64,
    /// Orphans first seen less than the grace period ago: left for a later run.
    pub deferred: u64,
    /// Orphans that had a row by the time their delete was decided: left alone.
    pub live: u64,
    /// Invalid ids listed by the check: never deleted.
    pub invalid_kept: u64,
    pub sample_deleted: Vec<String>,
    /// With --dry-run: every id that would be deleted.
    pub would_delete: Vec<String>,
    /// The Qdrant snapshot taken before the delete (more than delete.snapshot_above points).
    pub snapshot: Option<String>,
    /// The 0600 file the deleted ids were written to.
    pub ids_file: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Fixed {
    pub dry_run: bool,
    pub grace: String,
    pub pairs: Vec<PairFix>,
    pub deleted: u64,
    pub jobs_reset: i64,
    pub jobs_failed: i64,
    /// The check made after the fix.
    pub after: Check,
}

pub struct FixOptions {
    pub check: CheckOptions,
    pub grace: Duration,
    pub jobs: bool,
    pub orphans: bool,
    /// The deletion budget lifted to this many points per collection (the `max_delete`
    /// argument); None: the settings' budget, and nothing by a pair that matched nothing.
    pub max_delete: Option<u64>,
}

/// Deletes every orphan vector seen as one for at least the grace period and still without a
/// row when its batch is decided, resets stuck jobs, then checks again.
pub async fn fix(target: &Target, opts: &FixOptions) -> Result<(Fixed, Full), OpError> {
    let (before, full) = check(target, &opts.check).await?;
    if before.status == "critical" {
        return Err(OpError::new(
            ErrorKind::Failed,
            None,
            format!(
                "the check is critical, nothing was fixed: {}",
                before.issues.join("; ")
            ),
        ));
    }
    let dry_run = target.flags.dry_run;
    let pool = target.pg().await?;
    let grace = opts.grace.as_secs_f64();
    let mut plans: Vec<(Pair, Vec<PointKey>, PairFix)> = Vec::new();
    // opsh's own bookkeeping table, made on first use (not by `opsh migrate`); a dry run
    // creates nothing and reads an absent table as "no orphan seen before".
    let have_candidates: bool =
        sqlx::query_scalar("SELECT to_regclass('opsh_orphan_candidates') IS NOT NULL")
            .fetch_one(pool)
            .await
            .map_err(target.pg_err())?;
    if !dry_run && !have_candidates {
        sqlx::query(CANDIDATES_TABLE)
            .execute(pool)
            .await
            .map_err(target.pg_err())?;
    }
    let candidates = if dry_run && !have_candidates {
        "(SELECT NULL::text AS collection, NULL::text AS point_id, NULL::timestamptz AS first_seen WHERE false)"
    } else {
        "opsh_orphan_candidates"
    };
    for (pair, lists) in &full.pairs {
        if !opts.orphans {
            break;
        }
        let texts: Vec<String> = lists.orphans.iter().map(ToString::to_string).collect();
        if !dry_run {
            // First seen: recorded once; forgotten when the point is no orphan any more.
            sqlx::query(
                "DELETE FROM opsh_orphan_candidates WHERE collection = $1 AND NOT (point_id = ANY($2))",
            )
            .bind(&pair.collection)
            .bind(&texts)
            .execute(pool)
            .await
            .map_err(target.pg_err())?;
            sqlx::query(
                "INSERT INTO opsh_orphan_candidates (collection, point_id)
                 SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(&pair.collection)
            .bind(&texts)
            .execute(pool)
            .await
            .map_err(target.pg_err())?;
        }
        // Under --dry-run nothing was recorded: an orphan not seen before counts as seen now.
        let eligible: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t.point_id FROM unnest($2::text[]) AS t(point_id)
             LEFT JOIN {candidates} c ON c.collection = $1 AND c.point_id = t.point_id
             WHERE COALESCE(c.first_seen, now()) <= now() - make_interval(secs => $3)"
        )))
        .bind(&pair.collection)
        .bind(&texts)
        .bind(grace)
        .fetch_all(pool)
        .await
        .map_err(target.pg_err())?;
        let mut eligible: Vec<PointKey> =
            eligible.iter().filter_map(|t| PointKey::parse(t)).collect();
        eligible.sort_unstable();
        let plan = PairFix {
            name: pair.name.clone(),
            collection: pair.collection.clone(),
            orphans: lists.orphans.len() as u64,
            deferred: (lists.orphans.len() - eligible.len()) as u64,
            invalid_kept: lists.invalid.len() as u64,
            ..PairFix::default()
        };
        plans.push((pair.clone(), eligible, plan));
    }
    let orphan_total: usize = plans.iter().map(|(_, e, _)| e.len()).sum();
    let stuck = if opts.jobs { before.jobs.stuck } else { 0 };
    let change = Change {
        op: "integrity::fix",
        summary: format!(
            "delete {orphan_total} orphan vectors (orphans for at least {}) and reset {stuck} stuck jobs",
            crate::duration::format(opts.grace)
        ),
        count: (orphan_total as u64 + stuck) as i64,
        confirm: Confirm::Yes,
    };
    // The budget before anything is asked or deleted: a wrong database must not get as far
    // as a confirmation that --yes answers.
    let mut reasons = Vec::new();
    let mut needed = 0u64;
    for (pair, eligible, _) in &plans {
        let compared = before.pairs.iter().find(|p| p.name == pair.name);
        let (rows, points, matched) = compared.map_or((0, 0, 0), |p| (p.rows, p.points, p.matched));
        let bulk = Bulk {
            op: change.op,
            what: format!("collection {}", pair.collection),
            unit: "points",
            count: eligible.len() as u64,
            total: points,
            matched_nothing: (rows > 0 && points > 0 && matched == 0).then_some((rows, points)),
        };
        if let Some(why) = budget::over(&target.settings, &bulk, opts.max_delete) {
            reasons.push(format!("{}: {why}", pair.name));
            needed = needed.max(bulk.count);
        }
    }
    if !reasons.is_empty() {
        return Err(budget::refused(target, &change, &reasons, needed));
    }
    let go = proceed(target, &change)?;
    let mut deleted_total = 0u64;
    let mut kept: Vec<String> = Vec::new();
    for (pair, eligible, plan) in &mut plans {
        if !go {
            plan.deleted = eligible.len() as u64;
            plan.sample_deleted = sample(eligible);
            plan.would_delete = eligible.iter().map(ToString::to_string).collect();
            continue;
        }
        if eligible.is_empty() {
            continue;
        }
        // The way back: a snapshot above the threshold, and the ids as they go.
        if let Some(taken) =
            qd::snapshot_before_delete(target, &pair.collection, eligible.len() as u64).await?
        {
            kept.push(taken.words());
            plan.snapshot = Some(taken.name);
        }
        let mut ids = IdFile::create(
            &target.settings,
            change.op,
            &format!("collection {}", pair.collection),
        )?;
        kept.push(format!(
            "ids of {} in {}",
            pair.collection,
            ids.path.display()
        ));
        plan.ids_file = Some(ids.path.display().to_string());
        for batch in eligible.chunks(qd::DELETE_BATCH) {
            // Decided now: whatever has a row at this moment stays.
            let live = live_now(target, pair, batch).await?;
            let doomed: Vec<PointKey> = batch
                .iter()
                .copied()
                .filter(|k| !live.contains(k))
                .collect();
            plan.live += (batch.len() - doomed.len()) as u64;
            qd::delete_keys(target, &pair.collection, &doomed).await?;
            let texts: Vec<String> = doomed.iter().map(ToString::to_string).collect();
            ids.write(&texts)?;
            sqlx::query(
                "DELETE FROM opsh_orphan_candidates WHERE collection = $1 AND point_id = ANY($2)",
            )
            .bind(&pair.collection)
            .bind(&texts)
            .execute(pool)
            .await
            .map_err(target.pg_err())?;
            if plan.sample_deleted.len() < SAMPLE {
                plan.sample_deleted.extend(
                    texts
                        .iter()
                        .take(SAMPLE - plan.sample_deleted.len())
                        .cloned(),
                );
            }
            plan.deleted += doomed.len() as u64;
        }
        deleted_total += plan.deleted;
    }
    let (mut jobs_reset, mut jobs_failed) = (0, 0);
    if opts.jobs && before.jobs.checked {
        let reset = jobs::reset_stuck(
            target,
            &jobs::ResetStuck {
                older_than: opts.check.stuck_after,
                max_retries: target.settings.int(key::JOBS_MAX_RETRIES),
                reason: format!(
                    "reset by opsh check-data-fix: processing for more than {}",
                    crate::duration::format(opts.check.stuck_after)
                ),
                job_types: None,
            },
        )
        .await?;
        jobs_reset = reset.reset;
        jobs_failed = reset.failed;
    }
    if go {
        done(
            target,
            &change,
            &format!(
                "{deleted_total} orphan vectors deleted, {jobs_reset} jobs pending again, {jobs_failed} failed{}",
                kept.iter().map(|k| format!("; {k}")).collect::<String>()
            ),
        );
    } else {
        deleted_total = plans.iter().map(|(_, _, p)| p.deleted).sum();
    }
    let (after, full_after) = check(target, &opts.check).await?;
    Ok((
        Fixed {
            dry_run: !go,
            grace: crate::duration::format(opts.grace),
            pairs: plans.into_iter().map(|(_, _, p)| p).collect(),
            deleted: deleted_total,
            jobs_reset,
            jobs_failed,
            after,
        },
        full_after,
    ))
}

#[derive(Debug, Serialize)]
pub struct ContentDeleted {
    pub dry_run: bool,
    pub content_id: i64,
    /// Whether the content row existed.
    pub existed: bool,
    pub chunk_points: u64,
    pub summary_points: u64,
    pub transcripts: i64,
    pub jobs: i64,
    pub mappings: i64,
}

/// The guide's cascade delete of one content item. Qdrant first (its chunk points by id from
/// the mappings and by payload content_id, its summary point), then one PostgreSQL transaction
/// (transcripts, jobs, mappings, the row). A crash between the two leaves mappings whose points
/// are missing — check-data reports them — and running it again finishes the job.
pub async fn delete_content(target: &Target, content_id: i64) -> Result<ContentDeleted, OpError> {
    let pool = target.pg().await?;
    let content_collection = target
        .settings
        .text(key::QDRANT_CONTENT_COLLECTION)
        .to_string();
    let summaries = target
        .settings
        .text(key::QDRANT_SUMMARIES_COLLECTION)
        .to_string();
    let id32 = i32::try_from(content_id)
        .map_err(|_| OpError::invalid(format!("content id {content_id} is out of range")))?;
    let (existed, transcripts, jobs_n, mappings): (bool, i64, i64, i64) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM content WHERE id = $1),
                (SELECT count(*) FROM transcripts WHERE content_id = $1),
                (SELECT count(*) FROM processing_jobs WHERE content_id = $1),
                (SELECT count(*) FROM vector_mappings WHERE content_id = $1)",
    )
    .bind(id32)
    .fetch_one(pool)
    .await
    .map_err(target.pg_err())?;
    let chunk_ids: Vec<String> = sqlx::query_scalar(
        "SELECT chunk_id FROM vector_mappings WHERE content_id = $1 AND vector_collection = $2",
    )
    .bind(id32)
    .bind(&content_collection)
    .fetch_all(pool)
    .await
    .map_err(target.pg_err())?;
    let chunk_keys: Vec<PointKey> = chunk_ids
        .iter()
        .filter_map(|t| PointKey::parse(t))
        .collect();
    let qdrant = target.qdrant().await?;
    let count_filter = |collection: String| async move {
        let existing = qd::names(target).await?;
        if !existing.contains(&collection) {
            return Ok::<u64, OpError>(0);
        }
        let n = qdrant
            .client
            .count(qdrant_client::qdrant::CountPoints {
                collection_name: collection.clone(),
                filter: Some(qdrant_client::qdrant::Filter::must([
                    qdrant_client::qdrant::Condition::matches("content_id", content_id),
                ])),
                exact: Some(true),
                ..std::default::Default::default()
            })
            .await
            .map_err(target.qdrant_err())?
            .result
            .map(|r| r.count)
            .unwrap_or(0);
        Ok(n)
    };
    let by_filter = count_filter(content_collection.clone()).await?;
    let by_id = if chunk_keys.is_empty() {
        0
    } else {
        qd::get(target, &content_collection, &chunk_keys, false)
            .await
            .map(|p| p.len() as u64)
            .unwrap_or(0)
    };
    let chunk_points = by_filter.max(by_id);
    let summary_points = count_filter(summaries.clone()).await?;
    let result = |dry_run| ContentDeleted {
        dry_run,
        content_id,
        existed,
        chunk_points,
        summary_points,
        transcripts,
        jobs: jobs_n,
        mappings,
    };
    let change = Change {
        op: "integrity::delete_content",
        summary: format!(
            "delete content {content_id} everywhere: {transcripts} transcripts, {jobs_n} jobs, {mappings} mappings, {chunk_points} chunk points, {summary_points} summary points"
        ),
        count: i64::from(existed)
            + transcripts
            + jobs_n
            + mappings
            + (chunk_points + summary_points) as i64,
        confirm: Confirm::Yes,
    };
    if !proceed(target, &change)? {
        return Ok(result(true));
    }
    let names = qd::names(target).await?;
    if names.contains(&content_collection) {
        if !chunk_keys.is_empty() {
            qd::delete_keys(target, &content_collection, &chunk_keys).await?;
        }
        qd::delete_filter_raw(target, &content_collection, content_id).await?;
    }
    if names.contains(&summaries) {
        qd::delete_filter_raw(target, &summaries, content_id).await?;
    }
    let mut tx = pool.begin().await.map_err(target.pg_err())?;
    for sql in [
        "DELETE FROM transcripts WHERE content_id = $1",
        "DELETE FROM processing_jobs WHERE content_id = $1",
        "DELETE FROM vector_mappings WHERE content_id = $1",
        "DELETE FROM content WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(id32)
            .execute(&mut *tx)
            .await
            .map_err(target.pg_err())?;
    }
    tx.commit().await.map_err(target.pg_err())?;
    done(target, &change, "deleted");
    Ok(result(false))
}

// ---------------------------------------------------------------------------------------------

const PAIRS: Opt = Opt::new(
    "pairs",
    Kind::Array,
    Default::None,
    "the pairs to compare (maps: name, table, id_column, collection, filter?, payload_key?, required?); default: the deployment's two plus setting integrity.pairs",
);
const STUCK_AFTER: Opt = Opt::new(
    "stuck_after",
    Kind::Duration,
    Default::Setting(key::JOBS_STUCK_AFTER_CHECK_DATA.name()),
    "processing this long counts as stuck",
);
/// Written once: the option's default and the page size of a check that `integrity::last` runs.
const PAGE_SIZE_DEFAULT: &str = "10000";
const PAGE_SIZE: Opt = Opt::new(
    "page_size",
    Kind::Int,
    Default::Value(PAGE_SIZE_DEFAULT),
    "points per Qdrant scroll request",
);

static CHECK: Spec = Spec {
    module: "integrity",
    name: "check",
    params: &[],
    options: &[PAIRS, STUCK_AFTER, PAGE_SIZE],
    returns: "Map",
    doc: "The guide's data-integrity check (make check-data): connections (postgres, qdrant), \
          required tables, collections and their counts, each pair compared (rows, points, \
          matched, missing, orphans, invalid, with samples of 20), content marked vector_stored \
          whose chunks or summary are missing, stuck jobs. status is critical when a connection \
          fails or a required table or collection is missing, warning when anything is out of \
          line, else healthy; issues says what, in words. Ids are compared as Qdrant reads them \
          (an MD5 hex chunk_id matches its hyphenated point). The full lists stay available to \
          integrity::orphans and integrity::fix. Never fails on a backend: a failure is critical.",
    examples: &[
        Example::new(
            "let c = integrity::check(); [c.status, c.pairs.map(|p| [p.name, p.rows, p.points, p.matched, p.missing, p.orphans, p.invalid])]",
            r#"["warning", [["chunks", 4, 4, 2, 1, 2, 1], ["summaries", 3, 2, 1, 1, 1, 0]]]"#,
        ),
        Example::new(
            "let c = integrity::check(); [c.pairs[0].sample_orphans, c.pairs[0].sample_invalid, c.content_missing_vectors, c.jobs.stuck]",
            r#"[["7", "9b2c58c1-1e7f-5a4e-9d8e-0a1b2c3d4e5f"], ["chunk-three"], 1, 0]"#,
        ),
    ],
};

/// The pair a list function reads.
const PAIR: Param = Param::new("pair", Kind::Str, "the pair's name: chunks, summaries, …");

static ORPHANS: Spec = Spec {
    module: "integrity",
    name: "orphans",
    params: &[PAIR],
    options: &[],
    returns: "Array",
    doc: "Every orphan point id of a pair from this run's last integrity::check (running one \
          when there was none): points whose row is gone, in Qdrant's order.",
    examples: &[Example::new(
        r#"integrity::orphans("summaries")"#,
        r#"["5c0d4f6e-7a8b-5c9d-8e0f-1a2b3c4d5e6f"]"#,
    )],
};

static MISSING: Spec = Spec {
    module: "integrity",
    name: "missing",
    params: &[PAIR],
    options: &[],
    returns: "Array",
    doc: "Every missing id of a pair from this run's last integrity::check: by id, the point ids \
          of rows whose point is absent; by payload, the required rows without a point.",
    examples: &[Example::new(
        r#"integrity::missing("chunks")"#,
        r#"["0f8e2a9c-3b1d-4c5e-8f7a-6b5c4d3e2f10"]"#,
    )],
};

static INVALID: Spec = Spec {
    module: "integrity",
    name: "invalid",
    params: &[PAIR],
    options: &[],
    returns: "Array",
    doc: "Every invalid id of a pair from this run's last integrity::check: row ids that are \
          neither an unsigned integer nor a UUID (never matched, never deleted), or points \
          without the payload key.",
    examples: &[Example::new(
        r#"integrity::invalid("chunks")"#,
        r#"["chunk-three"]"#,
    )],
};

static FIX: Spec = Spec {
    module: "integrity",
    name: "fix",
    params: &[Param::optional(
        "report",
        Kind::Any,
        "a check's result (ignored: fix always checks afresh, since its decisions must be current)",
    )],
    options: &[
        Opt::new(
            "grace",
            Kind::Duration,
            Default::Setting(key::INTEGRITY_ORPHAN_GRACE.name()),
            "a point must have been seen as an orphan at least this long ago",
        ),
        Opt::new(
            "orphans",
            Kind::Bool,
            Default::Value("true"),
            "delete orphan vectors",
        ),
        Opt::new(
            "jobs",
            Kind::Bool,
            Default::Value("true"),
            "reset stuck jobs",
        ),
        MAX_DELETE,
        PAIRS,
        STUCK_AFTER,
        PAGE_SIZE,
    ],
    returns: "Map",
    doc: "check-data-fix: checks, then deletes ALL orphan vectors of every pair in batches of \
          1000 (waiting for each) and resets stuck jobs, then checks again (after). A point is \
          deleted only when it was first seen as an orphan at least grace ago (recorded in \
          opsh_orphan_candidates) and still has no row when its batch is decided, so a worker \
          writing the point before its row never loses it. Invalid ids are never deleted. The \
          deletion budget comes first, --dry-run included: more points of a collection than \
          the larger of delete.max_count and delete.max_percent, or any by a pair that matched \
          nothing while both sides hold data, and nothing changes: it fails with kind \
          over_budget until max_delete is at least the count (--yes never lifts it). Before \
          deleting more than delete.snapshot_above points it snapshots the collection; the \
          deleted ids go to a 0600 file in delete.ids_dir; the audit names both. Asks for \
          confirmation; with --dry-run nothing changes and would_delete lists every id. \
          Returns dry_run, grace, pairs (orphans, deleted, deferred, live, invalid_kept, \
          sample_deleted, would_delete, snapshot, ids_file), deleted, jobs_reset, \
          jobs_failed, after.",
    examples: &[Example::new(
        r#"let f = integrity::fix(#{grace: "0s", stuck_after: "1h"}); [f.deleted, f.jobs_reset, f.jobs_failed, f.after.pairs.map(|p| p.orphans)]"#,
        "[3, 1, 1, [0, 0]]",
    )],
};

static DELETE_CONTENT: Spec = Spec {
    module: "integrity",
    name: "delete_content",
    params: &[Param::new("content_id", Kind::Int, "the content row's id")],
    options: &[],
    returns: "Map",
    doc: "The guide's cascade delete of one content item: its chunk points (by the mappings' ids \
          and by payload content_id) and summary point in Qdrant first, then in one PostgreSQL \
          transaction its transcripts, jobs, mappings and row. A crash between the two leaves \
          mappings without points, which check-data reports; running it again finishes. Asks for \
          confirmation; with --dry-run nothing changes. Returns dry_run, content_id, existed, \
          chunk_points, summary_points, transcripts, jobs, mappings.",
    examples: &[Example::new(
        "let d = integrity::delete_content(1); [d.existed, d.chunk_points, d.summary_points, d.jobs, d.mappings, qdrant::count(\"youtube_content\")]",
        "[true, 2, 1, 4, 2, 2]",
    )],
};

fn check_options(c: &crate::ops::spec::Call) -> Result<CheckOptions, OpError> {
    let pairs = match c.value("pairs") {
        Some(v) if !v.is_unit() => rhai::serde::from_dynamic::<Vec<Pair>>(&v)
            .map_err(|e| OpError::invalid(format!("option `pairs`: {e}")))?,
        _ => configured_pairs(c.target)?,
    };
    let page = c.int("page_size")?;
    let page_size = u32::try_from(page)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| OpError::invalid(format!("option `page_size`: {page} is not positive")))?;
    Ok(CheckOptions {
        pairs,
        stuck_after: c.duration("stuck_after")?,
        page_size,
    })
}

fn remember(full: Full) {
    LAST.with(|l| *l.borrow_mut() = Some(full));
}

fn lists_of(
    c: &crate::ops::spec::Call,
    pick: fn(&Lists) -> Vec<String>,
) -> crate::ops::spec::Outcome<Vec<String>> {
    let name = c.str("pair")?;
    if LAST.with(|l| l.borrow().is_none()) {
        let opts = CheckOptions {
            pairs: configured_pairs(c.target)?,
            stuck_after: c.target.settings.duration(key::JOBS_STUCK_AFTER_CHECK_DATA),
            page_size: PAGE_SIZE_DEFAULT.parse().unwrap_or(1),
        };
        let (_, full) = c.block(check(c.target, &opts))?;
        remember(full);
    }
    LAST.with(|l| {
        let last = l.borrow();
        let full = last.as_ref().expect("set above");
        match full.pairs.iter().find(|(p, _)| p.name == name) {
            Some((_, lists)) => Ok(pick(lists)),
            None => Err(OpError::new(
                ErrorKind::NotFound,
                None,
                format!(
                    "no compared pair `{name}` in the last check; compared: {}",
                    full.pairs
                        .iter()
                        .map(|(p, _)| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .into()),
        }
    })
}

pub fn register(reg: &mut Registrar) {
    reg.add(&CHECK, |c| {
        let opts = check_options(c)?;
        let (report, full) = c.block(check(c.target, &opts))?;
        remember(full);
        Ok(report)
    });
    reg.add(&ORPHANS, |c| {
        lists_of(c, |l| l.orphans.iter().map(ToString::to_string).collect())
    });
    reg.add(&MISSING, |c| lists_of(c, |l| l.missing.clone()));
    reg.add(&INVALID, |c| lists_of(c, |l| l.invalid.clone()));
    reg.add(&FIX, |c| {
        let opts = FixOptions {
            check: check_options(c)?,
            grace: c.duration("grace")?,
            jobs: c.bool("jobs")?,
            orphans: c.bool("orphans")?,
            max_delete: budget::max_delete(c.opt_int("max_delete")?)?,
        };
        let (fixed, full) = c.block(fix(c.target, &opts))?;
        remember(full);
        Ok(fixed)
    });
    reg.add(&DELETE_CONTENT, |c| {
        c.block(delete_content(c.target, c.int("content_id")?))
    });
}

/// When each orphan vector (a Qdrant point with no PostgreSQL row) was first seen: fix deletes a
/// point only once it has been an orphan for integrity.orphan_grace, so a worker that writes the
/// point before its vector_mappings row never loses it. Defined in
/// migrations/opsh/orphan_candidates.sql.
pub const CANDIDATES_TABLE: &str = crate::ops::db::schema::ORPHAN_CANDIDATES;

#[cfg(test)]
mod tests {
    use super::*;

    fn nums(v: &[u64]) -> Vec<PointKey> {
        v.iter().map(|&n| PointKey::Num(n)).collect()
    }

    #[test]
    fn merging_matches_points_read_before_and_after_the_rows_are_ready() {
        let mut rows = Rows {
            keys: KeySpill::with_run(2),
            ..Rows::default()
        };
        for k in nums(&[9, 1, 4, 4, 7, 12]) {
            rows.keys.push(k).unwrap();
        }
        let mut early = KeySpill::with_run(2);
        for k in nums(&[0, 1, 3]) {
            early.push(k).unwrap();
        }
        let mut m = Merging::default();
        assert!(m.start(Ok(rows.sort()), early).is_some());
        for k in nums(&[4, 8, 9]) {
            m.point(k);
        }
        let (matched, missing, orphans) = m.finish().unwrap();
        assert_eq!(matched, 3, "1, 4 (a repeated row counts once) and 9");
        assert_eq!(missing, nums(&[7, 12]));
        assert_eq!(orphans, nums(&[0, 3, 8]));
    }

    #[test]
    fn a_point_out_of_qdrants_order_fails_the_comparison() {
        let mut m = Merging::default();
        m.start(Ok(Rows::default().sort()), KeySpill::default());
        for k in nums(&[5, 6, 2]) {
            m.point(k);
        }
        let err = m.finish().unwrap_err().to_string();
        assert!(err.contains("point 2 after 6"), "{err}");
    }

    #[test]
    fn spilled_point_keys_come_back_in_qdrant_order() {
        // Numbers before UUIDs, each ascending, across several runs and with repeats.
        let mut keys: Vec<PointKey> = (0..5000u64)
            .map(|i| {
                let v = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                if i % 3 == 0 {
                    PointKey::Num(v % 1000)
                } else {
                    PointKey::Uuid(u128::from(v) << 64 | u128::from(i % 97))
                }
            })
            .collect();
        keys.push(PointKey::Num(u64::MAX));
        keys.push(PointKey::Uuid(0));
        let mut spill = KeySpill::with_run(64);
        for k in &keys {
            spill.push(*k).unwrap();
        }
        let (nums, uuids) = spill.into_sorted().unwrap();
        let nums = nums.map(|n| PointKey::Num(n.unwrap()));
        let back: Vec<PointKey> = nums
            .chain(uuids.map(|u| PointKey::Uuid(u.unwrap())))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(back, keys);
        assert!(
            matches!(back.iter().position(|k| matches!(k, PointKey::Uuid(_))), Some(i) if back[i - 1] == PointKey::Num(u64::MAX))
        );
    }

    #[test]
    fn copy_text_escapes_are_undone() {
        assert_eq!(unescape(br"a\\b\tc"), "a\\b\tc");
        assert_eq!(unescape(b"plain"), "plain");
    }

    #[test]
    fn every_accepted_form_is_listed_for_sql_lookups() {
        let k = PointKey::parse("4a7d1ed414474e4033ac29ccb8653d9b").unwrap();
        let forms = text_forms(k);
        assert!(forms.contains(&"4a7d1ed4-1447-4e40-33ac-29ccb8653d9b".to_string()));
        assert!(forms.iter().all(|f| PointKey::parse(f) == Some(k)));
    }
}
