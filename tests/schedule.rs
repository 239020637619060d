//! `opsh schedule`: the [[schedule]] tables of opsh.toml with their defaults, the next run of
//! each, and install/remove of the cron file or the systemd units into a folder of the test's.

mod support;

use serde_json::json;
use support::{BIN, Opsh};

const TOML: &str = r#"
[[schedule]]
procedure = "restart"
arguments = { services = "whisper-server" }
cron = "0 */6 * * *"

[[schedule]]
name = "purge-jobs"
procedure = "purge-jobs"
arguments = { completed = true, older_than = "14d" }
cron = "30 3 * * *"
target = "prod"

[targets.prod]
postgres.url = "postgres://u@db.example/youtube_agent"
"#;

fn exe() -> String {
    std::fs::canonicalize(BIN).unwrap().display().to_string()
}

fn command(name: &str, rest: &str) -> String {
    format!(
        "{} --yes --wait-lock 30m --log-file /var/log/opsh/opsh.log --format prometheus --output /var/lib/prometheus/node-exporter/opsh_{}.prom {rest}",
        exe(),
        name.replace('-', "_")
    )
}

#[test]
fn schedule_lists_the_defaults_with_their_next_run() {
    let run = Opsh::new().args(["schedule", "--json"]).run();
    run.code(0);
    let rows = run.json();
    let names: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["cron"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("daily-integrity-check", "0 2 * * *"),
            ("purge-jobs", "30 3 * * *")
        ]
    );
    // The next 02:00 of the host's clock, within a day.
    let next = rows[0]["next_run"].as_str().unwrap();
    assert!(next.contains(" 02:00 "), "{next}");
    let day = chrono::NaiveDate::parse_from_str(&next[..10], "%Y-%m-%d").unwrap();
    let today = chrono::Local::now().date_naive();
    assert!(day == today || day == today.succ_opt().unwrap(), "{next}");
    assert_eq!(rows[1]["command"], command("purge-jobs", "purge-jobs"));
}

#[test]
fn configured_entries_replace_a_default_by_name_and_add_others() {
    let run = Opsh::new()
        .file("opsh.toml", TOML)
        .args(["schedule", "--json"])
        .run();
    run.code(0);
    let rows = run.json();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(
        rows[1]["command"],
        command(
            "purge-jobs",
            "--target prod purge-jobs completed=true older_than=14d"
        )
    );
    assert_eq!(rows[2]["name"], "restart");
    assert_eq!(
        rows[2]["command"],
        command("restart", "restart services=whisper-server")
    );
    let off = Opsh::new()
        .file(
            "opsh.toml",
            "[[schedule]]\nprocedure = \"daily-integrity-check\"\ncron = \"0 2 * * *\"\nenabled = false\n",
        )
        .args(["schedule", "--json"])
        .run();
    off.code(0);
    assert_eq!(
        off.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].clone())
            .collect::<Vec<_>>(),
        [json!("purge-jobs")]
    );
}

#[test]
fn a_bad_cron_expression_is_refused_when_read_naming_the_entry() {
    for (cron, why) in [
        ("0 25 * * *", "`0 25 * * *` is not a cron expression"),
        ("0 2 * *", "`0 2 * *` has 4 fields; cron takes 5"),
    ] {
        let run = Opsh::new()
            .file(
                "opsh.toml",
                &format!("[[schedule]]\nprocedure = \"check-data\"\ncron = \"{cron}\"\n"),
            )
            .args(["schedule"])
            .run();
        run.code(3);
        assert!(
            run.stderr
                .starts_with(&format!("opsh: error: [[schedule]] `check-data`: {why}")),
            "{}",
            run.stderr
        );
    }
    let run = Opsh::new()
        .file(
            "opsh.toml",
            "[[schedule]]\nprocedure = \"check-data\"\ncorn = \"0 2 * * *\"\n",
        )
        .args(["schedule"])
        .run();
    run.code(3);
    assert!(
        run.stderr.contains("unknown field `corn`"),
        "{}",
        run.stderr
    );
}

