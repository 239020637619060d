//! STT spend and approvals (stt::, stt-cost, stt-approvals, daily-check's part) against the
//! real PostgreSQL on the deployment's schema plus stt_cost_tracking as the workers create it,
//! and the real Redis (a db of its own per test).

mod support;

use serde_json::{Value, json};
use support::{Opsh, TestDb};

/// stt_cost_tracking as the STT workers create it (SQLAlchemy create_all of their model).
const TABLE: &str = "CREATE TABLE stt_cost_tracking (
    id SERIAL PRIMARY KEY,
    content_id INTEGER NOT NULL,
    duration_seconds DOUBLE PRECISION NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    api_provider VARCHAR(50) NOT NULL,
    processed_at TIMESTAMP WITHOUT TIME ZONE,
    approved_by_user BOOLEAN DEFAULT false,
    approval_timestamp TIMESTAMP WITHOUT TIME ZONE);";

/// What opsh says on the deployment's unmigrated schema when it reads processing_jobs.
const NO_MIGRATION: &str = " WARN processing_jobs has no retry_count and no updated_at (the deployment's init.sql does not create them): retries are not counted, so max_retries cannot apply to stuck jobs, and updated_at reads as NULL; `opsh migrate` adds them\n";

/// An empty Redis db of the test server, by number (unique per test in this file).
fn redis_db(n: u8) -> (String, redis::Connection) {
    let server = std::env::var("REDIS_URL").expect("REDIS_URL is set by tools/with-services");
    let url = format!(
        "{}/{n}",
        server
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('/')
    );
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();
    (url, conn)
}

