//! `opsh api`, declared procedure arguments, and the errors scripts can inspect: the domain
//! pattern as a user meets it.

mod support;

use pretty_assertions::assert_eq;
use support::{Opsh, TestDb};

#[test]
fn api_shows_one_function_in_full_from_its_spec() {
    Opsh::new().args(["api", "db::unlock"]).run().expect(
        0,
        "db::unlock(name: string) -> bool\n\n  Releases an advisory lock taken by db::try_lock; false when this run did not hold it.\n\nParameters:\n  name: string — the lock's name\n\nExample:\n  db::unlock(\"never-taken\")\n  → false\n",
        "",
    );
}

#[test]
fn api_lists_options_with_kinds_and_defaults() {
    let run = Opsh::new().args(["api", "jobs::reset_stuck"]).run();
    run.code(0);
    for line in [
        "  older_than: duration = setting jobs.stuck_after.reset_stuck_jobs — processing with no sign of life for this long",
        "  max_retries: int = setting jobs.max_retries — jobs already retried this often go to 'failed'",
        "  job_type: string|array — only these job types (one or an array)",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            run.stdout
        );
    }
}

#[test]
fn api_json_lists_every_function_with_options_and_examples() {
    let doc = Opsh::new().args(["api", "--json"]).run().code(0).json();
    let specs = doc.as_array().unwrap();
    let reset = specs
        .iter()
        .find(|s| s["module"] == "jobs" && s["name"] == "reset_stuck")
        .unwrap();
    let options: Vec<&str> = reset["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(options, ["older_than", "max_retries", "reason", "job_type"]);
    assert_eq!(
        reset["options"][1]["default"],
        serde_json::json!({"from": "setting", "value": "jobs.max_retries"})
    );
    assert_eq!(reset["options"][0]["kind"], "duration");
    assert!(
        specs
            .iter()
            .all(|s| !s["examples"].as_array().unwrap().is_empty())
    );
}

#[test]
fn api_of_an_unknown_name_suggests_one() {
    Opsh::new().args(["api", "jobs::reset_stuk"]).run().expect(
        3,
        "",
        "opsh: error: no function or module `jobs::reset_stuk`; did you mean `jobs::reset_stuck`? `opsh api` lists them\n",
    );
}

#[test]
fn a_procedure_help_lists_its_declared_arguments() {
    Opsh::new().args(["reset-stuck-jobs", "--help"]).run().expect(
        0,
        "reset-stuck-jobs: Reset jobs stuck in processing back to pending (make reset-stuck-jobs)\n\n\
Usage: opsh reset-stuck-jobs [key=value]… [--dry-run] [--yes] [--json]\n\n\
Arguments:\n  \
older_than: duration = \"1h\" (setting jobs.stuck_after.reset_stuck_jobs, default) — processing with no sign of life for this long counts as stuck\n  \
max_retries: int = \"3\" (setting jobs.max_retries, default) — jobs already retried this often go to failed instead\n",
        "",
    );
}

/// The default shown is the value this configuration gives, with where it comes from; `opsh help
/// <procedure>` says the same as `--help`.
#[test]
fn a_procedure_help_shows_each_defaults_value_and_its_source() {
    let opsh = Opsh::new()
        .file("opsh.toml", "[jobs]\nmax_retries = 5\n")
        .env("OPSH_JOBS_STUCK_AFTER_RESET_STUCK_JOBS", "2h");
    let toml = opsh.path().join("opsh.toml").display().to_string();
    let help = opsh.args(["reset-stuck-jobs", "--help"]).run();
    help.code(0);
    for line in [
        "  older_than: duration = \"2h\" (setting jobs.stuck_after.reset_stuck_jobs, env OPSH_JOBS_STUCK_AFTER_RESET_STUCK_JOBS) — processing with no sign of life for this long counts as stuck".to_string(),
        format!("  max_retries: int = \"5\" (setting jobs.max_retries, {toml}) — jobs already retried this often go to failed instead"),
    ] {
        assert!(help.stdout.lines().any(|l| l == line), "missing {line:?} in\n{}", help.stdout);
    }
    let json = Opsh::new()
        .args(["--json", "clean-logs", "--help"])
        .run()
        .json();
    let older = json["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["default"]
                .as_str()
                .is_some_and(|d| d.starts_with("setting "))
        })
        .unwrap_or_else(|| panic!("no argument with a setting default in {json}"))
        .clone();
    assert_eq!(
        older["default_from"]
            .as_str()
            .unwrap()
            .ends_with(", default"),
        true,
        "{older}"
    );
    assert!(
        !older["default_value"].as_str().unwrap().is_empty(),
        "{older}"
    );
}

