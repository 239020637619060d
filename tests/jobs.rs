//! The job queue against the real PostgreSQL: the reliability promises of jobs::reset_stuck and
//! the other operations, through the Rust API (the same code the Rhai functions call).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opsh::bridge::Bridge;
use opsh::config::{Overrides, Settings};
use opsh::ops::jobs::{self, Filter, ResetStuck};
use opsh::ops::{Flags, Target};
use support::{TestDb, seed_jobs};

fn target(db: &TestDb, flags: Flags) -> Target {
    let env = BTreeMap::from([("DATABASE_URL".to_string(), db.url.clone())]);
    let settings =
        Settings::load_from(&Overrides::default(), &env, std::path::Path::new("/")).unwrap();
    Target::new(
        settings,
        Bridge::new(tokio::runtime::Handle::current()),
        flags,
    )
}

fn reset(older_than: &str) -> ResetStuck {
    ResetStuck {
        older_than: opsh::duration::parse(older_than).unwrap(),
        max_retries: 3,
        reason: "test reset".into(),
        job_types: None,
    }
}

fn status_of(db: &TestDb, id: i64) -> String {
    db.scalar(&format!(
        "SELECT status || '/' || retry_count FROM processing_jobs WHERE id = {id}"
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn stuck_finds_processing_jobs_older_than_the_threshold_by_their_last_sign_of_life() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 120, 0),    // 1: stuck
            ("vectorize", "processing", 10, 0),     // 2: recent
            ("vectorize", "pending", 300, 0),       // 3: not processing
            ("process_audio", "processing", 90, 1), // 4: stuck
        ],
    );
    // 5: started long ago, but its updated_at (a heartbeat) is recent: alive
    db.exec("INSERT INTO processing_jobs (job_type, status, started_at, updated_at, created_at)
             VALUES ('vectorize', 'processing', LOCALTIMESTAMP - interval '5 hours', LOCALTIMESTAMP, LOCALTIMESTAMP - interval '6 hours')");
    let t = target(&db, Flags::default());
    let stuck = jobs::stuck(&t, Duration::from_secs(3600), None, 100)
        .await
        .unwrap();
    assert_eq!(
        stuck.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![1, 4],
        "oldest first"
    );
    assert!(stuck[0].age_seconds >= 7200 && stuck[0].age_seconds < 7300);
    let only_audio = jobs::stuck(
        &t,
        Duration::from_secs(3600),
        Some(vec!["process_audio".into()]),
        100,
    )
    .await
    .unwrap();
    assert_eq!(only_audio.iter().map(|j| j.id).collect::<Vec<_>>(), vec![4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_completes_between_stuck_and_reset_stuck_is_left_alone() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 120, 0),
            ("vectorize", "processing", 120, 0),
        ],
    );
    let t = target(&db, Flags::default());
    let seen = jobs::stuck(&t, Duration::from_secs(3600), None, 100)
        .await
        .unwrap();
    assert_eq!(seen.len(), 2);
    // The worker finishes job 1 after the operator looked.
    db.exec("UPDATE processing_jobs SET status = 'completed', completed_at = LOCALTIMESTAMP WHERE id = 1");
    let result = jobs::reset_stuck(&t, &reset("1h")).await.unwrap();
    assert_eq!(result.ids, vec![2]);
    assert_eq!(status_of(&db, 1), "completed/0");
    assert_eq!(status_of(&db, 2), "pending/1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_completes_while_reset_stuck_waits_for_its_lock_is_left_alone() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 120, 0),
            ("vectorize", "processing", 120, 0),
        ],
    );
    // A worker holds job 1's row lock while it marks the job completed.
    let worker = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut tx = worker.begin().await.unwrap();
    sqlx::query(
        "UPDATE processing_jobs SET status = 'completed', updated_at = LOCALTIMESTAMP WHERE id = 1",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let t = target(&db, Flags::default());
    let request = reset("1h");
    let started = std::time::Instant::now();
    let resetting = async {
        let r = jobs::reset_stuck(&t, &request).await;
        (r, started.elapsed())
    };
    let commit_later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.commit().await.unwrap();
    };
    let ((result, took), ()) = tokio::join!(resetting, commit_later);
    let result = result.unwrap();
    assert!(
        took >= Duration::from_millis(250),
        "the reset did not wait for the worker's lock ({took:?})"
    );
    // The UPDATE waited for the worker, re-checked its predicate on the committed row, skipped it.
    assert_eq!(result.ids, vec![2]);
    assert_eq!(status_of(&db, 1), "completed/0");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_racing_resets_never_reset_a_job_twice() {
    let db = TestDb::new();
    db.exec(
        "INSERT INTO processing_jobs (job_type, status, created_at, started_at, updated_at)
             SELECT 'vectorize', 'processing', LOCALTIMESTAMP - interval '3 hours',
                    LOCALTIMESTAMP - interval '2 hours', LOCALTIMESTAMP - interval '2 hours'
             FROM generate_series(1, 5000)",
    );
    let a = target(&db, Flags::default());
    let b = target(&db, Flags::default());
    let (ra, rb) = (reset("1h"), reset("1h"));
    let (first, second) = tokio::join!(jobs::reset_stuck(&a, &ra), jobs::reset_stuck(&b, &rb));
    let (first, second) = (first.unwrap(), second.unwrap());
    let one: BTreeSet<i64> = first.ids.iter().copied().collect();
    let two: BTreeSet<i64> = second.ids.iter().copied().collect();
    assert!(one.is_disjoint(&two), "a job was reset by both");
    assert_eq!(one.len() + two.len(), 5000);
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM processing_jobs WHERE retry_count = 1 AND status = 'pending'"
        ),
        "5000"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_count_rises_by_exactly_one_per_reset_and_max_retries_fails_the_job() {
    let db = TestDb::new();
    seed_jobs(&db, &[("vectorize", "processing", 120, 0)]);
    let t = target(&db, Flags::default());
    let make_stuck = "UPDATE processing_jobs SET status = 'processing',
        started_at = LOCALTIMESTAMP - interval '2 hours', updated_at = LOCALTIMESTAMP - interval '2 hours' WHERE id = 1";
    for expected in 1..=3 {
        let r = jobs::reset_stuck(&t, &reset("1h")).await.unwrap();
        assert_eq!((r.reset, r.failed), (1, 0));
        assert_eq!(status_of(&db, 1), format!("pending/{expected}"));
        assert_eq!(
            db.scalar("SELECT error_message FROM processing_jobs WHERE id = 1"),
            "test reset"
        );
        assert_eq!(
            db.scalar("SELECT started_at IS NULL FROM processing_jobs WHERE id = 1"),
            "true"
        );
        db.exec(make_stuck);
    }
    // retry_count is 3 = max_retries: a poison job stops looping.
    let r = jobs::reset_stuck(&t, &reset("1h")).await.unwrap();
    assert_eq!((r.reset, r.failed, r.failed_ids.clone()), (0, 1, vec![1]));
    assert_eq!(status_of(&db, 1), "failed/4");
    let again = jobs::reset_stuck(&t, &reset("1h")).await.unwrap();
    assert_eq!(
        (again.reset, again.failed),
        (0, 0),
        "a failed job is not stuck"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_reports_and_changes_nothing() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 120, 0),
            ("vectorize", "processing", 120, 3),
            ("vectorize", "failed", 120, 0),
        ],
    );
    let t = target(
        &db,
        Flags {
            dry_run: true,
            ..Flags::default()
        },
    );
    let r = jobs::reset_stuck(&t, &reset("1h")).await.unwrap();
    assert!(r.dry_run);
    assert_eq!((r.ids.clone(), r.failed_ids.clone()), (vec![1], vec![2]));
    let p = jobs::reset_processing(&t, "stop", None).await.unwrap();
    assert_eq!(p.ids, vec![1, 2]);
    let f = jobs::retry_failed(
        &t,
        &Filter {
            limit: 10,
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(f.ids, vec![3]);
    assert_eq!(
        db.scalar(
            "SELECT string_agg(status || '/' || retry_count, ',' ORDER BY id) FROM processing_jobs"
        ),
        "processing/0,processing/3,failed/0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_processing_puts_every_processing_job_back_without_counting_a_retry() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 1, 2),
            ("process_audio", "processing", 500, 0),
            ("vectorize", "completed", 5, 0),
        ],
    );
    let t = target(
        &db,
        Flags {
            yes: true,
            ..Flags::default()
        },
    );
    let only_audio =
        jobs::reset_processing(&t, "stopping audio", Some(vec!["process_audio".into()]))
            .await
            .unwrap();
    assert_eq!(only_audio.ids, vec![2]);
    let r = jobs::reset_processing(&t, "Service stopped during processing", None)
        .await
        .unwrap();
    assert_eq!(r.ids, vec![1]);
    assert_eq!(
        db.scalar(
            "SELECT string_agg(status || '/' || retry_count, ',' ORDER BY id) FROM processing_jobs"
        ),
        "pending/2,pending/0,completed/0"
    );
    assert_eq!(
        db.scalar("SELECT error_message FROM processing_jobs WHERE id = 1"),
        "Service stopped during processing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_idle_returns_when_the_last_job_finishes_or_reports_what_still_runs() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 1, 0),
            ("stt", "processing", 1, 0),
        ],
    );
    let t = target(&db, Flags::default());
    let timed_out = jobs::wait_idle(
        &t,
        Duration::from_millis(300),
        Duration::from_millis(50),
        None,
    )
    .await
    .unwrap();
    assert!(!timed_out.idle);
    assert_eq!(
        timed_out
            .still_running
            .iter()
            .map(|j| j.id)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );

    let finish = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sqlx::raw_sql("UPDATE processing_jobs SET status = 'completed'")
            .execute(&sqlx::PgPool::connect(&db.url).await.unwrap())
            .await
            .unwrap();
    };
    let (idle, ()) = tokio::join!(
        jobs::wait_idle(&t, Duration::from_secs(10), Duration::from_millis(50), None),
        finish
    );
    let idle = idle.unwrap();
    assert!(idle.idle && idle.still_running.is_empty());
    assert!(
        idle.waited_seconds >= 0.2 && idle.waited_seconds < 5.0,
        "{}",
        idle.waited_seconds
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_failed_takes_the_oldest_failures_up_to_the_limit() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "failed", 30, 1),
            ("vectorize", "failed", 300, 1),
            ("process_audio", "failed", 600, 1),
            ("vectorize", "failed", 200, 1),
        ],
    );
    let t = target(
        &db,
        Flags {
            yes: true,
            ..Flags::default()
        },
    );
    let r = jobs::retry_failed(
        &t,
        &Filter {
            job_types: Some(vec!["vectorize".into()]),
            limit: 2,
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.ids, vec![2, 4]);
    let r = jobs::retry_failed(
        &t,
        &Filter {
            older_than: Some(Duration::from_secs(3600)),
            limit: 10,
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.ids, vec![3]);
    assert_eq!(
        db.scalar("SELECT string_agg(status, ',' ORDER BY id) FROM processing_jobs"),
        "failed,pending,pending,pending"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_by_status_and_by_type() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 1, 0),
            ("vectorize", "completed", 1, 0),
            ("vectorize", "completed", 1, 0),
            ("extract_transcript", "failed", 1, 0),
        ],
    );
    let t = target(&db, Flags::default());
    let c = jobs::counts(&t).await.unwrap();
    assert_eq!(c.total, 4);
    assert_eq!(
        serde_json::to_value(&c.by_status).unwrap(),
        serde_json::json!({"completed": 2, "failed": 1, "pending": 0, "processing": 1})
    );
    assert_eq!(
        serde_json::to_value(&c.by_type).unwrap(),
        serde_json::json!({
            "extract_transcript": {"completed": 0, "failed": 1, "pending": 0, "processing": 0},
            "vectorize": {"completed": 2, "failed": 0, "pending": 0, "processing": 1}
        })
    );
}
