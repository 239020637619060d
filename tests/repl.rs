//! The REPL through the real binary on a pseudo-terminal (rexpect), reading the screen as an
//! operator would; piped input through plain pipes.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use rexpect::session::PtySession;
use support::{Opsh, TestDb, seed_jobs};

/// Generous: a loaded CI machine may take seconds to start a debug binary.
const WAIT_MS: u64 = 20_000;

/// Starts the REPL on a 160×50 pty with the runner's environment (clean, HOME in its temp
/// dir), no colours so the screen reads as plain text.
fn repl(opsh: &Opsh) -> PtySession {
    repl_with(opsh, true)
}

fn repl_with(opsh: &Opsh, no_color: bool) -> PtySession {
    let template = opsh.command();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "stty cols 160 rows 50 && exec \"$0\"", support::BIN])
        .current_dir(opsh.path())
        .env_clear()
        .env("TERM", "xterm")
        .env("PAGER", "cat");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    for (key, value) in template.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let mut p = rexpect::session::spawn_command(cmd, Some(WAIT_MS)).expect("start opsh on a pty");
    p.exp_string("opsh> ").expect("the prompt");
    p
}

/// What the line editor writes when it starts reading an entry (it turns bracketed paste on);
/// the prompt text itself is redrawn on every keystroke, so it cannot tell a new entry.
const NEW_ENTRY: &str = "\x1b[?2004h";

/// Sends a line and waits for the next entry to start; returns what was shown in between.
fn line(p: &mut PtySession, text: &str) -> String {
    p.send_line(text).expect("send");
    next_entry(p)
}

fn next_entry(p: &mut PtySession) -> String {
    let shown = p
        .exp_string(NEW_ENTRY)
        .unwrap_or_else(|e| panic!("no new prompt: {e}"));
    utf8(&shown)
}

/// rexpect hands over each byte as one char; the screen is UTF-8.
fn utf8(shown: &str) -> String {
    let bytes: Vec<u8> = shown.chars().map(|c| c as u32 as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Types keys without Enter.
fn keys(p: &mut PtySession, text: &str) {
    p.send(text).expect("send");
    p.flush().expect("flush");
}

fn quit(mut p: PtySession) {
    p.send_control('d').expect("Ctrl-D");
    p.exp_eof().expect("opsh ends on Ctrl-D");
}

#[test]
fn the_banner_names_the_version_and_redacted_target() {
    let opsh = Opsh::new().env("DATABASE_URL", "postgres://ops:s3cret@db.example:5433/app");
    let template = opsh.command();
    let mut cmd = Command::new(support::BIN);
    cmd.current_dir(opsh.path())
        .env_clear()
        .env("TERM", "xterm");
    for (key, value) in template.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let mut p = rexpect::session::spawn_command(cmd, Some(WAIT_MS)).unwrap();
    let shown = utf8(&p.exp_string("opsh> ").unwrap());
    assert!(
        shown.contains(&format!(
            "opsh {} — postgres://ops:***@db.example:5433/app — :help for help\r\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"));
    quit(p);
}

#[test]
fn code_is_highlighted_on_a_terminal_unless_no_color() {
    let mut p = repl_with(&Opsh::new(), false);
    keys(&mut p, "let n = jobs::");
    p.exp_regex("\x1b\\[[0-9;]*mlet\x1b\\[0m")
        .expect("the keyword coloured");
    keys(&mut p, "\x15");
    quit(p);
    let mut p = repl(&Opsh::new());
    let shown = line(&mut p, "let n = \"text\"; n");
    assert!(shown.contains("let n = \"text\""), "{shown}");
    assert!(
        !shown.contains("\x1b[3"),
        "colours with NO_COLOR: {shown:?}"
    );
    quit(p);
}

#[test]
fn tab_after_a_module_offers_its_functions() {
    let mut p = repl(&Opsh::new());
    keys(&mut p, "jobs::re\t\t");
    let shown = p.exp_string("retry_failed").expect("the candidates");
    assert!(shown.contains("reset_processing"), "{shown}");
    assert!(shown.contains("reset_stuck"), "{shown}");
    keys(&mut p, "\x15");
    // Options of the call being typed.
    keys(&mut p, "jobs::list(#{ol\t");
    p.exp_string("older_than: ").expect("the option completed");
    keys(&mut p, "\x15");
    // Procedures after :run.
    keys(&mut p, ":run reset-st\t");
    p.exp_string("reset-stuck-jobs ")
        .expect("the procedure completed");
    keys(&mut p, "\x15");
    quit(p);
}

#[test]
fn a_function_defined_over_several_lines_stays_defined() {
    let mut p = repl(&Opsh::new());
    p.send_line("fn tri(n) {").unwrap();
    p.send_line("  if n == 0 { 0 } else { n + tri(n - 1) }")
        .unwrap();
    line(&mut p, "}");
    let shown = line(&mut p, "tri(4) * 10 + 2");
    assert!(shown.contains("102"), "{shown}");
    // A wrong line is an error at once, not a continuation.
    let shown = line(&mut p, "1 )");
    assert!(shown.contains("opsh: error: syntax error"), "{shown}");
    let shown = line(&mut p, ":vars");
    assert!(shown.contains("fn tri(n)"), "{shown}");
    quit(p);
}

#[test]
fn help_on_a_function_shows_its_signature_options_and_example() {
    let mut p = repl(&Opsh::new());
    let shown = line(&mut p, ":help jobs::list");
    for part in [
        "jobs::list(options?: map) -> Array",
        "Options:",
        "older_than: duration — last activity at least this long ago",
        "limit: int = 100 — at most this many jobs",
        "Example:",
    ] {
        assert!(shown.contains(part), "{part:?} missing in:\n{shown}");
    }
    let shown = line(&mut p, ":help");
    assert!(shown.contains(":run"), "{shown}");
    assert!(shown.contains("jobs::"), "{shown}");
    let shown = line(&mut p, ":hlep");
    assert!(shown.contains("did you mean `:help`?"), "{shown}");
    quit(p);
}

#[test]
fn jobs_list_renders_as_a_table_and_live_job_types_complete() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("transcribe", "pending", 5, 0),
            ("summarize", "processing", 90, 1),
            ("transcribe", "failed", 200, 3),
        ],
    );
    let mut p = repl(&Opsh::new().db(&db));
    let shown = line(
        &mut p,
        "jobs::list().map(|j| #{id: j.id, job_type: j.job_type, status: j.status})",
    );
    assert!(
        shown.contains("│ id ┆ job_type   ┆ status     │"),
        "no table header in:\n{shown}"
    );
    assert!(
        shown.contains("│ 3  ┆ transcribe ┆ failed     │"),
        "{shown}"
    );
    assert!(shown.contains("(3 rows)"), "{shown}");
    let shown = line(&mut p, "jobs::list()");
    assert!(shown.contains("retry_c"), "{shown}");
    assert!(shown.contains("(3 rows)"), "{shown}");
    // The job types come from the database, once.
    keys(&mut p, "jobs::list(#{job_type: \"su\t");
    p.exp_string("summarize\"").expect("the job type completed");
    keys(&mut p, "\x15");
    quit(p);
}