#[test]
fn install_writes_the_cron_file_and_remove_takes_it_away() {
    let tmp = tempfile::tempdir().unwrap();
    let (log_file, metrics) = (tmp.path().join("log/opsh.log"), tmp.path().join("metrics"));
    let opsh = Opsh::new()
        .file("opsh.toml", TOML)
        .env("OPSH_UNATTENDED_LOG_FILE", log_file.to_str().unwrap())
        .env("OPSH_UNATTENDED_METRICS_DIR", metrics.to_str().unwrap());
    let dir = tmp.path().join("cron.d");
    let dir_arg = dir.display().to_string();
    let run = opsh.args(["schedule", "install", "--dir", &dir_arg]).run();
    run.expect(0, &format!("installed: {dir_arg}/opsh\n"), "");
    // The folders the runs write to are made, so the first run does not fail on them.
    assert!(log_file.parent().unwrap().is_dir() && metrics.is_dir());
    let text = std::fs::read_to_string(dir.join("opsh")).unwrap();
    assert_eq!(
        text,
        format!(
            "# Written by `opsh schedule install` from opsh.toml's [[schedule]]; `opsh schedule remove` removes it.\n\
SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
# daily-integrity-check\n0 2 * * * root {}\n\
# purge-jobs\n30 3 * * * root {}\n\
# restart\n0 */6 * * * root {}\n",
            command("daily-integrity-check", "daily-integrity-check"),
            command(
                "purge-jobs",
                "--target prod purge-jobs completed=true older_than=14d"
            ),
            command("restart", "restart services=whisper-server"),
        )
        .replace("/var/log/opsh/opsh.log", log_file.to_str().unwrap())
        .replace(
            "/var/lib/prometheus/node-exporter",
            metrics.to_str().unwrap()
        )
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("opsh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    // A file of someone else's in the folder is never removed.
    std::fs::write(dir.join("other"), "0 1 * * * root true\n").unwrap();
    let run = Opsh::new()
        .args(["schedule", "remove", "--dir", &dir_arg])
        .run();
    run.expect(0, &format!("removed: {dir_arg}/opsh\n"), "");
    assert!(!dir.join("opsh").exists());
    assert!(dir.join("other").exists());
    Opsh::new()
        .args(["schedule", "remove", "--dir", &dir_arg])
        .run()
        .expect(0, "nothing removed\n", "");
}

#[test]
fn install_systemd_writes_a_service_and_a_timer_per_entry() {
    let opsh = Opsh::new().file("opsh.toml", TOML);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("units");
    let dir_arg = dir.display().to_string();
    let run = opsh
        .args([
            "--json",
            "schedule",
            "install",
            "--systemd",
            "--dir",
            &dir_arg,
        ])
        .run();
    run.code(0);
    let written: Vec<String> = serde_json::from_value(run.json()["installed"].clone()).unwrap();
    assert_eq!(written.len(), 6);
    let timer = std::fs::read_to_string(dir.join("opsh-restart.timer")).unwrap();
    assert_eq!(
        timer,
        "# Written by `opsh schedule install --systemd`; cron `0 */6 * * *`.\n[Unit]\nDescription=opsh restart (0 */6 * * *)\n\n[Timer]\nOnCalendar=*-*-* 0/6:0:00\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
    );
    let service = std::fs::read_to_string(dir.join("opsh-daily-integrity-check.service")).unwrap();
    assert_eq!(
        service,
        format!(
            "# Written by `opsh schedule install --systemd`; `opsh schedule remove --systemd` removes it.\n[Unit]\nDescription=opsh daily-integrity-check\n\n[Service]\nType=oneshot\nExecStart={}\n",
            command("daily-integrity-check", "daily-integrity-check")
        )
    );
    let run = Opsh::new()
        .args([
            "--json",
            "schedule",
            "remove",
            "--systemd",
            "--dir",
            &dir_arg,
        ])
        .run();
    run.code(0);
    assert_eq!(run.json()["removed"].as_array().unwrap().len(), 6);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn install_with_dry_run_shows_the_file_and_writes_nothing() {
    let opsh = Opsh::new();
    let dir = opsh.path().join("cron.d");
    let dir_arg = dir.display().to_string();
    let run = opsh
        .args(["--dry-run", "schedule", "install", "--dir", &dir_arg])
        .run();
    run.code(0);
    assert!(
        run.stdout.starts_with(&format!(
            "==> {dir_arg}/opsh <==\n# Written by `opsh schedule install`"
        )),
        "{}",
        run.stdout
    );
    assert!(!dir.exists());
}
