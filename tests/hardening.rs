//! Issue 6, items 3–11, each reproduction as a test: secrets, logs, site-script trust,
//! db::query's side effects, a closed stdout, bad bytes, the --json contract, configuration
//! validation, error texts.

mod support;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use pretty_assertions::assert_eq;
use support::{Opsh, Run, TestDb, seed_jobs};

/// How the error frame of `db::ping()` at `<-e>:1:5` ends.
const PING_FRAME: &str = "  --> <-e>:1:5\n   |\n 1 | db::ping()\n   |     ^\n";

fn run(mut cmd: Command) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Run::from(cmd.output().expect("run opsh"))
}

/// A URL as opsh shows it: the password masked (checked here by hand, not with opsh's own
/// redaction).
fn shown_address(url: &str) -> String {
    let mut url = url::Url::parse(url).expect("a URL");
    if url.password().is_some() {
        url.set_password(Some("***")).unwrap();
    }
    url.to_string()
}

fn config_value(json: &serde_json::Value, key: &str) -> String {
    json["settings"]
        .as_array()
        .expect("config --json has its settings")
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {json}"))["value"]
        .as_str()
        .unwrap()
        .to_string()
}

// --- 3. Secrets --------------------------------------------------------------------------

#[test]
fn a_url_that_does_not_parse_is_shown_only_by_its_length() {
    let cases = [
        (
            "postgres://postgres:S3cret@127.0.0.1:99999/db",
            "<unparseable, 45 chars>",
            "invalid port number",
        ),
        (
            "postgres://postgres:S3cret@/db",
            "<unparseable, 30 chars>",
            "empty host",
        ),
        (
            "[::1:5432",
            "<unparseable, 9 chars>",
            "relative URL without a base",
        ),
        (
            "S3cret is no URL",
            "<unparseable, 16 chars>",
            "relative URL without a base",
        ),
    ];
    for (url, shown, cause) in cases {
        let json = Opsh::new()
            .env("DATABASE_URL", url)
            .args(["--json", "config"])
            .run();
        json.code(0);
        assert_eq!(config_value(&json.json(), "postgres.url"), shown, "{url}");
        let text = Opsh::new().env("DATABASE_URL", url).args(["config"]).run();
        assert!(
            text.stdout.contains(&format!(
                "postgres.url                      = \"{shown}\"  # env DATABASE_URL\n"
            )),
            "{url}: {}",
            text.stdout
        );
        Opsh::new()
            .env("DATABASE_URL", url)
            .args(["-e", "db::ping()"])
            .run()
            .expect(
                3,
                "",
                &format!(
                    "opsh: error: db::ping: postgres at {shown} (postgres.url, from DATABASE_URL): error with configuration: {cause}\n{PING_FRAME}"
                ),
            );
    }
}

#[test]
fn passwords_secret_parameters_and_api_keys_are_masked() {
    let cases = [
        (
            "DATABASE_URL",
            "postgres://u@db:5432/x?password=S3cret&sslmode=disable",
            "postgres.url",
            "postgres://u@db:5432/x?password=***&sslmode=disable",
        ),
        (
            "REDIS_URL",
            "redis://:S3cret@cache:6379/0",
            "redis.url",
            "redis://:***@cache:6379/0",
        ),
        (
            "QDRANT_URL",
            "http://q:6334/?api_key=S3cret",
            "qdrant.url",
            "http://q:6334/?api_key=***",
        ),
        ("QDRANT_API_KEY", "S3cret", "qdrant.api_key", "***"),
        (
            "OPSH_COMPOSE_FILE",
            "compose.yml token=S3cret",
            "compose.file",
            "compose.yml token=***",
        ),
    ];
    for (var, value, key, shown) in cases {
        let run = Opsh::new().env(var, value).args(["--json", "config"]).run();
        run.code(0);
        assert_eq!(config_value(&run.json(), key), shown, "{var}={value}");
        assert!(!run.stdout.contains("S3cret"), "{}", run.stdout);
    }
}

#[test]
fn a_malformed_dotenv_line_is_named_by_file_and_line_without_its_value() {
    let cases = [
        (
            "DATABASE_URL=postgres://u:S3cret@h/db\nPASSWORD S3cret oops\n",
            2,
            9,
        ),
        ("A=1\n\nB=\"unterminated S3cret\n", 3, 23),
    ];
    for (dotenv, line, character) in cases {
        let opsh = Opsh::new().file(".env", dotenv).args(["config"]);
        let file = opsh.path().join(".env");
        opsh.run().expect(
            3,
            "",
            &format!(
                "opsh: error: {}:{line}: cannot parse this line (at character {character}); expected KEY=value (the line is not shown: it may hold a secret)\n",
                file.display()
            ),
        );
    }
}

