//! check-data: connections, required tables, collections, each pair compared (by id or by
//! payload), content marked vector_stored without its vectors, stuck jobs; a status and the
//! issues in words.

use std::time::Duration;

use super::absent;
use super::merge::compare_by_id;
use super::pairs::{Pair, default_pairs, refuse_bad_sql};
use super::payload::compare_by_payload;
use super::report::{
    Check, CollectionState, Connection, Connections, Full, JobsState, PairResult, SAMPLE, Tables,
    not_compared,
};
use super::requeue::{TranscriptFlags, transcript_flags};
use crate::ops::Target;
use crate::ops::error::OpError;
use crate::ops::jobs;
use crate::ops::qdrant::{self as qd, PointKey};
use crate::text::count;

/// The deployment's tables check-data requires.
pub const REQUIRED_TABLES: [&str; 5] = [
    "channels",
    "content",
    "transcripts",
    "processing_jobs",
    "vector_mappings",
];

/// The op a check's outcome is recorded under in the audit (`opsh top` shows the last one).
pub const AUDIT_OP: &str = "integrity::check";

/// Records a check's outcome in the audit, the way destructive actions are recorded, so that
/// the last result and its time can be read later (`opsh top`'s vectors pane). count is the
/// orphan, missing and invalid ids of the compared pairs; the outcome is "ok", else what is
/// out of line ("3 orphans, 1 missing"), or "critical: " and the first issue.
pub fn record(target: &Target, c: &Check) {
    let compared: Vec<&PairResult> = c.pairs.iter().filter(|p| p.compared).collect();
    let sum = |f: fn(&PairResult) -> u64| -> i64 {
        compared
            .iter()
            .map(|p| i64::try_from(f(p)).unwrap_or(i64::MAX))
            .sum()
    };
    let (orphans, missing, invalid) = (sum(|p| p.orphans), sum(|p| p.missing), sum(|p| p.invalid));
    let mut parts = Vec::new();
    if orphans > 0 {
        parts.push(count(orphans, "orphan", None));
    }
    if missing > 0 {
        parts.push(format!("{missing} missing"));
    }
    if invalid > 0 {
        parts.push(format!("{invalid} invalid"));
    }
    if c.content_missing_vectors > 0 {
        parts.push(format!(
            "{} without vectors",
            count(c.content_missing_vectors as i64, "content item", None)
        ));
    }
    if c.jobs.stuck > 0 {
        parts.push(count(c.jobs.stuck as i64, "stuck job", None));
    }
    let outcome = match c.status.as_str() {
        "healthy" => "ok".to_string(),
        "critical" => format!(
            "critical: {}",
            c.issues
                .first()
                .cloned()
                .unwrap_or_else(|| parts.join(", "))
        ),
        status if parts.is_empty() => c
            .issues
            .first()
            .cloned()
            .unwrap_or_else(|| status.to_string()),
        _ => parts.join(", "),
    };
    let change = crate::ops::change::Change {
        op: AUDIT_OP,
        summary: format!(
            "data integrity {}: {} compared",
            c.status,
            count(compared.len() as i64, "pair", None)
        ),
        count: orphans + missing + invalid,
        confirm: crate::ops::change::Confirm::Never,
    };
    target.audit.record(target, &change, false, &outcome);
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
        // A table only a site pair names is decided with its collection, below.
        for t in missing_tables.iter().filter(|t| !absent::site_table(t)) {
            critical = true;
            issues.push(format!(
                "required table `{t}` is missing (run `opsh migrate`)"
            ));
        }
    }

    if postgres.ok {
        refuse_bad_sql(target, &opts.pairs, &missing_tables).await?;
    }

    let mut existing: Vec<String> = Vec::new();
    let mut wanted: Vec<&str> = Vec::new();
    if qdrant.ok {
        match qd::names(target).await {
            Ok(names) => existing = names,
            Err(e) => {
                critical = true;
                issues.push(format!("cannot list collections: {e}"));
            }
        }
        for p in &opts.pairs {
            if !wanted.contains(&p.collection.as_str()) {
                wanted.push(&p.collection);
            }
        }
    }

    // Why each pair is not compared, if it is not.
    let why_not: Vec<Option<String>> = opts
        .pairs
        .iter()
        .map(|pair| {
            if !postgres.ok || !qdrant.ok {
                Some("a connection failed".to_string())
            } else if missing_tables.contains(&pair.table) {
                Some(format!("table `{}` is missing", pair.table))
            } else if !existing.contains(&pair.collection) {
                Some(format!("collection `{}` does not exist", pair.collection))
            } else {
                None
            }
        })
        .collect();
    // A collection a pair scrolls is counted by that scroll; the others are counted apart.
    let scrolled = |name: &str| {
        opts.pairs
            .iter()
            .zip(&why_not)
            .any(|(p, why)| why.is_none() && p.collection == name)
    };
    let defaults = default_pairs(target);
    let chunks_compared = opts
        .pairs
        .iter()
        .zip(&why_not)
        .any(|(p, why)| why.is_none() && *p == defaults[0]);
    // A site pair's missing table does not stop the deployment's own content check.
    let content_checked = postgres.ok && missing_tables.iter().all(|t| absent::site_table(t));

    // The pairs one after another (each runs its two streams at once), and beside them the
    // rest of the report: the collections no pair scrolls, content marked vector_stored
    // without any chunk mapping, and stuck jobs.
    let compare_pairs = async {
        let mut compared = Vec::new();
        for (pair, why) in opts.pairs.iter().zip(&why_not) {
            if why.is_some() {
                compared.push(None);
                continue;
            }
            compared.push(Some(match &pair.payload_key {
                None => compare_by_id(target, pair, opts.page_size).await,
                Some(key) => compare_by_payload(target, pair, key, opts.page_size).await,
            }));
        }
        compared
    };
    let count_unscrolled = async {
        let mut counts = Vec::new();
        for name in &wanted {
            if existing.iter().any(|n| n == name) && !scrolled(name) {
                counts.push((*name, qd::count(target, name, true).await));
            }
        }
        counts
    };
    let unmapped = async {
        if content_checked && chunks_compared {
            Some(content_without_mappings(target, &defaults[0].collection).await)
        } else {
            None
        }
    };
    let stuck = async {
        if postgres.ok && !missing_tables.iter().any(|t| t == "processing_jobs") {
            Some(jobs::stuck(target, opts.stuck_after, None, 100_000).await)
        } else {
            None
        }
    };
    let (compared, mut counts, unmapped, stuck) =
        futures_util::join!(compare_pairs, count_unscrolled, unmapped, stuck);

    let mut collections = Vec::new();
    for name in wanted {
        let exists = existing.iter().any(|n| n == name);
        let points = if exists {
            // The first pair that scrolled it whole; a count when none got through.
            let scroll = opts.pairs.iter().zip(&compared).find_map(|(p, c)| match c {
                Some(Ok((r, _))) if p.collection == name => Some(r.points),
                _ => None,
            });
            let counted = match scroll {
                Some(n) => Ok(n),
                None => match counts.iter().position(|(n, _)| *n == name) {
                    Some(i) => counts.swap_remove(i).1,
                    None => qd::count(target, name, true).await,
                },
            };
            match counted {
                Ok(n) => n,
                Err(e) => {
                    warning = true;
                    issues.push(format!("cannot count `{name}`: {e}"));
                    0
                }
            }
        } else {
            0
        };
        // Missing: made on first use while no row expects a point in it.
        let mut state = CollectionState {
            name: name.to_string(),
            exists,
            points,
            not_created: false,
            expecting: 0,
        };
        if !exists {
            let expecting = if postgres.ok {
                absent::expecting_in(target, &opts.pairs, name, &missing_tables).await
            } else {
                Err(OpError::invalid("PostgreSQL is not connected"))
            };
            match expecting {
                Ok(0) => state.not_created = true,
                Ok(n) => {
                    critical = true;
                    state.expecting = n;
                    issues.push(format!(
                        "Qdrant collection `{name}` does not exist, but {} a point in it",
                        count(n as i64, "row expects", Some("rows expect"))
                    ));
                }
                Err(_) => {
                    critical = true;
                    issues.push(format!("Qdrant collection `{name}` does not exist"));
                }
            }
        }
        collections.push(state);
    }

    // A site pair's table that does not exist: not created yet while its collection holds no
    // point; otherwise those points wait for rows that cannot come.
    let mut tables_not_created = Vec::new();
    for t in missing_tables.iter().filter(|t| absent::site_table(t)) {
        let points: u64 = collections
            .iter()
            .filter(|c| {
                opts.pairs
                    .iter()
                    .any(|p| &p.table == t && p.collection == c.name)
            })
            .map(|c| c.points)
            .sum();
        if qdrant.ok && points == 0 {
            tables_not_created.push(t.clone());
        } else {
            critical = true;
            issues.push(format!(
                "table `{t}` of an integrity pair does not exist{}",
                if points > 0 {
                    format!(
                        ", but its collection holds {}",
                        count(points as i64, "point", None)
                    )
                } else {
                    String::new()
                }
            ));
        }
    }
    missing_tables.retain(|t| !tables_not_created.contains(t));

    let mut pairs = Vec::new();
    let mut full = Full::default();
    for ((pair, why), compared) in opts.pairs.iter().zip(why_not).zip(compared) {
        let not_created = collections
            .iter()
            .any(|c| c.name == pair.collection && c.not_created);
        let made_later = if !postgres.ok || !qdrant.ok {
            None
        } else if tables_not_created.contains(&pair.table) {
            Some(Ok(absent::table_not_created(pair)))
        } else if not_created && !missing_tables.contains(&pair.table) {
            Some(absent::collection_not_created(target, pair).await)
        } else {
            None
        };
        match made_later {
            Some(Ok((result, lists))) => {
                pairs.push(result);
                full.pairs.push((pair.clone(), lists));
                continue;
            }
            Some(Err(e)) => {
                critical = true;
                issues.push(format!("{}: cannot count its rows: {e}", pair.name));
                pairs.push(not_compared(pair, e.to_string()));
                continue;
            }
            None => {}
        }
        let compared = match (why, compared) {
            (None, Some(c)) => c,
            (why, _) => {
                pairs.push(not_compared(pair, why.unwrap_or_default()));
                continue;
            }
        };
        match compared {
            Ok((result, lists)) => {
                if result.missing > 0 {
                    warning = true;
                    let n = result.missing as i64;
                    let what = if pair.payload_key.is_some() {
                        format!(
                            "{} of {} without a point",
                            count(n, "row", None),
                            pair.table
                        )
                    } else {
                        format!(
                            "{} whose point is missing",
                            count(n, &format!("{} row", pair.table), None)
                        )
                    };
                    issues.push(format!("{}: {what} in {}", pair.name, pair.collection));
                }
                if result.orphans > 0 {
                    warning = true;
                    issues.push(format!(
                        "{}: {} in {} (no row in {}); delete them with: opsh clean-orphans",
                        pair.name,
                        count(result.orphans as i64, "orphan vector", None),
                        pair.collection,
                        pair.table
                    ));
                }
                if result.invalid > 0 {
                    warning = true;
                    let n = result.invalid as i64;
                    let what = if pair.payload_key.is_some() {
                        format!(
                            "{} without a usable payload `{}`",
                            count(n, "point", None),
                            pair.payload_key.as_deref().unwrap_or_default()
                        )
                    } else {
                        format!(
                            "{} that {} neither an integer nor a UUID (never deleted)",
                            count(n, &format!("{} value", pair.id_column), None),
                            if n == 1 { "is" } else { "are" }
                        )
                    };
                    issues.push(format!("{}: {what}", pair.name));
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

    // Content marked vector_stored whose chunks or summary are missing (deployment pairs):
    // without any chunk mapping (asked beside the scrolls), with a mapping whose point is
    // missing, or without its summary point.
    let mut content_missing: Vec<i64> = Vec::new();
    if content_checked {
        match content_missing_vectors(target, unmapped, &pairs, &full).await {
            Ok(ids) => content_missing = ids,
            Err(e) => issues.push(format!("cannot check vector_stored content: {e}")),
        }
        if !content_missing.is_empty() {
            warning = true;
            issues.push(format!(
                "{} marked vector_stored, with chunks or summary missing",
                count(
                    content_missing.len() as i64,
                    "content item is",
                    Some("content items are")
                )
            ));
        }
    }

    full.content_missing = content_missing.clone();

    // transcript_available against the transcripts rows, both ways.
    let mut transcripts = TranscriptFlags::default();
    if postgres.ok && missing_tables.is_empty() {
        match transcript_flags(target).await {
            Ok(t) => {
                if t.flagged_without_rows + t.rows_without_flag > 0 {
                    warning = true;
                    issues.push(format!(
                        "transcript_available disagrees with the transcripts rows: {} flagged without rows, {} with rows not flagged; check-data-fix sets the flags to what the rows show",
                        t.flagged_without_rows, t.rows_without_flag
                    ));
                }
                transcripts = t;
            }
            Err(e) => issues.push(format!("cannot check transcript_available: {e}")),
        }
    }

    let mut jobs_state = JobsState {
        checked: false,
        older_than: crate::text::duration(opts.stuck_after),
        stuck: 0,
        sample_stuck_ids: Vec::new(),
    };
    match stuck {
        Some(Ok(stuck)) => {
            jobs_state.checked = true;
            jobs_state.stuck = stuck.len() as u64;
            jobs_state.sample_stuck_ids = stuck.iter().take(SAMPLE).map(|j| j.id).collect();
            if !stuck.is_empty() {
                warning = true;
                issues.push(format!(
                    "{} processing for more than {}; reset them with: opsh reset-stuck-jobs",
                    count(stuck.len() as i64, "job", None),
                    jobs_state.older_than
                ));
            }
        }
        Some(Err(e)) => issues.push(format!("cannot check stuck jobs: {e}")),
        None => {}
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
                not_created: tables_not_created,
            },
            collections,
            pairs,
            content_missing_vectors: content_missing.len() as u64,
            sample_content_missing_vectors: content_missing.iter().take(SAMPLE).copied().collect(),
            jobs: jobs_state,
            transcripts,
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
pub(super) fn text_forms(key: PointKey) -> Vec<String> {
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

/// Content marked vector_stored without any chunk mapping in the chunks collection.
async fn content_without_mappings(target: &Target, chunks: &str) -> Result<Vec<i64>, OpError> {
    let pool = target.pg().await?;
    let found: Vec<i32> = sqlx::query_scalar(
        "SELECT c.id FROM content c
         WHERE c.vector_stored
           AND NOT EXISTS (SELECT 1 FROM vector_mappings m
                           WHERE m.content_id = c.id AND m.vector_collection = $1)",
    )
    .bind(chunks)
    .fetch_all(pool)
    .await
    .map_err(target.pg_err())?;
    Ok(found.into_iter().map(i64::from).collect())
}

/// The deployment's extra check: content marked vector_stored with no chunk mapping (`unmapped`,
/// asked while the pairs were compared), with a mapping whose point is missing, or (for the
/// summaries pair) without its summary point.
async fn content_missing_vectors(
    target: &Target,
    unmapped: Option<Result<Vec<i64>, OpError>>,
    pairs: &[PairResult],
    full: &Full,
) -> Result<Vec<i64>, OpError> {
    let defaults = default_pairs(target);
    let (chunks, summaries) = (&defaults[0], &defaults[1]);
    let mut ids: Vec<i64> = Vec::new();
    let compared = |name: &str| pairs.iter().any(|p| p.name == name && p.compared);
    if compared(&chunks.name) {
        if let Some(unmapped) = unmapped {
            ids.extend(unmapped?);
        }
        let missing_forms: Vec<String> = full
            .pairs
            .iter()
            .filter(|(p, _)| p == chunks)
            .flat_map(|(_, l)| l.missing.iter())
            .filter_map(|t| PointKey::parse(t))
            .flat_map(text_forms)
            .collect();
        if !missing_forms.is_empty() {
            let pool = target.pg().await?;
            let found: Vec<i32> = sqlx::query_scalar(
                "SELECT DISTINCT m.content_id FROM vector_mappings m
                 JOIN content c ON c.id = m.content_id
                 WHERE c.vector_stored AND m.vector_collection = $1
                   AND lower(m.chunk_id) = ANY($2)",
            )
            .bind(&chunks.collection)
            .bind(&missing_forms)
            .fetch_all(pool)
            .await
            .map_err(target.pg_err())?;
            ids.extend(found.into_iter().map(i64::from));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form_is_listed_for_sql_lookups() {
        let k = PointKey::parse("4a7d1ed414474e4033ac29ccb8653d9b").unwrap();
        let forms = text_forms(k);
        assert!(forms.contains(&"4a7d1ed4-1447-4e40-33ac-29ccb8653d9b".to_string()));
        assert!(forms.iter().all(|f| PointKey::parse(f) == Some(k)));
    }
}
