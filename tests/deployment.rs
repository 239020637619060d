//! opsh on the deployment as its own code leaves it (issue 21): a database made by the
//! deployment's init.sql alone (no retry_count, no updated_at, never migrated), collections the
//! workers create on first use, first runs of the fixes, and report lines in plain words.
//! Real PostgreSQL, Redis and Docker, and the Qdrant double.

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use support::{Opsh, Run, TestDb};

/// The one warning of a run on the unmigrated database.
const NOT_MIGRATED: &str = " WARN processing_jobs has no retry_count and no updated_at (the deployment's init.sql does not create them): retries are not counted, so max_retries cannot apply to stuck jobs, and updated_at reads as NULL; `opsh migrate` adds them\n";

/// The deployment's database with content, jobs (job 1 stuck for two days, job 2 finished, job 3
/// pending) and vector_mappings of youtube_content's chunks 1 and 2; nothing marked
/// vector_stored, as before the first summary.
fn deployment() -> TestDb {
    let db = TestDb::deployment();
    db.exec(
        "INSERT INTO content (channel_id, external_id, title) VALUES (1, 'v1', 't1'), (1, 'v2', 't2');
         INSERT INTO processing_jobs (job_type, content_id, status, started_at) VALUES
           ('vectorize', 1, 'processing', LOCALTIMESTAMP - interval '2 days'),
           ('vectorize', 2, 'completed', LOCALTIMESTAMP - interval '3 hours'),
           ('process_audio', 2, 'pending', NULL);
         INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text, chunk_order) VALUES
           (1, '1', 'youtube_content', 'a', 0), (1, '2', 'youtube_content', 'b', 1);",
    );
    db
}

/// The Qdrant double with youtube_content only (chunks 1 and 2 and the orphans 7 and 8); no
/// youtube_summaries, which the workers create with the first summary.
fn qdrant() -> qdrant_double::Running {
    let q = qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).expect("double");
    let points: Vec<Value> = [1, 2, 7, 8]
        .iter()
        .map(|i| json!({"id": i, "payload": {"content_id": 1}}))
        .collect();
    seed::seed(
        &q.grpc_url(),
        &json!({"collections": {"youtube_content": {"size": 4, "points": points}}}),
    );
    q
}

fn opsh(db: &TestDb, q: &qdrant_double::Running) -> Opsh {
    Opsh::new()
        .db(db)
        .env("QDRANT_URL", &q.grpc_url())
        .env("OPSH_QDRANT_REST_URL", &q.rest_url())
}

fn jobs(db: &TestDb) -> String {
    db.scalar(
        "SELECT string_agg(id || ':' || status || ':' || COALESCE(started_at::text, 'NULL') || ':' || COALESCE(error_message, '-'), ' | ' ORDER BY id) FROM processing_jobs",
    )
}