#[test]
fn help_names_a_procedure_as_it_names_a_command() {
    let via_help = Opsh::new().args(["help", "check-jobs"]).run();
    let via_flag = Opsh::new().args(["check-jobs", "--help"]).run();
    via_help.code(0);
    assert_eq!(via_help.stdout, via_flag.stdout);
    assert!(
        via_help.stdout.starts_with("check-jobs: "),
        "{}",
        via_help.stdout
    );
    // clap's own subcommands keep clap's help.
    let config = Opsh::new().args(["help", "config"]).run();
    config.code(0);
    assert!(
        config.stdout.contains("Usage: opsh config"),
        "{}",
        config.stdout
    );
    Opsh::new()
        .args(["help", "no-such-procedure"])
        .run()
        .code(3);
}

#[test]
fn scripts_json_carries_each_procedure_s_arguments() {
    let doc = Opsh::new().args(["scripts", "--json"]).run().code(0).json();
    let reset = doc
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "reset-stuck-jobs")
        .unwrap();
    let names: Vec<&str> = reset["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["older_than", "max_retries"]);
}

/// Before, `older_tahn=2d` silently ran with the 1 h default.
#[test]
fn an_undeclared_argument_is_refused_with_a_suggestion() {
    Opsh::new().args(["reset-stuck-jobs", "older_tahn=2d"]).run().expect(
        3,
        "",
        "opsh: error: reset-stuck-jobs has no argument `older_tahn`; did you mean `older_than`? its arguments are `older_than`, `max_retries` (`opsh reset-stuck-jobs --help`)\n",
    );
}

#[test]
fn arguments_are_converted_to_their_declared_kind() {
    let script = "// show\n// arg n: int = 3 -- a number\n// arg on: bool = false -- a switch\n// arg every: duration = 1h -- a duration\n// arg names: list -- names\n\
#{n: ARGS.n, n_type: type_of(ARGS.n), on: ARGS.on, every: ARGS.every, names: ARGS.names}";
    let run = Opsh::new()
        .file("ops/show.rhai", script)
        .args(["--json", "show", "n=42", "on=yes", "names=a,b"])
        .run();
    assert_eq!(
        (run.code, run.report(), run.stderr.as_str()),
        (
            0,
            serde_json::json!({"every": "1h", "n": 42, "n_type": "i64", "names": ["a", "b"], "on": true}),
            ""
        )
    );
    Opsh::new()
        .file("ops/show.rhai", script)
        .args(["show", "n=many"])
        .run()
        .expect(
            3,
            "",
            "opsh: error: show: argument `n=many`: expected an integer, got \"many\"\n",
        );
    Opsh::new().file("ops/show.rhai", script).args(["show", "every=soon"]).run().expect(
        3,
        "",
        "opsh: error: show: argument `every=soon`: `soon` is not a duration (expected number at 0); write e.g. \"30s\", \"10m\", \"1h\", \"1d\" or seconds\n",
    );
}

#[test]
fn a_caught_error_tells_the_backend_and_the_kind() {
    Opsh::new()
        .env("DATABASE_URL", "postgres://youtube_user:s3cret@127.0.0.1:1/youtube_agent")
        .args([
            "--json",
            "-e",
            "let e = (); try { db::ping() } catch (err) { e = err }; #{kind: e.kind, backend: e.backend, address: e.address, op: e.op}",
        ])
        .run()
        .expect(
            0,
            "{\"address\":\"postgres://youtube_user:***@127.0.0.1:1/youtube_agent\",\"backend\":\"postgres\",\"kind\":\"unreachable\",\"op\":\"db::ping\"}\n",
            "",
        );
}

