//! The command line: flags, exit codes, configuration precedence and redaction, listings.

mod support;

use support::Opsh;

#[test]
fn eval_prints_the_value_and_exits_0() {
    Opsh::new().args(["-e", "1 + 1"]).run().expect(0, "2\n", "");
    Opsh::new()
        .args(["-e", "\"text\""])
        .run()
        .expect(0, "text\n", "");
    Opsh::new()
        .args(["-e", "let x = 1;"])
        .run()
        .expect(0, "", "");
}

#[test]
fn json_prints_exactly_one_document() {
    Opsh::new()
        .args(["--json", "-e", "#{a: 1, b: [true, ()]}"])
        .run()
        .expect(0, "{\"a\":1,\"b\":[true,null]}\n", "");
    Opsh::new()
        .args(["--json", "-e", "let x = 1;"])
        .run()
        .expect(0, "null\n", "");
    // print() goes to stderr under --json, so stdout stays one document
    Opsh::new()
        .args(["--json", "-e", "print(\"hello\"); 5"])
        .run()
        .expect(0, "5\n", "hello\n");
}

#[test]
fn maps_print_as_indented_json_without_json_flag() {
    Opsh::new()
        .args(["-e", "#{a: 1}"])
        .run()
        .expect(0, "{\n  \"a\": 1\n}\n", "");
}

#[test]
fn report_status_decides_the_exit_code() {
    let ok = r#"let r = report::new("Check"); r.ok("database", "connected"); r"#;
    Opsh::new().args(["-e", ok]).run().expect(
        0,
        "Check\n✅ database: connected\nStatus: ✅ healthy\n",
        "",
    );
    let warn = r#"let r = report::new("Check"); r.ok("a", "fine"); r.warn("b", "3 stuck"); r.issue("fix b"); r"#;
    Opsh::new().args(["-e", warn]).run().expect(
        1,
        "Check\n✅ a: fine\n⚠️ b: 3 stuck\nIssues:\n  - fix b\nStatus: ⚠️ warning\n",
        "",
    );
    let crit = r#"let r = report::new("Check"); r.warn("b", ""); r.critical("db", "down"); r"#;
    Opsh::new().args(["-e", crit]).run().expect(
        2,
        "Check\n⚠️ b\n❌ db: down\nStatus: ❌ critical\n",
        "",
    );
    let unknown = r#"let r = report::new("Check"); r.check("x", "unknown", "no data"); r"#;
    Opsh::new().args(["-e", unknown]).run().code(3);
}

#[test]
fn report_json_has_stable_fields() {
    let code = r#"let r = report::new("Jobs"); r.warn("stuck", "2"); r.issue("reset them"); r.data("ids", [1, 2]); r"#;
    let run = Opsh::new().args(["--json", "-e", code]).run();
    run.code(1);
    assert_eq!(
        run.json(),
        serde_json::json!({
            "title": "Jobs",
            "status": "warning",
            "checks": [{"name": "stuck", "status": "warning", "detail": "2"}],
            "issues": ["reset them"],
            "data": {"ids": [1, 2]}
        })
    );
}

#[test]
fn no_colour_when_not_a_terminal_or_no_color_is_set() {
    let code = r#"let r = report::new("T"); r.ok("a", "b"); r"#;
    let plain = Opsh::new().args(["-e", code]).run();
    assert!(
        !plain.stdout.contains('\x1b'),
        "escape codes in {:?}",
        plain.stdout
    );
    let no_color = Opsh::new().args(["-e", code]).env("NO_COLOR", "1").run();
    assert!(!no_color.stdout.contains('\x1b'));
}

/// Runs opsh on a pseudo-terminal (util-linux `script`), as an operator at a shell would.
fn on_a_terminal(code: &str, no_color: bool) -> String {
    let mut cmd = std::process::Command::new("script");
    let line = format!("{} -e '{}'", support::BIN, code.replace('\'', "'\\''"));
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    String::from_utf8(cmd.output().expect("run script(1)").stdout).unwrap()
}

