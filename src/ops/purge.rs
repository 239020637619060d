//! `jobs::purge` — retention of finished jobs: the deployment deletes failed jobs older than 7
//! days every night. Deleted in batches, each its own short statement over rows locked with
//! SKIP LOCKED, so no long lock is held on processing_jobs while the workers poll it; through
//! the destructive path (confirmation, --dry-run, audit) and the deletion budget, with the
//! deleted ids written to a 0600 file as they go.

use serde::Serialize;
use std::time::Duration;

use crate::config::key;
use crate::ops::Target;
use crate::ops::budget::{self, Bulk, IdFile, MAX_DELETE};
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;
use crate::ops::jobs;
use crate::ops::spec::{Default, Example, Kind, Opt, Registrar, Spec};

/// The statuses a purge may delete: finished jobs only, never the queue's live work.
pub const PURGEABLE: [&str; 2] = ["failed", "completed"];

pub struct Purge {
    pub statuses: Vec<String>,
    /// Last activity at least this long ago.
    pub older_than: Duration,
    pub batch_size: i64,
    pub max_delete: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Purged {
    pub dry_run: bool,
    pub statuses: Vec<String>,
    pub older_than: String,
    /// Jobs deleted (with --dry-run: that would be).
    pub deleted: i64,
    /// Statements it took (0 with --dry-run).
    pub batches: i64,
    /// The first 100 ids deleted (or that would be), lowest first.
    pub sample_ids: Vec<i64>,
    /// The 0600 file the deleted ids were written to.
    pub ids_file: Option<String>,
}

pub async fn purge(target: &Target, req: &Purge) -> Result<Purged, OpError> {
    if req.statuses.is_empty() {
        return Err(OpError::invalid("option `status`: no status given"));
    }
    if let Some(s) = req
        .statuses
        .iter()
        .find(|s| !PURGEABLE.contains(&s.as_str()))
    {
        return Err(OpError::invalid(format!(
            "option `status`: `{s}` cannot be purged; only finished jobs are (failed, completed)"
        )));
    }
    if req.batch_size < 1 {
        return Err(OpError::invalid(format!(
            "option `batch_size`: {} is not positive",
            req.batch_size
        )));
    }
    let activity = jobs::last_activity(target).await?;
    let pool = target.pg().await?;
    let predicate =
        format!("status = ANY($1) AND {activity} < LOCALTIMESTAMP - make_interval(secs => $2)");
    let secs = req.older_than.as_secs_f64();
    let (planned, total): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FILTER (WHERE {predicate}), count(*) FROM processing_jobs"
    )))
    .bind(&req.statuses)
    .bind(secs)
    .fetch_one(pool)
    .await
    .map_err(target.pg_err())?;
    let older_than = crate::duration::format(req.older_than);
    let mut change = Change {
        op: "jobs::purge",
        summary: format!(
            "delete {planned} {} jobs older than {older_than}",
            req.statuses.join("/")
        ),
        count: planned,
        confirm: Confirm::Yes,
    };
    let bulk = Bulk {
        op: change.op,
        what: "table processing_jobs".into(),
        unit: "jobs",
        count: planned as u64,
        total: total as u64,
        matched_nothing: None,
    };
    budget::check(target, &change, &bulk, req.max_delete)?;
    let mut purged = Purged {
        dry_run: false,
        statuses: req.statuses.clone(),
        older_than,
        deleted: 0,
        batches: 0,
        sample_ids: Vec::new(),
        ids_file: None,
    };
    if !proceed(target, &change)? {
        purged.dry_run = true;
        purged.deleted = planned;
        purged.sample_ids = sqlx::query_scalar::<_, i32>(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM processing_jobs WHERE {predicate} ORDER BY id LIMIT 100"
        )))
        .bind(&req.statuses)
        .bind(secs)
        .fetch_all(pool)
        .await
        .map_err(target.pg_err())?
        .into_iter()
        .map(i64::from)
        .collect();
        return Ok(purged);
    }
    if planned == 0 {
        return Ok(purged);
    }
    let mut ids_file = IdFile::create(&target.settings, change.op, "table processing_jobs")?;
    purged.ids_file = Some(ids_file.path.display().to_string());
    // Each batch locks only the rows it deletes (a worker's row stays free: SKIP LOCKED), and
    // the whole run deletes no more than was counted and confirmed. The batch is a
    // MATERIALIZED CTE: as an `id IN (… LIMIT n FOR UPDATE SKIP LOCKED)` subquery the planner
    // may rescan it, each rescan skipping the rows just deleted, and one statement took all
    // 2,500 rows of a 1,000-row batch (tests/retention.rs).
    let delete = format!(
        "WITH batch AS MATERIALIZED (
             SELECT id FROM processing_jobs WHERE {predicate}
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
         DELETE FROM processing_jobs p USING batch
         WHERE p.id = batch.id
         RETURNING p.id"
    );
    while purged.deleted < planned {
        let limit = req.batch_size.min(planned - purged.deleted);
        let mut ids: Vec<i64> = sqlx::query_scalar::<_, i32>(sqlx::AssertSqlSafe(delete.clone()))
            .bind(&req.statuses)
            .bind(secs)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(target.pg_err())?
            .into_iter()
            .map(i64::from)
            .collect();
        ids.sort_unstable();
        purged.batches += 1;
        ids_file.write(ids.iter().map(ToString::to_string))?;
        let room = 100usize.saturating_sub(purged.sample_ids.len());
        purged.sample_ids.extend(ids.iter().take(room));
        purged.deleted += ids.len() as i64;
        if (ids.len() as i64) < limit {
            break;
        }
    }
    change.count = purged.deleted;
    done(
        target,
        &change,
        &format!(
            "{} jobs deleted in {} batches; ids in {}",
            purged.deleted,
            purged.batches,
            ids_file.path.display()
        ),
    );
    Ok(purged)
}

