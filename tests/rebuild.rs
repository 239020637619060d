//! Rebuilding what is missing (issue 23, point 3): integrity::requeue on the deployment's own
//! schema, check-data-fix queueing content whose vectors are missing instead of leaving it, and
//! the transcript_available flag checked both ways and set from the transcripts rows.

#[path = "support/seed.rs"]
mod seed;
mod support;

use serde_json::{Value, json};
use support::{Opsh, TestDb};

const BASE_SQL: &str = include_str!("fixtures/examples.sql");
const QDRANT_SQL: &str = include_str!("fixtures/examples-qdrant.sql");
const QDRANT_POINTS: &str = include_str!("fixtures/examples-qdrant.json");

struct Env {
    db: TestDb,
    qdrant: qdrant_double::Running,
}

/// The integrity fixtures (see examples-qdrant.sql): content 3 is vector_stored with no chunks.
fn setup() -> Env {
    let db = TestDb::new();
    db.exec(BASE_SQL);
    db.exec(QDRANT_SQL);
    let qdrant =
        qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).expect("double");
    let points: Value = serde_json::from_str(QDRANT_POINTS).unwrap();
    seed::seed(&qdrant.grpc_url(), &points);
    Env { db, qdrant }
}

impl Env {
    fn opsh(&self) -> Opsh {
        Opsh::new()
            .db(&self.db)
            .env("QDRANT_URL", &self.qdrant.grpc_url())
            .env("OPSH_QDRANT_REST_URL", &self.qdrant.rest_url())
    }
}

/// The deployment's schema: content 1 has a pending vectorize job, content 2 a failed one,
/// content 3 a processing one of another type.
fn deployment() -> TestDb {
    let db = TestDb::deployment();
    db.exec(
        "INSERT INTO content (id, channel_id, external_id, title, vector_stored)
         VALUES (1, 1, 'a', 'A', true), (2, 1, 'b', 'B', true), (3, 1, 'c', 'C', false);
         INSERT INTO processing_jobs (job_type, content_id, status)
         VALUES ('vectorize', 1, 'pending'), ('vectorize', 2, 'failed'), ('process_audio', 3, 'processing');",
    );
    db
}

fn jobs(db: &TestDb) -> Vec<String> {
    db.lines(
        "SELECT job_type || ' ' || content_id || ' ' || status FROM processing_jobs ORDER BY id",
    )
}

#[test]
fn requeue_marks_items_and_queues_one_job_unless_one_is_pending_or_processing() {
    let db = deployment();
    let run = Opsh::new()
        .db(&db)
        .args([
            "--json",
            "--yes",
            "-e",
            "let q = integrity::requeue([3, 2, 1, 99, 2]); [q.content_ids, q.queued, q.already_queued, q.unknown, q.job_type]",
        ])
        .run();
    run.code(0);
    assert_eq!(
        run.json(),
        json!([[1, 2, 3], [2, 3], [1], [99], "vectorize"])
    );
    assert_eq!(
        jobs(&db),
        [
            "vectorize 1 pending",
            "vectorize 2 failed",
            "process_audio 3 processing",
            "vectorize 2 pending",
            "vectorize 3 pending"
        ]
    );
    assert_eq!(
        db.lines("SELECT id || ' ' || vector_stored FROM content ORDER BY id"),
        ["1 false", "2 false", "3 false"]
    );
    // Run again: every item has its pending job now, nothing is added.
    let again = Opsh::new()
        .db(&db)
        .args([
            "--json",
            "--yes",
            "-e",
            "integrity::requeue([1, 2, 3]).queued",
        ])
        .run();
    again.code(0);
    assert_eq!(again.json(), json!([]));
    assert_eq!(jobs(&db).len(), 5);
}

#[test]
fn requeue_takes_its_job_type_from_the_option_or_the_setting() {
    let db = deployment();
    let run = Opsh::new()
        .db(&db)
        .env("OPSH_JOBS_REQUEUE_TYPE", "extract_transcript")
        .args(["--json", "--yes", "-e", "integrity::requeue([1]).queued"])
        .run();
    run.code(0);
    assert_eq!(run.json(), json!([1]));
    assert_eq!(jobs(&db)[3], "extract_transcript 1 pending");
    let run = Opsh::new()
        .db(&db)
        .args([
            "--json",
            "--yes",
            "-e",
            r#"integrity::requeue([1], #{job_type: "process_audio"}).queued"#,
        ])
        .run();
    run.code(0);
    assert_eq!(run.json(), json!([1]));
    assert_eq!(jobs(&db)[4], "process_audio 1 pending");
}

