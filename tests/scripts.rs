//! Scripts: the catalog (site overrides bundled, permissions), ARGS, imports, and how parse and
//! runtime errors are shown.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::Opsh;

#[test]
fn parse_errors_show_path_line_column_and_caret() {
    Opsh::new()
        .file("ops/broken.rhai", "// broken\nlet a = 1;\nlet b = a +;\n")
        .args(["broken"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: syntax error: Unexpected ';'\n  --> ./ops/broken.rhai:3:12\n   |\n 3 | let b = a +;\n   |            ^\n",
        );
}

#[test]
fn runtime_errors_show_the_failing_call() {
    Opsh::new()
        .file("ops/fails.rhai", "// fails\nlet x = 10;\nlet y = x / 0;\n")
        .args(["fails"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: Division by zero: 10 / 0\n  --> ./ops/fails.rhai:3:11\n   |\n 3 | let y = x / 0;\n   |           ^\n",
        );
}

#[test]
fn strict_variables_catch_typos_before_running() {
    Opsh::new()
        .args(["-e", "let count = 1;\nprint(\"ran\");\ncuont + 1"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: syntax error: Undefined variable: cuont\n  --> <-e>:3:1\n   |\n 3 | cuont + 1\n   | ^\n",
        );
}

#[test]
fn errors_inside_functions_point_into_the_function() {
    let script = "// f\nfn half(n) {\n    n / 0\n}\nhalf(4)\n";
    Opsh::new().file("ops/f.rhai", script).args(["f"]).run().expect(
        3,
        "",
        "opsh: error: Division by zero: 4 / 0\n  --> ./ops/f.rhai:3:7\n   |\n 3 |     n / 0\n   |       ^\n  = in call to `half` at ./ops/f.rhai:5:1\n",
    );
}

#[test]
fn errors_inside_an_imported_module_name_its_file() {
    Opsh::new()
        .file("ops/lib.rhai", "// helpers\nfn ratio(a, b) { a / b }\nlet broken = 1 / 0;\n")
        .file("ops/main.rhai", "// main\nimport \"lib\" as lib;\nlib::ratio(1, 2)\n")
        .args(["main"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: Division by zero: 1 / 0\n  --> ./ops/lib.rhai:3:16\n   |\n 3 | let broken = 1 / 0;\n   |                ^\n  = in module `./ops/lib.rhai`, imported at ./ops/main.rhai:2:8\n",
        );
    Opsh::new()
        .file("ops/lib.rhai", "// helpers\nfn ratio(a, b) { a / }\n")
        .file("ops/main.rhai", "// main\nimport \"lib\" as lib;\nlib::ratio(1, 2)\n")
        .args(["main"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: syntax error: Unexpected '}'\n  --> ./ops/lib.rhai:2:22\n   |\n 2 | fn ratio(a, b) { a / }\n   |                      ^\n  = in module `./ops/lib.rhai`, imported at ./ops/main.rhai:2:8\n",
        );
}

#[test]
fn import_resolves_in_site_dirs_then_bundled_scripts() {
    Opsh::new()
        .file("ops/lib.rhai", "// helpers\nfn double(n) { n * 2 }\n")
        .file(
            "ops/main.rhai",
            "// main\nimport \"lib\" as lib;\nlib::double(21)\n",
        )
        .args(["main"])
        .run()
        .expect(0, "42\n", "");
    let run = Opsh::new()
        .args(["-e", "import \"no-such-module\" as m; 1"])
        .run();
    run.code(3);
    assert!(
        run.stderr.contains("Module not found: no-such-module"),
        "{}",
        run.stderr
    );
}

#[test]
fn args_hold_the_key_value_arguments() {
    let script = "// show args\n`${ARGS.older_than} ${ARGS.reason} ${ARGS.missing ?? \"default\"}`";
    Opsh::new()
        .file("ops/show.rhai", script)
        .args(["show", "older_than=2h", "reason=a b=c"])
        .run()
        .expect(0, "2h a b=c default\n", "");
    Opsh::new()
        .file("ops/show.rhai", script)
        .args(["run", "show", "older_than=1d", "reason=x"])
        .run()
        .expect(0, "1d x default\n", "");
    // ARGS is a constant: a script cannot change what the operator passed
    let run = Opsh::new().args(["-e", "ARGS = #{}"]).run();
    run.code(3);
    assert!(run.stderr.contains("ARGS"), "{}", run.stderr);
}

#[test]
fn run_accepts_a_script_path() {
    Opsh::new()
        .file("elsewhere/check.rhai", "// check\n#{answer: 42}.answer")
        .args(["run", "elsewhere/check.rhai"])
        .run()
        .expect(0, "42\n", "");
    Opsh::new().args(["run", "missing.rhai"]).run().expect(
        3,
        "",
        "opsh: error: cannot read script missing.rhai: No such file or directory (os error 2)\n",
    );
}

#[test]
fn a_site_script_overrides_the_bundled_one() {
    let run = Opsh::new()
        .file(
            "ops/check-jobs.rhai",
            "// our own check-jobs\n\"site version\"",
        )
        .args(["check-jobs"])
        .run();
    run.expect(0, "site version\n", "");
    let list = Opsh::new()
        .file("ops/check-jobs.rhai", "// our own check-jobs\n1")
        .args(["scripts"])
        .run();
    assert!(
        list.stdout.contains(
            "check-jobs             site      our own check-jobs [overrides the bundled procedure]\n"
        ),
        "{}",
        list.stdout
    );
    assert_eq!(
        list.stdout
            .lines()
            .filter(|l| l.starts_with("check-jobs "))
            .count(),
        1
    );
}

#[test]
fn script_dirs_come_from_configuration() {
    Opsh::new()
        .file(
            "site/hello.rhai",
            "// hi\n\"from                   site dir\"",
        )
        .file("opsh.toml", "[scripts]\ndirs = [\"site\"]\n")
        .args(["hello"])
        .run()
        .expect(0, "from                   site dir\n", "");
    Opsh::new()
        .file(".config/opsh/scripts/hello.rhai", "// hi\n\"from home\"")
        .args(["hello"])
        .run()
        .expect(0, "from home\n", "");
}

#[test]
fn a_site_script_others_can_write_is_refused() {
    let opsh = Opsh::new().file("ops/risky.rhai", "// risky\n1");
    let dir = opsh.path().join("ops");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    opsh.args(["risky"]).run().expect(
        3,
        "",
        "opsh: error: refusing site script ./ops/risky.rhai: directory ./ops is writable by its group and others (mode 777); run `chmod go-w ./ops` to fix it\n",
    );

    let opsh = Opsh::new().file("ops/risky.rhai", "// risky\n1");
    let file = opsh.path().join("ops/risky.rhai");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    opsh.args(["risky"]).run().expect(
        3,
        "",
        "opsh: error: refusing site script ./ops/risky.rhai: file ./ops/risky.rhai is writable by its group and others (mode 666); run `chmod go-w ./ops/risky.rhai` to fix it\n",
    );
}

#[test]
fn scripts_can_catch_errors_from_operations() {
    let code = r#"
        let r = report::new("Probe");
        try { db::ping(); r.ok("database", "up"); } catch (e) { r.critical("database", e); }
        r
    "#;
    Opsh::new()
        .env("DATABASE_URL", "postgres://youtube_user:s3cret@127.0.0.1:1/youtube_agent")
        .args(["-e", code])
        .run()
        .expect(
            2,
            "Probe\n❌ database: db::ping: postgres at postgres://youtube_user:***@127.0.0.1:1/youtube_agent (postgres.url, from DATABASE_URL): connection refused\nStatus: ❌ critical\n",
            "",
        );
}

#[test]
fn an_unreachable_backend_is_one_clear_error_with_the_password_redacted() {
    Opsh::new()
        .env("DATABASE_URL", "postgres://youtube_user:s3cret@127.0.0.1:1/youtube_agent")
        .args(["-e", "let c = jobs::counts();\nc.total"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: jobs::counts: postgres at postgres://youtube_user:***@127.0.0.1:1/youtube_agent (postgres.url, from DATABASE_URL): connection refused\n  --> <-e>:1:15\n   |\n 1 | let c = jobs::counts();\n   |               ^\n",
        );
}

#[test]
fn wrong_options_are_named() {
    Opsh::new().args(["-e", "jobs::stuck(#{older: \"1h\"})"]).run().expect(
        3,
        "",
        "opsh: error: jobs::stuck: unknown option `older`; did you mean `older_than`? options are `older_than`, `job_type`, `limit`\n  --> <-e>:1:7\n   |\n 1 | jobs::stuck(#{older: \"1h\"})\n   |       ^\n",
    );
    Opsh::new().args(["-e", "sleep(\"soon\")"]).run().expect(
        3,
        "",
        "opsh: error: sleep: `soon` is not a duration (expected number at 0); write e.g. \"30s\", \"10m\", \"1h\", \"1d\" or seconds\n  --> <-e>:1:1\n   |\n 1 | sleep(\"soon\")\n   | ^\n",
    );
}

#[test]
fn limits_stop_runaway_scripts() {
    let run = Opsh::new()
        .env("OPSH_LIMITS_MAX_OPERATIONS", "1000")
        .args(["-e", "let n = 0; loop { n += 1; }"])
        .run();
    run.code(3);
    assert!(run.stderr.contains("Too many operations"), "{}", run.stderr);
    // Call depth is the same in debug and release builds: 64.
    let deep = "fn down(n) { if n == 0 { 0 } else { down(n - 1) } } down(60)";
    Opsh::new().args(["-e", deep]).run().expect(0, "0\n", "");
    let run = Opsh::new()
        .args(["-e", "fn down(n) { down(n + 1) } down(0)"])
        .run();
    run.code(3);
    assert!(run.stderr.contains("Stack overflow"), "{}", run.stderr);
}

#[test]
fn globals_work() {
    Opsh::new()
        .args(["-e", "duration(\"1h\") + duration(30)"])
        .run()
        .expect(0, "3630\n", "");
    Opsh::new()
        .args(["-e", "fmt_duration(90061)"])
        .run()
        .expect(0, "1 day 1 hour 1 minute 1 second\n", "");
    Opsh::new()
        .env("OPSH_TEST_VALUE", "v")
        .args(["-e", "env(\"OPSH_TEST_VALUE\")"])
        .run()
        .expect(0, "v\n", "");
    Opsh::new()
        .args(["-e", "env(\"UNSET_FOR_SURE\") == ()"])
        .run()
        .expect(0, "true\n", "");
    let now = Opsh::new().args(["-e", "now()"]).run();
    assert!(
        now.stdout.starts_with("20") && now.stdout.ends_with("Z\n"),
        "{}",
        now.stdout
    );
}

#[test]
fn a_declared_default_naming_no_setting_is_a_usage_error() {
    // Settings are typed in Rust; a script names one as text, so a misspelt name is caught
    // when the script runs instead of silently defaulting to "".
    Opsh::new()
        .file(
            "ops/typo.rhai",
            "// typo\n// arg older_than: duration = setting jobs.stuck_after.check_jbos -- how old\nprint(ARGS.older_than);\n",
        )
        .args(["typo"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: typo: the default of `older_than` names `jobs.stuck_after.check_jbos`, which is no setting (`opsh config` lists them)\n",
        );
}

/// A site script that does not compile is listed with why, not as runnable, in text and JSON.
#[test]
fn scripts_marks_a_site_script_that_does_not_compile() {
    let opsh = || {
        Opsh::new()
            .file(
                "ops/broken.rhai",
                "// a broken check\nlet a = 1;\nlet b = a +;\n",
            )
            .file("ops/bad-args.rhai", "// bad args\n// arg n: number\n1\n")
            .file("ops/fine.rhai", "// a fine check\n1\n")
    };
    let run = opsh().args(["scripts"]).run();
    run.code(0);
    let line = |name: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{}", run.stdout))
            .to_string()
    };
    assert!(
        line("broken")
            .ends_with("site      does not compile: Unexpected ';' at ./ops/broken.rhai:3:12"),
        "{}",
        line("broken")
    );
    assert!(
        line("bad-args").contains("site      bad argument declaration:"),
        "{}",
        line("bad-args")
    );
    assert!(
        line("fine").ends_with("site      a fine check"),
        "{}",
        line("fine")
    );
    let json = opsh().args(["--json", "scripts"]).run().json();
    let broken = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "broken")
        .unwrap()
        .clone();
    assert!(
        broken["problem"]
            .as_str()
            .unwrap()
            .starts_with("does not compile: "),
        "{broken}"
    );
}
