//! The deletion budget of every bulk delete (rsync's --max-delete): a run that would delete more
//! than the allowed number or share of a collection, table or Redis db — or delete anything by
//! a comparison that matched nothing while both sides hold data — changes nothing and fails with
//! kind `over_budget`, naming the numbers, the likely causes and `max_delete=N`, the only way
//! past it. `--yes` answers a confirmation, never this: an unattended run stays within it.
//!
//! And a way back: before a delete of more than `delete.snapshot_above` points a Qdrant
//! snapshot of the collection is taken, and every bulk delete writes the ids it deleted to a
//! 0600 file in `delete.ids_dir` (kept `delete.ids_keep`); both are named in the audit record.

use crate::config::key;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::Settings;
use crate::ops::Target;
use crate::ops::destructive::Change;
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::spec::{Default, Kind, Opt};

/// A bulk delete about to be made, as its budget sees it.
pub struct Bulk<'a> {
    /// The function deciding it (`integrity::fix`).
    pub op: &'a str,
    /// What it deletes from, in words: "collection youtube_content", "redis db 0".
    pub what: String,
    /// What it deletes: "points", "keys".
    pub unit: &'a str,
    /// How many it would delete.
    pub count: u64,
    /// How many the collection, table or db holds.
    pub total: u64,
    /// A comparison behind it that matched nothing while both sides hold data: (rows, points).
    pub matched_nothing: Option<(u64, u64)>,
}

/// How many of `total` a run may delete without `max_delete`: the larger of delete.max_count
/// and delete.max_percent of the total.
pub fn allowed(settings: &Settings, total: u64) -> u64 {
    let floor = u64::try_from(settings.int(key::DELETE_MAX_COUNT)).unwrap_or(0);
    let percent = u64::try_from(settings.int(key::DELETE_MAX_PERCENT)).unwrap_or(0);
    floor.max(total.saturating_mul(percent) / 100)
}

