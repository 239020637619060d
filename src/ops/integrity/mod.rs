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
//! ([`ids`](crate::ops::clients::qdrant::ids)), split into ranges of the id space read at once
//! (`qdrant.scroll_partitions`, see `qdrant::scroll_ids`), each range's next page asked for
//! before the last one is handed on, and the ranges handed on in Qdrant's order (a later range
//! waits in memory, then in a temp file). The rest of the report (the collections no pair
//! scrolls, content marked vector_stored without mappings, stuck jobs) is asked meanwhile; a
//! scrolled collection's point count is the scroll's. Once the rows are read and sorted (on
//! their own task too), the points are
//! merged against them as they arrive, in Qdrant's id order; the points that came before that
//! wait in a spill of their own, written in order and read back in one pass. What stays in
//! memory is a run or two of keys (16 MB each at most), a read-ahead buffer per run and the
//! differences (missing, orphans, invalid), whatever N is, plus 16 bytes per id of temp file in
//! TMPDIR beyond the first million. A report carries counts plus a bounded sample.
//!
//! Where things are: [`pairs`] (what is compared), [`copy`] (COPY reading), [`spill`] (the
//! external sort) and [`merge`] (the by-id comparison), [`payload`] (the by-payload one),
//! [`report`] (the report data), [`check`], [`absent`] (collections and site tables made on
//! first use), [`candidates`] (when an orphan was first seen),
//! [`fix`], [`cascade`] (delete one content item), [`specs`]; this file registers them.

mod absent;
mod candidates;
mod cascade;
mod check;
mod copy;
mod fix;
mod merge;
mod pairs;
mod payload;
mod report;
mod requeue;
mod specs;
mod spill;

pub use candidates::CANDIDATES_TABLE;
pub use cascade::{ContentDeleted, delete_content};
pub use check::{AUDIT_OP, CheckOptions, REQUIRED_TABLES, check, record};
pub use fix::{FixOptions, Fixed, PairFix, Skipped, fix};
pub use pairs::{Pair, configured_pairs, default_pairs};
pub use report::{
    Check, CollectionState, Connection, Connections, Full, JobsState, Lists, PairResult, SAMPLE,
    Tables,
};
pub use requeue::{FlagsFixed, Requeued, TranscriptFlags, requeue, transcript_flags};

use crate::config::key;
use crate::ops::budget;
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::spec::Registrar;
use specs::{
    CHECK, DELETE_CONTENT, FIX, INVALID, MISSING, ORPHANS, PAGE_SIZE_DEFAULT, REQUEUE,
    TRANSCRIPT_FLAGS,
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

/// The full lists of this run's last check, kept in the run's [`Target`] for
/// `integrity::orphans`, `missing` and `invalid`.
///
/// [`Target`]: crate::ops::Target
struct Last(Full);

fn remember(target: &crate::ops::Target, full: Full) {
    target.state.set(Last(full));
}

fn lists_of(
    c: &crate::ops::spec::Call,
    pick: fn(&Lists) -> Vec<String>,
) -> crate::ops::spec::Outcome<Vec<String>> {
    let name = c.str("pair")?;
    if !c.target.state.has::<Last>() {
        let opts = CheckOptions {
            pairs: configured_pairs(c.target)?,
            stuck_after: c.target.settings.duration(key::JOBS_STUCK_AFTER_CHECK_DATA),
            page_size: PAGE_SIZE_DEFAULT.parse().unwrap_or(1),
        };
        let (_, full) = c.block(check(c.target, &opts))?;
        remember(c.target, full);
    }
    c.target.state.with(|last: Option<&Last>| {
        let Some(Last(full)) = last else {
            return Err(
                OpError::new(ErrorKind::Failed, None, "the last check was not kept").into(),
            );
        };
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
        record(c.target, &report);
        remember(c.target, full);
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
            requeue: if c.bool("requeue")? {
                Some(c.str("job_type")?)
            } else {
                None
            },
            transcripts: c.bool("transcripts")?,
        };
        let (fixed, full) = c.block(fix(c.target, &opts))?;
        remember(c.target, full);
        Ok(fixed)
    });
    reg.add(&REQUEUE, |c| {
        let mut ids = Vec::new();
        for v in c.array("content_ids")? {
            ids.push(v.as_int().map_err(|t| {
                OpError::invalid(format!("`content_ids`: expected integers, got {t}"))
            })?);
        }
        c.block(requeue(c.target, &ids, &c.str("job_type")?))
    });
    reg.add(&TRANSCRIPT_FLAGS, |c| c.block(transcript_flags(c.target)));
    reg.add(&DELETE_CONTENT, |c| {
        c.block(delete_content(c.target, c.int("content_id")?))
    });
}
