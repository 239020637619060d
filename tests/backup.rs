//! backup:: and files::clean_logs through the real binary, against the real PostgreSQL and Redis
//! of tools/with-services: backup → wipe → restore gives the same rows, a bad dump is refused
//! with the database unchanged, backups are private and hold no password.

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use seed::{PASSWORD, mode, redis_url};
use serde_json::Value;
use support::{Opsh, TestDb};

fn seed(db: &TestDb) {
    db.exec(seed::DEPLOYMENT_ROWS);
}

fn fingerprint(db: &TestDb) -> Vec<(String, String)> {
    seed::fingerprint(|sql| db.scalar(sql))
}

/// One working dir for a whole test (backups live in it), with the test's database and Redis.
struct Site {
    dir: tempfile::TempDir,
    db_url: String,
}

impl Site {
    fn new(db: &TestDb) -> Site {
        Site {
            dir: tempfile::tempdir().expect("temp dir"),
            db_url: db.url.clone(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> support::Run {
        self.run_with(args, |c| c)
    }

    fn run_with(
        &self,
        args: &[&str],
        f: impl FnOnce(&mut std::process::Command) -> &mut std::process::Command,
    ) -> support::Run {
        let mut cmd = std::process::Command::new(support::BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("DATABASE_URL", &self.db_url)
            .env("REDIS_URL", redis_url())
            .stdin(std::process::Stdio::null());
        f(&mut cmd);
        support::Run::from(cmd.output().expect("run opsh"))
    }

    fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        run.code(code);
        // A procedure's document is its envelope; -e prints the value alone.
        if args.contains(&"-e") {
            run.json()
        } else {
            run.report()
        }
    }
}

fn pg_dump_plain(db: &TestDb, to: &Path) {
    let url = url::Url::parse(&db.url).unwrap();
    let status = std::process::Command::new("pg_dump")
        .env("PGPASSWORD", url.password().unwrap_or(""))
        .args([
            "--host",
            url.host_str().unwrap(),
            "--port",
            &url.port().unwrap().to_string(),
            "--username",
            url.username(),
            "--format=plain",
            "--file",
        ])
        .arg(to)
        .arg(url.path().trim_start_matches('/'))
        .status()
        .expect("run pg_dump");
    assert!(status.success());
}

#[test]
fn backup_wipe_restore_gives_the_same_rows_and_checksums() {
    let db = TestDb::new();
    seed(&db);
    let site = Site::new(&db);
    support::write_file(
        &site.path("docker-compose.yml"),
        "services:\n  postgres:\n    environment:\n      POSTGRES_USER: youtube_user\n      POSTGRES_PASSWORD: youtube_pass\n  agent:\n    environment:\n      - DATABASE_URL=postgresql://youtube_user:youtube_pass@postgres:5432/youtube_agent\n",
    );
    let before = fingerprint(&db);

    // Exit 1: a warning, as no Qdrant answers here (backup_all_snapshots_qdrant… has one).
    let report = site.json(&["backup-all", "dir=backups"], 1);
    let dir = PathBuf::from(report["data"]["dir"].as_str().unwrap());
    let dir = site.path("").join(dir);
    let names: Vec<&str> = report["data"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "postgres.dump",
            "redis.rdb",
            "docker-compose.yml",
            "opsh-config.json"
        ]
    );
    assert_eq!(report["data"]["tables"]["content"], 200);
    assert_eq!(report["data"]["tables"]["transcripts"], 1000);
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(checks.contains(&"verify"), "{report}");

    // Private, and no password anywhere in it.
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{} holds the password",
            path.display()
        );
        files += 1;
    }
    assert_eq!(files, 5);
    let compose = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
    assert!(compose.contains("POSTGRES_PASSWORD: ***\n"), "{compose}");
    assert!(compose.contains("youtube_user:***@postgres"), "{compose}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["qdrant"]["included"], false);
    assert_eq!(manifest["postgres"]["tables"]["vector_mappings"], 500);
    assert_eq!(manifest["redis"]["file"], "redis.rdb");

    // Wipe: a table dropped, the rest emptied.
    db.exec("DROP TABLE vector_mappings; TRUNCATE channels, content, transcripts, processing_jobs RESTART IDENTITY CASCADE;");
    assert_eq!(db.scalar("SELECT count(*) FROM content"), "0");

    // Exit 1: the integrity check after the restore cannot reach a Qdrant here (critical, reported
    // as a warning on the restore, which itself is done).
    let restored = site.json(
        &["--yes", "db-restore", &format!("file={}", dir.display())],
        1,
    );
    assert_eq!(restored["data"]["tables"]["content"], 200);
    assert_eq!(restored["data"]["integrity_status"], "critical");
    assert_eq!(fingerprint(&db), before);
    let checks: Vec<&str> = restored["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["detail"].as_str().unwrap())
        .collect();
    assert!(
        checks.contains(&"sha256 matches the recorded one"),
        "{checks:?}"
    );
    assert!(
        checks.contains(&"equal the backup's manifest"),
        "{checks:?}"
    );
}

#[test]
fn a_corrupt_truncated_or_missing_dump_is_refused_and_the_database_is_unchanged() {
    let db = TestDb::new();
    seed(&db);
    let site = Site::new(&db);
    let dumped = site.json(&["db-backup", "dir=dumps"], 0);
    let file = site.path("").join(dumped["data"]["file"].as_str().unwrap());
    let plain = site.path("plain.sql");
    pg_dump_plain(&db, &plain);
    let at_backup = fingerprint(&db);
    // Changes after the backup, which a refused restore must leave in place.
    db.exec("DELETE FROM transcripts WHERE id > 500; UPDATE channels SET name = 'renamed';");
    let current = fingerprint(&db);

    let bytes = std::fs::read(&file).unwrap();
    let bare = site.path("bare");
    std::fs::create_dir(&bare).unwrap();
    let truncated = bare.join("truncated.dump");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let corrupt = bare.join("corrupt.dump");
    let mut flipped = bytes.clone();
    let mid = flipped.len() * 3 / 4;
    for b in &mut flipped[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&corrupt, &flipped).unwrap();
    let plain_text = std::fs::read(&plain).unwrap();
    let plain_cut = bare.join("cut.sql");
    std::fs::write(&plain_cut, &plain_text[..plain_text.len() / 2]).unwrap();
    let garbage = bare.join("garbage.dump");
    std::fs::write(&garbage, "not a dump at all").unwrap();

    let cases = [
        (truncated.clone(), "its data cannot be read to the end"),
        (corrupt.clone(), "its data cannot be read to the end"),
        (plain_cut.clone(), "as a complete pg_dump plain dump does"),
        (
            garbage.clone(),
            "neither a pg_dump custom archive nor a plain pg_dump SQL file",
        ),
        (bare.join("absent.dump"), "no such file"),
    ];
    for (path, why) in &cases {
        let run = site.run(&["--yes", "db-restore", &format!("file={}", path.display())]);
        run.code(2);
        assert!(
            run.stdout.contains("refusing to restore") && run.stdout.contains(why),
            "{}: {}",
            path.display(),
            run.stdout
        );
        assert_eq!(fingerprint(&db), current, "{}", path.display());
    }

    // The dump with its .sha256 beside it, then changed: the checksum refuses it.
    std::fs::write(&file, &flipped).unwrap();
    let run = site.run(&["--yes", "db-restore", &format!("file={}", file.display())]);
    run.code(2);
    assert!(
        run.stdout.contains("differs from the recorded"),
        "{}",
        run.stdout
    );
    assert_eq!(fingerprint(&db), current);

    // Without --yes and without a terminal: refused (exit 3), nothing touched.
    let run = site.run(&["db-restore", &format!("file={}", plain.display())]);
    run.code(3);
    assert_eq!(fingerprint(&db), current);

    // The plain .sql the original `make db-backup` wrote restores in one transaction.
    site.json(
        &["--yes", "db-restore", &format!("file={}", plain.display())],
        1,
    );
    assert_eq!(fingerprint(&db), at_backup);
}

#[test]
fn verify_finds_a_changed_a_missing_and_an_unlisted_file() {
    let db = TestDb::new();
    let site = Site::new(&db);
    let report = site.json(&["backup-all", "dir=b", "verify=false"], 1);
    let dir = site.path("").join(report["data"]["dir"].as_str().unwrap());
    let dir_arg = format!("{}", dir.display());
    let code = format!("backup::verify(\"{dir_arg}\")");
    let ok = site.json(&["-e", &code], 0);
    assert_eq!(
        (ok["ok"].clone(), ok["problems"].clone()),
        (Value::Bool(true), serde_json::json!([]))
    );

    let config = dir.join("opsh-config.json");
    let mut text = std::fs::read(&config).unwrap();
    text[10] ^= 1;
    std::fs::write(&config, &text).unwrap();
    std::fs::remove_file(dir.join("redis.rdb")).unwrap();
    std::fs::write(dir.join("stray.txt"), "x").unwrap();
    let bad = site.json(&["-e", &code], 0);
    assert_eq!(bad["ok"], false);
    let problems: Vec<&str> = bad["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(problems[0], "redis.rdb: missing");
    assert!(
        problems[1].starts_with("opsh-config.json: sha256 "),
        "{problems:?}"
    );
    assert_eq!(problems[2], "stray.txt: not in the manifest");
}

#[test]
fn pg_dump_older_than_the_server_is_refused_with_what_to_do() {
    let db = TestDb::new();
    let opsh = Opsh::new()
        .db(&db)
        .stand_in("pg_dump", "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
        .args(["-e", "backup::db(#{dir: \"d\"})"]);
    let run = opsh.run();
    run.code(3);
    assert!(
        run.stderr
            .contains("pg_dump 9.6.24 on this host is older than the server (15")
            && run.stderr.contains("install postgresql-client-15"),
        "{}",
        run.stderr
    );
    assert!(!opsh.path().join("d").read_dir().unwrap().any(|_| true));
}

fn stamp_days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days) - chrono::Duration::hours(1))
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

#[test]
fn prune_keeps_the_newest_and_the_recent_backups() {
    let db = TestDb::new();
    let site = Site::new(&db);
    let dir = site.path("backups");
    std::fs::create_dir(&dir).unwrap();
    let mut folders = Vec::new();
    for days in [0, 1, 3, 10, 20, 40] {
        let name = format!("opsh-backup-{}", stamp_days_ago(days));
        std::fs::create_dir(dir.join(&name)).unwrap();
        std::fs::write(dir.join(&name).join("postgres.dump"), "x".repeat(100)).unwrap();
        folders.push(name);
    }
    let mut dumps = Vec::new();
    for days in [0, 50, 60] {
        let name = format!("youtube_agent-{}.dump", stamp_days_ago(days));
        std::fs::write(dir.join(&name), "y".repeat(10)).unwrap();
        std::fs::write(dir.join(format!("{name}.sha256")), "z").unwrap();
        dumps.push(name);
    }
    std::fs::create_dir(dir.join("unrelated")).unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();

    let code = r#"backup::prune(#{dir: "backups", keep_last: 2, keep_days: 15})"#;
    let dry = site.json(&["--dry-run", "-e", code], 0);
    let mut expect_deleted = vec![folders[4].clone(), folders[5].clone(), dumps[2].clone()];
    expect_deleted.sort();
    let mut deleted: Vec<String> = serde_json::from_value(dry["deleted"].clone()).unwrap();
    deleted.sort();
    assert_eq!(deleted, expect_deleted);
    assert_eq!(dry["bytes_freed"], 211);
    assert_eq!(dry["kept"].as_array().unwrap().len(), 6);
    assert!(dir.join(&folders[5]).exists());

    site.run(&["-e", code]).code(3);
    assert!(dir.join(&folders[5]).exists());

    let done = site.json(&["--yes", "-e", code], 0);
    assert_eq!(done["dry_run"], false);
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expect: Vec<String> = folders[..4].to_vec();
    expect.extend([dumps[0].clone(), format!("{}.sha256", dumps[0])]);
    expect.extend([dumps[1].clone(), format!("{}.sha256", dumps[1])]);
    expect.extend(["notes.txt".to_string(), "unrelated".to_string()]);
    expect.sort();
    assert_eq!(left, expect);
}

fn age(path: &Path, days: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}

#[test]
fn clean_logs_removes_only_old_log_files() {
    let db = TestDb::new();
    let site = Site::new(&db);
    let logs = site.path("logs");
    std::fs::create_dir_all(logs.join("worker")).unwrap();
    let outside = site.path("outside.log");
    for (path, days, size) in [
        (logs.join("old.log"), 10, 100),
        (logs.join("old.log.1"), 8, 50),
        (logs.join("worker/old.log"), 30, 7),
        (logs.join("new.log"), 0, 1000),
        (logs.join("six-days.log"), 6, 1000),
        (logs.join("old.txt"), 10, 1000),
        (outside.clone(), 10, 1000),
    ] {
        std::fs::write(&path, "x".repeat(size)).unwrap();
        age(&path, days);
    }
    std::os::unix::fs::symlink(&outside, logs.join("link.log")).unwrap();

    let dry = site.json(&["--dry-run", "clean-logs"], 0);
    assert_eq!(dry["data"]["files"], 3);
    assert_eq!(dry["data"]["bytes"], 157);
    assert!(logs.join("old.log").exists());

    let done = site.json(&["--yes", "clean-logs"], 0);
    assert_eq!(
        (done["data"]["files"].clone(), done["data"]["bytes"].clone()),
        (3.into(), 157.into())
    );
    for gone in ["old.log", "old.log.1", "worker/old.log"] {
        assert!(!logs.join(gone).exists(), "{gone}");
    }
    for kept in ["new.log", "six-days.log", "old.txt", "link.log"] {
        assert!(logs.join(kept).symlink_metadata().is_ok(), "{kept}");
    }
    assert!(outside.exists());

    // Another age and dir list per run.
    let other = site.json(
        &[
            "--dry-run",
            "clean-logs",
            "older_than=5d",
            "dirs=logs,nowhere",
        ],
        1,
    );
    assert_eq!(other["data"]["files"], 1);
}

/// A site script that backs up and reports as it goes; after its prints, a second backup.
const CHATTY_BACKUP: &str = "// Backs up and reports as it goes (test)\n\
print(\"backing up\");\nlet b = backup::all(#{dir: \"backups\"});\n\
for i in 0..1000 { print(`${b.dir}: ${i}`) }\nbackup::all(#{dir: \"backups\"});\n";

/// opsh's stdout into `head -1`; opsh's exit code and what head printed.
fn into_head(site: &Site, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(support::BIN);
    cmd.args(args)
        .current_dir(site.dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", site.dir.path())
        .env("DATABASE_URL", &site.db_url)
        .env("REDIS_URL", redis_url())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut opsh = cmd.spawn().expect("run opsh");
    let head = std::process::Command::new("head")
        .arg("-1")
        .stdin(opsh.stdout.take().unwrap())
        .output()
        .expect("run head");
    let status = opsh.wait().unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&head.stdout).into_owned(),
    )
}

/// The processes whose command line names `needle` (a pg_dump of this test's database).
fn processes_naming(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("pg_dump") && c.contains(needle))
        .collect()
}

