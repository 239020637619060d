//! How a run is rendered for its reader: the JSON envelope, a Nagios plugin's output, status
//! words where no terminal reads, and errors with one prefix. (Prometheus: tests/metrics.rs.)

mod support;

use pretty_assertions::assert_eq;
use support::{Opsh, TestDb, seed_jobs};

const DOWN: &str = "postgres://youtube_user:hunter2@127.0.0.1:1/youtube_agent";

/// The whole first line of check-jobs' plugin output for these jobs: every type and status.
fn stuck_queue() -> TestDb {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 125, 0),
            ("process_audio", "pending", 5, 0),
        ],
    );
    db
}

#[test]
fn nagios_output_is_state_summary_and_performance_data_then_the_report() {
    let db = stuck_queue();
    let run = Opsh::new()
        .db(&db)
        .args(["check-jobs", "--format", "nagios"])
        .run();
    let (first, long) = run.stdout.split_once('\n').unwrap();
    let (status, perf) = first.split_once(" | ").unwrap();
    assert_eq!(
        (run.code, status, run.stderr.as_str()),
        (
            1,
            "OPSH CHECK-JOBS WARNING - stuck jobs: 1 job processing for more than 1 hour",
            ""
        )
    );
    let perf: Vec<&str> = perf.split(' ').collect();
    for expected in [
        "jobs_pending_process_audio=1;;;",
        "jobs_processing_vectorize=1;;;",
        "jobs_failed_vectorize=0;;;",
        "jobs_stuck=1;;;",
    ] {
        assert!(perf.contains(&expected), "{expected} missing in {perf:?}");
    }
    let age = perf
        .iter()
        .find_map(|p| p.strip_prefix("oldest_processing_job_age_seconds="))
        .expect("the oldest job's age");
    assert!(age.ends_with("s;;;"), "{age}");
    // The long output: the report in words, never emoji (a plugin's output is no terminal).
    assert!(
        long.starts_with("Job queue\nOK database: connected\n"),
        "{long}"
    );
    assert!(
        long.contains("\nWARNING stuck jobs: 1 job processing for more than 1 hour\n")
            && long.ends_with("\nStatus: WARNING\n"),
        "{long}"
    );
}

#[test]
fn nagios_says_ok_with_the_count_of_checks_and_unknown_for_an_error() {
    let db = TestDb::new();
    let ok = Opsh::new()
        .db(&db)
        .args(["check-jobs", "--format", "nagios"])
        .run();
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stdout.starts_with(
            "OPSH CHECK-JOBS OK - Job queue: 4 checks ok | oldest_processing_job_age_seconds=0s;;; jobs_stuck=0;;;\nJob queue\nOK database: connected\n"
        ),
        "{}",
        ok.stdout
    );
    // A backend down is the report's critical check.
    Opsh::new()
        .env("DATABASE_URL", DOWN)
        .args(["check-jobs", "--format", "nagios"])
        .run()
        .expect(
            2,
            "OPSH CHECK-JOBS CRITICAL - database: jobs::counts: postgres at postgres://youtube_user:***@127.0.0.1:1/youtube_agent (postgres.url, from DATABASE_URL): connection refused\n\
Job queue\nCRITICAL database: jobs::counts: postgres at postgres://youtube_user:***@127.0.0.1:1/youtube_agent (postgres.url, from DATABASE_URL): connection refused\nStatus: CRITICAL\n",
            "",
        );
    // A run that cannot start is UNKNOWN on stdout (what Nagios shows) and exits 3.
    Opsh::new()
        .args(["check-job", "--format", "nagios"])
        .run()
        .expect(
            3,
            "OPSH CHECK-JOB UNKNOWN - unknown procedure `check-job`; did you mean `check-jobs` or `check-data`?\n\
unknown procedure `check-job`; did you mean `check-jobs` or `check-data`?\n",
            "opsh: error: unknown procedure `check-job`; did you mean `check-jobs` or `check-data`?\n",
        );
}

