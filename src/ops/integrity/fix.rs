//! check-data-fix and clean-orphans: the orphans seen long enough (see [`candidates`]) and
//! still without a row when their batch is decided are deleted within the deletion budget, with
//! a snapshot and an ids file as the way back; stuck jobs are reset; then it checks again.
//!
//! [`candidates`]: super::candidates

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use super::candidates;
use super::check::{CheckOptions, check, text_forms};
use super::pairs::{Pair, ident};
use super::report::{Check, Full, SAMPLE, sample};
use super::requeue::{FlagsFixed, Requeued, fix_transcript_flags, requeue_now};
use crate::config::key;
use crate::ops::Target;
use crate::ops::budget::{self, Bulk, IdFile};
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::jobs;
use crate::ops::qdrant::{self as qd, PointKey};
use crate::text::count;

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
    /// When the last of the deferred orphans is past its grace period ("2026-12-02 12:41:05
    /// UTC"); None when none was deferred.
    pub deferred_until: Option<String>,
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

/// A part of the check the fix did not act on, and why.
#[derive(Debug, Serialize)]
pub struct Skipped {
    pub what: String,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct Fixed {
    pub dry_run: bool,
    /// The grace period in words ("10 minutes").
    pub grace: String,
    pub pairs: Vec<PairFix>,
    /// What could not be fixed because that part of the check failed (a missing table or
    /// collection, a comparison that failed), with why.
    pub skipped: Vec<Skipped>,
    pub deleted: u64,
    pub jobs_reset: i64,
    pub jobs_failed: i64,
    /// Content marked vector_stored without its vectors, queued to be vectorized again.
    pub requeued: Requeued,
    /// transcript_available set to what the transcripts rows show.
    pub transcript_flags: FlagsFixed,
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
    /// Queue this job type for content marked vector_stored whose vectors are missing
    /// (integrity::requeue); None: leave it.
    pub requeue: Option<String>,
    /// Set transcript_available to whether transcripts rows exist.
    pub transcripts: bool,
}

/// Deletes every orphan vector seen as one for at least the grace period and still without a
/// row when its batch is decided, resets stuck jobs, then checks again. What the check could
/// not compare (a missing table or collection) is skipped and listed; only a failed connection
/// stops it, with kind `unreachable`.
pub async fn fix(target: &Target, opts: &FixOptions) -> Result<(Fixed, Full), OpError> {
    let (before, full) = check(target, &opts.check).await?;
    for (name, conn) in [
        ("PostgreSQL", &before.connections.postgres),
        ("Qdrant", &before.connections.qdrant),
    ] {
        if !conn.ok {
            return Err(OpError::new(
                ErrorKind::Unreachable,
                None,
                format!(
                    "the {name} connection failed, nothing was fixed: {}",
                    conn.detail
                ),
            ));
        }
    }
    let skipped = skipped(&before, opts);
    let dry_run = target.flags.dry_run;
    let pool = target.pg().await?;
    let grace = opts.grace.as_secs_f64();
    let mut plans: Vec<(Pair, Vec<PointKey>, PairFix)> = Vec::new();
    let seen = candidates::Seen::open(target, pool, dry_run).await?;
    for (pair, lists) in &full.pairs {
        if !opts.orphans {
            break;
        }
        let texts: Vec<String> = lists.orphans.iter().map(ToString::to_string).collect();
        if !dry_run {
            seen.record(&pair.collection, &texts).await?;
        }
        // Under --dry-run nothing was recorded: an orphan not seen before counts as seen now.
        let eligible = seen.eligible(&pair.collection, &texts, grace).await?;
        let deferred = (lists.orphans.len() - eligible.len()) as u64;
        let deferred_until = if deferred > 0 {
            seen.deferred_until(&pair.collection, &texts, grace).await?
        } else {
            None
        };
        let plan = PairFix {
            name: pair.name.clone(),
            collection: pair.collection.clone(),
            orphans: lists.orphans.len() as u64,
            deferred,
            deferred_until,
            invalid_kept: lists.invalid.len() as u64,
            ..PairFix::default()
        };
        plans.push((pair.clone(), eligible, plan));
    }
    let orphan_total: usize = plans.iter().map(|(_, e, _)| e.len()).sum();
    let stuck = if opts.jobs { before.jobs.stuck } else { 0 };
    let (requeue, flags) = repairs(&before, opts);
    let change = Change {
        op: "integrity::fix",
        summary: format!(
            "delete {} (orphans for at least {}) and reset {}{}",
            count(orphan_total as i64, "orphan vector", None),
            crate::text::duration(opts.grace),
            count(stuck as i64, "stuck job", None),
            repairs_words(requeue, flags, opts)
        ),
        count: (orphan_total as u64 + stuck + requeue + flags) as i64,
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
            seen.forget(&pair.collection, &texts).await?;
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
                    crate::text::duration(opts.check.stuck_after)
                ),
                job_types: None,
            },
        )
        .await?;
        jobs_reset = reset.reset;
        jobs_failed = reset.failed;
    }
    let requeued = match &opts.requeue {
        Some(job_type) if requeue > 0 => {
            requeue_now(target, &full.content_missing, job_type, go).await?
        }
        _ => Requeued::default(),
    };
    let transcript_flags = if flags > 0 {
        fix_transcript_flags(target, go).await?
    } else {
        FlagsFixed::default()
    };
    if requeue + flags > 0 {
        kept.push(format!(
            "{} content items queued for {}, {} transcript flags set",
            requeued.queued.len(),
            requeued.job_type,
            transcript_flags.cleared + transcript_flags.set
        ));
    }
    if go {
        done(
            target,
            &change,
            &format!(
                "{} deleted, {} pending again, {jobs_failed} failed{}",
                count(deleted_total as i64, "orphan vector", None),
                count(jobs_reset, "job", None),
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
            grace: crate::text::duration(opts.grace),
            pairs: plans.into_iter().map(|(_, _, p)| p).collect(),
            skipped,
            deleted: deleted_total,
            jobs_reset,
            jobs_failed,
            requeued,
            transcript_flags,
            after,
        },
        full_after,
    ))
}

