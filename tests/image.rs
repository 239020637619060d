//! opsh as a service of the deployment's compose file (Dockerfile, contrib/compose.opsh.yml),
//! against the real Docker Engine and docker-compose.
//!
//! No image can be pulled here, so the Dockerfile's runtime stage is built on a base made from
//! this host's own libraries (tools/test-image runtime), with the test's opsh binary (stripped)
//! in place of what the build stage compiles: the build stage is swapped for one that copies
//! the same two files to the same places, and the runtime stage is used as the Dockerfile has
//! it, line for line. The images are tagged by what went into them (build ids, the scripts) and
//! reused while that stays the same: one build per opsh binary, the PostgreSQL and Redis images
//! once per host; opsh images nothing uses are pruned after an hour.
//!
//! The stack uses the deployment's service names: PostgreSQL (tools/test-image postgres, the
//! deployment's init.sql), Redis (tools/test-image redis), the Qdrant double's binary as
//! `qdrant`, a busybox worker. Its .env is written as the deployment writes it, and opsh runs
//! with `docker-compose run --rm` from the snippet, as the README says.

#[path = "support/seed.rs"]
mod seed;
mod support;

use support::docker::docker;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn image_exists(name: &str) -> bool {
    docker(&["image", "inspect", name]).status.success()
}