#[test]
fn colour_on_a_terminal_unless_no_color_is_set() {
    let code = r#"let r = report::new("T"); r.ok("a", "b"); r"#;
    let coloured = on_a_terminal(code, false);
    assert!(coloured.contains("\x1b[32mhealthy"), "{coloured:?}");
    let plain = on_a_terminal(code, true);
    assert_eq!(plain, "T\r\n✅ a: b\r\nStatus: ✅ healthy\r\n");
}

#[test]
fn exit_sets_the_code() {
    Opsh::new().args(["-e", "exit(2)"]).run().expect(2, "", "");
    Opsh::new()
        .args(["-e", "print(\"before\"); exit(1); print(\"after\")"])
        .run()
        .expect(1, "before\n", "");
    Opsh::new().args(["-e", "exit()"]).run().expect(0, "", "");
    Opsh::new()
        .args(["--json", "-e", "exit(1)"])
        .run()
        .expect(1, "{\"exit_code\":1}\n", "");
    let report = r#"let r = report::new("T"); r.critical("x", "y"); exit(r); 0"#;
    Opsh::new()
        .args(["-e", report])
        .run()
        .expect(2, "T\n❌ x: y\nStatus: ❌ critical\n", "");
}

#[test]
fn usage_errors_exit_3() {
    let run = Opsh::new().args(["--no-such-flag"]).run();
    run.code(3);
    assert!(
        run.stderr.contains("unexpected argument '--no-such-flag'"),
        "{}",
        run.stderr
    );
    Opsh::new()
        .args(["run", "check-jobs", "older_than"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: argument `older_than` is not key=value (e.g. older_than=2h)\n",
        );
    Opsh::new().args(["-e", "1", "scripts"]).run().expect(
        3,
        "",
        "opsh: error: -e runs code on its own; drop the command or -e\n",
    );
}

#[test]
fn help_and_version_exit_0() {
    let help = Opsh::new().args(["--help"]).run();
    help.code(0);
    for flag in [
        "--json",
        "--config",
        "--yes",
        "--dry-run",
        "--timeout",
        "--quiet",
        "--verbose",
        "--eval",
    ] {
        assert!(
            help.stdout.contains(flag),
            "--help lacks {flag}:\n{}",
            help.stdout
        );
    }
    for command in ["run", "scripts", "config", "migrate", "completions"] {
        assert!(help.stdout.contains(command), "--help lacks {command}");
    }
    let run_help = Opsh::new().args(["run", "--help"]).run();
    run_help.code(0);
    assert!(run_help.stdout.contains("KEY=VALUE"));
    let version = Opsh::new().args(["--version"]).run();
    version.code(0);
    assert!(
        version
            .stdout
            .starts_with(&format!("opsh {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{}",
        version.stdout
    );
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let run = Opsh::new().args(["completions", shell]).run();
        run.code(0);
        assert!(run.stdout.contains("opsh"), "{shell} completion names opsh");
        assert!(
            run.stdout.contains("dry-run"),
            "{shell} completion knows --dry-run"
        );
    }
}

#[test]
fn unknown_procedure_suggests_close_names() {
    Opsh::new().args(["check-job"]).run().expect(
        3,
        "",
        "opsh: error: unknown procedure `check-job`; did you mean `check-jobs` or `check-data`?\n",
    );
    Opsh::new().args(["frobnicate"]).run().expect(
        3,
        "",
        "opsh: error: unknown procedure `frobnicate`; `opsh scripts` lists the procedures\n",
    );
    let json = Opsh::new().args(["--json", "nope"]).run();
    json.code(3);
    assert_eq!(json.json()["error"]["kind"], "unknown_procedure");
}

#[test]
fn scripts_lists_bundled_and_site_scripts() {
    let run = Opsh::new()
        .file("ops/site-check.rhai", "// Our own check\n1")
        .args(["scripts"])
        .run();
    run.code(0);
    assert!(
        run.stdout
            .contains("site-check             site      Our own check\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("check-jobs             bundled   Job queue: counts by status"),
        "{}",
        run.stdout
    );
    let json = Opsh::new().args(["--json", "scripts"]).run().json();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"reset-stuck-jobs")
            && names.contains(&"db-stats")
            && names.contains(&"db-shell")
    );
}

#[test]
fn config_shows_sources_and_redacts_passwords() {
    let run = Opsh::new().args(["config"]).run();
    run.code(0);
    assert!(
        run.stdout.contains(
            "postgres.url                      = \"postgres://youtube_user:***@localhost:5432/youtube_agent\"  # default\n"
        ),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("youtube_pass"));
}

#[test]
fn config_precedence_defaults_file_dotenv_env_flags() {
    let opsh = Opsh::new()
        .file(
            "opsh.toml",
            "[postgres]\nurl = \"postgres://u:filepass@file-host/db\"\n[redis]\nurl = \"redis://file-redis/1\"\n[compose]\nproject = \"from_file\"\n[run]\ntimeout = \"5m\"\n",
        )
        .file(".env", "REDIS_URL=redis://dotenv-redis/2\nCOMPOSE_PROJECT_NAME=from_dotenv\n")
        .env("COMPOSE_PROJECT_NAME", "from_env")
        .args(["--json", "--timeout", "30s", "config"]);
    let json = opsh.run().json();
    let get = |key: &str| {
        let entry = json["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .unwrap()
            .clone();
        (
            entry["value"].as_str().unwrap().to_string(),
            entry["source"].as_str().unwrap().to_string(),
        )
    };
    let dir = opsh.path().display().to_string();
    assert_eq!(
        get("postgres.url"),
        (
            "postgres://u:***@file-host/db".into(),
            format!("{dir}/opsh.toml")
        )
    );
    assert_eq!(
        get("redis.url"),
        ("redis://dotenv-redis/2".into(), format!("{dir}/.env"))
    );
    assert_eq!(
        get("compose.project"),
        ("from_env".into(), "env COMPOSE_PROJECT_NAME".into())
    );
    assert_eq!(get("run.timeout"), ("30s".into(), "flag --timeout".into()));
    assert_eq!(
        get("qdrant.url"),
        ("http://localhost:6334".into(), "default".into())
    );
}

#[test]
fn opsh_prefixed_variables_override_deployment_names() {
    let json = Opsh::new()
        .env("DATABASE_URL", "postgres://a:pw1@deploy/db")
        .env("OPSH_POSTGRES_URL", "postgres://b:pw2@opsh/db")
        .args(["--json", "config"])
        .run()
        .json();
    let entry = json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "postgres.url")
        .unwrap()
        .clone();
    assert_eq!(entry["value"], "postgres://b:***@opsh/db");
    assert_eq!(entry["source"], "env OPSH_POSTGRES_URL");
}

#[test]
fn config_file_from_flag_and_env_variable() {
    let flag = Opsh::new()
        .file("conf/site.toml", "[compose]\nproject = \"flagged\"\n")
        .args(["--json", "--config", "conf/site.toml", "config"])
        .run()
        .json();
    assert!(flag.to_string().contains("\"flagged\""));
    let env = Opsh::new()
        .file("conf/site.toml", "[compose]\nproject = \"by_env\"\n")
        .env("OPSH_CONFIG", "conf/site.toml")
        .args(["--json", "config"])
        .run()
        .json();
    assert!(env.to_string().contains("\"by_env\""));
    let home = Opsh::new().file(
        ".config/opsh/opsh.toml",
        "[compose]\nproject = \"in_home\"\n",
    );
    let json = home.args(["--json", "config"]).run().json();
    assert!(json.to_string().contains("\"in_home\""));
}

#[test]
fn bad_config_names_file_line_and_key() {
    let run = Opsh::new()
        .file("opsh.toml", "[postgres]\nurl = \"x\"\nurll = \"y\"\n")
        .args(["config"])
        .run();
    let file = run_path(&run, "opsh.toml");
    run.expect(
        3,
        "",
        &format!(
            "opsh: error: {file}:3: unknown key `postgres.urll` (did you mean `postgres.url`?)\n"
        ),
    );

    let run = Opsh::new()
        .file("opsh.toml", "[jobs]\nmax_retries = \"many\"\n")
        .args(["config"])
        .run();
    let file = run_path(&run, "opsh.toml");
    run.expect(
        3,
        "",
        &format!("opsh: error: {file}:2: key `jobs.max_retries`: `many` is not an integer\n"),
    );

    let run = Opsh::new()
        .file("opsh.toml", "[jobs]\nmax_retries = [1]\n")
        .args(["config"])
        .run();
    let file = run_path(&run, "opsh.toml");
    run.expect(
        3,
        "",
        &format!("opsh: error: {file}:2: key `jobs.max_retries` must be an integer, not array\n"),
    );

    let run = Opsh::new()
        .file("opsh.toml", "[jobs.stuck_after]\ncheck_data = \"soon\"\n")
        .args(["config"])
        .run();
    assert_eq!(run.code, 3);
    assert!(
        run.stderr
            .contains("opsh.toml:2: key `jobs.stuck_after.check_data`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`soon` is not a duration"),
        "{}",
        run.stderr
    );

    let run = Opsh::new()
        .file("opsh.toml", "[postgres\nurl = 1\n")
        .args(["config"])
        .run();
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("opsh.toml:1:"), "{}", run.stderr);

    Opsh::new()
        .args(["--config", "missing.toml", "config"])
        .run()
        .code(3);
    let run = Opsh::new()
        .env("OPSH_TIMEOUT", "")
        .env("OPSH_JOBS_MAX_RETRIES", "x")
        .args(["config"])
        .run();
    run.expect(3, "", "opsh: error: key `jobs.max_retries` (from env OPSH_JOBS_MAX_RETRIES): `x` is not an integer\n");
}