// --- 4. Logging --------------------------------------------------------------------------

#[test]
fn library_logs_appear_only_at_vv_and_v_shows_what_opsh_does() {
    let db = TestDb::new();
    // Over sqlx's 1 s slow-statement threshold: sqlx warned with the statement's text.
    let code = "db::query(\"SELECT pg_sleep(1.1)\").len()";
    Opsh::new()
        .db(&db)
        .args(["-e", code])
        .run()
        .expect(0, "1\n", "");

    let verbose = Opsh::new().db(&db).args(["-v", "-e", code]).run();
    verbose.code(0);
    let lines: Vec<&str> = verbose.stderr.lines().collect();
    let address = shown_address(&db.url);
    assert_eq!(lines.len(), 4, "{}", verbose.stderr);
    assert_eq!(
        lines[0],
        format!("DEBUG connecting to postgres at {address}")
    );
    assert!(
        lines[1].starts_with(&format!("DEBUG connected to postgres at {address} in ")),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("DEBUG db::query: 1 rows in "),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("DEBUG db::query: done in "),
        "{}",
        lines[3]
    );

    let very = Opsh::new().db(&db).args(["-vv", "-e", code]).run();
    very.code(0);
    assert!(
        very.stderr.contains("slow statement") && very.stderr.contains("pg_sleep"),
        "{}",
        very.stderr
    );
}

// --- 5. Site-script trust ----------------------------------------------------------------

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chown_nobody(path: &std::path::Path) {
    std::os::unix::fs::chown(path, Some(65534), None).expect("chown to nobody");
}

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn refusal(path: &str, why: &str, fix: &str) -> String {
    format!("opsh: error: refusing site script {path}: {why}; run `{fix}` to fix it\n")
}

#[test]
fn site_scripts_are_trusted_as_ssh_trusts_keys() {
    // Not root: the test fails saying so (a skip that passes would hide the check).
    assert!(
        is_root(),
        "this test gives files to the user nobody: run it as root (CI does)"
    );
    type Setup = fn(&Opsh);
    type Expected = fn(&Opsh) -> String;
    let cases: [(&str, &[&str], Setup, Expected); 6] = [
        (
            "a script owned by another user",
            &["check-jobs"],
            |o| chown_nobody(&o.path().join("ops/check-jobs.rhai")),
            |_| {
                refusal(
                    "./ops/check-jobs.rhai",
                    "file ./ops/check-jobs.rhai is owned by nobody (uid 65534), not by you (root) or root",
                    "chown root ./ops/check-jobs.rhai",
                )
            },
        ),
        (
            "a script directory owned by another user",
            &["check-jobs"],
            |o| chown_nobody(&o.path().join("ops")),
            |_| {
                refusal(
                    "./ops/check-jobs.rhai",
                    "directory ./ops is owned by nobody (uid 65534), not by you (root) or root",
                    "chown root ./ops",
                )
            },
        ),
        (
            "a group-writable script",
            &["check-jobs"],
            |o| chmod(&o.path().join("ops/check-jobs.rhai"), 0o664),
            |_| {
                refusal(
                    "./ops/check-jobs.rhai",
                    "file ./ops/check-jobs.rhai is writable by its group (mode 664)",
                    "chmod go-w ./ops/check-jobs.rhai",
                )
            },
        ),
        (
            "a world-writable parent of ./ops",
            &["check-jobs"],
            |o| chmod(o.path(), 0o777),
            |o| {
                let dir = o.path().display().to_string();
                refusal(
                    "./ops/check-jobs.rhai",
                    &format!("directory {dir} is writable by its group and others (mode 777)"),
                    &format!("chmod go-w {dir}"),
                )
            },
        ),
        (
            "a symlink into a world-writable directory",
            &["linked"],
            |o| {
                let open = o.path().join("open");
                support::write_file(&open.join("x.rhai"), "// linked\n\"ran\"\n");
                chmod(&open, 0o777);
                std::os::unix::fs::symlink(open.join("x.rhai"), o.path().join("ops/linked.rhai"))
                    .expect("symlink");
            },
            |o| {
                let open = o.path().join("open").display().to_string();
                refusal(
                    "./ops/linked.rhai",
                    &format!("directory {open} is writable by its group and others (mode 777)"),
                    &format!("chmod go-w {open}"),
                )
            },
        ),
        (
            "opsh run on a world-writable file",
            &["run", "elsewhere/x.rhai"],
            |o| {
                support::write_file(&o.path().join("elsewhere/x.rhai"), "\"ran\"\n");
                chmod(&o.path().join("elsewhere/x.rhai"), 0o666);
            },
            |_| {
                refusal(
                    "elsewhere/x.rhai",
                    "file elsewhere/x.rhai is writable by its group and others (mode 666)",
                    "chmod go-w elsewhere/x.rhai",
                )
            },
        ),
    ];
    for (what, args, setup, expected) in cases {
        let opsh = Opsh::new().file("ops/check-jobs.rhai", "// site check-jobs\n\"ran\"\n");
        setup(&opsh);
        let expected = expected(&opsh);
        let run = opsh.args(args).run();
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (3, "", expected.as_str()),
            "{what}"
        );
    }
}