/// backup-all and a long site script piped into `head -1`: opsh stops at the first print
/// nobody reads, after the guards of what it was doing have run, so every backup folder left
/// is whole (it verifies), the second backup of the site script never starts, and no pg_dump
/// of the database is left running.
#[test]
fn backup_all_and_a_site_script_piped_into_head_leave_whole_backups_only() {
    let db = TestDb::new();
    seed(&db);
    let site = Site::new(&db);
    support::write_file(&site.path("docker-compose.yml"), "services: {}\n");
    support::write_file(&site.path("ops/chatty-backup.rhai"), CHATTY_BACKUP);
    let qdrant =
        qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).expect("double");
    let points: Value =
        serde_json::from_str(include_str!("fixtures/examples-qdrant.json")).unwrap();
    seed::seed(&qdrant.grpc_url(), &points);
    let (grpc, rest) = (qdrant.grpc_url(), qdrant.rest_url());
    let env = [
        ("QDRANT_URL", grpc.as_str()),
        ("OPSH_QDRANT_REST_URL", rest.as_str()),
    ];

    let (code, first) = into_head(&site, &["chatty-backup"], &env);
    assert_eq!((code, first.as_str()), (Some(141), "backing up\n"));
    // backup-all prints its report at the end, in one write: head may still be reading then.
    let (code, first) = into_head(&site, &["backup-all", "dir=backups"], &env);
    assert!(matches!(code, Some(0 | 141)), "{code:?}");
    assert_eq!(first, "Backup (all)\n");

    let database = db.url.rsplit('/').next().unwrap().to_string();
    assert_eq!(processes_naming(&database), Vec::<String>::new());
    let mut folders: Vec<String> = std::fs::read_dir(site.path("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(folders.len(), 2, "{folders:?}");
    for folder in folders {
        let code = format!("backup::verify(\"backups/{folder}\").problems");
        let run = site.run_with(&["--json", "-e", &code], |c| {
            c.env("QDRANT_URL", &grpc)
                .env("OPSH_QDRANT_REST_URL", &rest)
        });
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, "[]\n"),
            "{folder}: {}",
            run.stderr
        );
    }
}

