//! The bundled procedures, run through the real binary against the real PostgreSQL.

mod support;

use support::{Opsh, TestDb, seed_jobs};

#[test]
fn check_jobs_is_healthy_on_a_quiet_queue() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "completed", 30, 0),
            ("vectorize", "pending", 1, 0),
        ],
    );
    Opsh::new().db(&db).args(["check-jobs"]).run().expect(
        0,
        "Job queue\n✅ database: connected\n✅ jobs: 2 in all: pending 1, processing 0, completed 1, failed 0\n\
✅ vectorize: pending 1, processing 0, completed 1, failed 0\n✅ oldest processing job: none processing\n\
✅ stuck jobs: none processing for more than 1 hour\nStatus: ✅ healthy\n",
        "",
    );
}

#[test]
fn check_jobs_warns_about_stuck_jobs_with_the_oldest_age() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 125, 0),
            ("process_audio", "processing", 5, 0),
            ("extract_transcript", "failed", 5, 3),
        ],
    );
    Opsh::new().db(&db).args(["check-jobs"]).run().expect(
        1,
        "Job queue\n✅ database: connected\n✅ jobs: 3 in all: pending 0, processing 2, completed 0, failed 1\n\
✅ extract_transcript: pending 0, processing 0, completed 0, failed 1\n\
✅ process_audio: pending 0, processing 1, completed 0, failed 0\n\
✅ vectorize: pending 0, processing 1, completed 0, failed 0\n\
✅ oldest processing job: job 1 (vectorize) for 2 hours 5 minutes\n⚠️ stuck jobs: 1 job processing for more than 1 hour\n\
Issues:\n  - 1 job stuck in processing; reset them with: opsh reset-stuck-jobs older_than=1h\nStatus: ⚠️ warning\n",
        "",
    );
    // The threshold is configured per procedure and can be overridden per run.
    Opsh::new()
        .db(&db)
        .args(["check-jobs", "older_than=3h"])
        .run()
        .code(0);
    Opsh::new()
        .db(&db)
        .env("OPSH_JOBS_STUCK_AFTER_CHECK_JOBS", "1m")
        .args(["check-jobs"])
        .run()
        .code(1);
    let json = Opsh::new()
        .db(&db)
        .args(["--json", "check-jobs", "older_than=1m"])
        .run();
    json.code(1);
    let doc = json.report();
    assert_eq!(doc["data"]["sample_stuck_ids"], serde_json::json!([1, 2]));
    assert_eq!(doc["data"]["stuck"], 2);
    assert_eq!(doc["data"]["counts"]["by_status"]["processing"], 2);
}

#[test]
fn check_jobs_is_critical_when_postgresql_is_unreachable() {
    Opsh::new()
        .env("DATABASE_URL", "postgres://youtube_user:hunter2@127.0.0.1:1/youtube_agent")
        .args(["check-jobs"])
        .run()
        .expect(
            2,
            "Job queue\n❌ database: jobs::counts: postgres at postgres://youtube_user:***@127.0.0.1:1/youtube_agent (postgres.url, from DATABASE_URL): connection refused\nStatus: ❌ critical\n",
            "",
        );
}

#[test]
fn reset_stuck_jobs_dry_run_lists_and_changes_nothing() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 125, 1),
            ("vectorize", "processing", 5, 0),
        ],
    );
    Opsh::new().db(&db).args(["reset-stuck-jobs", "--dry-run"]).run().expect(
        0,
        "Reset stuck jobs\n✅ reset: 1 job processing for more than 1 hour would be pending again\n\
✅ dry run: nothing changed\nStatus: ✅ healthy\n",
        "",
    );
    // The dry run is reset_stuck's own: a job at max_retries is reported as going to failed,
    // and max_retries= is honoured.
    let doc = Opsh::new()
        .db(&db)
        .args(["--json", "reset-stuck-jobs", "--dry-run", "max_retries=1"])
        .run()
        .code(1)
        .report();
    assert_eq!(
        (doc["data"]["reset"].clone(), doc["data"]["failed"].clone()),
        (0.into(), 1.into())
    );
    assert_eq!(doc["data"]["sample_failed_ids"], serde_json::json!([1]));
    assert_eq!(
        db.scalar("SELECT string_agg(status, ',' ORDER BY id) FROM processing_jobs"),
        "processing,processing"
    );
}

#[test]
fn reset_stuck_jobs_resets_and_fails_poison_jobs() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 125, 0),
            ("vectorize", "processing", 125, 3),
            ("vectorize", "processing", 5, 0),
        ],
    );
    Opsh::new().db(&db).args(["reset-stuck-jobs"]).run().expect(
        1,
        "Reset stuck jobs\n✅ reset: 1 job processing for more than 1 hour is pending again\n\
⚠️ max retries: 1 job reached max_retries (3) and is marked failed\n\
Issues:\n  - jobs keep getting stuck (e.g. 2); look at them with jobs::list(#{status: \"failed\"})\nStatus: ⚠️ warning\n",
        " INFO reset 1 stuck job to pending, 1 to failed\n",
    );
    assert_eq!(
        db.scalar(
            "SELECT string_agg(status || '/' || retry_count, ',' ORDER BY id) FROM processing_jobs"
        ),
        "pending/1,failed/4,processing/0"
    );
    assert_eq!(
        db.scalar("SELECT error_message FROM processing_jobs WHERE id = 1"),
        "reset by opsh reset-stuck-jobs: processing for more than 1 hour"
    );
    // ARGS override the threshold and max_retries.
    Opsh::new()
        .db(&db)
        .args(["-q", "reset-stuck-jobs", "older_than=1m", "max_retries=0"])
        .run()
        .code(1);
    assert_eq!(
        db.scalar("SELECT status FROM processing_jobs WHERE id = 3"),
        "failed"
    );
}