#[test]
fn requeue_under_dry_run_or_without_confirmation_changes_nothing() {
    let db = deployment();
    let dry = Opsh::new()
        .db(&db)
        .args([
            "--json",
            "--dry-run",
            "-e",
            "let q = integrity::requeue([1, 2]); [q.dry_run, q.content_ids, q.queued]",
        ])
        .run();
    dry.code(0);
    assert_eq!(dry.json(), json!([true, [1, 2], [2]]));
    let refused = Opsh::new()
        .db(&db)
        .args(["-e", "integrity::requeue([1, 2])"])
        .run();
    refused.code(3);
    assert!(
        refused
            .stderr
            .contains("needs confirmation and there is no terminal"),
        "{}",
        refused.stderr
    );
    assert_eq!(jobs(&db).len(), 3);
    assert_eq!(
        db.scalar("SELECT count(*) FROM content WHERE vector_stored"),
        "2"
    );
}

#[test]
fn check_data_fix_queues_content_missing_its_vectors_and_the_after_check_is_clean_of_it() {
    let env = setup();
    let dry = env
        .opsh()
        .args(["--json", "--dry-run", "check-data-fix", "grace=0s"])
        .run();
    assert_eq!(
        dry.report()["data"]["requeued"],
        json!({"dry_run": true, "job_type": "vectorize", "content_ids": [3], "queued": [3], "already_queued": [], "unknown": []})
    );
    assert_eq!(
        env.db
            .scalar("SELECT count(*) FROM processing_jobs WHERE content_id = 3"),
        "0"
    );
    let run = env
        .opsh()
        .args(["--yes", "check-data-fix", "grace=0s"])
        .run();
    assert!(
        run.stdout.contains(
            "\n✅ vectorize again: 1 content item missing its vectors was queued for vectorize (1 new job, 0 already queued)\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\n✅ after: vector_stored content: every one has its vectors\n"),
        "{}",
        run.stdout
    );
    assert_eq!(
        env.db.lines(
            "SELECT vector_stored || ' ' || (SELECT string_agg(job_type || ' ' || status, ',') FROM processing_jobs WHERE content_id = 3) FROM content WHERE id = 3"
        ),
        ["false vectorize pending"]
    );
}

#[test]
fn transcript_flags_are_reported_both_ways_and_fixed_from_the_rows() {
    let env = setup();
    // Content 1 says it has a transcript and has none; content 2 has rows but no flag.
    env.db.exec(
        "UPDATE content SET transcript_available = true WHERE id = 1;
         UPDATE content SET transcript_available = NULL WHERE id = 3;
         INSERT INTO transcripts (content_id, text, segment_order) VALUES (2, 'hello', 0), (2, 'again', 1);",
    );
    let check = env.opsh().args(["check-data"]).run();
    check.code(1);
    assert!(
        check.stdout.contains(
            "\n⚠️ transcript flags: 1 flagged transcript_available without transcripts, 1 with transcripts not flagged\n"
        ),
        "{}",
        check.stdout
    );
    let json = env.opsh().args(["--json", "check-data"]).run().report();
    assert_eq!(
        json["data"]["transcript_flags"],
        json!({"checked": true, "flagged_without_rows": 1, "rows_without_flag": 1,
               "sample_flagged_without_rows": [1], "sample_rows_without_flag": [2]})
    );
    let fix = env
        .opsh()
        .args(["--yes", "check-data-fix", "grace=0s"])
        .run();
    assert!(
        fix.stdout.contains(
            "\n✅ transcript flags: 1 were set, 1 cleared to match the transcripts rows\n"
        ),
        "{}",
        fix.stdout
    );
    assert!(
        !fix.stdout.contains("after: transcript flags"),
        "{}",
        fix.stdout
    );
    assert_eq!(
        env.db
            .lines("SELECT id || ' ' || COALESCE(transcript_available::text, 'NULL') FROM content ORDER BY id"),
        // NULL without rows is not a mismatch: it stays as it was.
        ["1 false", "2 true", "3 NULL"]
    );
}
