//! Retention of finished jobs (jobs::purge, the purge-jobs procedure) against the real
//! PostgreSQL, on the deployment's own schema (no retry_count, no updated_at).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use opsh::bridge::Bridge;
use opsh::config::{Overrides, Settings};
use opsh::ops::error::ErrorKind;
use opsh::ops::purge::{Purge, purge};
use opsh::ops::{Flags, Target};
use support::{Opsh, TestDb};

fn target(db: &TestDb, home: &std::path::Path, flags: Flags) -> Target {
    let env = BTreeMap::from([
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("HOME".to_string(), home.display().to_string()),
    ]);
    let settings = Settings::load_from(&Overrides::default(), &env, home).unwrap();
    Target::new(
        settings,
        Bridge::new(tokio::runtime::Handle::current()),
        flags,
    )
}

fn yes() -> Flags {
    Flags {
        yes: true,
        ..Flags::default()
    }
}

/// Jobs on the deployment's schema: (status, days since they finished).
fn seed(db: &TestDb, jobs: &[(&str, i64)]) {
    let mut sql = String::new();
    for (status, days) in jobs {
        sql.push_str(&format!(
            "INSERT INTO processing_jobs (job_type, status, created_at, started_at, completed_at)
             VALUES ('vectorize', '{status}', LOCALTIMESTAMP - make_interval(days => {days}, hours => 1),
                     LOCALTIMESTAMP - make_interval(days => {days}, mins => 30),
                     CASE WHEN '{status}' IN ('failed', 'completed') THEN LOCALTIMESTAMP - make_interval(days => {days}) END);\n"
        ));
    }
    db.exec(&sql);
}

/// What opsh says on the deployment's unmigrated schema.
const NO_MIGRATION: &str = " WARN processing_jobs has no retry_count and no updated_at (the deployment's init.sql does not create them): retries are not counted, so max_retries cannot apply to stuck jobs, and updated_at reads as NULL; `opsh migrate` adds them\n";

fn ids(db: &TestDb) -> Vec<String> {
    db.lines("SELECT id || ' ' || status FROM processing_jobs ORDER BY id")
}

#[test]
fn purge_jobs_deletes_failed_jobs_older_than_7_days_and_keeps_the_rest() {
    let db = TestDb::deployment();
    seed(
        &db,
        &[
            ("failed", 8),     // 1: goes
            ("failed", 2),     // 2: too recent
            ("completed", 10), // 3: completed stays by default
            ("pending", 30),   // 4: never purged
            ("processing", 9), // 5: never purged
            ("failed", 40),    // 6: goes
        ],
    );
    let dry = Opsh::new().db(&db).args(["purge-jobs", "--dry-run"]).run();
    dry.expect(
        0,
        "Purge old jobs\n✅ purge: 2 failed jobs older than 7d would be deleted\n✅ dry run: nothing changed\nStatus: ✅ healthy\n",
        NO_MIGRATION,
    );
    assert_eq!(ids(&db).len(), 6, "a dry run changes nothing");

    let run = Opsh::new()
        .db(&db)
        .args(["--json", "--yes", "purge-jobs"])
        .run();
    run.code(0);
    let json = run.report();
    assert_eq!(json["data"]["deleted"], 2, "{json}");
    assert_eq!(json["data"]["sample_ids"], serde_json::json!([1, 6]));
    assert_eq!(
        ids(&db),
        ["2 failed", "3 completed", "4 pending", "5 processing"]
    );
}

#[test]
fn completed_true_also_purges_completed_jobs_and_the_ids_go_to_a_private_file() {
    let db = TestDb::deployment();
    seed(&db, &[("completed", 10), ("failed", 8), ("completed", 1)]);
    let opsh = Opsh::new()
        .db(&db)
        .args(["--yes", "purge-jobs", "completed=true", "older_than=7d"]);
    let run = opsh.run();
    run.code(0);
    assert!(
        run.stdout.starts_with(
            "Purge old jobs\n✅ purge: 2 failed and completed jobs older than 7d were deleted\n✅ deleted ids: "
        ),
        "{}",
        run.stdout
    );
    assert_eq!(ids(&db), ["3 completed"]);
    let file = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("✅ deleted ids: "))
        .expect("the ids file is named");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).expect("the ids file exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.ends_with("\n1\n2\n"), "{text}");
}

#[test]
fn without_a_terminal_or_yes_purge_jobs_refuses_and_deletes_nothing() {
    let db = TestDb::deployment();
    seed(&db, &[("failed", 8)]);
    let run = Opsh::new().db(&db).args(["purge-jobs"]).run();
    run.code(3);
    assert!(
        run.stderr
            .contains("needs confirmation and there is no terminal"),
        "{}",
        run.stderr
    );
    assert_eq!(ids(&db), ["1 failed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_purge_goes_in_batches_within_the_deletion_budget() {
    let db = TestDb::deployment();
    db.exec(
        "INSERT INTO processing_jobs (job_type, status, created_at, completed_at)
         SELECT 'vectorize', 'failed', LOCALTIMESTAMP - interval '9 days', LOCALTIMESTAMP - interval '8 days'
         FROM generate_series(1, 2500);
         INSERT INTO processing_jobs (job_type, status, created_at) VALUES ('vectorize', 'pending', LOCALTIMESTAMP);",
    );
    let home = tempfile::tempdir().unwrap();
    let t = target(&db, home.path(), yes());
    let mut req = Purge {
        statuses: vec!["failed".into()],
        older_than: Duration::from_secs(7 * 86_400),
        batch_size: 1000,
        max_delete: None,
    };
    let refused = purge(&t, &req).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::OverBudget);
    assert!(
        refused
            .cause
            .contains("2500 of the 2501 jobs of table processing_jobs"),
        "{}",
        refused.cause
    );
    assert_eq!(db.scalar("SELECT count(*) FROM processing_jobs"), "2501");

    req.max_delete = Some(2500);
    let done = purge(&t, &req).await.unwrap();
    assert_eq!((done.deleted, done.batches, done.dry_run), (2500, 3, false));
    assert_eq!(done.sample_ids.len(), 100);
    assert_eq!(db.lines("SELECT status FROM processing_jobs"), ["pending"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_a_worker_holds_is_skipped_not_waited_for() {
    let db = TestDb::deployment();
    seed(&db, &[("failed", 8), ("failed", 9), ("failed", 10)]);
    // Another session holds job 2 (as a worker updating it would).
    let holder = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM processing_jobs WHERE id = 2 FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&db, home.path(), yes());
    let req = Purge {
        statuses: vec!["failed".into()],
        older_than: Duration::from_secs(7 * 86_400),
        batch_size: 1000,
        max_delete: None,
    };
    let done = tokio::time::timeout(Duration::from_secs(30), purge(&t, &req))
        .await
        .expect("the purge does not wait for the held row")
        .unwrap();
    assert_eq!(done.deleted, 2);
    assert_eq!(done.sample_ids, vec![1, 3]);
    tx.rollback().await.unwrap();
    assert_eq!(ids(&db), ["2 failed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn live_statuses_cannot_be_purged() {
    let db = TestDb::deployment();
    seed(&db, &[("pending", 30)]);
    let home = tempfile::tempdir().unwrap();
    let t = target(&db, home.path(), yes());
    let req = Purge {
        statuses: vec!["failed".into(), "pending".into()],
        older_than: Duration::from_secs(86_400),
        batch_size: 10,
        max_delete: None,
    };
    let e = purge(&t, &req).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(
        e.cause,
        "option `status`: `pending` cannot be purged; only finished jobs are (failed, completed)"
    );
    assert_eq!(ids(&db), ["1 pending"]);
}