#[test]
fn tables_keep_the_functions_column_order_and_read_as_a_person_writes() {
    let db = TestDb::new();
    seed_jobs(
        &db,
        &[
            ("summarize", "processing", 90, 1),
            ("transcribe", "failed", 200, 3),
        ],
    );
    let mut p = repl(&Opsh::new().db(&db).env("OPSH_OUTPUT_TIMEZONE", "utc"));
    let shown = line(&mut p, "jobs::list(#{status: \"processing\"})");
    // The order jobs::list gives, not the keys' alphabetical one; in 160 columns the headers
    // of empty columns give way, the data is whole.
    let header = shown
        .lines()
        .find(|l| l.starts_with("│ id"))
        .unwrap_or_default();
    assert_eq!(
        header,
        "│ id ┆ job_type  ┆ content_id ┆ status     ┆ priority ┆ retry_co… ┆ error… ┆ created_at          ┆ started_at          ┆ compl… ┆ updated_at          ┆ age_s… │",
        "{shown}"
    );
    let started = db.scalar(
        "SELECT to_char(started_at, 'YYYY-MM-DD HH24:MI:SS') FROM processing_jobs WHERE status = 'processing'",
    );
    assert!(
        shown.contains("┆ processing ┆") && shown.contains(&format!("┆ {started} ┆")),
        "{shown}"
    );
    assert!(shown.contains("┆ 1h 30m "), "{shown}");
    // A query's columns in its SELECT order.
    let shown = line(&mut p, "db::query(\"SELECT 2 AS b, 1 AS a, 'x' AS c\")");
    assert!(shown.contains("│ b ┆ a ┆ c │"), "{shown}");
    // :x shows one record per block, as psql's expanded mode.
    line(&mut p, ":x");
    let shown = line(&mut p, "jobs::list(#{status: \"failed\"})");
    assert!(shown.contains("-[ RECORD 1 ]"), "{shown}");
    assert!(shown.contains("job_type      | transcribe"), "{shown}");
    assert!(shown.contains("age_seconds   | 3h 20m"), "{shown}");
    quit(p);
}