#[test]
fn trusted_site_scripts_and_symlinks_to_them_run() {
    let opsh = Opsh::new()
        .file("ops/check-jobs.rhai", "// site check-jobs\n\"site ran\"\n")
        .file("real/x.rhai", "// linked\n\"linked ran\"\n");
    std::os::unix::fs::symlink(
        opsh.path().join("real/x.rhai"),
        opsh.path().join("ops/linked.rhai"),
    )
    .expect("symlink");
    let linked = opsh.args(["linked"]);
    linked.run().expect(0, "linked ran\n", "");
    Opsh::new()
        .file("ops/check-jobs.rhai", "// site check-jobs\n\"site ran\"\n")
        .args(["check-jobs"])
        .run()
        .expect(0, "site ran\n", "");
    Opsh::new()
        .file("real/y.rhai", "\"file ran\"\n")
        .args(["run", "real/y.rhai"])
        .run()
        .expect(0, "file ran\n", "");
}

#[test]
fn scripts_lists_overrides_and_problems_and_hides_modules() {
    let opsh = Opsh::new()
        .file("ops/check-jobs.rhai", "// our check-jobs\n1\n")
        .file("ops/risky.rhai", "// risky\n1\n")
        .file("ops/_helpers.rhai", "// helpers\nfn one() { 1 }\n")
        .file("ops/lib/util.rhai", "// util\nfn two() { 2 }\n")
        .file(
            "ops/uses.rhai",
            "// uses both kinds of module\nimport \"util\" as u;\nimport \"_helpers\" as h;\nu::two() + h::one()\n",
        );
    let dir = opsh.path().to_path_buf();
    std::fs::write(dir.join("ops/binary.rhai"), b"// x\n\xff\xfe\n").unwrap();
    chmod(&dir.join("ops/risky.rhai"), 0o666);
    std::os::unix::fs::symlink(dir.join("nowhere.rhai"), dir.join("ops/gone.rhai")).unwrap();

    let run = opsh.args(["scripts"]).run();
    run.code(0);
    let site: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("site"))
        .collect();
    assert_eq!(
        site,
        [
            "binary                 site      unreadable: not UTF-8 text: byte 0xFF at line 2, column 1",
            "check-jobs             site      our check-jobs [overrides the bundled procedure]",
            "gone                   site      unreadable: No such file or directory (os error 2)",
            "risky                  site      refused: file ./ops/risky.rhai is writable by its group and others (mode 666); run `chmod go-w ./ops/risky.rhai`",
            "uses                   site      uses both kinds of module",
        ]
    );

    let json = Opsh::new()
        .file("ops/check-jobs.rhai", "// our check-jobs\n1\n")
        .args(["--json", "scripts"])
        .run()
        .json();
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "check-jobs")
        .unwrap()
        .clone();
    assert_eq!(
        entry,
        serde_json::json!({
            "name": "check-jobs", "origin": "site", "description": "our check-jobs",
            "path": "./ops/check-jobs.rhai", "overrides_bundled": true, "problem": null,
            "arguments": [], "changes_data": false
        })
    );

    let uses = Opsh::new()
        .file("ops/_helpers.rhai", "// helpers\nfn one() { 1 }\n")
        .file("ops/lib/util.rhai", "// util\nfn two() { 2 }\n")
        .file(
            "ops/uses.rhai",
            "// uses\nimport \"util\" as u;\nimport \"_helpers\" as h;\nu::two() + h::one()\n",
        );
    uses.args(["uses"]).run().expect(0, "3\n", "");
    Opsh::new()
        .file("ops/_helpers.rhai", "// helpers\n1\n")
        .args(["_helpers"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: unknown procedure `_helpers`; `opsh scripts` lists the procedures\n",
        );
}

// --- 6. db::query side effects -------------------------------------------------------------

#[test]
fn db_query_leaves_no_lock_or_setting_behind() {
    let db = TestDb::new();
    let code = r#"
        let before = jobs::counts().total;
        db::query("SELECT pg_advisory_lock(42) IS NULL AS locked");
        db::query("SELECT set_config('search_path', 'nowhere', false)");
        let locks = db::query("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 42")[0].n;
        let path = db::query("SELECT current_setting('search_path') AS p")[0].p;
        // sqlx's prepared statements were deallocated with the session: it must know.
        `${locks} ${path} ${jobs::counts().total - before}`
    "#;
    Opsh::new()
        .db(&db)
        .args(["-e", code])
        .run()
        .expect(0, "0 \"$user\", public 0\n", "");
}

