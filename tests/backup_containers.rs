//! backup:: where the stores run in containers, against the real Docker Engine: pg_dump,
//! pg_restore and psql inside the postgres container (backup.pg_tools), the Redis RDB copied out
//! of the redis container.
//!
//! No image can be pulled: each test builds its image from this host's own server binaries with
//! tools/test-image (`docker import` of a staged root filesystem, as tools/with-services builds
//! opsh-test-busybox), runs the server in a container labelled as a Compose project's service
//! (PostgreSQL as a non-root user), points opsh at its published loopback port, and removes the
//! containers and the image when it ends, also when it fails (the guards' Drop).

#[path = "support/seed.rs"]
mod seed;
mod support;

use support::docker::{docker, docker_ok};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use seed::{PASSWORD, mode, redis_url};
use serde_json::Value;
use support::{Opsh, TestDb};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// An image from tools/test-image, removed on drop.
struct Image(String);

impl Image {
    fn build(kind: &str) -> Image {
        let name = format!("{}:latest", unique(&format!("opsh-test-{kind}-")));
        let image = Image(name.clone());
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/test-image"))
            .args([kind, &name])
            .output()
            .expect("run tools/test-image");
        assert!(
            out.status.success(),
            "tools/test-image {kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        image
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// A container labelled as service `service` of Compose project `project`, removed on drop.
struct Container {
    id: String,
    name: String,
}

impl Container {
    fn run(project: &str, service: &str, image: &Image, extra: &[&str], cmd: &[&str]) -> Container {
        let name = format!("{project}_{service}_1");
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--label".into(),
            format!("com.docker.compose.project={project}"),
            "--label".into(),
            format!("com.docker.compose.service={service}"),
            "--label".into(),
            "com.docker.compose.oneoff=False".into(),
            "--label".into(),
            "com.docker.compose.container-number=1".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(image.0.clone());
        args.extend(cmd.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = docker(&refs);
        // Removed even when `run` failed half-way (a created but not started container).
        let container = Container {
            id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            name: name.clone(),
        };
        assert!(
            out.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        container
    }

    fn port(&self, inside: u16) -> u16 {
        let mapped = docker_ok(&["port", &self.id, &format!("{inside}/tcp")]);
        mapped
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no published port in `{mapped}`"))
    }

    fn wait_for(&self, line: &str) {
        let started = Instant::now();
        loop {
            let logs = docker(&["logs", &self.id]);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
            if text.lines().any(|l| l.contains(line)) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{} never printed `{line}`:\n{text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["exec", &self.id];
        args.extend_from_slice(cmd);
        docker_ok(&args)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// PostgreSQL in its container, as the server's own user (uid 999), with the deployment's role
/// and database. TCP trusts (opsh's own connection from the host) while the unix socket wants
/// the password: so the dump inside the container only works when the password reaches pg_dump
/// (through the exec's PGPASSWORD), and a wrong one fails there, inside the container. The
/// socket is in /tmp, not the compiled-in default: opsh must ask the server where it is.
const PG_START: &str = r#"set -e
D=/var/lib/postgresql/data
initdb -D $D -U postgres -E UTF8 --no-locale --auth=trust --no-sync >/tmp/initdb.log 2>&1 || { cat /tmp/initdb.log; exit 1; }
printf "listen_addresses = '*'\nunix_socket_directories = '/tmp'\nfsync = off\n" >> $D/postgresql.conf
pg_ctl -D $D -w -l /tmp/pg.log start >/dev/null || { cat /tmp/pg.log; exit 1; }
psql -X -q -h /tmp -U postgres -d postgres -c "CREATE ROLE youtube_user LOGIN SUPERUSER PASSWORD 'youtube_pass'" -c "CREATE DATABASE youtube_agent OWNER youtube_user"
printf 'local all postgres trust\nlocal all all scram-sha-256\nhost all all all trust\n' > $D/pg_hba.conf
pg_ctl -D $D reload >/dev/null
echo READY
exec tail -f /tmp/pg.log
"#;

struct PgStack {
    project: String,
    container: Container,
    url: String,
    // Dropped after the container.
    _image: Image,
}

/// A PostgreSQL container of its own Compose project, from `image`.
fn start_postgres(image: &Image) -> (String, Container) {
    let project = unique("opshbk");
    let container = Container::run(
        &project,
        "postgres",
        image,
        &["--user", "999:999", "-p", "127.0.0.1::5432"],
        &["sh", "-c", PG_START],
    );
    container.wait_for("READY");
    (project, container)
}

impl PgStack {
    fn start() -> PgStack {
        let image = Image::build("postgres");
        let (project, container) = start_postgres(&image);
        let url = format!(
            "postgres://youtube_user:{PASSWORD}@127.0.0.1:{}/youtube_agent",
            container.port(5432)
        );
        PgStack {
            project,
            container,
            url,
            _image: image,
        }
    }

    /// opsh pointed at the container's server and project.
    fn opsh(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(support::BIN);
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("DATABASE_URL", &self.url)
            .env("REDIS_URL", redis_url())
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .stdin(std::process::Stdio::null());
        cmd
    }
}

fn run(mut cmd: Command, args: &[&str]) -> support::Run {
    support::Run::from(cmd.args(args).output().expect("run opsh"))
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql: {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn seed(url: &str) {
    psql(url, support::DEPLOYMENT_INIT);
    psql(url, seed::DEPLOYMENT_ROWS);
}

fn fingerprint(url: &str) -> Vec<(String, String)> {
    seed::fingerprint(|sql| psql(url, sql))
}

fn wipe(url: &str) {
    psql(
        url,
        "DROP TABLE vector_mappings; TRUNCATE channels, content, transcripts, processing_jobs RESTART IDENTITY CASCADE;",
    );
    assert_eq!(psql(url, "SELECT count(*) FROM content"), "0");
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn check_details(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect()
}

/// backup-all with every PostgreSQL tool in the postgres container (backup.pg_tools =
/// "container"): the dump streams out of the exec into a private file, is verified by
/// pg_restore --list in the container, and restores — in the container, and on the host from
/// the same file — to identical tables. With "auto" and a host pg_dump older than the server,
/// the container's is taken by itself.
#[test]
fn pg_dump_and_pg_restore_in_the_postgres_container_round_trip() {
    let stack = PgStack::start();
    seed(&stack.url);
    let before = fingerprint(&stack.url);
    let site = tempfile::tempdir().unwrap();
    support::write_file(&site.path().join("docker-compose.yml"), "services: {}\n");
    let in_container = || {
        let mut cmd = stack.opsh(site.path());
        cmd.env("OPSH_BACKUP_PG_TOOLS", "container");
        cmd
    };

    // Exit 1: a warning, as no Qdrant answers here.
    let backup = run(in_container(), &["--json", "backup-all", "dir=backups"]);
    backup.code(1);
    let report = backup.report();
    let details = check_details(&report);
    assert!(
        details.contains(&format!(
            "database: 5 tables, {} rows (pg_dump in container {})",
            3 + 2 + 200 + 1000 + 300 + 500,
            stack.container.name
        )),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("verify: ") && d.ends_with("pg_restore reads the dump")),
        "{details:?}"
    );
    let dir = site.path().join(report["data"]["dir"].as_str().unwrap());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let pg = &manifest["postgres"];
    assert_eq!(pg["pg_dump_in"], "container", "{pg}");
    assert_eq!(pg["container"], stack.container.name.as_str());
    assert_eq!(
        pg["pg_dump_version"],
        psql(&stack.url, "SHOW server_version")
            .split(' ')
            .next()
            .unwrap()
    );
    assert_eq!(pg["tables"]["transcripts"], 1000);
    let listed = manifest["files"][0].clone();
    assert_eq!(listed["name"], "postgres.dump");
    let dump = dir.join("postgres.dump");
    let bytes = std::fs::read(&dump).unwrap();
    assert!(bytes.starts_with(b"PGDMP"));
    assert_eq!(listed["bytes"], bytes.len() as u64);
    let sum = Command::new("sha256sum").arg(&dump).output().unwrap();
    assert_eq!(
        listed["sha256"],
        String::from_utf8_lossy(&sum.stdout)
            .split(' ')
            .next()
            .unwrap()
    );
    // Private, and no password anywhere (it went to the exec's environment only).
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    for name in files_in(&dir) {
        let path = dir.join(&name);
        assert_eq!(mode(&path), 0o600, "{name}");
        let content = std::fs::read(&path).unwrap();
        assert!(
            !content
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{name} holds the password"
        );
    }

    // Wipe, restore inside the container (pg_restore reads the dump from its stdin).
    wipe(&stack.url);
    let restored = run(
        in_container(),
        &[
            "--json",
            "--yes",
            "db-restore",
            &format!("file={}", dir.display()),
        ],
    );
    restored.code(1); // the integrity check afterwards finds no Qdrant
    let r = restored.report();
    assert_eq!(r["data"]["tables"]["content"], 200, "{r}");
    let details = check_details(&r);
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("check: pg_restore --list reads ")
                && d.ends_with(&format!(" entries (in container {})", stack.container.name))),
        "{details:?}"
    );
    assert_eq!(fingerprint(&stack.url), before);

    // The same file restored by the host's pg_restore: a dump streamed out of an exec has no
    // data offsets (pg_dump wrote it to a pipe), which pg_restore reading a file copes with.
    wipe(&stack.url);
    let mut on_host = stack.opsh(site.path());
    on_host.env("OPSH_BACKUP_PG_TOOLS", "host");
    let restored = run(
        on_host,
        &[
            "--json",
            "--yes",
            "db-restore",
            &format!("file={}", dir.display()),
        ],
    );
    restored.code(1);
    assert!(
        !check_details(&restored.report())
            .iter()
            .any(|d| d.contains("in container")),
        "{}",
        restored.stdout
    );
    assert_eq!(fingerprint(&stack.url), before);

    // A plain .sql dump (what the original `make db-backup` wrote) through psql in the
    // container: the file streamed in, one transaction around it.
    let plain = site.path().join("plain.sql");
    let status = Command::new("pg_dump")
        .args(["--format=plain", "--file"])
        .arg(&plain)
        .arg(format!("--dbname={}", stack.url))
        .status()
        .expect("run pg_dump");
    assert!(status.success());
    wipe(&stack.url);
    let restored = run(
        in_container(),
        &[
            "--json",
            "--yes",
            "db-restore",
            &format!("file={}", plain.display()),
        ],
    );
    restored.code(1);
    assert_eq!(
        restored.report()["data"]["container"],
        stack.container.name.as_str()
    );
    assert_eq!(fingerprint(&stack.url), before);

    // Stand-ins for host tools too old for the server and its archives.
    let stand_in = site.path().join("bin");
    std::fs::create_dir_all(&stand_in).unwrap();
    for (tool, script) in [
        ("pg_dump", "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n"),
        (
            "pg_restore",
            "#!/bin/sh\necho 'pg_restore: error: unsupported version (1.16) in file header' >&2\nexit 1\n",
        ),
    ] {
        std::fs::write(stand_in.join(tool), script).unwrap();
        std::fs::set_permissions(stand_in.join(tool), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let path = format!("{}:{}", stand_in.display(), std::env::var("PATH").unwrap());

    // "auto" with a host pg_restore too old for the archive: the container's checks the dump
    // and restores it.
    wipe(&stack.url);
    let mut auto = stack.opsh(site.path());
    auto.env("PATH", &path);
    let restored = run(
        auto,
        &[
            "--json",
            "--yes",
            "db-restore",
            &format!("file={}", dir.display()),
        ],
    );
    restored.code(1);
    let r = restored.report();
    assert_eq!(r["data"]["container"], stack.container.name.as_str(), "{r}");
    assert_eq!(fingerprint(&stack.url), before);

    // "auto" with a host pg_dump older than the server: dumped in the container by itself.
    let mut auto = stack.opsh(site.path());
    auto.env("PATH", &path);
    let dumped = run(auto, &["--json", "-e", r#"backup::db(#{dir: "dumps"})"#]);
    dumped.code(0);
    let d = dumped.json();
    assert_eq!(
        (
            &d["pg_dump_in"],
            &d["container"],
            &d["tables"]["vector_mappings"]
        ),
        (
            &Value::from("container"),
            &Value::from(stack.container.name.as_str()),
            &Value::from(500)
        ),
        "{d}"
    );
    let file = site.path().join(d["file"].as_str().unwrap());
    assert_eq!(mode(&file), 0o600);
    let sidecar = std::fs::read_to_string(format!("{}.sha256", file.display())).unwrap();
    assert!(
        sidecar.starts_with(d["sha256"].as_str().unwrap()),
        "{sidecar}"
    );
}

/// A pg_dump that fails inside the container is a clear error naming the container and
/// pg_dump's own message, and leaves no file behind: a wrong password (refused on the
/// container's socket), a container that is another server than postgres.url's (pg_dump cannot
/// import the snapshot opsh exported on the configured one, so it never dumps the wrong
/// database), a missing database, and no container at all when the host's pg_dump is too old.
#[test]
fn a_pg_dump_failure_inside_the_container_is_a_clear_error_and_leaves_no_file() {
    let stack = PgStack::start();
    let site = tempfile::tempdir().unwrap();
    let attempt = |url: &str, project: &str, tools: &str, path: Option<&str>| {
        let mut cmd = stack.opsh(site.path());
        cmd.env("DATABASE_URL", url)
            .env("COMPOSE_PROJECT_NAME", project)
            .env("OPSH_BACKUP_PG_TOOLS", tools);
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        let r = run(cmd, &["-e", r#"backup::db(#{dir: "d"})"#]);
        assert_eq!(
            files_in(&site.path().join("d")),
            Vec::<String>::new(),
            "{}",
            r.stderr
        );
        r
    };
    let name = &stack.container.name;

    let wrong = stack.url.replace(PASSWORD, "not-the-password");
    let r = attempt(&wrong, &stack.project, "container", None);
    r.code(3);
    assert!(
        r.stderr
            .contains(&format!("pg_dump in container {name} failed (exit 1)"))
            && r.stderr
                .contains("password authentication failed for user \"youtube_user\""),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("not-the-password"), "{}", r.stderr);

    // compose.project names another stack, whose postgres is another server with the same
    // database, user and password: the snapshot opsh exported on the configured server does
    // not exist there, so pg_dump stops instead of dumping the wrong database.
    let (other_project, other) = start_postgres(&stack._image);
    let r = attempt(&stack.url, &other_project, "container", None);
    r.code(3);
    assert!(
        r.stderr
            .contains(&format!("pg_dump in container {} failed", other.name))
            && r.stderr.contains("snapshot"),
        "{}",
        r.stderr
    );
    drop(other);

    // A database missing on the configured server: opsh's own connection says so first.
    let missing = stack.url.replace("/youtube_agent", "/no_such_db");
    let r = attempt(&missing, &stack.project, "container", None);
    r.code(3);
    assert!(
        r.stderr.contains("database \"no_such_db\" does not exist"),
        "{}",
        r.stderr
    );

    // "auto", the host's pg_dump too old and no container of the project: both reasons.
    let stand_in = site.path().join("bin");
    std::fs::create_dir_all(&stand_in).unwrap();
    std::fs::write(
        stand_in.join("pg_dump"),
        "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n",
    )
    .unwrap();
    std::fs::set_permissions(
        stand_in.join("pg_dump"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", stand_in.display(), std::env::var("PATH").unwrap());
    let r = attempt(&stack.url, &unique("opshnone"), "auto", Some(&path));
    r.code(3);
    assert!(
        r.stderr
            .contains("pg_dump 9.6.24 on this host is older than the server (15")
            && r.stderr
                .contains("cannot be dumped in the postgres container either")
            && r.stderr.contains("install postgresql-client-15"),
        "{}",
        r.stderr
    );
}

/// A fresh redis-server on this host loading an RDB file; shut down on drop.
struct HostRedis {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl HostRedis {
    fn load(rdb: &Path) -> HostRedis {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(rdb, dir.path().join("dump.rdb")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dbfilename",
                "dump.rdb",
                "--dir",
            ])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = HostRedis {
            port,
            child,
            _dir: dir,
        };
        let started = Instant::now();
        while server.cli(&["ping"]) != "PONG" {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for HostRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis in its container (its data dir /data is not on this host): backup-all copies the RDB
/// of the save it waited for out of the container, streamed from the Engine's tar archive into
/// a private file with its sha256; the file equals the container's and loads into a fresh
/// redis-server with the same keys. Without a container to copy from, a skipped note says why.
#[test]
fn the_redis_rdb_is_copied_out_of_the_redis_container() {
    let image = Image::build("redis");
    let project = unique("opshrd");
    let container = Container::run(
        &project,
        "redis",
        &image,
        &["--user", "998:998", "-p", "127.0.0.1::6379"],
        &[
            "redis-server",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--dir",
            "/data",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    );
    container.wait_for("Ready to accept connections");
    let port = container.port(6379);
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    cli(&["hset", "stt:pending_approval", "job-1", "{\"cost\": 0.25}"]);
    cli(&["set", "stt:daily_cost:2026-11-26", "1.75"]);
    // ~1.6 MB of values that do not compress: many tar blocks and stream chunks.
    cli(&[
        "eval",
        "for i = 1, 2000 do local v = {} for j = 1, 20 do v[j] = redis.sha1hex(i .. ':' .. j) end redis.call('set', 'embedding:1024:' .. i, table.concat(v)) end",
        "0",
    ]);
    let sample = cli(&["get", "embedding:1024:777"]);
    assert_eq!(sample.len(), 800);
    cli(&["-n", "3", "set", "other-db", "kept"]);

    let db = TestDb::new();
    let opsh = Opsh::new()
        .db(&db)
        .env("REDIS_URL", &format!("redis://127.0.0.1:{port}/0"))
        .env("COMPOSE_PROJECT_NAME", &project)
        .file("docker-compose.yml", "services: {}\n")
        .args(["--json", "backup-all", "dir=backups"]);
    let run = opsh.run();
    run.code(1); // no Qdrant here
    let report = run.report();
    let details = check_details(&report);
    assert!(
        details.iter().any(|d| d.starts_with("redis: ")
            && d.ends_with(&format!("copied out of container {}", container.name))),
        "{details:?}"
    );
    let dir = opsh.path().join(report["data"]["dir"].as_str().unwrap());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let redis = &manifest["redis"];
    assert_eq!(
        (
            &redis["file"],
            &redis["copied_from"],
            &redis["container"],
            &redis["rdb_source"]
        ),
        (
            &Value::from("redis.rdb"),
            &Value::from("container"),
            &Value::from(container.name.as_str()),
            &Value::from("/data/dump.rdb")
        ),
        "{redis}"
    );
    let rdb = dir.join("redis.rdb");
    assert_eq!(mode(&rdb), 0o600);
    let listed = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "redis.rdb")
        .unwrap()
        .clone();
    let inside = container.exec(&["sha256sum", "/data/dump.rdb"]);
    let inside = inside.split_whitespace().next().unwrap();
    assert_eq!(listed["sha256"], inside);
    assert_eq!(listed["bytes"], std::fs::metadata(&rdb).unwrap().len());
    assert!(
        check_details(&report)
            .iter()
            .any(|d| d.starts_with("verify: ")),
        "{report}"
    );

    let loaded = HostRedis::load(&rdb);
    assert_eq!(
        loaded.cli(&["hget", "stt:pending_approval", "job-1"]),
        "{\"cost\": 0.25}"
    );
    assert_eq!(loaded.cli(&["get", "stt:daily_cost:2026-11-26"]), "1.75");
    assert_eq!(loaded.cli(&["get", "embedding:1024:777"]), sample);
    assert_eq!(loaded.cli(&["-n", "3", "get", "other-db"]), "kept");
    assert_eq!(loaded.cli(&["dbsize"]), "2002");
    assert!(listed["bytes"].as_u64().unwrap() > 1_500_000, "{listed}");

    // No container of the project to copy from: skipped, with both reasons, and no file.
    let opsh = Opsh::new()
        .db(&db)
        .env("REDIS_URL", &format!("redis://127.0.0.1:{port}/0"))
        .env("COMPOSE_PROJECT_NAME", &unique("opshnone"))
        .args(["--json", "backup-all", "dir=backups"]);
    let run = opsh.run();
    run.code(1);
    let report = run.report();
    let skipped = report["data"]["skipped"].to_string();
    assert!(
        skipped.contains("the RDB /data/dump.rdb is not readable on this host")
            && skipped.contains("copying it out of the Redis container did not work either"),
        "{skipped}"
    );
    let dir = opsh.path().join(report["data"]["dir"].as_str().unwrap());
    assert!(!dir.join("redis.rdb").exists());
}

/// Interrupted (Ctrl-C), opsh takes the pg_dump it started in the container down with it
/// (the exec's input closes, the guard around pg_dump kills it) and leaves no partial file.
/// pg_dump is held up deterministically by a lock another session holds on a table.
#[test]
fn an_interrupted_dump_stops_pg_dump_in_the_container_and_leaves_no_file() {
    let stack = PgStack::start();
    seed(&stack.url);
    let site = tempfile::tempdir().unwrap();
    let mut locker = Command::new("psql")
        .args(["-X", "-q", "-d", &stack.url, "-c"])
        .arg("BEGIN; LOCK TABLE transcripts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300);")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run psql");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _locker = Kill(&mut locker);
    let started = Instant::now();
    while psql(
        &stack.url,
        "SELECT count(*) FROM pg_locks WHERE relation = 'transcripts'::regclass AND mode = 'AccessExclusiveLock' AND granted",
    ) != "1"
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no lock taken");
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut cmd = stack.opsh(site.path());
    cmd.env("OPSH_BACKUP_PG_TOOLS", "container")
        .args(["-e", r#"backup::db(#{dir: "d"})"#])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("run opsh");
    let dumps = || {
        let top = docker_ok(&["top", &stack.container.id, "-eo", "pid,args"]);
        top.lines().filter(|l| l.contains("pg_dump --host")).count()
    };
    let started = Instant::now();
    while dumps() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "pg_dump never started in the container"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let run = support::Run::from(out);
    run.code(130);
    let started = Instant::now();
    while dumps() != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pg_dump still runs in the container after opsh was interrupted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(files_in(&site.path().join("d")), Vec::<String>::new());
}