static PURGE: Spec = Spec {
    module: "jobs",
    name: "purge",
    params: &[],
    options: &[
        Opt::new(
            "status",
            Kind::Strings,
            Default::Value("failed"),
            "the statuses purged: failed, completed or both",
        ),
        Opt::new(
            "older_than",
            Kind::Duration,
            Default::Setting(key::JOBS_PURGE_AFTER.name()),
            "last activity at least this long ago",
        ),
        Opt::new(
            "batch_size",
            Kind::Int,
            Default::Value("1000"),
            "jobs deleted per statement (each a short lock)",
        ),
        MAX_DELETE,
    ],
    returns: "Map",
    doc: "Deletes finished jobs (failed by default, completed when asked) whose last activity is \
          older than older_than, in batches of batch_size, each a short statement that skips rows \
          a worker holds. Asks for confirmation (--yes answers it); stays within the deletion \
          budget (max_delete lifts it); writes the deleted ids to a 0600 file. Returns deleted, \
          batches, sample_ids, ids_file, statuses, older_than, dry_run; with --dry-run nothing \
          changes and deleted says how many would go.",
    examples: &[
        Example::new(
            r#"let p = jobs::purge(#{older_than: "1d"}); [p.deleted, p.sample_ids, jobs::counts().by_status.failed]"#,
            "[1, [8], 0]",
        ),
        Example::new(
            r#"let p = jobs::purge(#{status: ["failed", "completed"], older_than: "12h", batch_size: 2}); [p.deleted, p.batches, p.sample_ids]"#,
            "[3, 2, [6, 7, 8]]",
        ),
    ],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&PURGE, |c| {
        let req = Purge {
            statuses: c.opt_strings("status")?.unwrap_or_default(),
            older_than: c.duration("older_than")?,
            batch_size: c.int("batch_size")?,
            max_delete: budget::max_delete(c.opt_int("max_delete")?)?,
        };
        c.block(purge(c.target, &req))
    });
}
