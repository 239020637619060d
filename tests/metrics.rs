//! `--format prometheus` as Prometheus itself reads it: the output of every bundled procedure
//! passes `promtool check metrics` (Debian's prometheus package, which tools/with-services
//! installs when it runs as root, as CI does), and carries the stable families with labels.

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{Opsh, TestDb};

/// promtool on PATH; None (the test says it is skipped) only when not root, where
/// tools/with-services cannot install it. As root (CI) a missing promtool fails the test.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_some() {
        return found;
    }
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    assert!(
        !root,
        "promtool is missing: run the tests through tools/with-services (make test), which installs Debian's prometheus package"
    );
    eprintln!(
        "SKIPPED: promtool is not installed and this is not root; `sudo apt-get install prometheus` (or run as root under tools/with-services) to check the metrics"
    );
    None
}

/// `promtool check metrics` on `text`: its exit code and what it said.
fn check_metrics(promtool: &PathBuf, text: &str) -> (i32, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

struct Env {
    db: TestDb,
    qdrant: qdrant_double::Running,
    redis: String,
}

impl Env {
    fn new() -> Env {
        let db = TestDb::new();
        db.exec(include_str!("fixtures/examples.sql"));
        db.exec(include_str!("fixtures/examples-qdrant.sql"));
        let qdrant =
            qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).expect("double");
        let points: Value =
            serde_json::from_str(include_str!("fixtures/examples-qdrant.json")).unwrap();
        seed::seed(&qdrant.grpc_url(), &points);
        let mut redis = url::Url::parse(
            &std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into()),
        )
        .expect("REDIS_URL");
        // This file's own Redis db.
        redis.set_path("/13");
        Env {
            db,
            qdrant,
            redis: redis.to_string(),
        }
    }

    fn opsh(&self) -> Opsh {
        Opsh::new()
            .db(&self.db)
            .env("QDRANT_URL", &self.qdrant.grpc_url())
            .env("OPSH_QDRANT_REST_URL", &self.qdrant.rest_url())
            .env("REDIS_URL", &self.redis)
            .env(
                "COMPOSE_PROJECT_NAME",
                &format!("opsh_metrics_{}", std::process::id()),
            )
            .env(
                "DOCKER_HOST",
                &std::env::var("DOCKER_HOST").unwrap_or_default(),
            )
    }
}

fn bundled() -> Vec<String> {
    let doc = Opsh::new().args(["scripts", "--json"]).run().code(0).json();
    doc.as_array()
        .unwrap()
        .iter()
        .filter(|p| p["origin"] == "bundled")
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_bundled_procedure_writes_metrics_promtool_accepts() {
    let Some(promtool) = promtool() else {
        return;
    };
    let env = Env::new();
    let procedures = bundled();
    assert!(procedures.len() > 30, "{procedures:?}");
    let mut failures = Vec::new();
    for name in &procedures {
        // --dry-run --yes: the destructive ones say what they would do and change nothing.
        let run = env
            .opsh()
            .args([
                name.as_str(),
                "--format",
                "prometheus",
                "--dry-run",
                "--yes",
                "--timeout",
                "60s",
            ])
            .run();
        assert!(
            run.stdout.contains("# TYPE opsh_status gauge\n"),
            "{name}: no metrics (exit {}):\n{}\n{}",
            run.code,
            run.stdout,
            run.stderr
        );
        let (code, said) = check_metrics(&promtool, &run.stdout);
        if code != 0 || !said.trim().is_empty() {
            failures.push(format!(
                "{name}: promtool exit {code}: {said}\n{}",
                run.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_jobs_metrics_have_stable_names_and_labels() {
    let db = TestDb::new();
    support::seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 125, 0),
            ("process_audio", "pending", 5, 0),
        ],
    );
    let run = Opsh::new()
        .db(&db)
        .args(["check-jobs", "--format", "prometheus"])
        .run();
    run.code(1);
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.starts_with("opsh_duration_seconds{"))
        .filter(|l| !l.starts_with("opsh_last_success"))
        .filter(|l| !l.starts_with("opsh_oldest_processing_job_age_seconds{"))
        .collect();
    let base = "procedure=\"check-jobs\",target=\"default\"";
    for expected in [
        "# HELP opsh_status The procedure's status: 0 ok, 1 warning, 2 critical, 3 unknown (its exit code).".to_string(),
        "# TYPE opsh_status gauge".to_string(),
        format!("opsh_status{{{base}}} 1"),
        format!("opsh_check_status{{{base},check=\"stuck jobs\"}} 1"),
        "# HELP opsh_jobs Jobs in the queue by type and status.".to_string(),
        "# TYPE opsh_jobs gauge".to_string(),
        format!("opsh_jobs{{{base},status=\"pending\",type=\"process_audio\"}} 1"),
        format!("opsh_jobs{{{base},status=\"processing\",type=\"vectorize\"}} 1"),
        format!("opsh_jobs{{{base},status=\"pending\",type=\"vectorize\"}} 0"),
        format!("opsh_jobs_stuck{{{base}}} 1"),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "missing {expected:?} in\n{}",
            run.stdout
        );
    }
    // No name made from data: job types and statuses are labels only.
    assert!(
        !run.stdout.contains("opsh_data_") && !run.stdout.contains("opsh_jobs_vectorize"),
        "{}",
        run.stdout
    );
    let age = run
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "opsh_oldest_processing_job_age_seconds{{{base}}} "
            ))
        })
        .expect("the oldest job's age");
    assert!(age.parse::<f64>().unwrap() >= 125.0 * 60.0, "{age}");
}