/// backup-all with Qdrant in it is healthy; the collection wiped and restored from the backup's
/// snapshot through the REST upload has the same points and vector configuration again; a
/// damaged snapshot is refused before anything is touched.
#[test]
fn backup_all_snapshots_qdrant_and_restore_qdrant_brings_the_points_back() {
    let db = TestDb::new();
    seed(&db);
    let site = Site::new(&db);
    support::write_file(&site.path("docker-compose.yml"), "services: {}\n");
    let qdrant =
        qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).expect("double");
    let points: Value =
        serde_json::from_str(include_str!("fixtures/examples-qdrant.json")).unwrap();
    seed::seed(&qdrant.grpc_url(), &points);
    let (grpc, rest) = (qdrant.grpc_url(), qdrant.rest_url());
    let run = |args: &[&str]| {
        site.run_with(args, |c| {
            c.env("QDRANT_URL", &grpc)
                .env("OPSH_QDRANT_REST_URL", &rest)
        })
    };

    let backup = run(&["--json", "backup-all", "dir=backups"]);
    backup.code(0);
    let report = backup.report();
    let dir = site.path("").join(report["data"]["dir"].as_str().unwrap());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["qdrant"]["included"], true);
    let snaps = manifest["qdrant"]["snapshots"].as_array().unwrap();
    let listed: Vec<(&str, u64, bool)> = snaps
        .iter()
        .map(|s| {
            (
                s["collection"].as_str().unwrap(),
                s["points"].as_u64().unwrap(),
                s["checksum_verified"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("youtube_content", 4, true), ("youtube_summaries", 2, true)]
    );
    // The snapshots made for the backup are gone from the server once downloaded.
    for s in snaps {
        assert_eq!(s["deleted_on_server"], true, "{s}");
    }
    let left = run(&[
        "--json",
        "-e",
        r#"[qdrant::snapshots("youtube_content").len(), qdrant::snapshots("youtube_summaries").len()]"#,
    ]);
    left.code(0);
    assert_eq!(left.json(), serde_json::json!([0, 0]));
    let file = dir.join("qdrant-youtube_content.snapshot");
    assert_eq!(mode(&file), 0o600);
    let files = manifest["files"].to_string();
    assert!(
        files.contains("qdrant-youtube_summaries.snapshot"),
        "{files}"
    );

    // Wipe.
    let wiped = run(&[
        "--json",
        "--yes",
        "-e",
        r#"qdrant::recreate("youtube_content").vector_size"#,
    ]);
    wiped.code(0);
    let count = |run: &dyn Fn(&[&str]) -> support::Run| {
        let r = run(&["--json", "-e", r#"qdrant::count("youtube_content")"#]);
        r.code(0);
        r.json()
    };
    assert_eq!(count(&run), 0);

    // A damaged copy is refused, nothing touched.
    let bad = site.path("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(dir.join("manifest.json"), bad.join("manifest.json")).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(bad.join("qdrant-youtube_content.snapshot"), &bytes).unwrap();
    let refused = run(&[
        "--yes",
        "-e",
        &format!(
            r#"backup::restore_qdrant({:?}, "youtube_content")"#,
            bad.display().to_string()
        ),
    ]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("refusing a damaged snapshot"),
        "{}",
        refused.stderr
    );
    assert_eq!(count(&run), 0);

    // Restore.
    let restored = run(&[
        "--json",
        "--yes",
        "-e",
        &format!(
            r#"backup::restore_qdrant({:?}, "youtube_content")"#,
            dir.display().to_string()
        ),
    ]);
    restored.code(0);
    let r = restored.json();
    assert_eq!(
        (
            &r["points_before"],
            &r["points_after"],
            &r["matches_manifest"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(4),
            &serde_json::json!(true)
        )
    );
    assert_eq!(count(&run), 4);

    // db-restore reports the integrity check after it: with Qdrant answering, its real status
    // (the seeded rows do not match the example points: a warning naming them).
    let restored = run(&[
        "--json",
        "--yes",
        "db-restore",
        &format!("file={}", dir.display()),
    ]);
    restored.code(1);
    let r = restored.report();
    assert_eq!(r["data"]["integrity_status"], "warning", "{r}");
    assert!(
        !r["data"]["integrity_issues"].as_array().unwrap().is_empty(),
        "{r}"
    );
    let info = run(&[
        "--json",
        "-e",
        r#"qdrant::info("youtube_content").vector_size"#,
    ]);
    info.code(0);
    assert_eq!(info.json(), 4);
}