/// A short hash of what an image is made from.
fn key(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A binary's identity for the image key: its GNU build id (the linker's hash of its content,
/// in a note near the start of the file; cargo relinks a binary without changing it, so its
/// time says nothing), else its size and modification time.
fn stamp(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut head = vec![0u8; 1 << 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The note: namesz 4, descsz 20, type 3 (NT_GNU_BUILD_ID), "GNU\0", then the 20 bytes.
    let header: &[u8] = &[4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0];
    if let Some(at) = head[..n].windows(header.len()).position(|w| w == header)
        && let Some(id) = head.get(at + header.len()..at + header.len() + 20)
    {
        return id.to_vec();
    }
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{}:{:?}", meta.len(), meta.modified().ok()).into_bytes()
}

/// The qdrant-double binary built beside opsh (`cargo test` at the workspace root builds it).
fn double_binary() -> PathBuf {
    let bin = Path::new(support::BIN).with_file_name("qdrant-double");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p qdrant-double` (the workspace's `cargo test --all-targets` does)",
        bin.display()
    );
    bin
}

/// The runtime base: the libraries opsh and the double load.
fn runtime_base(double: &Path) -> String {
    let script = std::fs::read(format!("{ROOT}/tools/test-image")).unwrap();
    let name = format!(
        "opsh-test-runtime:{}",
        key(&[&script, &stamp(Path::new(support::BIN)), &stamp(double)])
    );
    if !image_exists(&name) {
        let out = Command::new(format!("{ROOT}/tools/test-image"))
            .args(["runtime", &name, support::BIN])
            .arg(double)
            .output()
            .expect("run tools/test-image");
        ok("tools/test-image runtime", out);
    }
    name
}

/// The Dockerfile with its build stage swapped for one that copies the test's files to where
/// the real one leaves them (/out/opsh, /out/ca-certificates.crt); the rest as it is.
fn test_dockerfile() -> String {
    let real = std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap();
    let build_from = real
        .find("FROM ${RUST_IMAGE} AS build")
        .expect("the Dockerfile's build stage");
    let runtime_from = real
        .find("FROM ${RUNTIME_IMAGE} AS runtime")
        .expect("the Dockerfile's runtime stage");
    let build = &real[build_from..runtime_from];
    // What the runtime stage takes from the build stage is what the real build stage makes.
    for made in [
        "cp target/release/opsh /out/opsh",
        "cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt",
    ] {
        assert!(
            build.contains(made),
            "the build stage no longer runs `{made}`"
        );
    }
    format!(
        "{}FROM scratch AS build\nCOPY opsh /out/opsh\nCOPY ca-certificates.crt /out/ca-certificates.crt\n\n{}",
        &real[..build_from],
        &real[runtime_from..]
    )
}

/// The opsh image: the Dockerfile's runtime stage on `base`.
fn opsh_image(base: &str) -> String {
    let dockerfile = test_dockerfile();
    let name = format!(
        "opsh-test-service:{}",
        key(&[
            base.as_bytes(),
            dockerfile.as_bytes(),
            &stamp(Path::new(support::BIN))
        ])
    );
    if image_exists(&name) {
        return name;
    }
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), &dockerfile).unwrap();
    // The debug binary without its debug info: a fifth of the size to send to the engine.
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(ctx.path().join("opsh"))
        .arg(support::BIN)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(support::BIN, ctx.path().join("opsh")).unwrap();
    }
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if ca.is_file() {
        std::fs::copy(ca, ctx.path().join("ca-certificates.crt")).unwrap();
    } else {
        std::fs::write(ctx.path().join("ca-certificates.crt"), "").unwrap();
    }
    let out = Command::new("docker")
        .args(["build", "-q", "--target", "runtime", "-t", &name])
        .args(["--build-arg", &format!("RUNTIME_IMAGE={base}")])
        .args(["--label", "org.opsh.test-image=opsh-service"])
        .arg(ctx.path())
        .output()
        .expect("run docker build");
    ok("docker build of the runtime stage", out);
    // Earlier builds (other binaries) that nothing uses any more.
    for label in ["opsh-service", "runtime"] {
        let _ = docker(&[
            "image",
            "prune",
            "-a",
            "-f",
            "--filter",
            &format!("label=org.opsh.test-image={label}"),
            "--filter",
            "until=1h",
        ]);
    }
    name
}

/// A server image of tools/test-image (postgres, redis), kept and reused while the script and
/// the host's server binary stay the same.
fn server_image(kind: &str, program: &str) -> String {
    let script = std::fs::read(format!("{ROOT}/tools/test-image")).unwrap();
    let name = format!(
        "opsh-test-{kind}:{}",
        key(&[&script, &stamp(Path::new(program))])
    );
    if !image_exists(&name) {
        let out = Command::new(format!("{ROOT}/tools/test-image"))
            .args([kind, &name])
            .output()
            .expect("run tools/test-image");
        ok(&format!("tools/test-image {kind}"), out);
    }
    name
}

/// The newest PostgreSQL server of the host, as tools/test-image takes it.
fn postgres_binary() -> String {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql (tools/with-services installs PostgreSQL)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin/postgres")))
        .filter(|p| p.is_file())
        .collect();
    found.sort_by_key(|p| {
        p.components()
            .nth(4)
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
    });
    found
        .last()
        .expect("a PostgreSQL server")
        .display()
        .to_string()
}

/// PostgreSQL as the official image starts it: POSTGRES_USER a superuser owning POSTGRES_DB,
/// the deployment's init.sql run once, password auth over TCP; then the server in the
/// foreground (its "ready to accept connections" is the sign to go on).
const PG_START: &str = r#"set -e
D=/var/lib/postgresql/data
initdb -D $D -U postgres -E UTF8 --no-locale --auth=trust --no-sync >/tmp/initdb.log 2>&1 || { cat /tmp/initdb.log; exit 1; }
printf "listen_addresses = '*'\nunix_socket_directories = '/tmp'\nfsync = off\n" >> $D/postgresql.conf
pg_ctl -D $D -w -l /tmp/pg.log start >/dev/null
psql -X -q -h /tmp -U postgres -d postgres -c "CREATE ROLE youtube_user LOGIN SUPERUSER PASSWORD 'youtube_pass'" -c "CREATE DATABASE youtube_agent OWNER youtube_user"
psql -X -q -v ON_ERROR_STOP=1 -h /tmp -U youtube_user -d youtube_agent -f /init.sql >/dev/null
printf 'local all all trust\nhost all all all scram-sha-256\n' > $D/pg_hba.conf
pg_ctl -D $D -w stop >/dev/null
exec postgres -D $D
"#;

/// The stack under test, in a directory of its own; `docker-compose down` on drop.
struct Stack {
    dir: tempfile::TempDir,
}

impl Stack {
    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .current_dir(self.dir.path())
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE")
            .args([
                "-f",
                "docker-compose.yml",
                "-f",
                "docker-compose.opsh.yml",
                "-f",
                "docker-compose.test.yml",
            ])
            .args(args)
            .output()
            .expect("run docker-compose")
    }

    fn wait_for_log(&self, service: &str, line: &str) {
        let started = Instant::now();
        loop {
            let out = self.compose(&["logs", "--no-color", service]);
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains(line) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{service} never logged `{line}`:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `docker-compose run --rm -T SERVICE ARGS…` (-T: the test has no terminal).
    fn run(&self, service: &str, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["run", "--rm", "-T", service];
        all.extend_from_slice(args);
        let out = self.compose(&all);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "-t", "0", "--remove-orphans"]);
    }
}

fn json_of(what: &str, (code, stdout, stderr): &(i32, String, String), want: i32) -> Value {
    assert_eq!(
        *code, want,
        "{what}: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    serde_json::from_str(stdout).unwrap_or_else(|e| {
        panic!("{what}: stdout is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    })
}

#[test]
fn opsh_runs_as_a_service_of_the_stack_with_the_deployments_env() {
    let project = format!("opshimg{}", std::process::id());
    let busybox = std::env::var("OPSH_TEST_BUSYBOX_IMAGE")
        .expect("OPSH_TEST_BUSYBOX_IMAGE is not set: run the tests with tools/with-services");
    let started = Instant::now();
    let double = double_binary();
    let base = runtime_base(&double);
    let opsh = opsh_image(&base);
    let postgres = server_image("postgres", &postgres_binary());
    let redis = server_image("redis", "/usr/bin/redis-server");
    eprintln!("images ready after {:?}", started.elapsed());

    let stack = Stack {
        dir: tempfile::tempdir().unwrap(),
    };
    let dir = stack.dir.path();
    let stack_file = json!({
        "version": "2.4",
        "services": {
            "postgres": {
                "image": postgres,
                "user": "999:999",
                // `$$`: Compose reads `$D` as one of its own variables.
                "command": ["sh", "-c", PG_START.replace('$', "$$")],
                "volumes": [format!("{ROOT}/migrations/deployment/init.sql:/init.sql:ro")],
            },
            "redis": {
                "image": redis,
                "command": ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", ""],
            },
            "qdrant": {
                "image": base,
                "command": ["qdrant-double", "--host", "0.0.0.0"],
                "volumes": [format!("{}:/usr/local/bin/qdrant-double:ro", double.display())],
                "ports": ["127.0.0.1::6334"],
            },
            "stt-worker-1": {
                "image": busybox,
                "command": ["sh", "-c", "mkdir -p /tmp/shared_audio && echo a > /tmp/shared_audio/a.wav && exec sleep 600"],
            },
        },
    });
    // JSON is YAML: the stack as the deployment's compose file, the snippet as shipped, and the
    // test's image for it (the snippet's `build` stays; the image is there, so it is not built).
    std::fs::write(dir.join("docker-compose.yml"), stack_file.to_string()).unwrap();
    std::fs::copy(
        format!("{ROOT}/contrib/compose.opsh.yml"),
        dir.join("docker-compose.opsh.yml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("docker-compose.test.yml"),
        json!({"version": "2.4", "services": {"opsh": {"image": opsh}, "opsh-docker": {"image": opsh}}})
            .to_string(),
    )
    .unwrap();
    std::fs::create_dir(dir.join("opsh")).unwrap();
    std::fs::create_dir(dir.join("backups")).unwrap();
    // The deployment's .env as it writes it.
    std::fs::write(
        dir.join(".env"),
        format!(
            "COMPOSE_PROJECT_NAME={project}\n\
             POSTGRES_PASSWORD=youtube_pass\n\
             DATABASE_URL=postgresql://youtube_user:youtube_pass@postgres:5432/youtube_agent\n\
             QDRANT_URL=http://qdrant:6333\n\
             REDIS_URL=redis://redis:6379\n"
        ),
    )
    .unwrap();

    ok(
        "docker-compose up",
        stack.compose(&["up", "-d", "postgres", "redis", "qdrant", "stt-worker-1"]),
    );
    stack.wait_for_log("qdrant", "running until SIGINT or SIGTERM");
    let port = ok(
        "docker-compose port",
        stack.compose(&["port", "qdrant", "6334"]),
    );
    seed::seed(
        &format!("http://{port}"),
        &json!({"collections": {
            "youtube_content": {"size": 1024, "distance": "Cosine", "points": []},
            "youtube_summaries": {"size": 1024, "distance": "Cosine", "points": []},
        }}),
    );
    stack.wait_for_log("postgres", "ready to accept connections");
    eprintln!("stack up after {:?}", started.elapsed());

    // The guide's check, by service names, from the deployment's .env as it is.
    let check = stack.run("opsh", &["--json", "check-data"]);
    let report = json_of("check-data", &check, 0)["report"].clone();
    let checks: Vec<Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["name"], c["status"], c["detail"]]))
        .collect();
    assert_eq!(
        checks,
        vec![
            json!([
                "postgres",
                "ok",
                "postgresql://youtube_user:***@postgres:5432/youtube_agent: connected"
            ]),
            json!(["qdrant", "ok", "http://qdrant:6334: version 1.20.0"]),
            json!(["tables", "ok", "5 required tables present"]),
            json!(["collection youtube_content", "ok", "0 points"]),
            json!(["collection youtube_summaries", "ok", "0 points"]),
            json!([
                "vector_mappings ↔ youtube_content",
                "ok",
                "0 rows, 0 points, 0 matched, 0 missing, 0 orphans, 0 invalid"
            ]),
            json!([
                "content ↔ youtube_summaries",
                "ok",
                "0 rows, 0 points, 0 matched, 0 missing, 0 orphans, 0 invalid"
            ]),
            json!(["vector_stored content", "ok", "every one has its vectors"]),
            json!(["stuck jobs", "ok", "none processing for more than 1 day"]),
        ]
    );

    // Redis without a db number, and the addresses as `opsh config` resolves them.
    let pinged = stack.run(
        "opsh",
        &[
            "--json",
            "-e",
            r#"let p = cache::ping(); #{redis: p.address, db: p.db}"#,
        ],
    );
    assert_eq!(
        json_of("cache::ping", &pinged, 0),
        json!({"redis": "redis://redis:6379", "db": 0})
    );

    // Without the socket the engine is out of reach, and says so.
    let (code, _, stderr) = stack.run("opsh", &["-e", "docker::version()"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("opsh: error: docker::version: docker at unix:///var/run/docker.sock (docker.host, the default; set it or DOCKER_HOST): no Docker socket at /var/run/docker.sock in this container; mount the engine's socket there (the `opsh-docker` service of contrib/compose.opsh.yml does) or set DOCKER_HOST\n"),
        "{stderr}"
    );

    // With it, the worker's temp dir is emptied inside the worker (opsh does not see it).
    let clean = stack.run("opsh-docker", &["--json", "-e", "host::clean_temp()"]);
    let clean = json_of("host::clean_temp", &clean, 0);
    let worker = format!("{project}_stt-worker-1_1");
    let dirs: Vec<Value> = clean["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| json!([d["dir"], d["exists"], d["removed"], d["containers"]]))
        .collect();
    assert_eq!(
        dirs,
        vec![
            json!(["/tmp/shared_audio", true, 1, [worker]]),
            json!(["/tmp/youtube_downloads", false, 0, []]),
            json!(["/tmp/whisper_cache", false, 0, []]),
            json!(["/app/data/temp", false, 0, []]),
        ]
    );
    let left = ok(
        "docker exec ls",
        docker(&["exec", &worker, "ls", "-A", "/tmp/shared_audio"]),
    );
    assert_eq!(left, "");
    eprintln!("done after {:?}", started.elapsed());
}