#[test]
fn ctrl_c_during_sleep_returns_to_the_prompt() {
    let mut p = repl(&Opsh::new());
    p.send_line("sleep(30); \"not reached\"").unwrap();
    p.exp_string("sleep(30)").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    p.send_control('c').unwrap();
    let shown = next_entry(&mut p);
    assert!(shown.contains("interrupted"), "{shown}");
    assert!(!shown.contains("\nnot reached"), "{shown}");
    assert!(started.elapsed().as_secs() < 15);
    // The session goes on, variables included.
    let shown = line(&mut p, "40 + 2");
    assert!(shown.contains("42"), "{shown}");
    // Ctrl-C at the prompt clears the line and stays.
    keys(&mut p, "half typed");
    p.send_control('c').unwrap();
    next_entry(&mut p);
    let shown = line(&mut p, "\"still here\"");
    assert!(shown.contains("still here"), "{shown}");
    quit(p);
}

#[test]
fn ctrl_c_during_a_database_call_returns_to_the_prompt() {
    let db = TestDb::new();
    let mut p = repl(&Opsh::new().db(&db));
    line(&mut p, "db::ping().server_version.len() > 0");
    let query = "select pg_sleep(30)::text as x";
    p.send_line(&format!("db::query(\"{query}\", [])")).unwrap();
    p.exp_string("pg_sleep(30)").unwrap();
    let waiting = std::time::Instant::now();
    while db.active(query) == 0 && waiting.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(db.active(query), 1, "the query never ran");
    let started = std::time::Instant::now();
    p.send_control('c').unwrap();
    let shown = next_entry(&mut p);
    assert!(shown.contains("interrupted"), "{shown}");
    assert!(started.elapsed().as_secs() < 15);
    // The prompt is back and PostgreSQL stopped the statement too (psql's Ctrl-C does the same).
    let stopped = std::time::Instant::now();
    while db.active(query) > 0 && stopped.elapsed().as_secs() < 2 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(db.active(query), 0, "the query still runs in PostgreSQL");
    let shown = line(&mut p, "db::query(\"SELECT 1 AS one\")");
    assert!(shown.contains("(1 row)"), "{shown}");
    quit(p);
}

#[test]
fn lines_typed_ahead_are_not_lost() {
    let mut p = repl(&Opsh::new());
    p.send_line("sleep(\"300ms\"); 6 * 7\n\"typed ahead\"")
        .unwrap();
    let shown = next_entry(&mut p) + next_entry(&mut p).as_str();
    assert!(shown.contains("\n42"), "{shown}");
    assert!(shown.contains("\ntyped ahead"), "{shown}");
    quit(p);
}

#[test]
fn history_survives_a_restart_in_the_xdg_state_directory() {
    let opsh = Opsh::new();
    let state = opsh.path().join("state");
    let opsh = opsh.env("XDG_STATE_HOME", state.to_str().unwrap());
    let mut p = repl(&opsh);
    line(&mut p, "let marker = 4242;");
    quit(p);
    let file = state.join("opsh/history");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&state.join("opsh")), 0o700);

    let mut p = repl(&opsh);
    keys(&mut p, "\x1b[A"); // Up
    p.exp_string("let marker = 4242;")
        .expect("the last entry recalled");
    keys(&mut p, "\x15");
    quit(p);
}

#[test]
fn a_confirmation_is_asked_at_the_prompt() {
    let db = TestDb::new();
    seed_jobs(&db, &[("transcribe", "processing", 5, 0)]);
    let mut p = repl(&Opsh::new().db(&db));
    p.send_line("jobs::reset_processing().reset").unwrap();
    p.exp_string("Type `yes` to continue:").unwrap();
    let shown = line(&mut p, "yes");
    assert!(shown.contains('1'), "{shown}");
    assert_eq!(db.scalar("SELECT status FROM processing_jobs"), "pending");
    quit(p);
}

#[test]
fn piped_input_is_read_like_a_script() {
    Opsh::new()
        .stdin(
            "let x = 2;\nfn twice(n) {\n  n * 2\n}\nlet m = #{\n  a: twice(x)\n};\nm.a * 10 + 2\n",
        )
        .run()
        .expect(0, "42\n", "");
    // A chain or an else on the next line belongs to the statement before.
    Opsh::new()
        .stdin("let n = [3, 1, 2]\n    .len();\nif n > 5 { \"big\" }\nelse { \"small\" }\n")
        .run()
        .expect(0, "small\n", "");
}

#[test]
fn piped_input_stops_at_an_error_with_exit_3() {
    Opsh::new()
        .stdin("\"before\"\nno_such_variable\n\"after\"\n")
        .run()
        .expect(
            3,
            "before\n",
            "opsh: error: syntax error: Undefined variable: no_such_variable\n  --> <repl>:1:1\n   |\n 1 | no_such_variable\n   | ^\n",
        );
    // An unfinished last statement is an error too.
    let run = Opsh::new().stdin("fn f() {\n  1\n").run();
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[test]
fn piped_input_ending_in_a_report_exits_with_its_status() {
    Opsh::new()
        .stdin("let r = report::new(\"t\");\nr.warn(\"disk\", \"80%\");\nr\n")
        .run()
        .expect(1, "t\n⚠️ disk: 80%\nStatus: ⚠️ warning\n", "");
}
