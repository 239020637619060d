//! Ctrl-C and --timeout end a script promptly, also while it waits in a host call. The bounds
//! here are generous (a loaded 2-core machine keeps them); the latency itself is measured by
//! benches/startup.sh.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Opsh, Run, Spawned, TestDb};

/// Waits for the script's first line (so it is running), sends SIGINT, and returns the run and
/// how long the process took to end after the signal.
fn interrupt(opsh: Opsh) -> (Run, Duration) {
    let mut child = opsh.spawn();
    wait_for_start(&mut child);
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = wait_bounded(child, Duration::from_secs(10));
    (out, sent.elapsed())
}

fn wait_for_start(child: &mut Spawned) {
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
}

fn wait_bounded(mut child: Spawned, limit: Duration) -> Run {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("opsh did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn ctrl_c_ends_a_script_stuck_in_a_loop_promptly() {
    let (run, took) = interrupt(Opsh::new().args(["-e", "print(\"started\"); loop { }"]));
    run.expect(130, "", "opsh: error: interrupted\n");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn ctrl_c_ends_a_script_waiting_in_sleep_promptly() {
    let (run, took) = interrupt(Opsh::new().args([
        "-e",
        "print(\"started\"); sleep(\"1h\"); print(\"not reached\")",
    ]));
    run.expect(130, "", "opsh: error: interrupted\n");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn ctrl_c_ends_a_script_blocked_in_a_database_call_promptly() {
    let db = TestDb::new();
    let (run, took) = interrupt(Opsh::new().db(&db).args([
        "-e",
        "print(\"started\"); db::query(\"SELECT pg_sleep(3600)\")",
    ]));
    run.expect(130, "", "opsh: error: interrupted\n");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn timeout_ends_a_script_stuck_in_a_loop() {
    let child = Opsh::new()
        .args(["--timeout", "300ms", "-e", "loop { }"])
        .spawn();
    wait_bounded(child, Duration::from_secs(10)).expect(
        3,
        "",
        "opsh: error: timed out after 300ms (run.timeout, --timeout)\n",
    );
}

#[test]
fn timeout_ends_a_script_blocked_in_a_host_call() {
    let child = Opsh::new()
        .args(["--timeout", "1s", "-e", "sleep(\"1h\")"])
        .spawn();
    wait_bounded(child, Duration::from_secs(10)).expect(
        3,
        "",
        "opsh: error: timed out after 1s (run.timeout, --timeout)\n",
    );
    let db = TestDb::new();
    let child = Opsh::new()
        .db(&db)
        .args([
            "--timeout",
            "1s",
            "-e",
            "db::query(\"SELECT pg_sleep(3600)\")",
        ])
        .spawn();
    wait_bounded(child, Duration::from_secs(10)).expect(
        3,
        "",
        "opsh: error: timed out after 1s (run.timeout, --timeout)\n",
    );
}

#[test]
fn timeout_from_configuration_applies_too() {
    // The Opsh value owns the temp dir: it must outlive the process.
    let opsh = Opsh::new()
        .file("opsh.toml", "[run]\ntimeout = \"300ms\"\n")
        .args(["-e", "sleep(60)"]);
    let child = opsh.spawn();
    wait_bounded(child, Duration::from_secs(10)).expect(
        3,
        "",
        "opsh: error: timed out after 300ms (run.timeout, --timeout)\n",
    );
}

#[test]
fn a_script_that_catches_errors_still_cannot_ignore_a_timeout() {
    let code = "loop { try { sleep(\"1h\") } catch (e) { } }";
    let child = Opsh::new().args(["--timeout", "300ms", "-e", code]).spawn();
    wait_bounded(child, Duration::from_secs(10)).expect(
        3,
        "",
        "opsh: error: timed out after 300ms (run.timeout, --timeout)\n",
    );
}

/// The statement opsh's interrupted runs leave behind, if any: the long query, still active in
/// the test's database.
const LONG_QUERY: &str = "select pg_sleep(30)::text as x";

fn running(db: &TestDb) -> i64 {
    db.active(LONG_QUERY)
}

/// Polls until `done` holds, for at most `limit`; whether it came to hold.
fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// The query runs in PostgreSQL before opsh is stopped, so the test stops it mid-statement.
fn wait_until_running(db: &TestDb) {
    assert!(
        within(Duration::from_secs(20), || running(db) == 1),
        "the long query never showed in pg_stat_activity"
    );
}

fn long_query_script() -> String {
    format!("print(\"started\"); db::query(\"{LONG_QUERY}\", [])")
}

#[test]
fn ctrl_c_cancels_the_statement_in_postgres_too() {
    let db = TestDb::new();
    let mut child = Opsh::new()
        .db(&db)
        .args(["-e", &long_query_script()])
        .spawn();
    wait_for_start(&mut child);
    wait_until_running(&db);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_bounded(child, Duration::from_secs(10)).expect(130, "", "opsh: error: interrupted\n");
    // Without the cancel, PostgreSQL would go on sleeping for the rest of the 30 s.
    assert!(
        within(Duration::from_secs(2), || running(&db) == 0),
        "the query still runs in PostgreSQL after opsh was interrupted"
    );
}

#[test]
fn timeout_cancels_the_statement_in_postgres_too() {
    let db = TestDb::new();
    let mut child = Opsh::new()
        .db(&db)
        .args(["--timeout", "5s", "-e", &long_query_script()])
        .spawn();
    wait_for_start(&mut child);
    wait_until_running(&db);
    wait_bounded(child, Duration::from_secs(20)).expect(
        3,
        "",
        "opsh: error: timed out after 5s (run.timeout, --timeout)\n",
    );
    assert!(
        within(Duration::from_secs(2), || running(&db) == 0),
        "the query still runs in PostgreSQL after opsh timed out"
    );
}

#[test]
fn a_killed_opsh_leaves_no_statement_running_for_long() {
    // SIGKILL leaves no chance to cancel: the server itself notices the closed connection
    // (client_connection_check_interval, 2 s; PostgreSQL 14+, as the test server is).
    let db = TestDb::new();
    let mut child = Opsh::new()
        .db(&db)
        .args(["-e", &long_query_script()])
        .spawn();
    wait_for_start(&mut child);
    wait_until_running(&db);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        within(Duration::from_secs(10), || running(&db) == 0),
        "the query still runs in PostgreSQL 10 s after opsh was killed"
    );
}
