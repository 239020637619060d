//! Every registered function carries a description, named parameters and examples with their
//! expected values (its spec). This test reads the specs from the binary (`opsh api --json`) and
//! runs every example through it against a database seeded with tests/fixtures/examples.sql, a
//! fresh copy per example, comparing the example's value with the expected one. The qdrant:: and
//! integrity:: examples also get a fresh Qdrant double seeded with
//! tests/fixtures/examples-qdrant.json (and the rows of examples-qdrant.sql). The docker:: and
//! compose:: examples each get a fresh Compose project of their own (`Project`: a healthy
//! data-processor and two stt-workers from the local busybox image), so that they show what the
//! functions do to containers rather than what they do to none.

#[path = "support/seed.rs"]
mod seed;
mod support;

use pretty_assertions::assert_eq;
use serde_json::Value;
use support::{Opsh, TestDb};

const FIXTURE: &str = include_str!("fixtures/examples.sql");
const QDRANT_SQL: &str = include_str!("fixtures/examples-qdrant.sql");
const QDRANT_POINTS: &str = include_str!("fixtures/examples-qdrant.json");
/// The stt:: examples' cost rows (the table the STT workers create), added to their copy only.
const STT_SQL: &str = include_str!("fixtures/examples-stt.sql");

/// A Qdrant double seeded for the examples of the modules that use Qdrant, else None.
fn qdrant_for(spec: &Value) -> Option<qdrant_double::Running> {
    if !matches!(
        spec["module"].as_str(),
        Some("qdrant" | "integrity" | "reset")
    ) {
        return None;
    }
    let running = qdrant_double::QdrantDouble::start(qdrant_double::Options::default())
        .expect("start the Qdrant double");
    let points: Value = serde_json::from_str(QDRANT_POINTS).expect("examples-qdrant.json");
    seed::seed(&running.grpc_url(), &points);
    Some(running)
}

static PROJECTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A small Compose project for the docker:: and compose:: examples, removed on drop.
struct Project {
    name: String,
    dir: tempfile::TempDir,
}

impl Project {
    fn file(&self) -> String {
        self.dir
            .path()
            .join("docker-compose.yml")
            .display()
            .to_string()
    }

    fn compose(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("docker-compose")
            .args(["-f", &self.file(), "-p", &self.name])
            .args(args)
            .output()
            .expect("run docker-compose")
    }