#[test]
fn db_query_is_bounded_by_a_statement_timeout() {
    let db = TestDb::new();
    let show = "db::query(\"SHOW statement_timeout\")[0].statement_timeout";
    Opsh::new()
        .db(&db)
        .args(["-e", show])
        .run()
        .expect(0, "30s\n", "");
    Opsh::new()
        .db(&db)
        .env("OPSH_POSTGRES_QUERY_TIMEOUT", "0")
        .args(["-e", show])
        .run()
        .expect(0, "0\n", "");
    let address = shown_address(&db.url);
    Opsh::new()
        .db(&db)
        .env("OPSH_POSTGRES_QUERY_TIMEOUT", "1s")
        .args(["-e", "db::query(\"SELECT pg_sleep(30)\")"])
        .run()
        .expect(
            3,
            "",
            &format!(
                "opsh: error: db::query: postgres at {address}: canceling statement due to statement timeout (postgres.query_timeout is 1s)\n  --> <-e>:1:5\n   |\n 1 | db::query(\"SELECT pg_sleep(30)\")\n   |     ^\n"
            ),
        );
}

/// A role of the test's own, dropped at the end (roles belong to the whole server).
struct Role<'a> {
    db: &'a TestDb,
    name: String,
}

impl Drop for Role<'_> {
    fn drop(&mut self) {
        self.db.exec(&format!(
            "DROP ROLE IF EXISTS \"{}\"",
            self.name.replace('"', "\"\"")
        ));
    }
}

#[test]
fn query_role_confines_db_query() {
    let db = TestDb::new();
    // A name that needs quoting: the setting is an identifier, never spliced raw.
    let role = Role {
        db: &db,
        name: format!("{}_Read\"er", db.name),
    };
    let quoted = role.name.replace('"', "\"\"");
    db.exec(&format!("CREATE ROLE \"{quoted}\" NOLOGIN"));
    let address = shown_address(&db.url);
    Opsh::new()
        .db(&db)
        .env("OPSH_POSTGRES_QUERY_ROLE", &role.name)
        .args(["-e", "db::query(\"SELECT current_user AS u\")[0].u"])
        .run()
        .expect(0, &format!("{}\n", role.name), "");
    for (sql, cause) in [
        (
            "SELECT count(*) FROM channels",
            "permission denied for table channels",
        ),
        (
            "SELECT pg_reload_conf()",
            "permission denied for function pg_reload_conf",
        ),
    ] {
        let code = format!("db::query({sql:?})");
        Opsh::new()
            .db(&db)
            .env("OPSH_POSTGRES_QUERY_ROLE", &role.name)
            .args(["-e", &code])
            .run()
            .expect(
                3,
                "",
                &format!(
                    "opsh: error: db::query: postgres at {address}: {cause} (db::query runs as role {}, postgres.query_role)\n  --> <-e>:1:5\n   |\n 1 | {code}\n   |     ^\n",
                    role.name
                ),
            );
    }
}

#[test]
fn db_query_as_a_superuser_runs_as_pg_read_all_data_by_default() {
    let db = TestDb::new();
    // The test server's role is a superuser, as the deployment's youtube_user is: without the
    // default role each of these calls would succeed inside the read-only transaction.
    assert_eq!(
        db.scalar("SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user"),
        "true"
    );
    let address = shown_address(&db.url);
    for (sql, cause) in [
        (
            "SELECT pg_read_file('/etc/passwd')",
            "permission denied for function pg_read_file",
        ),
        (
            "SELECT pg_reload_conf()",
            "permission denied for function pg_reload_conf",
        ),
        (
            "SELECT set_config('log_statement', 'all', true)",
            "permission denied to set parameter \"log_statement\"",
        ),
    ] {
        let code = format!("db::query({sql:?})");
        Opsh::new().db(&db).args(["-e", &code]).run().expect(
            3,
            "",
            &format!(
                "opsh: error: db::query: postgres at {address}: {cause} (db::query runs as role pg_read_all_data, by default; postgres.query_role names another)\n  --> <-e>:1:5\n   |\n 1 | {code}\n   |     ^\n"
            ),
        );
    }
    // Ordinary reads of the deployment's tables still work, in the same run as a refused call.
    db.exec(
        "INSERT INTO channels (name, url, platform) VALUES ('a', 'https://a', 'youtube'), ('b', 'https://b', 'youtube')",
    );
    let code = r#"
        try { db::query("SELECT pg_reload_conf()"); } catch { }
        let r = db::query("SELECT current_user AS u, (SELECT count(*) FROM channels) AS n")[0];
        `${r.u} ${r.n}`
    "#;
    Opsh::new()
        .db(&db)
        .args(["-e", code])
        .run()
        .expect(0, "pg_read_all_data 2\n", "");
}

