//! Unattended runs: the run lock of data-changing procedures, the audit of destructive actions
//! (table and file), Prometheus output, --output, log files, progress, named targets.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use support::{Opsh, TestDb, seed_jobs};

/// A site procedure that changes data and takes a while.
const SLOW_CHANGE: &str = "// Slow change (test)\n// changes: data\n// arg secs: int = 5 -- how long\n\
sleep(`${ARGS.secs}s`);\nlet r = report::new(\"slow\"); r.ok(\"slept\", `${ARGS.secs}s`); r\n";

/// A PostgreSQL URL where nothing listens.
const DOWN: &str = "postgres://youtube_user:youtube_pass@127.0.0.1:1/youtube_agent";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until a session whose application_name starts with `prefix` holds an advisory lock.
fn wait_for_holder(db: &TestDb, prefix: &str, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = db.scalar(&format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND a.application_name LIKE '{prefix}%'"
        ));
        if (n != "0") == present {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "lock holder {prefix} present={present} not seen within 30s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The output of a command, trimmed: who and where from the system's own tools, not from
/// the code under test.
fn tool(cmd: &str, arg: &str) -> String {
    let out = std::process::Command::new(cmd).arg(arg).output().unwrap();
    assert!(out.status.success(), "{cmd} {arg}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn id_un() -> String {
    tool("id", "-un")
}

fn uname_n() -> String {
    tool("uname", "-n")
}

fn slow(db: &TestDb) -> Opsh {
    Opsh::new().db(db).file("ops/slow-change.rhai", SLOW_CHANGE)
}

#[test]
fn a_second_run_of_a_data_changing_procedure_exits_3_naming_the_holder() {
    let db = TestDb::new();
    let first = slow(&db).args(["slow-change", "secs=8"]).spawn();
    let pid = first.id();
    wait_for_holder(&db, "opsh slow-change", true);
    let second = slow(&db).args(["slow-change", "secs=0"]).run();
    second.code(3);
    assert_eq!(second.stdout, "");
    let host = uname_n();
    let prefix =
        format!("opsh: error: slow-change is already running (pid {pid} on host {host}, since ");
    assert!(
        second.stderr.starts_with(&prefix)
            && second
                .stderr
                .ends_with("); not started (--wait-lock DUR waits for it)\n"),
        "{}",
        second.stderr
    );
    // --json: one document naming the holder too.
    let json = slow(&db).args(["slow-change", "--json"]).run();
    json.code(3);
    assert_eq!(json.json()["error"]["kind"], "locked");
    // A dry run changes nothing and takes no lock.
    slow(&db)
        .args(["slow-change", "secs=0", "--dry-run"])
        .run()
        .code(0);
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_bundled_procedure_that_changes_data_is_locked_and_names_the_holder_from_pg_stat_activity() {
    let db = TestDb::new();
    let rt = runtime();
    // Another opsh (as pg_stat_activity shows it) holds reset-stuck-jobs' lock.
    let _holder = rt.block_on(async {
        use sqlx::{ConnectOptions, Connection};
        let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
        let mut conn = options
            .application_name("opsh reset-stuck-jobs pid=4242 host=ops1")
            .connect()
            .await
            .unwrap();
        let got: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('opsh procedure reset-stuck-jobs', 0))",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(got);
        let _ = conn.ping().await;
        conn
    });
    let run = Opsh::new().db(&db).args(["reset-stuck-jobs"]).run();
    run.code(3);
    assert!(
        run.stderr.starts_with(
            "opsh: error: reset-stuck-jobs is already running (pid 4242 on host ops1, since "
        ),
        "{}",
        run.stderr
    );
    // check-jobs only reads: no lock.
    Opsh::new().db(&db).args(["check-jobs"]).run().code(0);
    // So do safe-stop and safe-start, by their header.
    for name in ["reset-stuck-jobs", "safe-stop", "safe-start"] {
        let doc = Opsh::new().args(["scripts", "--json"]).run().json();
        let entry = doc
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone();
        assert_eq!(entry["changes_data"], true, "{name}");
    }
}

#[test]
fn killing_the_holder_with_sigkill_frees_the_lock() {
    let db = TestDb::new();
    let mut first = slow(&db).args(["slow-change", "secs=60"]).spawn();
    wait_for_holder(&db, "opsh slow-change", true);
    first.kill().unwrap(); // SIGKILL
    let _ = first.wait();
    wait_for_holder(&db, "opsh slow-change", false);
    slow(&db).args(["slow-change", "secs=0"]).run().expect(
        0,
        "slow\n✅ slept: 0s\nStatus: ✅ healthy\n",
        "",
    );
}

#[test]
fn wait_lock_waits_for_the_holder_to_finish() {
    let db = TestDb::new();
    let first = slow(&db).args(["slow-change", "secs=4"]).spawn();
    wait_for_holder(&db, "opsh slow-change", true);
    let started = Instant::now();
    slow(&db)
        .args(["slow-change", "secs=0", "--wait-lock", "60s"])
        .run()
        .expect(0, "slow\n✅ slept: 0s\nStatus: ✅ healthy\n", "");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(first.wait_with_output().unwrap().status.code(), Some(0));
    // A wait that runs out says how long it waited.
    let holder = slow(&db).args(["slow-change", "secs=20"]).spawn();
    wait_for_holder(&db, "opsh slow-change", true);
    let run = slow(&db).args(["slow-change", "--wait-lock", "1s"]).run();
    run.code(3);
    assert!(
        run.stderr
            .ends_with("; still running after waiting 1s (--wait-lock)\n"),
        "{}",
        run.stderr
    );
    let mut holder = holder;
    holder.kill().unwrap();
    let _ = holder.wait();
}

#[test]
fn postgres_unreachable_runs_the_procedure_without_the_lock_with_a_warning() {
    let run = Opsh::new()
        .env("DATABASE_URL", DOWN)
        .file("ops/slow-change.rhai", SLOW_CHANGE)
        .args(["slow-change", "secs=0"])
        .run();
    run.code(0);
    assert!(
        run.stderr.starts_with(
            " WARN slow-change: running without the run lock, PostgreSQL is unreachable: postgres at "
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_reset_writes_its_audit_row_with_who_where_procedure_and_arguments() {
    let db = TestDb::new();
    seed_jobs(&db, &[("vectorize", "processing", 180, 0)]);
    Opsh::new()
        .db(&db)
        .args(["reset-stuck-jobs", "older_than=2h"])
        .run()
        .code(0);
    let row = db.lines(
        "SELECT concat_ws('|', os_user, host, procedure, arguments->>'older_than', arguments->>'max_retries', target, op, count, dry_run::text, outcome) FROM opsh_audit",
    );
    assert_eq!(
        row,
        vec![format!(
            "{}|{}|reset-stuck-jobs|2h|3|jobs::reset_stuck|1|false|1 pending again, 0 failed",
            id_un(),
            uname_n()
        )]
    );
    let listed = Opsh::new().db(&db).args(["audit", "--json"]).run();
    listed.code(0);
    let doc = listed.json();
    assert_eq!(doc["pending"], 0);
    assert_eq!(doc["records"][0]["procedure"], "reset-stuck-jobs");
    assert_eq!(doc["records"][0]["count"], 1);
    assert_eq!(doc["records"][0]["pending"], false);
}

#[test]
fn an_action_while_postgres_is_down_goes_to_the_file_and_is_flushed_on_a_later_run() {
    let db = TestDb::new();
    let temp = tempfile::tempdir().unwrap();
    for name in ["a.wav", "b.wav"] {
        std::fs::write(temp.path().join(name), "x").unwrap();
    }
    let clean = "// Clean temp (test)\nlet c = host::clean_temp(#{dirs: [ARGS.dir]});\nc.removed\n";
    let opsh = Opsh::new()
        .env("DATABASE_URL", DOWN)
        .file("ops/clean.rhai", clean)
        .args([
            "clean".to_string(),
            format!("dir={}", temp.path().display()),
        ]);
    opsh.run().expect(0, "2\n", "");
    let file = opsh.path().join(".local/state/opsh/audit.jsonl");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    let kept: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&file).unwrap().trim()).unwrap();
    assert_eq!(kept["procedure"], "clean");
    assert_eq!(kept["op"], "host::clean_temp");
    assert_eq!(kept["count"], 2);
    assert_eq!(kept["arguments"]["dir"], temp.path().display().to_string());
    // Shown as pending while PostgreSQL is down.
    let listed = Opsh::new()
        .env("DATABASE_URL", DOWN)
        .args(["audit", "--json"]);
    let listed = {
        // The same HOME, so the same file.
        let mut cmd = listed.command();
        cmd.env("HOME", opsh.path());
        support::Run::from(cmd.output().unwrap())
    };
    assert_eq!(listed.json()["pending"], 1);
    assert_eq!(listed.json()["records"][0]["pending"], true);
    // A later run that reaches PostgreSQL writes it to the table and empties the file.
    let later = Opsh::new().db(&db).args(["check-jobs"]);
    let mut later = later.command();
    later.env("HOME", opsh.path());
    assert_eq!(later.output().unwrap().status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    assert_eq!(
        db.lines("SELECT concat_ws('|', procedure, op, count, arguments->>'dir') FROM opsh_audit"),
        vec![format!(
            "clean|host::clean_temp|2|{}",
            temp.path().display()
        )]
    );
}

#[test]
fn a_missing_audit_table_keeps_the_record_in_the_file() {
    let db = TestDb::deployment();
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(temp.path().join("a.wav"), "x").unwrap();
    let opsh = Opsh::new().db(&db).args([
        "-e".to_string(),
        format!(
            "host::clean_temp(#{{dirs: [\"{}\"]}}).removed",
            temp.path().display()
        ),
    ]);
    opsh.run().expect(0, "1\n", "");
    let file = opsh.path().join(".local/state/opsh/audit.jsonl");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 1);
}

/// Two records as a run kept them while PostgreSQL was down, one JSON line each.
fn kept_records() -> String {
    (1..=2)
        .map(|n| {
            let record = opsh::ops::audit::Record {
                record_id: format!("testhost-1-1700000000000000-{n}"),
                at: "2026-01-02T03:04:05.000Z".into(),
                os_user: "ops".into(),
                host: "testhost".into(),
                procedure: Some("clean".into()),
                arguments: serde_json::json!({"dir": "/tmp/x"}),
                target: None,
                op: "host::clean_temp".into(),
                summary: format!("remove {n} files"),
                count: n,
                dry_run: false,
                outcome: format!("{n} removed"),
                run_started: None,
            };
            format!("{}\n", serde_json::to_string(&record).unwrap())
        })
        .collect()
}

#[test]
fn a_locked_spool_waits_for_a_later_run_and_a_spool_replayed_twice_is_written_once() {
    use std::os::fd::AsRawFd;
    let db = TestDb::new();
    let opsh = Opsh::new().db(&db).args(["check-jobs"]);
    let file = opsh.path().join(".local/state/opsh/audit.jsonl");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, kept_records()).unwrap();
    let rows = || db.lines("SELECT record_id || ' ' || count FROM opsh_audit ORDER BY record_id");

    // Another process holds the spool's lock (a run appending or flushing): this run leaves the
    // records where they are, says so, and does not wait for ever.
    let held = std::fs::File::open(&file).unwrap();
    // SAFETY: flock on a descriptor the File owns.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut child = opsh
        .command()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("opsh waited for the audit file's lock for more than 60s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = support::Run::from(child.wait_with_output().unwrap());
    run.code(0);
    assert!(
        run.stderr.contains(&format!(
            "audit: records kept in {} not written to opsh_audit now, its lock: held by another process for more than 5s; a later run writes them",
            file.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(rows(), Vec::<String>::new());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), kept_records());
    drop(held);

    // Released: the next run writes them and empties the file.
    opsh.run().code(0);
    let written = vec![
        "testhost-1-1700000000000000-1 1".to_string(),
        "testhost-1-1700000000000000-2 2".to_string(),
    ];
    assert_eq!(rows(), written);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");

    // The file was not emptied after its rows went in (a failed truncate): replayed, each
    // record is still written once.
    std::fs::write(&file, kept_records()).unwrap();
    opsh.run().code(0);
    assert_eq!(rows(), written);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
}

#[test]
fn prometheus_output_parses_and_keeps_the_last_success_when_a_run_is_not_ok() {
    let db = TestDb::new();
    let opsh = Opsh::new().db(&db);
    let metrics = opsh.path().join("metrics/opsh.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let run = |opsh: &Opsh| {
        let mut cmd = opsh.command();
        cmd.args([
            "check-jobs",
            "--format",
            "prometheus",
            "--output",
            metrics.to_str().unwrap(),
        ]);
        support::Run::from(cmd.output().unwrap())
    };
    let first = run(&opsh);
    assert_eq!(
        (first.code, first.stdout.as_str(), first.stderr.as_str()),
        (0, "", "")
    );
    let scrape = parse(&std::fs::read_to_string(&metrics).unwrap());
    let labels = [("procedure", "check-jobs"), ("target", "default")];
    assert_eq!(value(&scrape, "opsh_status", &labels), 0.0);
    assert_eq!(value(&scrape, "opsh_jobs_stuck", &labels), 0.0);
    let check = [
        ("procedure", "check-jobs"),
        ("target", "default"),
        ("check", "stuck jobs"),
    ];
    assert_eq!(value(&scrape, "opsh_check_status", &check), 0.0);
    assert!(value(&scrape, "opsh_duration_seconds", &labels) > 0.0);
    let success = value(&scrape, "opsh_last_success_timestamp_seconds", &labels);
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - success).abs() < 600.0, "{success} vs {now}");

    // A stuck job: warning; the last success stays as it was.
    seed_jobs(&db, &[("vectorize", "processing", 180, 0)]);
    std::thread::sleep(Duration::from_millis(1100));
    let second = run(&opsh);
    assert_eq!(second.code, 1, "{}", second.stderr);
    let scrape = parse(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(value(&scrape, "opsh_status", &labels), 1.0);
    assert_eq!(value(&scrape, "opsh_jobs_stuck", &labels), 1.0);
    assert_eq!(value(&scrape, "opsh_check_status", &check), 1.0);
    assert_eq!(
        value(&scrape, "opsh_last_success_timestamp_seconds", &labels),
        success
    );
    // No temp file is left beside it.
    let names: Vec<String> = std::fs::read_dir(metrics.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["opsh.prom".to_string()]);
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not the exposition format ({e}):\n{text}"))
}

#[track_caller]
fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {metric} {labels:?}"));
    match sample.value {
        prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{metric} is {other:?}"),
    }
}

#[test]
fn output_is_written_atomically_and_left_alone_when_the_run_fails() {
    let opsh = Opsh::new()
        .file("ops/broken.rhai", "// Broken (test)\nlet x = 1 / 0;\nx\n")
        .file(
            "ops/fine.rhai",
            "// Fine (test)\nlet r = report::new(\"fine\"); r.ok(\"a\", \"b\"); r\n",
        )
        .file("out/report.txt", "old\n");
    let out = opsh.path().join("out/report.txt");
    let run = |args: &[&str]| {
        let mut cmd = opsh.command();
        cmd.args(args);
        support::Run::from(cmd.output().unwrap())
    };
    let failed = run(&["broken", "--output", "out/report.txt"]);
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old\n");
    let ok = run(&["fine", "--output", "out/report.txt"]);
    assert_eq!((ok.code, ok.stdout.as_str()), (0, ""));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "fine\n✅ a: b\nStatus: ✅ healthy\n"
    );
    let json = run(&["fine", "--json", "--output", "out/report.json"]);
    assert_eq!(json.code, 0);
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(opsh.path().join("out/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&doc["procedure"], &doc["status"]),
        (&"fine".into(), &"ok".into())
    );
    assert_eq!(doc["report"]["title"], "fine");
    // A folder that does not exist: an error, nothing made.
    let missing = run(&["fine", "--output", "nowhere/report.txt"]);
    assert_eq!(missing.code, 3);
    assert!(
        missing
            .stderr
            .starts_with("opsh: error: --output nowhere/report.txt: ")
    );
    assert!(!opsh.path().join("nowhere").exists());
    let names: Vec<String> = std::fs::read_dir(opsh.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, vec!["report.json", "report.txt"]);
}

#[test]
fn no_progress_output_when_stderr_is_not_a_terminal() {
    let db = TestDb::new();
    seed_jobs(&db, &[("vectorize", "processing", 1, 0)]);
    Opsh::new()
        .db(&db)
        .args([
            "-e",
            "let w = jobs::wait_idle(#{timeout: \"3s\", poll: \"1s\"}); [w.idle, w.still_running.len()]",
            "--json",
        ])
        .run()
        .expect(0, "[false,1]\n", "");
}

fn targets_config(db: &TestDb) -> String {
    format!(
        "[targets.prod]\npostgres.url = \"{}\"\ncompose.project = \"prod_stack\"\n\n\
         [targets.staging.postgres]\nurl = \"{DOWN}\"\n",
        db.url
    )
}

#[test]
fn two_targets_one_down_give_one_report_with_the_down_one_critical() {
    let db = TestDb::new();
    let opsh = Opsh::new()
        // The environment's URL does not override a named target's.
        .env("DATABASE_URL", DOWN)
        .file("opsh.toml", &targets_config(&db));
    // It holds passwords: kept from other users, as opsh warns otherwise.
    std::fs::set_permissions(
        opsh.path().join("opsh.toml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut cmd = opsh.command();
        cmd.args(args);
        support::Run::from(cmd.output().unwrap())
    };
    let json = run(&["check-jobs", "--target", "prod,staging", "--json"]);
    assert_eq!(json.code, 2, "{}", json.stderr);
    // One envelope per target, in the order given, in one array.
    let doc = json.json();
    let envelopes = doc.as_array().expect("an array of envelopes");
    assert_eq!(envelopes.len(), 2, "{doc}");
    for e in envelopes {
        assert_eq!(e["procedure"], "check-jobs");
        assert_eq!(e["opsh_version"], env!("CARGO_PKG_VERSION"));
        assert!(e["duration_seconds"].as_f64().unwrap() >= 0.0);
        assert!(e["started_at"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    assert_eq!(doc[0]["target"], "prod");
    assert_eq!(doc[0]["status"], "ok");
    assert_eq!(doc[0]["exit_code"], 0);
    assert_eq!(doc[0]["report"]["title"], "Job queue");
    assert_eq!(doc[1]["target"], "staging");
    assert_eq!(doc[1]["status"], "critical");
    assert_eq!(doc[1]["exit_code"], 2);
    assert_eq!(doc[1]["report"]["checks"][0]["name"], "database");

    let prom = run(&[
        "check-jobs",
        "--target",
        "prod,staging",
        "--format",
        "prometheus",
    ]);
    assert_eq!(prom.code, 2);
    let scrape = parse(&prom.stdout);
    assert_eq!(
        value(
            &scrape,
            "opsh_status",
            &[("procedure", "check-jobs"), ("target", "prod")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &scrape,
            "opsh_status",
            &[("procedure", "check-jobs"), ("target", "staging")]
        ),
        2.0
    );

    let text = run(&["check-jobs", "--target", "prod,staging"]);
    assert_eq!(text.code, 2);
    assert!(
        text.stdout
            .starts_with("check-jobs on 2 targets: prod, staging\n\n── prod ──\nJob queue\n")
    );
    assert!(
        text.stdout
            .ends_with("\nAll targets: critical (prod ok, staging critical)\n"),
        "{}",
        text.stdout
    );

    // One target by OPSH_TARGET; its settings show where they came from.
    let mut cmd = opsh.command();
    cmd.env("OPSH_TARGET", "prod").args(["config", "--json"]);
    let config = support::Run::from(cmd.output().unwrap());
    let shown = config.json();
    let project = shown["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "compose.project")
        .unwrap()
        .clone();
    assert_eq!(project["value"], "prod_stack");
    assert!(
        project["source"]
            .as_str()
            .unwrap()
            .ends_with("opsh.toml [targets.prod]")
    );
    // A misspelt target stops before anything runs.
    let bad = run(&["check-jobs", "--target", "prd"]);
    assert_eq!(bad.code, 3);
    assert_eq!(
        bad.stderr,
        "opsh: error: unknown target `prd`; did you mean `prod`? the targets are `prod`, `staging`\n"
    );
}

#[test]
fn a_log_file_gets_each_runs_start_and_end_and_json_logs_are_json() {
    let db = TestDb::new();
    let opsh = Opsh::new().db(&db);
    let mut cmd = opsh.command();
    cmd.args(["check-jobs", "--log-file", "logs/opsh.log"]);
    let run = support::Run::from(cmd.output().unwrap());
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let log = std::fs::read_to_string(opsh.path().join(format!("logs/opsh.log.{today}"))).unwrap();
    assert!(log.contains("check-jobs on default started"), "{log}");
    assert!(
        log.contains("check-jobs on default ended ok after"),
        "{log}"
    );
    let mut cmd = opsh.command();
    cmd.args(["check-jobs", "--log-format", "json", "-v"]);
    let run = support::Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 0);
    for line in run.stderr.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(event["level"].is_string());
    }
    assert!(run.stderr.contains("\"status\":\"ok\""), "{}", run.stderr);
}

// --- The guide's checklists ------------------------------------------------------------------

/// The (name, status) of each check of a JSON report.
fn checks(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn daily_check_reports_containers_error_logs_and_jobs_in_one_report() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 180, 0),
            ("vectorize", "pending", 1, 0),
        ],
    );
    let project = format!("opsh_test_daily_{}", std::process::id());
    let run = Opsh::new()
        .db(&db)
        .env("COMPOSE_PROJECT_NAME", &project)
        .args(["daily-check"])
        .run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "Daily check\n⚠️ containers: no container of the Compose project {project}; set compose.project\n\
✅ error logs: no line matching ERROR|CRITICAL|FATAL in the last day\n\
✅ jobs: pending 1, processing 1, completed 0, failed 0\n\
⚠️ stuck jobs: 1 job processing for more than 1 hour; oldest: job 1 for 3 hours\n\
Issues:\n  - run `opsh reset-stuck-jobs` (or check-data-fix) to put them back to pending\n\
Status: ⚠️ warning\n"
        )
    );
    // PostgreSQL down: that part is critical, the others are still checked.
    let down = Opsh::new()
        .env("DATABASE_URL", DOWN)
        .env("COMPOSE_PROJECT_NAME", &project)
        .args(["daily-check", "--json"])
        .run();
    assert_eq!(down.code, 2);
    assert_eq!(
        checks(&down.report()),
        pairs(&[
            ("containers", "warning"),
            ("error logs", "ok"),
            ("database", "critical")
        ])
    );
}

#[test]
fn weekly_check_reports_integrity_backup_and_disks_in_one_report() {
    let db = TestDb::new();
    let opsh = Opsh::new()
        .db(&db)
        // No Qdrant here: the integrity part is critical, the backup and disks still run.
        .env("QDRANT_URL", "http://127.0.0.1:1")
        .args(["weekly-check", "dir=backups", "--json"]);
    let run = opsh.run();
    assert_eq!(run.code, 2, "{}", run.stderr);
    let doc = run.report();
    assert_eq!(
        checks(&doc),
        pairs(&[
            ("data integrity", "critical"),
            ("database backup", "ok"),
            ("disk /", checks(&doc)[2].1.as_str()),
        ])
    );
    let file = doc["data"]["backup_file"].as_str().unwrap();
    assert!(
        std::path::Path::new(file).is_absolute() || opsh.path().join(file).exists(),
        "{file}"
    );
}

#[test]
fn monthly_check_reports_backup_sizes_and_logs_in_one_report() {
    let db = TestDb::new();
    let opsh = Opsh::new()
        .db(&db)
        .env("QDRANT_URL", "http://127.0.0.1:1")
        .file("logs/keep.log", "recent\n")
        .args(["monthly-check", "dir=backups", "--yes", "--json"]);
    let run = opsh.run();
    assert_eq!(run.code, 2, "{}", run.stderr);
    let doc = run.report();
    let names: Vec<String> = checks(&doc).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "backup");
    assert!(names.contains(&"database".to_string()), "{names:?}");
    assert!(names.contains(&"qdrant".to_string()), "{names:?}");
    assert_eq!(names.last().unwrap(), "old logs");
    assert!(doc["data"]["database_bytes"].as_i64().unwrap() > 1_000_000);
    assert!(
        checks(&doc).contains(&("database growth".to_string(), "ok".to_string())),
        "{doc}"
    );
    assert_eq!(
        doc["data"].get("rows_growth"),
        None,
        "no earlier backup: no growth"
    );
}

