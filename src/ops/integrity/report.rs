//! The check's report data (counts and bounded samples, as the guide lists them) and the full
//! lists of differences kept for fix and for scripts.

use serde::Serialize;

use super::pairs::Pair;
use crate::ops::qdrant::PointKey;

/// How many ids of each kind a report shows.
pub const SAMPLE: usize = 20;

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
    /// It does not exist and no row expects a point in it: made on first use, healthy.
    pub not_created: bool,
    /// It does not exist: the rows that expect a point in it (then critical).
    pub expecting: u64,
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
    /// Its collection (or a site pair's table) does not exist yet and nothing waits for it:
    /// what, in words; empty otherwise. Such a pair counts as compared, with nothing to fix.
    pub not_created: String,
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
    /// transcript_available against the transcripts rows.
    pub transcripts: super::requeue::TranscriptFlags,
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
    /// Tables only site pairs name that do not exist while their collections hold no point.
    pub not_created: Vec<String>,
}

/// The full lists of the last check, for fix and for scripts.
#[derive(Debug, Clone, Default)]
pub struct Full {
    pub pairs: Vec<(Pair, Lists)>,
    /// Every content id marked vector_stored whose chunks or summary are missing.
    pub content_missing: Vec<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Lists {
    pub missing: Vec<String>,
    pub orphans: Vec<PointKey>,
    pub invalid: Vec<String>,
}

pub(super) fn sample<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().take(SAMPLE).map(ToString::to_string).collect()
}

/// A compared pair's report entry (counts and samples) beside its full lists.
pub(super) fn compared(
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
        not_created: String::new(),
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

pub(super) fn not_compared(pair: &Pair, why: String) -> PairResult {
    PairResult {
        name: pair.name.clone(),
        table: pair.table.clone(),
        collection: pair.collection.clone(),
        compared: false,
        error: why,
        not_created: String::new(),
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