// --- 7. A closed stdout --------------------------------------------------------------------

#[test]
fn a_closed_stdout_ends_opsh_quietly() {
    let report = r#"let r = report::new("T"); r.ok("a", "b"); r"#;
    let cases: &[&[&str]] = &[
        &["scripts"],
        &["--json", "scripts"],
        &["completions", "bash"],
        &["-e", "for i in 0..100000 { print(i) }"],
        &["-e", "1 + 1"],
        &["--json", "-e", "[1, 2, 3]"],
        &["-e", report],
        &["--json", "-e", report],
        &["config"],
        &["--json", "config"],
        &["--json", "-e", "exit(2)"],
        &["api"],
        &["--json", "api"],
        &["api", "db::query"],
        &["check-jobs", "--help"],
        &["--json", "nope"],
    ];
    for args in cases {
        let (reader, writer) = std::io::pipe().expect("pipe");
        // Nobody will ever read: every write to stdout fails with EPIPE.
        drop(reader);
        let opsh = Opsh::new().args(*args);
        let mut cmd = opsh.command();
        cmd.stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn opsh");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        let expected_stderr = if args.contains(&"nope") {
            "opsh: error: unknown procedure `nope`; `opsh scripts` lists the procedures\n"
        } else {
            ""
        };
        assert_eq!(
            (status.code(), stderr.as_str()),
            (Some(141), expected_stderr),
            "opsh {args:?}"
        );
    }
}

/// A site procedure that changes data (so it runs under the run lock), prints, and then empties
/// `keep/` if it is still running.
const CHATTY_CHANGE: &str = "// Prints while it changes data (test)\n// changes: data\n\
print(\"first\");\nfor i in 0..1000 { print(i) }\nhost::clean_temp(#{dirs: [\"keep\"]});\n";

/// A closed stdout no longer ends opsh inside print: the script stops at its next step, and the
/// runner ends the run as it ends any other (its lock released, its end logged: before, a run cut
/// short by `| head` left no end in cron's log), then opsh exits 141.
#[test]
fn a_closed_stdout_stops_the_script_and_the_runner_ends_the_run() {
    let db = TestDb::new();
    let opsh = Opsh::new()
        .db(&db)
        .file("ops/chatty-change.rhai", CHATTY_CHANGE)
        .file("keep/precious", "kept\n");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = opsh.command();
    cmd.args(["chatty-change", "--log-file", "logs/opsh.log"])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped());
    let out = cmd.output().expect("run opsh");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(141), "")
    );
    // Nothing after the failed print ran.
    assert!(opsh.path().join("keep/precious").exists());
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let log = std::fs::read_to_string(opsh.path().join(format!("logs/opsh.log.{today}"))).unwrap();
    assert!(log.contains("chatty-change on default started"), "{log}");
    assert!(
        log.contains("chatty-change on default ended unknown after")
            && log.contains("stopped: stdout can take no more output"),
        "{log}"
    );
}

#[test]
fn output_cut_short_by_head_is_not_an_error() {
    let mut child = Opsh::new()
        .args(["-e", "for i in 0..100000 { print(i) }"])
        .spawn();
    let mut first = [0u8; 2];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(&first, b"0\n");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(141), "")
    );
}

// --- 8. Bad bytes -------------------------------------------------------------------------