/// Why this delete is over its budget, in words, or None when it may go.
pub fn over(settings: &Settings, bulk: &Bulk, max_delete: Option<u64>) -> Option<String> {
    if bulk.count == 0 {
        return None;
    }
    let Bulk {
        what, unit, count, ..
    } = bulk;
    if let Some(max) = max_delete {
        return (*count > max).then(|| {
            format!("{count} {unit} of {what} would be deleted, more than max_delete={max} allows")
        });
    }
    let mut why = Vec::new();
    let limit = allowed(settings, bulk.total);
    if *count > limit {
        why.push(format!(
            "{count} of the {} {unit} of {what} would be deleted, more than the {limit} allowed (the larger of delete.max_count {} and delete.max_percent {}% of {})",
            bulk.total,
            settings.int(key::DELETE_MAX_COUNT),
            settings.int(key::DELETE_MAX_PERCENT),
            bulk.total
        ));
    }
    if let Some((rows, points)) = bulk.matched_nothing {
        why.push(format!(
            "the comparison matched nothing while both sides hold data ({rows} rows, {points} points, 0 matched), and {count} {unit} of {what} would be deleted"
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The refusal of an over-budget delete: the reasons, the likely causes and how to go on.
pub fn refusal(op: &str, reasons: &[String], needed: u64) -> OpError {
    OpError::new(
        ErrorKind::OverBudget,
        None,
        format!(
            "refused, nothing was deleted: {}. Likely causes: opsh points at the wrong database or collection (DATABASE_URL / postgres.url, qdrant.url, the collection names), or a restore or a re-index is in progress; compare with `opsh check-data`. If the deletion is meant, run it again with max_delete={needed} (the procedure's argument, or {op}'s option #{{max_delete: {needed}}}); --yes alone never lifts this limit",
            reasons.join("; ")
        ),
    )
}

/// Checks one delete against its budget; on refusal the audit records it (nothing changed).
pub fn check(
    target: &Target,
    change: &Change,
    bulk: &Bulk,
    max_delete: Option<u64>,
) -> Result<(), OpError> {
    match over(&target.settings, bulk, max_delete) {
        None => Ok(()),
        Some(why) => Err(refused(target, change, &[why], bulk.count)),
    }
}

/// Records the refusal in the audit and returns its error.
pub fn refused(target: &Target, change: &Change, reasons: &[String], needed: u64) -> OpError {
    let error = refusal(change.op, reasons, needed);
    target
        .audit
        .record(target, change, target.flags.dry_run, &error.cause);
    error
}

/// The deletion budget's explicit lift, in the spec of every bulk delete.
pub const MAX_DELETE: Opt = Opt::new(
    "max_delete",
    Kind::Int,
    Default::None,
    "delete up to this many (per collection or db), past the deletion budget of settings delete.*; --yes never lifts that budget",
);

/// `max_delete` as given to a function: a count of at least 0.
pub fn max_delete(given: Option<i64>) -> Result<Option<u64>, OpError> {
    given
        .map(|n| {
            u64::try_from(n)
                .map_err(|_| OpError::invalid(format!("option `max_delete`: {n} is negative")))
        })
        .transpose()
}

/// A snapshot taken before a delete: where it is, for the audit and the report.
#[derive(Debug, Clone, Serialize)]
pub struct Taken {
    pub collection: String,
    pub name: String,
    /// The Qdrant server holding it (redacted address).
    pub server: String,
}

impl Taken {
    pub fn words(&self) -> String {
        format!(
            "snapshot {} of {} on {} (restore: qdrant::download_snapshot, then backup::restore_qdrant)",
            self.name, self.collection, self.server
        )
    }
}

/// The file a bulk delete writes its deleted ids to, one a line, as they go.
pub struct IdFile {
    pub path: PathBuf,
    file: std::fs::File,
}

impl IdFile {
    /// Makes a new 0600 file in delete.ids_dir (0700), first removing the files there older
    /// than delete.ids_keep.
    pub fn create(settings: &Settings, op: &str, what: &str) -> Result<IdFile, OpError> {
        let dir = settings.path(key::DELETE_IDS_DIR);
        let err = |e: std::io::Error| {
            OpError::new(
                ErrorKind::Failed,
                None,
                format!(
                    "nothing was deleted: cannot write the deleted ids to {} ({e}); set delete.ids_dir to a writable directory",
                    dir.display()
                ),
            )
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        prune(&dir, settings.duration(key::DELETE_IDS_KEEP));
        let slug: String = format!("{op}-{what}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = dir.join(format!(
            "{}-{slug}-{}.ids",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        writeln!(file, "# {op}: ids deleted from {what}, one a line").map_err(err)?;
        Ok(IdFile { path, file })
    }

    /// Appends ids that were just deleted (written through, so a crash keeps what went).
    pub fn write<I: IntoIterator<Item = S>, S: AsRef<str>>(
        &mut self,
        ids: I,
    ) -> Result<(), OpError> {
        let mut text = String::new();
        for id in ids {
            text.push_str(id.as_ref());
            text.push('\n');
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| {
                OpError::new(
                    ErrorKind::Failed,
                    None,
                    format!(
                        "cannot write the deleted ids to {}: {e}",
                        self.path.display()
                    ),
                )
            })
    }
}

/// Removes the id files older than `keep`; one that cannot be removed is left for later.
fn prune(dir: &Path, keep: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "ids") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > keep);
        if old && let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!("cannot remove the old id file {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults, plus OPSH_… variables, read in an empty folder.
    fn settings_with(vars: &[(&str, &str)]) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let mut env: std::collections::BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("HOME".into(), dir.path().display().to_string());
        Settings::load_from(&crate::config::Overrides::default(), &env, dir.path())
            .expect("defaults")
    }

    fn settings() -> Settings {
        settings_with(&[])
    }

    fn bulk(count: u64, total: u64, matched_nothing: Option<(u64, u64)>) -> Bulk<'static> {
        Bulk {
            op: "integrity::fix",
            what: "collection c".into(),
            unit: "points",
            count,
            total,
            matched_nothing,
        }
    }

    #[test]
    fn the_default_budget_is_the_larger_of_1000_and_1_percent() {
        let s = settings();
        assert_eq!(allowed(&s, 10_000), 1000);
        assert_eq!(allowed(&s, 1_000_000), 10_000);
        assert_eq!(over(&s, &bulk(1000, 10_000, None), None), None);
        let why = over(&s, &bulk(1001, 10_000, None), None).unwrap();
        assert!(why.contains("1001 of the 10000 points"), "{why}");
        assert!(why.contains("1000 allowed"), "{why}");
    }

    #[test]
    fn matched_nothing_refuses_even_a_few_and_max_delete_lifts_both() {
        let s = settings();
        let b = bulk(3, 3, Some((20, 3)));
        assert!(over(&s, &b, None).unwrap().contains("matched nothing"));
        assert_eq!(over(&s, &b, Some(3)), None);
        assert!(over(&s, &bulk(10_000, 10_000, None), Some(9_999)).is_some());
        assert_eq!(over(&s, &bulk(0, 10, Some((1, 1))), None), None);
    }

    #[test]
    fn the_refusal_names_max_delete_and_the_likely_causes() {
        let e = refusal("integrity::fix", &["x".into()], 10_000);
        assert_eq!(e.kind, ErrorKind::OverBudget);
        for part in ["max_delete=10000", "wrong database", "--yes alone never"] {
            assert!(e.cause.contains(part), "{part}: {}", e.cause);
        }
    }

    #[test]
    fn id_files_are_private_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.ids");
        std::fs::write(&old, "1\n").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(40 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let ids = dir.path().join("ids").display().to_string();
        let s = settings_with(&[("OPSH_DELETE_IDS_DIR", &ids)]);
        let mut f = IdFile::create(&s, "qdrant::delete", "collection c").unwrap();
        f.write(["1", "2"]).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.path), 0o600);
        assert_eq!(mode(f.path.parent().unwrap()), 0o700);
        let text = std::fs::read_to_string(&f.path).unwrap();
        assert!(text.ends_with("\n1\n2\n"), "{text}");
        // Pruning looks in the ids dir only.
        prune(dir.path(), Duration::from_secs(30 * 86_400));
        assert!(!old.exists());
    }
}