#[test]
fn json_is_one_envelope_around_the_report() {
    let db = stuck_queue();
    let before = chrono::Utc::now();
    let run = Opsh::new().db(&db).args(["check-jobs", "--json"]).run();
    assert_eq!((run.code, run.stderr.as_str()), (1, ""));
    let doc = run.json();
    let mut keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "duration_seconds",
            "exit_code",
            "opsh_version",
            "procedure",
            "report",
            "started_at",
            "status",
            "target"
        ]
    );
    assert_eq!(
        (
            &doc["procedure"],
            &doc["target"],
            &doc["opsh_version"],
            &doc["exit_code"],
            &doc["status"]
        ),
        (
            &"check-jobs".into(),
            &serde_json::Value::Null,
            &env!("CARGO_PKG_VERSION").into(),
            &1.into(),
            &"warning".into()
        )
    );
    let started: chrono::DateTime<chrono::Utc> =
        doc["started_at"].as_str().unwrap().parse().unwrap();
    assert!(
        started >= before - chrono::Duration::seconds(1) && started <= chrono::Utc::now(),
        "{started}"
    );
    assert!(doc["duration_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(doc["report"]["title"], "Job queue");
    assert_eq!(doc["report"]["data"]["stuck"], 1);

    // A run that fails: the error in the envelope, the report null, the exit code 3.
    let failed = Opsh::new()
        .file("ops/broken.rhai", "// broken\nlet x = 1 / 0;\n")
        .args(["broken", "--json"])
        .run();
    assert_eq!(failed.code, 3);
    let doc = failed.json();
    assert_eq!(
        (&doc["status"], &doc["report"], &doc["error"]["kind"]),
        (
            &"unknown".into(),
            &serde_json::Value::Null,
            &"script".into()
        )
    );
    assert!(
        failed
            .stderr
            .starts_with("opsh: error: Division by zero: 1 / 0\n  --> ./ops/broken.rhai:2:11\n"),
        "{}",
        failed.stderr
    );
}

#[test]
fn status_words_replace_emoji_where_no_terminal_reads_unless_asked() {
    let report = r#"let r = report::new("T"); r.ok("a", "b"); r.warn("c", "d"); r"#;
    // The tests' default is emoji (support sets output.emoji=always); a pipe's own is words.
    Opsh::new()
        .env("OPSH_OUTPUT_EMOJI", "auto")
        .args(["-e", report])
        .run()
        .expect(1, "T\nOK a: b\nWARNING c: d\nStatus: WARNING\n", "");
    Opsh::new()
        .env("OPSH_OUTPUT_EMOJI", "auto")
        .args(["--emoji", "always", "-e", report])
        .run()
        .expect(1, "T\n✅ a: b\n⚠️ c: d\nStatus: ⚠️ warning\n", "");
    Opsh::new()
        .args(["--emoji", "never", "-e", report])
        .run()
        .expect(1, "T\nOK a: b\nWARNING c: d\nStatus: WARNING\n", "");
    // A file written with --output is read by no terminal either.
    let opsh = Opsh::new()
        .env("OPSH_OUTPUT_EMOJI", "auto")
        .file("ops/t.rhai", &format!("// t\n{report}\n"));
    let mut cmd = opsh.command();
    cmd.args(["t", "--output", "t.txt"]);
    let run = support::Run::from(cmd.output().unwrap());
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert_eq!(
        std::fs::read_to_string(opsh.path().join("t.txt")).unwrap(),
        "T\nOK a: b\nWARNING c: d\nStatus: WARNING\n"
    );
    Opsh::new()
        .args(["--emoji", "sometimes", "-e", "1"])
        .run()
        .code(3);
}

#[test]
fn a_built_in_command_shows_no_internal_source_and_names_the_setting() {
    Opsh::new()
        .env("DATABASE_URL", DOWN)
        .args(["migrate", "--dry-run"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: db::migrate: postgres at postgres://youtube_user:***@127.0.0.1:1/youtube_agent (postgres.url, from DATABASE_URL): connection refused\n",
        );
    // From a configuration file: the file is named; from nowhere: the default and its variable.
    let from_file = Opsh::new()
        .file(
            "opsh.toml",
            "[postgres]\nurl = \"postgres://u@127.0.0.1:1/db\"\n",
        )
        .args(["migrate"])
        .run();
    assert_eq!((from_file.code, from_file.stdout.as_str()), (3, ""));
    assert!(
        from_file.stderr.starts_with(
            "opsh: error: db::migrate: postgres at postgres://u@127.0.0.1:1/db (postgres.url, from "
        ) && from_file
            .stderr
            .ends_with("opsh.toml): connection refused\n"),
        "{}",
        from_file.stderr
    );

    Opsh::new()
        .env("OPSH_REDIS_URL", "redis://127.0.0.1:1/0")
        .args(["-e", "cache::ping()"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: cache::ping: redis at redis://127.0.0.1:1/0 (redis.url, from OPSH_REDIS_URL): connection refused\n  --> <-e>:1:8\n   |\n 1 | cache::ping()\n   |        ^\n",
        );
}

#[test]
fn report_metrics_are_checked_against_prometheus_naming_rules() {
    for (code, message) in [
        (
            r#"report::new("t").metric("deleted_total", 1, "h")"#,
            "metric: metric name `deleted_total`: opsh writes gauges, and `_total`, `_count`, `_sum` and `_bucket` belong to counters, summaries and histograms",
        ),
        (
            r#"report::new("t").metric("age_minutes", 1, "h")"#,
            "metric: metric name `age_minutes`: `minutes` is not a base unit; use seconds or bytes",
        ),
        (
            r#"report::new("t").metric("jobs", 1, "h", #{target: "x"})"#,
            "metric: metric `jobs`: label `target` is one opsh sets itself",
        ),
        (
            r#"report::new("t").metric("jobs", "many", "h")"#,
            "metric: metric `jobs`: the value must be a number or a bool, got string",
        ),
    ] {
        let run = Opsh::new().args(["-e", code]).run();
        assert_eq!(run.code, 3, "{code}");
        assert!(
            run.stderr.starts_with(&format!("opsh: error: {message}\n")),
            "{code}: {}",
            run.stderr
        );
    }
}