/// The parts of the check the fix cannot act on: each pair that was not compared, and the stuck
/// jobs when they could not be read.
fn skipped(before: &Check, opts: &FixOptions) -> Vec<Skipped> {
    let mut skipped = Vec::new();
    if opts.orphans {
        for p in before.pairs.iter().filter(|p| !p.compared) {
            skipped.push(Skipped {
                what: format!("orphans of {} ({} ↔ {})", p.name, p.table, p.collection),
                why: format!("not compared: {}", p.error),
            });
        }
    }
    if opts.jobs && !before.jobs.checked {
        let why = if before.tables.missing.iter().any(|t| t == "processing_jobs") {
            "table processing_jobs is missing (run `opsh migrate`)".to_string()
        } else {
            "the stuck jobs could not be read (see the check's issues)".to_string()
        };
        skipped.push(Skipped {
            what: "stuck jobs".into(),
            why,
        });
    }
    skipped
}

/// How many content items the fix would requeue and transcript flags it would set.
fn repairs(before: &Check, opts: &FixOptions) -> (u64, u64) {
    let requeue = if opts.requeue.is_some() {
        before.content_missing_vectors
    } else {
        0
    };
    let t = &before.transcripts;
    let flags = if opts.transcripts && t.checked {
        t.flagged_without_rows + t.rows_without_flag
    } else {
        0
    };
    (requeue, flags)
}

fn repairs_words(requeue: u64, flags: u64, opts: &FixOptions) -> String {
    let mut words = String::new();
    if requeue > 0 {
        words.push_str(&format!(
            ", queue {} missing their vectors for {}",
            count(requeue as i64, "content item", None),
            opts.requeue.as_deref().unwrap_or_default()
        ));
    }
    if flags > 0 {
        words.push_str(&format!(
            ", set {}",
            count(flags as i64, "transcript_available flag", None)
        ));
    }
    words
}