/// The second month compares its rows with the first month's backup manifest.
#[test]
fn monthly_check_reports_growth_since_the_previous_backup() {
    let db = TestDb::new();
    let opsh = Opsh::new()
        .db(&db)
        .env("QDRANT_URL", "http://127.0.0.1:1")
        .args(["monthly-check", "dir=backups", "--yes", "--json"]);
    assert_eq!(opsh.run().code, 2);
    let first = std::fs::read_dir(opsh.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("manifest.json")).unwrap()).unwrap();
    let before: i64 = manifest["postgres"]["tables"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    db.exec(
        "INSERT INTO channels (name, url, platform) VALUES ('a', 'https://a', 'youtube'), ('b', 'https://b', 'youtube')",
    );
    // A second backup in the same second would share the first one's name.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = opsh.run();
    assert_eq!(run.code, 2, "{}", run.stderr);
    let doc = run.report();
    let growth = doc["data"]["rows_growth"].as_i64().unwrap();
    assert_eq!(growth, doc["data"]["rows"].as_i64().unwrap() - before);
    assert!(growth >= 2, "two channels were added: {growth}");
    let detail = checks_detail(&doc, "database growth");
    assert!(
        detail.starts_with(&format!("{growth} rows since the backup of ")),
        "{detail}"
    );
}

fn checks_detail(doc: &serde_json::Value, name: &str) -> String {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["detail"].as_str().unwrap().to_string())
        .unwrap_or_default()
}