#[test]
fn db_stats_shows_sizes_and_what_the_schema_lacks() {
    let db = TestDb::new();
    let run = Opsh::new().db(&db).args(["db-stats", "exact=true"]).run();
    run.code(0);
    assert!(
        run.stdout
            .starts_with(&format!("Database statistics\n✅ database: {}: ", db.name)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("✅ processing_jobs: "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(", 0 rows\n"), "{}", run.stdout);
    db.exec("DROP INDEX idx_processing_jobs_stuck");
    let run = Opsh::new().db(&db).args(["db-stats"]).run();
    run.code(1);
    assert!(
        run.stdout
            .contains("⚠️ missing index: idx_processing_jobs_stuck: run `opsh migrate`\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn db_shell_runs_psql_on_the_configured_database() {
    let db = TestDb::new();
    let run = Opsh::new()
        .db(&db)
        .args(["db-shell"])
        .stdin("SELECT 40 + 2 AS answer;\n")
        .run();
    run.code(0);
    assert!(
        run.stdout.contains("answer \n--------\n     42\n(1 row)"),
        "{}",
        run.stdout
    );
    // psql's exit code is the procedure's
    Opsh::new()
        .db(&db)
        .args(["db-shell"])
        .stdin("\\set ON_ERROR_STOP on\nSELECT nonsense;\n")
        .run()
        .code(3);
}

#[test]
fn db_shell_passes_the_password_in_the_environment_never_on_the_command_line() {
    // A stand-in psql records how it was called.
    let opsh = Opsh::new()
        .stand_in(
            "psql",
            "#!/bin/sh\necho \"args: $*\"\necho \"PGPASSWORD=$PGPASSWORD\"\nexit 0\n",
        )
        .env(
            "DATABASE_URL",
            "postgres://youtube_user:p%40ss@db.example:5433/youtube_agent",
        );
    opsh.args(["db-shell"]).run().expect(
        0,
        "args: --host db.example --port 5433 --username youtube_user --dbname youtube_agent\nPGPASSWORD=p@ss\n",
        "",
    );
}

#[test]
fn exit_in_the_repl_ends_it_with_that_code() {
    Opsh::new()
        .stdin("1 + 1\nexit(2)\n\"never\"\n")
        .run()
        .expect(2, "2\n", "");
}

#[test]
fn the_repl_keeps_variables_and_functions_and_piped_input_stops_at_an_error() {
    Opsh::new()
        .stdin("let x = 2;\nfn twice(n) { n * 2 }\ntwice(x) * 10 + 2\nno_such_variable\n\"never\"\n")
        .run()
        .expect(
            3,
            "42\n",
            "opsh: error: syntax error: Undefined variable: no_such_variable\n  --> <repl>:1:1\n   |\n 1 | no_such_variable\n   | ^\n",
        );
}

#[test]
fn ctrl_c_inside_db_shell_belongs_to_psql_not_to_the_script() {
    use std::io::{BufRead, BufReader, Read};
    // A stand-in psql that takes a moment; Ctrl-C while it runs must not end opsh's script.
    let opsh = Opsh::new()
        .stand_in("psql", "#!/bin/sh\necho started\nsleep 1\necho done\n")
        .env("DATABASE_URL", "postgres://u:p@127.0.0.1:1/db")
        .args(["db-shell"]);
    let mut child = opsh.spawn();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "done\n");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// reset_processing and retry_failed change data only when confirmed: without a terminal and
/// without --yes they refuse (exit 3) and change nothing; --dry-run reports the plan.
#[test]
fn unconfirmed_job_changes_are_refused_and_change_nothing() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 5, 0),
            ("vectorize", "failed", 5, 1),
        ],
    );
    for (code, what) in [
        (
            "jobs::reset_processing()",
            "reset 1 processing job to pending",
        ),
        ("jobs::retry_failed()", "put 1 failed job back to pending"),
    ] {
        let op = code.trim_end_matches("()");
        Opsh::new().db(&db).args(["-e", code]).run().expect(
            3,
            "",
            &format!("opsh: error: refused: {op}: `{op}: {what}?` needs confirmation and there is no terminal to ask on; pass --yes to confirm unattended, or --dry-run to see what it would change\n"),
        );
        let plan = Opsh::new()
            .db(&db)
            .args(["--json", "--dry-run", "-e", code])
            .run()
            .code(0)
            .json();
        assert_eq!(plan["dry_run"], true, "{code}");
    }
    assert_eq!(
        db.scalar("SELECT string_agg(status, ',' ORDER BY id) FROM processing_jobs"),
        "processing,failed"
    );
}