fn ago(mins: i64) -> String {
    (chrono::Utc::now().naive_utc() - chrono::Duration::minutes(mins))
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// An approval as the workers write it, requested `mins` ago.
fn approval(content_id: i64, mins: i64, status: &str) -> (String, String) {
    let id = format!("stt_approval_{content_id}_17640000{content_id:02}.25");
    let value = json!({
        "approval_id": id, "content_id": content_id, "title": format!("Video {content_id}"),
        "channel_name": "Finance Daily", "duration_seconds": 2400.0, "duration_minutes": 40.0,
        "estimated_cost_usd": 0.24, "requested_at": ago(mins), "status": status
    });
    (id, value.to_string())
}

fn hset(conn: &mut redis::Connection, fields: &[(String, String)]) {
    let mut cmd = redis::cmd("HSET");
    cmd.arg("stt:pending_approval");
    for (k, v) in fields {
        cmd.arg(k).arg(v);
    }
    cmd.exec(conn).unwrap();
}

fn hget(conn: &mut redis::Connection, field: &str) -> Value {
    let text: String = redis::cmd("HGET")
        .arg("stt:pending_approval")
        .arg(field)
        .query(conn)
        .unwrap();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// Paid runs today costing `today` in all, and one earlier this month costing `earlier`
/// (on the 1st of the month, at midnight, which is also today's start on the 1st: then the
/// earlier run is left out).
fn costs(db: &TestDb, today: f64, earlier: f64) {
    db.exec(TABLE);
    db.exec(&format!(
        "INSERT INTO stt_cost_tracking (content_id, duration_seconds, cost_usd, api_provider, processed_at)
         VALUES (1, {secs}, {today}, 'openai', date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 second'),
                (2, 600, 0, 'whisper_server', date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 second'),
                (3, 9000, 50, 'openai', date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 hour');
         INSERT INTO stt_cost_tracking (content_id, duration_seconds, cost_usd, api_provider, processed_at)
         SELECT 4, 600, {earlier}, 'openai', date_trunc('month', now() AT TIME ZONE 'UTC')
         WHERE {earlier} > 0
           AND date_trunc('month', now() AT TIME ZONE 'UTC') < date_trunc('day', now() AT TIME ZONE 'UTC');",
        secs = today / 0.006 * 60.0
    ));
}

#[test]
fn no_table_and_no_hash_are_not_in_use_yet_and_healthy() {
    let db = TestDb::deployment();
    let (url, _conn) = redis_db(1);
    Opsh::new()
        .db(&db)
        .env("REDIS_URL", &url)
        .args(["stt-cost"])
        .run()
        .expect(
            0,
            "STT spend\n✅ stt spend: not in use yet: there is no table stt_cost_tracking (the STT workers create it)\nStatus: ✅ healthy\n",
            "",
        );
    Opsh::new()
        .db(&db)
        .env("REDIS_URL", &url)
        .args(["stt-approvals"])
        .run()
        .expect(
            0,
            "STT approvals\n✅ approvals: not in use yet: there is no hash stt:pending_approval (no run has waited for approval)\nStatus: ✅ healthy\n",
            "",
        );
}

#[test]
fn stt_cost_warns_at_80_percent_and_is_critical_at_95_of_the_workers_limits() {
    let db = TestDb::deployment();
    costs(&db, 8.5, 0.0);
    let run = Opsh::new().db(&db).args(["stt-cost"]).run();
    run.code(1);
    assert!(
        run.stdout.starts_with(
            "STT spend\n⚠️ today: $8.50 of $10.00 (85.0%), 1 paid runs, 1416.7 minutes\n✅ this month: $8.50 of $100.00 (8.5%), 1 paid runs, 1416.7 minutes\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\n  - content 1: $8.50 for 1416.7 minutes at "),
        "{}",
        run.stdout
    );
    // The workers' own environment names set the limits (here as .env does).
    let strict = Opsh::new()
        .db(&db)
        .env("STT_DAILY_COST_LIMIT", "8.6")
        .args(["--json", "stt-cost"])
        .run();
    strict.code(2);
    let doc = strict.report();
    assert_eq!(doc["data"]["today"]["percent"], 98.8);
    assert_eq!(doc["data"]["today"]["limit_usd"], 8.6);
    assert_eq!(doc["data"]["month"]["runs"], 1);
    let bad = Opsh::new()
        .db(&db)
        .env("STT_MONTHLY_COST_LIMIT", "lots")
        .args(["stt-cost"])
        .run();
    bad.code(3);
    assert!(
        bad.stderr.contains("`lots` is not a number of 0 or more"),
        "{}",
        bad.stderr
    );
}

#[test]
fn spend_counts_only_paid_runs_since_utc_midnight_and_the_first_of_the_month() {
    let db = TestDb::deployment();
    costs(&db, 1.5, 2.0);
    let run = Opsh::new()
        .db(&db)
        .args([
            "--json",
            "-e",
            "let s = stt::spend(); [s.today.spent_usd, s.today.runs, s.month.runs, s.whisper_server_runs, s.biggest.map(|b| b.content_id)]",
        ])
        .run();
    run.code(0);
    let first_of_month = chrono::Utc::now().format("%d").to_string() == "01";
    if first_of_month {
        assert_eq!(run.json(), json!([1.5, 1, 1, 1, [1]]));
    } else {
        assert_eq!(run.json(), json!([1.5, 1, 2, 1, [4, 1]]));
    }
}

#[test]
fn stt_approvals_lists_waiting_runs_with_their_time_left_and_malformed_values() {
    let db = TestDb::deployment();
    let (url, mut conn) = redis_db(2);
    let waiting = approval(3, 20, "pending");
    let late = approval(4, 90, "pending");
    let done = approval(5, 100, "approved");
    hset(
        &mut conn,
        &[
            waiting.clone(),
            late.clone(),
            done,
            ("stt_approval_9_1".into(), "[1, 2]".into()),
        ],
    );
    let run = Opsh::new()
        .db(&db)
        .env("REDIS_URL", &url)
        .args(["--json", "stt-approvals"])
        .run();
    run.code(1);
    let doc = run.report();
    let checks: Vec<(String, String)> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert_eq!(checks[0].0, late.0, "oldest first");
    assert!(
        checks[0].1.starts_with(
            "content 4 \"Video 4\" (Finance Daily), 40.0 min, ~$0.24: waited 1 hour 30 minutes"
        ) && checks[0].1.ends_with("the worker has given up on it"),
        "{checks:?}"
    );
    assert_eq!(checks[1].0, waiting.0);
    assert!(
        checks[1].1.contains(": waiting 20 minutes") && checks[1].1.contains("left"),
        "{checks:?}"
    );
    assert_eq!(
        checks[2],
        (
            "stt_approval_9_1".to_string(),
            "malformed (not a JSON object), left as it is".to_string()
        )
    );
    assert_eq!(doc["data"]["decided"], json!({"approved": 1}));
    let left = doc["data"]["approvals"][1]["seconds_left"]
        .as_i64()
        .unwrap();
    assert!((2390..=2400).contains(&left), "{left}");
}

#[test]
fn approve_writes_the_fields_the_workers_read_and_leaves_decided_and_malformed_ones() {
    let db = TestDb::deployment();
    let (url, mut conn) = redis_db(3);
    let a = approval(3, 5, "pending");
    let b = approval(4, 5, "pending");
    let rejected = approval(5, 5, "rejected");
    hset(
        &mut conn,
        &[
            a.clone(),
            b.clone(),
            rejected.clone(),
            ("stt_approval_9_1".into(), "{oops".into()),
        ],
    );
    // Dry run: reported, nothing written.
    let dry = Opsh::new()
        .db(&db)
        .env("REDIS_URL", &url)
        .args([
            "--dry-run",
            "stt-approvals",
            &format!("approve={},{}", a.0, b.0),
        ])
        .run();
    assert!(
        dry.stdout.starts_with(&format!(
            "STT approvals\n✅ {}: would be approved\n✅ {}: would be approved\n",
            a.0, b.0
        )),
        "{}",
        dry.stdout
    );
    assert_eq!(hget(&mut conn, &a.0)["status"], "pending");

    let run = Opsh::new()
        .db(&db)
        .env("REDIS_URL", &url)
        .args([
            "--yes",
            "stt-approvals",
            &format!("approve={},{},stt_approval_9_1,nope", a.0, rejected.0),
            "by=oncall",
        ])
        .run();
    run.code(1);
    assert!(
        run.stdout.starts_with(&format!(
            "STT approvals\n✅ {}: approved\n⚠️ {}: not pending (rejected): left as it is\n⚠️ nope: no such approval\n⚠️ stt_approval_9_1: malformed: left as it is\n⚠️ {}: content 4",
            a.0, rejected.0, b.0
        )),
        "{}",
        run.stdout
    );
    let written = hget(&mut conn, &a.0);
    assert_eq!(written["status"], "approved");
    assert_eq!(written["approved_by"], "oncall");
    let at = written["approved_at"].as_str().unwrap();
    let at = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
    assert!((chrono::Utc::now().naive_utc() - at).num_seconds().abs() < 120);
    // Every field the worker wrote is still there.
    for field in [
        "approval_id",
        "content_id",
        "title",
        "estimated_cost_usd",
        "requested_at",
    ] {
        assert!(written.get(field).is_some(), "{field}: {written}");
    }
    assert_eq!(
        hget(&mut conn, &rejected.0),
        serde_json::from_str::<Value>(&rejected.1).unwrap()
    );
    assert_eq!(
        hget(&mut conn, "stt_approval_9_1"),
        Value::String("{oops".into())
    );
}

#[test]
fn reject_writes_the_reason_and_the_run_is_no_longer_pending() {
    let db = TestDb::deployment();
    let (url, mut conn) = redis_db(4);
    let a = approval(3, 5, "pending");
    hset(&mut conn, std::slice::from_ref(&a));
    let run = Opsh::new()
        .db(&db)
        .env("REDIS_URL", &url)
        .args([
            "--yes",
            "stt-approvals",
            &format!("reject={}", a.0),
            "reason=too long for the paid API",
        ])
        .run();
    run.expect(
        0,
        &format!(
            "STT approvals\n✅ {}: rejected\n✅ approvals: none waiting\nStatus: ✅ healthy\n",
            a.0
        ),
        &format!(
            " INFO stt::reject: reject 1 STT runs on the paid API ({})? (confirmed by --yes)\n",
            a.0
        ),
    );
    let written = hget(&mut conn, &a.0);
    assert_eq!(written["status"], "rejected");
    assert_eq!(written["rejected_by"], "opsh");
    assert_eq!(written["rejection_reason"], "too long for the paid API");
    assert!(written["rejected_at"].is_string());
    // A second decision changes nothing.
    let again = Opsh::new()
        .db(&db)
        .env("REDIS_URL", &url)
        .args([
            "--yes",
            "-e",
            &format!("stt::approve({:?}).not_pending", a.0),
        ])
        .run();
    again.code(0);
    assert_eq!(hget(&mut conn, &a.0)["status"], "rejected");
}

#[test]
fn daily_check_reports_spend_and_approvals_about_to_time_out() {
    let db = TestDb::deployment();
    costs(&db, 9.7, 0.0);
    let (url, mut conn) = redis_db(5);
    let soon = approval(3, 50, "pending");
    let fresh = approval(4, 1, "pending");
    let gone = approval(5, 200, "pending");
    hset(&mut conn, &[soon.clone(), fresh, gone]);
    let project = format!("opsh_test_stt_daily_{}", std::process::id());
    let run = Opsh::new()
        .db(&db)
        .env("REDIS_URL", &url)
        .env("COMPOSE_PROJECT_NAME", &project)
        .args(["--json", "daily-check"])
        .run();
    run.code(2);
    let doc = run.report();
    let checks: Vec<(String, String)> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let stt: Vec<_> = checks
        .iter()
        .filter(|(n, _)| n.starts_with("stt"))
        .cloned()
        .collect();
    assert_eq!(
        stt,
        [
            ("stt spend".to_string(), "critical".to_string()),
            (format!("stt approval {}", soon.0), "warning".to_string())
        ]
    );
    assert_eq!(
        run.stderr.matches(NO_MIGRATION.trim()).count(),
        1,
        "{}",
        run.stderr
    );
}