/// Error messages name files by their absolute path under the test's temp dir.
fn run_path(_run: &support::Run, name: &str) -> String {
    // The path is printed as the process saw it: <cwd>/<name>. Recover cwd from the message.
    let msg = &_run.stderr;
    let start = msg.find('/').unwrap_or(0);
    let end = msg
        .find(&format!("/{name}"))
        .map(|i| i + name.len() + 1)
        .unwrap_or(start);
    msg[start..end].to_string()
}

#[test]
fn quiet_and_verbose_control_logs() {
    let code = "log::info(\"info line\"); log::warn(\"warn line\"); log::error(\"error line\")";
    let normal = Opsh::new().args(["-e", code]).run();
    assert!(normal.stderr.contains("info line") && normal.stderr.contains("warn line"));
    let quiet = Opsh::new().args(["-q", "-e", code]).run();
    assert!(
        !quiet.stderr.contains("info line") && quiet.stderr.contains("warn line"),
        "{}",
        quiet.stderr
    );
    assert!(quiet.stderr.contains("error line"));
    assert_eq!(normal.stdout, "");
    let verbose = Opsh::new().args(["-v", "-e", "log::info(\"x\")"]).run();
    verbose.code(0);
}

#[test]
fn yes_and_dry_run_reach_scripts() {
    Opsh::new()
        .args(["--dry-run", "-e", "dry_run()"])
        .run()
        .expect(0, "true\n", "");
    Opsh::new()
        .args(["-e", "dry_run()"])
        .run()
        .expect(0, "false\n", "");
    let run = Opsh::new()
        .args(["--yes", "-e", "confirm(\"Reset?\", \"yes\")"])
        .run();
    run.code(0);
    assert_eq!(run.stdout, "true\n");
    assert!(run.stderr.contains("Reset? (confirmed by --yes)"));
}

#[test]
fn confirm_without_a_terminal_refuses_with_exit_3() {
    Opsh::new()
        .args(["-e", "confirm(\"Delete everything?\", \"DELETE ALL\"); print(\"not reached\")"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: refused: confirm: `Delete everything?` needs confirmation and there is no terminal to ask on; pass --yes to confirm unattended, or --dry-run to see what it would change\n",
        );
}

#[test]
fn flags_may_follow_the_procedure_name() {
    let run = Opsh::new()
        .file("ops/show.rhai", "// show\n#{dry: dry_run(), args: ARGS}")
        .args(["show", "a=1", "--dry-run", "--json"])
        .run();
    assert_eq!(
        (run.code, run.report(), run.stderr.as_str()),
        (0, serde_json::json!({"args": {"a": "1"}, "dry": true}), "")
    );
}

#[test]
fn a_backend_never_called_is_never_connected() {
    // Nothing listens on port 1: a script that never calls the database must not notice.
    Opsh::new()
        .env("DATABASE_URL", "postgres://u:secret@127.0.0.1:1/db")
        .args(["-e", "40 + 2"])
        .run()
        .expect(0, "42\n", "");
}