fn no_schema_complaint(name: &str, run: &Run) {
    for text in [&run.stdout, &run.stderr] {
        for sign in [
            "missing_schema",
            "has no column",
            "has no table",
            "column \"retry_count\"",
            "column \"updated_at\"",
        ] {
            assert!(
                !text.contains(sign),
                "{name}: `{sign}` in\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
    assert!(
        run.stderr
            .matches("processing_jobs has no retry_count")
            .count()
            <= 1,
        "{name}: more than one warning\n{}",
        run.stderr
    );
}

/// An HTTP server answering 200 to every request, on a free port (test-health's URL).
fn http_ok() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    port
}

static PROJECT: AtomicUsize = AtomicUsize::new(0);

/// One running container labelled as the postgres service of a Compose project of its own
/// (safe-start starts the data services first, then resets the stuck jobs), removed on drop.
struct Container {
    project: String,
    name: String,
}

impl Container {
    fn start() -> Container {
        let project = format!(
            "opshdeploy{}x{}",
            std::process::id(),
            PROJECT.fetch_add(1, Ordering::SeqCst)
        );
        let name = format!("{project}_postgres_1");
        let image = std::env::var("OPSH_TEST_BUSYBOX_IMAGE")
            .unwrap_or_else(|_| "opsh-test-busybox:latest".into());
        let out = Command::new("docker")
            .args(["run", "-d", "--name", &name])
            .args(["--label", &format!("com.docker.compose.project={project}")])
            .args(["--label", "com.docker.compose.service=postgres"])
            .args(["--label", "com.docker.compose.container-number=1"])
            .args(["--label", "com.docker.compose.oneoff=False"])
            .args([&image, "sleep", "600"])
            .output()
            .expect("docker run");
        assert!(
            out.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Container { project, name }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// Every bundled procedure on a database made by the deployment's init.sql alone. Those that
/// change containers or data run with --dry-run, except the three whose job step the
/// unmigrated schema used to break (reset-stuck-jobs, safe-start, check-data-fix), which run
/// for real. None may fail because of the schema; each exit code is pinned.
#[test]
fn every_bundled_procedure_runs_on_the_deployments_own_schema() {
    let db = deployment();
    let q = qdrant();
    let container = Container::start();
    let work = tempfile::tempdir().unwrap();
    for d in ["temp", "logs", "backups", "deleted"] {
        std::fs::create_dir_all(work.path().join(d)).unwrap();
    }
    let compose = work.path().join("docker-compose.yml");
    std::fs::write(
        &compose,
        "version: \"2.4\"\nservices:\n  postgres:\n    image: opsh-test-busybox:latest\n",
    )
    .unwrap();
    let path = |d: &str| work.path().join(d).display().to_string();
    let mut redis = url::Url::parse(&std::env::var("REDIS_URL").expect("REDIS_URL")).unwrap();
    redis.set_path("9");
    let run = |args: &[&str]| {
        opsh(&db, &q)
            .env("REDIS_URL", redis.as_str())
            .env("COMPOSE_PROJECT_NAME", &container.project)
            .env("COMPOSE_FILE", &compose.display().to_string())
            .env("OPSH_FILES_TEMP_DIRS", &path("temp"))
            .env("OPSH_LOGS_DIRS", &path("logs"))
            .env("OPSH_BACKUP_DIR", &path("backups"))
            .env("OPSH_DELETE_IDS_DIR", &path("deleted"))
            .args(args)
            .run()
    };
    // A dump for db-restore's dry run.
    let dump = run(&["--json", "db-backup"]);
    dump.code(0);
    let dump_file = dump.report()["data"]["file"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            let dir = std::fs::read_dir(work.path().join("backups")).unwrap();
            dir.map(|e| e.unwrap().path().display().to_string())
                .find(|p| p.ends_with(".dump"))
                .expect("a dump")
        });
    let restore = format!("file={dump_file}");
    let health = format!("urls=web=http://127.0.0.1:{}/health", http_ok());

    // (procedure, its arguments, exit code)
    let table: &[(&str, &[&str], i32)] = &[
        ("backup-all", &["--dry-run"], 0),
        ("check-data", &[], 1),
        ("check-jobs", &[], 1),
        ("clean-logs", &["--dry-run"], 0),
        ("clean-orphans", &["--dry-run"], 1),
        ("daily-check", &[], 1),
        ("daily-integrity-check", &["--dry-run"], 1),
        ("db-backup", &[], 0),
        ("db-restore", &["--dry-run", &restore], 0),
        ("db-shell", &[], 0),
        ("db-stats", &[], 1),
        ("down", &["--dry-run"], 0),
        ("logs", &[], 0),
        ("logs-error", &[], 0),
        ("monthly-check", &["--dry-run"], 0),
        ("pause", &["--dry-run"], 0),
        ("ps", &[], 0),
        ("purge-jobs", &["--dry-run"], 0),
        ("qdrant-stats", &[], 0),
        ("reset-hard", &["--dry-run"], 0),
        ("reset-soft", &["--dry-run"], 0),
        ("restart", &["--dry-run"], 0),
        ("safe-stop", &["--dry-run", "grace=1s"], 0),
        ("start", &["--dry-run"], 0),
        ("stats", &["warn_percent=101", "critical_percent=102"], 0),
        ("stop", &["--dry-run"], 0),
        ("stt-approvals", &[], 0),
        ("stt-cost", &[], 0),
        ("test-health", &[&health], 0),
        ("unpause", &["--dry-run"], 0),
        ("up", &["--dry-run"], 0),
        ("weekly-check", &["disk_warn=101", "disk_critical=102"], 1),
        // For real, in this order: the job step of each resets job 1 when it is stuck.
        ("reset-stuck-jobs", &[], 0),
        ("safe-start", &["wait=30s"], 0),
        ("check-data-fix", &["--yes", "grace=0s"], 0),
    ];
    let mut bundled: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .replace(".rhai", "")
            })
            .collect();
    bundled.sort();
    let mut listed: Vec<String> = table.iter().map(|(n, _, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(listed, bundled, "every bundled procedure is in the table");

    let stuck = "UPDATE processing_jobs SET status = 'processing', error_message = NULL, started_at = LOCALTIMESTAMP - interval '2 days' WHERE id = 1";
    for (name, args, code) in table {
        let mut argv = vec![*name];
        argv.extend_from_slice(args);
        // db-shell runs psql: a stand-in shows that it would.
        let out = if *name == "db-shell" {
            opsh(&db, &q)
                .stand_in("psql", "#!/bin/sh\necho psql\n")
                .args(&argv)
                .run()
        } else {
            run(&argv)
        };
        no_schema_complaint(name, &out);
        assert_eq!(
            out.code, *code,
            "{name}: exit code\n{}\n{}",
            out.stdout, out.stderr
        );
        if ["reset-stuck-jobs", "safe-start", "check-data-fix"].contains(name) {
            let reason = match *name {
                "check-data-fix" => "processing for more than 1 day",
                _ => "processing for more than 1 hour",
            };
            assert_eq!(
                jobs(&db),
                format!(
                    "1:pending:NULL:reset by opsh {name}: {reason} | 2:completed:{}:- | 3:pending:NULL:-",
                    db.scalar("SELECT started_at::text FROM processing_jobs WHERE id = 2")
                ),
                "{name}\n{}",
                out.stdout
            );
            db.exec(stuck);
        }
    }
    // check-data-fix also deleted the orphans 7 and 8 of youtube_content.
    let left = opsh(&db, &q)
        .args(["--json", "-e", "qdrant::ids(\"youtube_content\")"])
        .run();
    assert_eq!(left.json(), json!(["1", "2"]));
}

/// reset-stuck-jobs on the unmigrated database: job 1 back to pending, its start cleared, the
/// reason written, uncounted (max_retries=0 would send a counted job to failed), with one
/// warning that says so.
#[test]
fn reset_stuck_jobs_resets_uncounted_on_the_unmigrated_database_with_one_warning() {
    let db = deployment();
    Opsh::new()
        .db(&db)
        .args(["reset-stuck-jobs", "max_retries=0"])
        .run()
        .expect(
            0,
            "Reset stuck jobs\n✅ reset: 1 job processing for more than 1 hour is pending again\nStatus: ✅ healthy\n",
            &format!("{NOT_MIGRATED} INFO reset 1 stuck job to pending, 0 to failed\n"),
        );
    assert!(
        jobs(&db).starts_with(
            "1:pending:NULL:reset by opsh reset-stuck-jobs: processing for more than 1 hour | "
        ),
        "{}",
        jobs(&db)
    );
    // Scripts can tell: retries_counted is false.
    db.exec("UPDATE processing_jobs SET status = 'processing', started_at = LOCALTIMESTAMP - interval '2 hours' WHERE id = 1");
    let run = Opsh::new()
        .db(&db)
        .args([
            "--json",
            "-e",
            "jobs::reset_stuck(#{older_than: \"1h\", max_retries: 0})",
        ])
        .run();
    run.code(0);
    assert_eq!(
        (
            &run.json()["ids"],
            &run.json()["failed"],
            &run.json()["retries_counted"]
        ),
        (&json!([1]), &json!(0), &json!(false))
    );
    assert_eq!(run.stderr.matches("WARN").count(), 1, "{}", run.stderr);
}

/// A fresh deployment: youtube_summaries does not exist until the first summary is written.
/// Nothing marked vector_stored: "not created yet", healthy. Once a row expects its summary,
/// the missing collection is critical again.
#[test]
fn a_collection_made_on_first_use_is_not_created_yet_until_a_row_expects_a_point() {
    let db = deployment();
    let q = qdrant();
    db.exec("UPDATE processing_jobs SET status = 'completed' WHERE id = 1");
    // The orphans aside (two points of youtube_content without a mapping): a warning.
    let run = opsh(&db, &q).args(["check-data"]).run();
    let address = db.url.replace("youtube_pass", "***");
    run.expect(
        1,
        &format!(
            "Data integrity\n✅ postgres: {address}: connected\n✅ qdrant: {}: version 1.20.0\n\
✅ tables: 5 required tables present\n✅ collection youtube_content: 4 points\n\
✅ collection youtube_summaries: not created yet: no row expects a point in it (the workers create it with its first point)\n\
⚠️ vector_mappings ↔ youtube_content: 2 rows, 4 points, 2 matched, 0 missing, 2 orphans, 0 invalid\n\
✅ content ↔ youtube_summaries: collection youtube_summaries not created yet (2 rows of content, none expects a point)\n\
✅ vector_stored content: every one has its vectors\n✅ stuck jobs: none processing for more than 1 day\n\
Issues:\n  - chunks: 2 orphan vectors in youtube_content (no row in vector_mappings); delete them with: opsh clean-orphans\n\
Status: ⚠️ warning\n",
            q.grpc_url()
        ),
        NOT_MIGRATED,
    );
    let json = opsh(&db, &q).args(["--json", "check-data"]).run().report();
    let summaries = &json["data"]["collections"][1];
    assert_eq!(
        (&summaries["exists"], &summaries["not_created"]),
        (&json!(false), &json!(true))
    );
    // Content 1 is vectorized: its summary point is expected, and the collection is missing.
    db.exec("UPDATE content SET vector_stored = true WHERE id = 1");
    let run = opsh(&db, &q).args(["check-data"]).run();
    run.code(2);
    for line in [
        "❌ collection youtube_summaries: does not exist, but 1 row expects a point in it\n",
        "❌ content ↔ youtube_summaries: not compared: collection `youtube_summaries` does not exist\n",
        "  - Qdrant collection `youtube_summaries` does not exist, but 1 row expects a point in it\n",
    ] {
        assert!(run.stdout.contains(line), "no `{line}` in\n{}", run.stdout);
    }
}

/// A table only a site pair names, not created yet: healthy while its collection holds no
/// point; critical once points wait for its rows.
#[test]
fn a_site_pairs_table_not_created_yet_is_healthy_until_its_collection_holds_points() {
    let db = deployment();
    let q = qdrant();
    db.exec("UPDATE processing_jobs SET status = 'completed' WHERE id = 1; INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text) VALUES (1, '7', 'youtube_content', 'c'), (1, '8', 'youtube_content', 'd')");
    let toml = "[[integrity.pairs]]\nname = \"documents\"\ntable = \"documents\"\n\
                id_column = \"point_id\"\ncollection = \"documents\"\n";
    let check = || {
        opsh(&db, &q)
            .file("opsh.toml", toml)
            .args(["--config", "opsh.toml", "check-data"])
            .run()
    };
    let run = check();
    run.code(0);
    for line in [
        "✅ tables: 5 required tables present; not created yet: documents\n",
        "✅ collection documents: not created yet: no row expects a point in it (the workers create it with its first point)\n",
        "✅ documents ↔ documents: table documents not created yet, and collection documents holds no point\n",
        "Status: ✅ healthy\n",
    ] {
        assert!(run.stdout.contains(line), "no `{line}` in\n{}", run.stdout);
    }
    seed::seed(
        &q.grpc_url(),
        &json!({"collections": {"documents": {"size": 4, "points": [{"id": 5, "payload": {}}]}}}),
    );
    let run = check();
    run.code(2);
    for line in [
        "❌ tables: missing: documents\n",
        "  - table `documents` of an integrity pair does not exist, but its collection holds 1 point\n",
    ] {
        assert!(run.stdout.contains(line), "no `{line}` in\n{}", run.stdout);
    }
}

/// check-data-fix with youtube_summaries missing while a row expects it (critical): it still
/// deletes youtube_content's orphans and resets the stuck job, says what it skipped and why,
/// and exits with the state after (critical). A failed connection stops it.
#[test]
fn check_data_fix_fixes_what_it_can_and_says_what_it_skipped() {
    let db = deployment();
    let q = qdrant();
    db.exec("UPDATE content SET vector_stored = true WHERE id = 1");
    let run = opsh(&db, &q)
        .args(["--yes", "check-data-fix", "grace=0s"])
        .run();
    run.code(2);
    for line in [
        "✅ orphans in youtube_content: 2 of 2 orphan vectors were deleted\n",
        "⚠️ skipped: orphans of summaries (content ↔ youtube_summaries): not compared: collection `youtube_summaries` does not exist\n",
        "✅ stuck jobs: 1 job was reset to pending, 0 to failed\n",
        "❌ after: collection youtube_summaries: does not exist, but 1 row expects a point in it\n",
    ] {
        assert!(run.stdout.contains(line), "no `{line}` in\n{}", run.stdout);
    }
    assert!(jobs(&db).starts_with("1:pending:NULL:"), "{}", jobs(&db));
    let ids = opsh(&db, &q)
        .args(["--json", "-e", "qdrant::ids(\"youtube_content\")"])
        .run()
        .json();
    assert_eq!(ids, json!(["1", "2"]));

    // Qdrant down: nothing is fixed, a critical report says why.
    db.exec("UPDATE processing_jobs SET status = 'processing', started_at = LOCALTIMESTAMP - interval '2 days' WHERE id = 1");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let run = opsh(&db, &q)
        .env("QDRANT_URL", &format!("http://127.0.0.1:{port}"))
        .args(["--yes", "check-data-fix", "grace=0s"])
        .run();
    run.code(2);
    assert_eq!(
        run.stdout,
        format!(
            "Data integrity fix\n❌ connection: the Qdrant connection failed, nothing was fixed: qdrant at http://127.0.0.1:{port} (qdrant.url, from QDRANT_URL): connection refused\nStatus: ❌ critical\n"
        )
    );
    assert_eq!(
        db.scalar("SELECT status FROM processing_jobs WHERE id = 1"),
        "processing"
    );
}

/// The first run with the default grace (10 minutes) deletes no orphan: a warning sentence says
/// how many wait, until when, and how to delete them now.
#[test]
fn first_runs_say_which_orphans_wait_until_when_and_how_to_delete_them_now() {
    let db = deployment();
    let q = qdrant();
    for procedure in ["clean-orphans", "check-data-fix"] {
        let before: chrono::DateTime<chrono::Utc> = chrono::Utc::now();
        let run = opsh(&db, &q).args(["--json", "--yes", procedure]).run();
        let report = run.report();
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "orphans in youtube_content")
            .unwrap_or_else(|| panic!("{procedure}: {report}"))
            .clone();
        assert_eq!(check["status"], "warning", "{procedure}: {check}");
        let detail = check["detail"].as_str().unwrap();
        let prefix = "0 of 2 orphan vectors were deleted; 2 were first seen as orphans less than 10 minutes ago and are kept until ";
        let suffix = format!(
            " UTC, when a later run deletes them; to delete them now: opsh {procedure} grace=0s"
        );
        assert!(
            detail.starts_with(prefix) && detail.ends_with(&suffix),
            "{procedure}: {detail}"
        );
        // The time: 10 minutes after clean-orphans first saw them.
        let until = &detail[prefix.len()..detail.len() - suffix.len()];
        let until = chrono::NaiveDateTime::parse_from_str(until, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc();
        let first_seen = if procedure == "clean-orphans" {
            before
        } else {
            until - chrono::Duration::minutes(10)
        };
        let off = (until - first_seen - chrono::Duration::minutes(10)).num_seconds();
        assert!(
            (-5..=5).contains(&off),
            "{procedure}: {until} vs {first_seen}"
        );
        assert_eq!(
            report["data"]["fix"]
                .get(0)
                .or(report["data"]["pairs"].get(0))
                .unwrap()["deferred"],
            2
        );
    }
}

/// Plain words: counts agree with their nouns, sizes in KiB/MiB, and the time a backup took as
/// it was measured (no "0ms" for most of a second).
#[test]
fn report_lines_count_measure_and_size_in_plain_words() {
    let db = deployment();
    let dir = tempfile::tempdir().unwrap();
    let run = Opsh::new()
        .db(&db)
        .args([
            "--json",
            "db-backup",
            &format!("dir={}", dir.path().display()),
        ])
        .run();
    run.code(0);
    let report = run.report();
    let dump = &report["checks"][0]["detail"];
    let bytes = std::fs::metadata(report["data"]["file"].as_str().unwrap_or_default())
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        dump.as_str()
            .unwrap()
            .contains(&format!(": {}, sha256 ", opsh::text::size(bytes))),
        "{dump} ({bytes} bytes)"
    );
    assert!(dump.as_str().unwrap().contains(" KiB, sha256 "), "{dump}");
    let database = report["checks"][1]["detail"].as_str().unwrap();
    assert!(
        database.contains(": 5 tables, 9 rows (server "),
        "{database}"
    );
    // Durations: words, measured ones with their tenths.
    Opsh::new()
        .args([
            "-e",
            r#"`${fmt_duration(0.9)}|${fmt_duration(1.0)}|${fmt_duration(86400)}|${fmt_duration("90m")}|${plural(1, "content item")}|${plural(2, "entry")}|${fmt_size(901248)}`"#,
        ])
        .run()
        .expect(
            0,
            "900 ms|1 second|1 day|1 hour 30 minutes|1 content item|2 entries|880.1 KiB\n",
            "",
        );
}