#[test]
fn bad_bytes_are_an_error_that_says_where() {
    let bad = || OsString::from_vec(b"k=\xff\xfe".to_vec());

    let opsh = Opsh::new();
    let mut cmd = opsh.command();
    cmd.arg("args").arg(bad());
    run(cmd).expect(
        3,
        "",
        "opsh: error: argument 2 is not valid UTF-8: \"k=\\xFF\\xFE\"\n",
    );

    let mut cmd = opsh.command();
    cmd.args(["--json", "run", "x"]).arg(bad());
    let json = run(cmd);
    json.code(3);
    assert_eq!(
        json.json(),
        serde_json::json!({"error": {"kind": "usage", "message": "argument 4 is not valid UTF-8: \"k=\\xFF\\xFE\""}, "exit_code": 3})
    );

    for var in ["DATABASE_URL", "OPSH_JOBS_MAX_RETRIES"] {
        let opsh = Opsh::new().args(["-e", "1"]);
        let mut cmd = opsh.command();
        cmd.env(var, bad());
        run(cmd).expect(
            3,
            "",
            &format!(
                "opsh: error: environment variable {var} is not valid UTF-8 (4 bytes; the value is not shown)\n"
            ),
        );
    }
    // A variable opsh does not read is none of its business.
    let opsh = Opsh::new().args(["-e", "1"]);
    let mut cmd = opsh.command();
    cmd.env("SOMETHING_ELSE", bad());
    run(cmd).expect(0, "1\n", "");
    let opsh = Opsh::new().args(["-e", "env(\"SOMETHING_ELSE\")"]);
    let mut cmd = opsh.command();
    cmd.env("SOMETHING_ELSE", bad());
    run(cmd).expect(
        3,
        "",
        "opsh: error: env: variable SOMETHING_ELSE is not valid UTF-8\n  --> <-e>:1:1\n   |\n 1 | env(\"SOMETHING_ELSE\")\n   | ^\n",
    );

    let opsh = Opsh::new();
    support::write_file(&opsh.path().join("ops/x.rhai"), "");
    std::fs::write(opsh.path().join("ops/x.rhai"), b"// x\nlet a = \"\xe9\";\n").unwrap();
    opsh.args(["x"]).run().expect(
        3,
        "",
        "opsh: error: cannot read script ./ops/x.rhai: not UTF-8 text: byte 0xE9 at line 2, column 10\n",
    );

    let opsh = Opsh::new().file(".env", "");
    std::fs::write(opsh.path().join(".env"), b"A=1\nB=\xff\n").unwrap();
    let file = opsh.path().join(".env");
    opsh.args(["config"]).run().expect(
        3,
        "",
        &format!(
            "opsh: error: file {} is not UTF-8 text: byte 0xFF at line 2, column 3\n",
            file.display()
        ),
    );
}

#[test]
fn a_byte_order_mark_at_the_start_of_a_script_is_skipped() {
    let opsh = Opsh::new().file("ops/bom.rhai", "");
    std::fs::write(
        opsh.path().join("ops/bom.rhai"),
        "\u{FEFF}// with a BOM\n40 + 2\n",
    )
    .unwrap();
    opsh.args(["bom"]).run().expect(0, "42\n", "");
    let opsh = Opsh::new().file("ops/bom.rhai", "");
    std::fs::write(
        opsh.path().join("ops/bom.rhai"),
        "\u{FEFF}// with a BOM\n40 + 2\n",
    )
    .unwrap();
    let run = opsh.args(["scripts"]).run();
    assert!(
        run.stdout
            .contains("bom                    site      with a BOM\n"),
        "{}",
        run.stdout
    );
}

// --- 9. The --json contract -----------------------------------------------------------------

/// A stand-in psql that prints a table on stdout, as the real one does.
const PSQL_TABLE: &str = "#!/bin/sh\necho ' ?column? '\necho '----------'\n";

#[test]
fn json_means_one_document_on_every_path() {
    let cases: &[(&[&str], i32, serde_json::Value)] = &[
        (
            &["--json", "--bogusflag"],
            3,
            serde_json::json!({"error": {"kind": "usage", "message": "unexpected argument '--bogusflag' found"}, "exit_code": 3}),
        ),
        (
            &["run", "--json"],
            3,
            serde_json::json!({"error": {"kind": "usage", "message": "the following required arguments were not provided: <SCRIPT>"}, "exit_code": 3}),
        ),
        (
            &["--json", "--version"],
            0,
            // build.rs gives the tests the same facts as the binary.
            serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "commit": env!("BUILD_OPSH_COMMIT"),
                "date": env!("BUILD_OPSH_DATE"),
            }),
        ),
        (
            &["--json", "-e", "1", "scripts"],
            3,
            serde_json::json!({"error": {"kind": "usage", "message": "-e runs code on its own; drop the command or -e"}, "exit_code": 3}),
        ),
    ];
    for (args, code, doc) in cases {
        // A psql that prints a table, as the real one would.
        let run = Opsh::new()
            .stand_in("psql", PSQL_TABLE)
            .env("DATABASE_URL", "postgres://u:pw@127.0.0.1:1/db")
            .args(*args)
            .run();
        assert_eq!(
            (run.code, run.json()),
            (*code, doc.clone()),
            "opsh {args:?}"
        );
    }
    // psql fed from a pipe: its table goes to stderr; the envelope says how it ended.
    let piped = Opsh::new()
        .stand_in("psql", PSQL_TABLE)
        .env("DATABASE_URL", "postgres://u:pw@127.0.0.1:1/db")
        .args(["--json", "db-shell"])
        .run();
    assert_eq!(piped.stderr, " ?column? \n----------\n");
    assert_eq!(piped.report(), serde_json::Value::Null);
    assert_eq!(piped.json()["procedure"], "db-shell");

    let help = Opsh::new().args(["--json", "--help"]).run();
    help.code(0);
    assert!(
        help.json()["help"]
            .as_str()
            .unwrap()
            .contains("Usage: opsh")
    );
}