#[test]
fn a_missing_table_is_kind_missing_schema() {
    let db = TestDb::empty();
    Opsh::new()
        .db(&db)
        .args([
            "-e",
            "let k = (); try { jobs::counts() } catch (err) { k = err.kind }; k",
        ])
        .run()
        .expect(0, "missing_schema\n", "");
}

/// The bash completion asks the binary for procedures and their declared arguments.
#[test]
fn bash_completion_offers_procedures_and_their_arguments() {
    let bin_dir = std::path::Path::new(support::BIN)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let complete = |words: &str, cword: usize| {
        let script = format!(
            "source <(opsh completions bash); COMP_WORDS=({words}); COMP_CWORD={cword}; _opsh_procedures; echo \"${{COMPREPLY[@]}}\""
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .env(
                "PATH",
                format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
            )
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        complete("opsh reset-stuck-jobs ''", 2),
        "max_retries= older_than=\n"
    );
    assert_eq!(complete("opsh check-j", 1), "check-jobs\n");
    assert_eq!(complete("opsh run db-st", 2), "db-stats\n");
}

/// The README's table of bundled procedures is `opsh scripts --markdown` as it stands, and says
/// what `opsh scripts --json` says: every bundled procedure, its arguments in order with their
/// defaults, and whether it changes data. Regenerate it with `tools/readme-api`.
#[test]
fn readme_procedure_table_matches_scripts_json() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let begin = "<!-- procedures:begin (generated by tools/readme-api) -->\n";
    let end = "<!-- procedures:end -->";
    let start = readme
        .find(begin)
        .expect("README has the procedures:begin marker")
        + begin.len();
    let stop = readme
        .find(end)
        .expect("README has the procedures:end marker");
    let section = &readme[start..stop];
    let markdown = Opsh::new().args(["scripts", "--markdown"]).run();
    markdown.code(0);
    assert_eq!(
        section, markdown.stdout,
        "README's procedure table is stale: run tools/readme-api"
    );

    let doc = Opsh::new().args(["scripts", "--json"]).run().code(0).json();
    let bundled: Vec<&serde_json::Value> = doc
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["origin"] == "bundled")
        .collect();
    let rows: Vec<Vec<&str>> = section
        .lines()
        .skip(2)
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    let names = |rows: &[Vec<&str>]| rows.iter().map(|r| r[0].to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(&rows),
        bundled
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    );
    for (row, p) in rows.iter().zip(&bundled) {
        let name = row[0];
        let changes = if p["changes_data"] == true {
            "yes"
        } else {
            "no"
        };
        assert_eq!(row[3], changes, "{name}: changes data");
        let cell = row[2].replace("\\|", "|");
        let arguments = p["arguments"].as_array().unwrap();
        let mut at = 0;
        for a in arguments {
            let arg = format!("`{}`", a["name"].as_str().unwrap());
            let found = cell[at..]
                .find(&arg)
                .unwrap_or_else(|| panic!("{name}: {arg} missing or out of order in {cell:?}"));
            at += found + arg.len();
            match a["default"].as_str() {
                Some(d) => match d.strip_prefix("setting ") {
                    Some(key) => assert!(
                        cell[at..].starts_with(" = `")
                            && cell[at..].contains(&format!("(setting `{}`)", key.trim())),
                        "{name}: {arg} defaults to {d}: {cell:?}"
                    ),
                    None => assert!(
                        cell[at..].starts_with(&format!(" = `{}`", d.trim_matches('"'))),
                        "{name}: {arg} defaults to {d}: {cell:?}"
                    ),
                },
                None => assert!(
                    !cell[at..].starts_with(" ="),
                    "{name}: {arg} has no default: {cell:?}"
                ),
            }
        }
        assert_eq!(
            cell.matches('`').count() / 2,
            arguments.len()
                + arguments
                    .iter()
                    .filter(|a| a["default"].is_string())
                    .count()
                + arguments
                    .iter()
                    .filter(|a| a["default"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("setting ")))
                    .count(),
            "{name}: the table lists other arguments than scripts --json: {cell:?}"
        );
    }
}