    fn up() -> Project {
        let image = std::env::var("OPSH_TEST_BUSYBOX_IMAGE")
            .unwrap_or_else(|_| "opsh-test-busybox:latest".into());
        let name = format!(
            "opshexamples{}x{}",
            std::process::id(),
            PROJECTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let compose = format!(
            r#"version: "2.4"
services:
  data-processor:
    image: {image}
    command: ["sh", "-c", "echo processor started; echo 'ERROR cannot reach whisper-server'; exec httpd -f -p 8080"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 1s
      retries: 3
  stt-worker:
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    scale: 2
"#
        );
        std::fs::write(dir.path().join("docker-compose.yml"), compose).expect("compose file");
        let project = Project { name, dir };
        let out = project.compose(&["up", "-d"]);
        assert!(
            out.status.success(),
            "docker-compose up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let container = format!("{}_data-processor_1", project.name);
        let started = std::time::Instant::now();
        while docker(&["inspect", "-f", "{{.State.Health.Status}}", &container]) != "healthy" {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "{container} never became healthy"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        project
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "-t", "0", "--remove-orphans"]);
    }
}

/// MemTotal of /proc/meminfo in bytes, as the kernel says it (host::memory's total).
fn mem_total() -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal in /proc/meminfo");
    (kib * 1024).to_string()
}

fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn specs() -> Vec<Value> {
    let run = Opsh::new().args(["api", "--json"]).run();
    run.code(0);
    run.json().as_array().expect("an array of specs").clone()
}

fn path(spec: &Value) -> String {
    match spec["module"].as_str().unwrap_or_default() {
        "" => spec["name"].as_str().unwrap_or_default().to_string(),
        m => format!("{m}::{}", spec["name"].as_str().unwrap_or_default()),
    }
}

#[test]
fn every_function_has_a_description_named_parameters_and_examples_with_expected_values() {
    let specs = specs();
    let mut missing = Vec::new();
    for s in &specs {
        let name = path(s);
        if s["doc"].as_str().is_none_or(|d| d.trim().len() < 10) {
            missing.push(format!("{name}: no description"));
        }
        let examples = s["examples"].as_array().cloned().unwrap_or_default();
        if examples.is_empty() {
            missing.push(format!("{name}: no example"));
        }
        for e in &examples {
            if serde_json::from_str::<Value>(e["expect"].as_str().unwrap_or("")).is_err() {
                missing.push(format!(
                    "{name}: expected value {} is not JSON",
                    e["expect"]
                ));
            }
        }
        for p in s["params"].as_array().into_iter().flatten() {
            if p["name"].as_str().is_none_or(str::is_empty)
                || p["doc"].as_str().is_none_or(str::is_empty)
            {
                missing.push(format!("{name}: a parameter lacks a name or doc"));
            }
        }
        for o in s["options"].as_array().into_iter().flatten() {
            if o["doc"].as_str().is_none_or(str::is_empty) {
                missing.push(format!("{name}: option {} has no doc", o["name"]));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    let names: Vec<String> = specs.iter().map(path).collect();
    for expected in [
        "jobs::reset_stuck",
        "db::query",
        "report::new",
        "log::info",
        "confirm",
        "sleep",
        "status",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} is not in opsh api: {names:?}"
        );
    }
}

#[test]
fn every_example_gives_its_expected_value() {
    let template = TestDb::new();
    template.exec(FIXTURE);
    template.exec(QDRANT_SQL);
    let mut failures = Vec::new();
    let mut ran = 0;
    let docker_version = docker(&["version", "--format", "{{.Server.Version}}"]);
    for s in specs() {
        for e in s["examples"].as_array().into_iter().flatten() {
            let code = e["code"].as_str().unwrap_or_default();
            let expect: Value =
                serde_json::from_str(e["expect"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
            let db = TestDb::copy_of(&template);
            let qdrant = qdrant_for(&s);
            let project =
                matches!(s["module"].as_str(), Some("docker" | "compose")).then(Project::up);
            let mut opsh = Opsh::new()
                .db(&db)
                .env("EXAMPLES_GREETING", "set by the examples test");
            if matches!(s["module"].as_str(), Some("cache" | "reset")) {
                let (url, version) = seed_redis();
                opsh = opsh
                    .env("REDIS_URL", &url)
                    .env("EXAMPLES_REDIS_VERSION", &version);
            }
            if let Some(q) = &qdrant {
                opsh = opsh
                    .env("QDRANT_URL", &q.grpc_url())
                    .env("OPSH_QDRANT_REST_URL", &q.rest_url());
            }
            if s["module"] == "stt" {
                db.exec(STT_SQL);
                opsh = opsh.env("REDIS_URL", &seed_stt_redis());
            }
            if s["module"] == "host" {
                opsh = opsh.env("EXAMPLES_MEM_TOTAL", &mem_total());
            }
            if let Some(p) = &project {
                opsh = opsh
                    .env("COMPOSE_PROJECT_NAME", &p.name)
                    .env("COMPOSE_FILE", &p.file())
                    .env("EXAMPLES_DOCKER_VERSION", &docker_version);
            }
            let run = opsh.args(["--json", "--yes", "-e", code]).run();
            drop(qdrant);
            drop(project);
            ran += 1;
            let got: Result<Value, _> = serde_json::from_str(&run.stdout);
            let exit_ok = run.code == 0
                || expect.get("exit_code").and_then(Value::as_i64) == Some(run.code.into());
            match got {
                Ok(got) if got == expect && exit_ok => {}
                _ => failures.push(format!(
                    "{}: {code}\n  expected {expect}\n  exit {}, stdout {:?}, stderr {:?}",
                    path(&s),
                    run.code,
                    run.stdout,
                    run.stderr
                )),
            }
        }
    }
    eprintln!("{ran} examples ran");
    assert!(ran > 40, "only {ran} examples ran");
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "{} examples failed",
        failures.len()
    );
}

/// The README's API section is `opsh api --markdown`, so the documentation cannot drift from
/// the binary. Regenerate it with `tools/readme-api`.
#[test]
fn readme_api_section_matches_the_binary() {
    let run = Opsh::new().args(["api", "--markdown"]).run();
    run.code(0);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let begin = "<!-- api:begin (generated by tools/readme-api) -->\n";
    let end = "<!-- api:end -->";
    let start = readme.find(begin).expect("README has the api:begin marker") + begin.len();
    let stop = readme.find(end).expect("README has the api:end marker");
    assert_eq!(
        &readme[start..stop],
        run.stdout,
        "README's API section is stale: run tools/readme-api"
    );
}

/// The Redis db the cache:: examples run against (db 9 of the test server), emptied and seeded
/// before each: three example keys (one with a TTL) and one cost counter the deployment keeps.
/// Its URL, and the server's version as its INFO says.
fn seed_redis() -> (String, String) {
    let server = std::env::var("REDIS_URL").expect("REDIS_URL is set by tools/with-services");
    let url = format!(
        "{}/9",
        server
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('/')
    );
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();
    redis::cmd("SET")
        .arg("opsh-example:a")
        .arg("1")
        .arg("EX")
        .arg(3600)
        .exec(&mut conn)
        .unwrap();
    redis::cmd("SET")
        .arg("opsh-example:b")
        .arg("2")
        .exec(&mut conn)
        .unwrap();
    redis::cmd("SET")
        .arg("opsh-example:c")
        .arg("3")
        .exec(&mut conn)
        .unwrap();
    redis::cmd("SET")
        .arg("stt:daily_cost:2026-11-26")
        .arg("1.25")
        .exec(&mut conn)
        .unwrap();
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).unwrap();
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .expect("INFO server names redis_version")
        .trim()
        .to_string();
    (url, version)
}

/// The Redis db the stt:: examples run against (db 10 of the test server), emptied and seeded
/// before each with the hash stt:pending_approval as the workers write it: one run waiting for
/// 10 minutes, one approved, one malformed value. Its URL.
fn seed_stt_redis() -> String {
    let server = std::env::var("REDIS_URL").expect("REDIS_URL is set by tools/with-services");
    let url = format!(
        "{}/10",
        server
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('/')
    );
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();
    let ago = |mins: i64| {
        (chrono::Utc::now().naive_utc() - chrono::Duration::minutes(mins))
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string()
    };
    let waiting = serde_json::json!({
        "approval_id": "stt_approval_3_1764000000.5", "content_id": 3, "title": "Bonds today",
        "channel_name": "Finance Daily", "duration_seconds": 3600.0, "duration_minutes": 60.0,
        "estimated_cost_usd": 0.36, "requested_at": ago(10), "status": "pending"
    });
    let approved = serde_json::json!({
        "approval_id": "stt_approval_1_1763990000.1", "content_id": 1, "title": "Rates explained",
        "channel_name": "Finance Daily", "duration_seconds": 1800.0, "duration_minutes": 30.0,
        "estimated_cost_usd": 0.18, "requested_at": ago(300), "status": "approved",
        "approved_by": "cli_user", "approved_at": ago(290)
    });
    redis::cmd("HSET")
        .arg("stt:pending_approval")
        .arg("stt_approval_3_1764000000.5")
        .arg(waiting.to_string())
        .arg("stt_approval_1_1763990000.1")
        .arg(approved.to_string())
        .arg("stt_approval_9_broken")
        .arg("{not json")
        .exec(&mut conn)
        .unwrap();
    url
}