#[test]
fn json_db_shell_on_a_terminal_refuses() {
    // util-linux script(1) gives opsh a terminal; stdout and stderr both arrive through it.
    let opsh = Opsh::new().stand_in("psql", PSQL_TABLE);
    let path = opsh
        .command()
        .get_envs()
        .find(|(k, _)| *k == "PATH")
        .and_then(|(_, v)| v.map(|v| v.to_os_string()))
        .unwrap();
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{} --json db-shell", support::BIN),
            "/dev/null",
        ])
        .current_dir(opsh.path())
        .env("PATH", path)
        .env("DATABASE_URL", "postgres://u:pw@127.0.0.1:1/db")
        .stdin(Stdio::null())
        .output()
        .expect("run script(1)");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let message = "refused: db::shell: psql is interactive and prints tables, which cannot be one JSON document; run it without --json";
    let (said, doc) = text.split_once('\n').unwrap_or_default();
    assert_eq!(said, format!("opsh: error: {message}"), "{text}");
    let doc: serde_json::Value = serde_json::from_str(doc).expect("one envelope");
    assert_eq!(
        (
            &doc["procedure"],
            &doc["exit_code"],
            &doc["status"],
            &doc["report"],
            &doc["error"]
        ),
        (
            &"db-shell".into(),
            &3.into(),
            &"unknown".into(),
            &serde_json::Value::Null,
            &serde_json::json!({"kind": "refused", "message": message})
        ),
        "{text}"
    );
}

#[test]
fn migrate_prints_text_for_people_and_json_with_json() {
    let db = TestDb::empty();
    let dry = Opsh::new()
        .db(&db)
        .args(["--dry-run", "--json", "migrate"])
        .run();
    dry.code(0);
    let plan = dry.json();
    assert_eq!(
        (plan["dry_run"].clone(), plan["applied"].clone()),
        (serde_json::json!(true), serde_json::json!([]))
    );
    let pending = plan["pending"].as_array().unwrap();
    assert!(!pending.is_empty(), "an empty database lacks everything");
    let line = |c: &serde_json::Value| {
        format!(
            "  {} {}: {}\n",
            c["kind"].as_str().unwrap(),
            c["name"].as_str().unwrap(),
            c["reason"].as_str().unwrap()
        )
    };
    let plan_text: String = pending
        .iter()
        .map(|c| {
            let sql: String = c["statements"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s.as_str().unwrap().lines())
                .map(|l| format!("      {l}\n"))
                .collect();
            format!("{}{sql}", line(c))
        })
        .collect();
    let made: String = pending.iter().map(line).collect();
    let n = pending.len();
    Opsh::new()
        .db(&db)
        .args(["--dry-run", "migrate"])
        .run()
        .expect(
            0,
            &format!("{n} changes to make (--dry-run: nothing changed):\n{plan_text}"),
            "",
        );
    // stderr has migrate's own progress lines.
    let run = Opsh::new().db(&db).args(["migrate"]).run();
    run.code(0);
    assert_eq!(run.stdout, format!("Made {n} changes:\n{made}"));
    Opsh::new().db(&db).args(["migrate"]).run().expect(
        0,
        "Nothing to change: the schema has what opsh needs.\n",
        "",
    );
    let again = Opsh::new().db(&db).args(["--json", "migrate"]).run();
    assert_eq!(
        again.json(),
        serde_json::json!({"dry_run": false, "applied": [], "pending": [], "warnings": []})
    );
}

// --- 10. Configuration validation ---------------------------------------------------------

#[test]
fn configuration_values_are_validated() {
    let cases = [
        (
            "[limits]\nmax_operations = 0\n",
            "opsh.toml:2: key `limits.max_operations`: 0 must be 1 or more",
        ),
        (
            "[limits]\nmax_operations = -5\n",
            "opsh.toml:2: key `limits.max_operations`: -5 must be 1 or more",
        ),
        (
            "[jobs]\nmax_retries = -3\n",
            "opsh.toml:2: key `jobs.max_retries`: -3 is negative; it must be 0 or more",
        ),
        (
            "[postgres]\nurl = \"x\"\n\n[postgress]\nurl = \"y\"\n",
            "opsh.toml:4: unknown section `[postgress]` (did you mean `[postgres]`?)",
        ),
        (
            "[jobs]\nmax_retries = 1\n[jobs.stuck_afte]\ncheck_data = \"1h\"\n",
            "opsh.toml:3: unknown section `[jobs.stuck_afte]` (did you mean `[jobs.stuck_after]`?)",
        ),
    ];
    for (toml, message) in cases {
        let opsh = Opsh::new().file("opsh.toml", toml).args(["config"]);
        let dir = opsh.path().display().to_string();
        opsh.run()
            .expect(3, "", &format!("opsh: error: {dir}/{message}\n"));
    }
    Opsh::new()
        .env("OPSH_LIMITS_MAX_OPERATIONS", "0")
        .args(["-e", "1"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: key `limits.max_operations` (from env OPSH_LIMITS_MAX_OPERATIONS): 0 must be 1 or more\n",
        );
    let opsh = Opsh::new()
        .file("conf/opsh.toml", "")
        .args(["--config", "conf", "config"]);
    let dir = opsh.path().display().to_string();
    opsh.run().expect(
        3,
        "",
        &format!(
            "opsh: error: config file {dir}/conf is a directory; name the opsh.toml inside it\n"
        ),
    );
}

#[test]
fn unknown_opsh_variables_are_warned_about_with_the_closest_name() {
    let opsh = Opsh::new()
        .file(".env", "OPSH_JOBS_MAXRETRIES=2\n")
        .env("OPSH_POSTGRES_ULR", "postgres://x")
        .env("OPSH_FROBNICATE", "1")
        .env("OPSH_TEST_ANYTHING", "1")
        .env("OPSH_LOG", "opsh=info")
        .args(["-e", "1"]);
    let dotenv = opsh.path().join(".env").display().to_string();
    opsh.run().expect(
        0,
        "1\n",
        &format!(
            " WARN unknown variable OPSH_JOBS_MAXRETRIES in {dotenv} is ignored (did you mean OPSH_JOBS_MAX_RETRIES?)\n WARN unknown variable OPSH_FROBNICATE in the environment is ignored\n WARN unknown variable OPSH_POSTGRES_ULR in the environment is ignored (did you mean OPSH_POSTGRES_URL?)\n"
        ),
    );
}

#[test]
fn max_retries_below_zero_is_refused_as_an_option_too() {
    let db = TestDb::new();
    seed_jobs(&db, &[("vectorize", "processing", 120, 0)]);
    Opsh::new()
        .db(&db)
        .args(["-e", "jobs::reset_stuck(#{older_than: \"1h\", max_retries: -1})"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: jobs::reset_stuck: option `max_retries`: -1 is negative\n  --> <-e>:1:7\n   |\n 1 | jobs::reset_stuck(#{older_than: \"1h\", max_retries: -1})\n   |       ^\n",
        );
    let run = Opsh::new()
        .db(&db)
        .args(["reset-stuck-jobs", "max_retries=-1"])
        .run();
    run.code(3);
    assert!(
        run.stderr
            .starts_with("opsh: error: jobs::reset_stuck: option `max_retries`: -1 is negative\n"),
        "{}",
        run.stderr
    );
    // Before, every stuck job went to 'failed' (retry_count >= -1).
    assert_eq!(
        db.scalar("SELECT status FROM processing_jobs"),
        "processing"
    );
}

// --- 11. Error texts ----------------------------------------------------------------------

#[test]
fn a_server_that_is_not_postgresql_is_called_so() {
    let replies: [&[u8]; 3] = [
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        b"-ERR unknown command 'startup'\r\n",
        b"",
    ];
    for reply in replies {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            // One direct connection attempt: opsh reports its cause at once.
            if let Ok((mut conn, _)) = listener.accept() {
                let mut buf = [0u8; 512];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(reply);
            }
        });
        Opsh::new()
            .env("DATABASE_URL", &format!("postgres://u:pw@127.0.0.1:{port}/db"))
            .args(["-e", "db::ping()"])
            .run()
            .expect(
                3,
                "",
                &format!(
                    "opsh: error: db::ping: postgres at postgres://u:***@127.0.0.1:{port}/db (postgres.url, from DATABASE_URL): the server at 127.0.0.1:{port} did not answer as PostgreSQL (is the port right?)\n{PING_FRAME}"
                ),
            );
        server.join().unwrap();
    }
}

#[test]
fn server_errors_do_not_cite_postgresqls_source_lines() {
    let db = TestDb::new();
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_path(&format!("{}_missing", db.name));
    let address = shown_address(url.as_str());
    Opsh::new()
        .env("DATABASE_URL", url.as_str())
        .args(["-e", "db::ping()"])
        .run()
        .expect(
            3,
            "",
            &format!(
                "opsh: error: db::ping: postgres at {address} (postgres.url, from DATABASE_URL): database \"{}_missing\" does not exist\n{PING_FRAME}",
                db.name
            ),
        );
}
