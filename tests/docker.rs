//! docker::, compose::, host:: and the lifecycle procedures against the real Docker Engine.
//!
//! Each test brings up its own Compose project (a unique name) with docker-compose from the
//! locally imported busybox image (tools/with-services: OPSH_TEST_BUSYBOX_IMAGE; nothing is
//! pulled), and removes it when it ends, also when it fails (the `Stack` guard's Drop).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Opsh, TestDb, seed_jobs};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn image() -> String {
    std::env::var("OPSH_TEST_BUSYBOX_IMAGE").unwrap_or_else(|_| "opsh-test-busybox:latest".into())
}

/// The test project's compose file: a web service with a healthcheck (httpd), one that ignores
/// SIGTERM, and a worker scaled to two containers.
fn compose_file(image: &str) -> String {
    format!(
        r#"version: "2.4"
services:
  web:
    image: {image}
    command: ["sh", "-c", "echo web started; echo 'ERROR disk full'; echo 'CRITICAL cannot write'; exec httpd -f -p 8080"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 1s
      retries: 3
  stubborn:
    image: {image}
    command: ["sh", "-c", "trap '' TERM; echo 'FATAL ignoring SIGTERM'; while true; do sleep 1; done"]
  worker:
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 1; done"]
    scale: 2
"#
    )
}

/// A Compose project of its own, removed (containers, networks, volumes) on drop.
struct Stack {
    project: String,
    dir: tempfile::TempDir,
}

impl Stack {
    fn new() -> Stack {
        let project = format!(
            "opshtest{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("docker-compose.yml"),
            compose_file(&image()),
        )
        .expect("write compose file");
        let stack = Stack { project, dir };
        stack.compose(&["up", "-d"]);
        stack.wait_healthy();
        stack
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("docker-compose.yml")
    }

    fn compose(&self, args: &[&str]) {
        let out = Command::new("docker-compose")
            .arg("-f")
            .arg(self.file())
            .args(["-p", &self.project])
            .args(args)
            .output()
            .expect("run docker-compose");
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// opsh pointed at this project.
    fn opsh(&self) -> Opsh {
        Opsh::new()
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .env("COMPOSE_FILE", &self.file().display().to_string())
    }

    fn name(&self, service: &str, n: u32) -> String {
        format!("{}_{service}_{n}", self.project)
    }

    fn state(&self, service: &str, n: u32) -> String {
        docker(&["inspect", "-f", "{{.State.Status}}", &self.name(service, n)])
    }

    fn wait_healthy(&self) {
        let started = Instant::now();
        while docker(&[
            "inspect",
            "-f",
            "{{.State.Health.Status}}",
            &self.name("web", 1),
        ]) != "healthy"
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "web never became healthy"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .arg("-f")
            .arg(self.file())
            .args([
                "-p",
                &self.project,
                "down",
                "-v",
                "-t",
                "0",
                "--remove-orphans",
            ])
            .output();
        // Whatever Compose left (a test that removed the file's project another way).
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
        ]);
        for id in ids.split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn json_of(stack: &Stack, code: &str) -> Value {
    stack
        .opsh()
        .args(["--json", "-e", code])
        .run()
        .code(0)
        .json()
}

#[test]
fn ps_lists_the_project_by_its_compose_labels_with_health() {
    let stack = Stack::new();
    let ps = json_of(
        &stack,
        "docker::ps().map(|c| [c.service, c.container, c.state, c.health, c.image])",
    );
    let img = image();
    assert_eq!(
        ps,
        json!([
            ["stubborn", stack.name("stubborn", 1), "running", null, img],
            ["web", stack.name("web", 1), "running", "healthy", img],
            ["worker", stack.name("worker", 1), "running", null, img],
            ["worker", stack.name("worker", 2), "running", null, img],
        ])
    );
    let up = json_of(&stack, "docker::ps(\"web\")[0].uptime_seconds");
    assert!(up.as_i64().is_some_and(|s| (0..600).contains(&s)), "{up}");
    assert_eq!(
        json_of(&stack, "docker::services()"),
        json!({"stubborn": 1, "web": 1, "worker": 2})
    );
    let v = json_of(&stack, "docker::version()");
    assert_eq!(v["address"], "unix:///var/run/docker.sock");
    // The engine here speaks 1.41; a client that did not negotiate would fail every call.
    assert_eq!(
        v["api_version"],
        docker(&["version", "-f", "{{.Server.APIVersion}}"])
    );

    let p = &stack.project;
    stack.opsh().args(["ps"]).run().code(0);
    let text = stack.opsh().args(["ps"]).run().stdout;
    assert!(
        text.starts_with(&format!(
            "Containers\n✅ {p}_stubborn_1: stubborn: running, up "
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("✅ {p}_web_1: web: running, healthy, up ")),
        "{text}"
    );
    assert!(
        text.ends_with("✅ running: 4 of 4 containers running and healthy\nStatus: ✅ healthy\n"),
        "{text}"
    );
}

#[test]
fn pause_unpause_stop_start_restart_act_on_all_at_once_and_are_idempotent() {
    let stack = Stack::new();
    let p = stack.project.clone();
    let results = |v: &Value| -> Vec<(String, String)> {
        v["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["container"].as_str().unwrap().to_string(),
                    c["result"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pair = |s: &str, n: u32, r: &str| (stack.name(s, n), r.to_string());

    let paused = json_of(&stack, r#"docker::pause(["web", "worker"])"#);
    assert_eq!(
        results(&paused),
        [
            pair("web", 1, "paused"),
            pair("worker", 1, "paused"),
            pair("worker", 2, "paused")
        ]
    );
    assert_eq!(stack.state("web", 1), "paused");

    // The pause procedure: the ones already paused are reported as such.
    stack.opsh().args(["pause"]).run().expect(
        0,
        &format!(
            "Pause the stack's containers\n✅ {p}_stubborn_1: paused\n✅ {p}_web_1: already paused\n\
✅ {p}_worker_1: already paused\n✅ {p}_worker_2: already paused\n✅ pause: 1 paused, 3 unchanged, 0 failed\n\
Status: ✅ healthy\n"
        ),
        "",
    );
    stack
        .opsh()
        .args(["unpause", "services=stubborn"])
        .run()
        .code(0);
    assert_eq!(stack.state("stubborn", 1), "running");
    let unpaused = json_of(&stack, "docker::unpause()");
    assert_eq!(
        (&unpaused["changed"], &unpaused["unchanged"]),
        (&json!(3), &json!(1))
    );
    assert_eq!(results(&unpaused)[0], pair("stubborn", 1, "not paused"));

    // --dry-run changes nothing.
    let dry = stack
        .opsh()
        .args(["--json", "--dry-run", "-e", "docker::stop()"])
        .run()
        .code(0)
        .json();
    assert_eq!(results(&dry)[0], pair("stubborn", 1, "would stop"));
    assert_eq!(stack.state("stubborn", 1), "running");

    // stop: the container that ignores SIGTERM is killed after the timeout; all stop at once,
    // so the whole takes about one timeout, not four.
    let started = Instant::now();
    let stopped = json_of(&stack, r#"docker::stop(#{timeout: "3s"})"#);
    let took = started.elapsed();
    assert_eq!(stopped["changed"], 4, "{stopped}");
    assert!(took < Duration::from_secs(20), "stop took {took:?}");
    let stubborn = &stopped["containers"][0];
    assert!(stubborn["seconds"].as_f64().unwrap() >= 2.5, "{stubborn}");
    for (s, n) in [("web", 1), ("stubborn", 1), ("worker", 2)] {
        assert_eq!(stack.state(s, n), "exited");
    }
    stack.opsh().args(["stop", "timeout=1s"]).run().expect(
        0,
        &format!(
            "Stop the stack's containers (containers kept)\n✅ {p}_stubborn_1: already stopped\n\
✅ {p}_web_1: already stopped\n✅ {p}_worker_1: already stopped\n✅ {p}_worker_2: already stopped\n\
✅ stop: 0 stopped, 4 unchanged, 0 failed\nStatus: ✅ healthy\n"
        ),
        "",
    );
    assert_eq!(
        json_of(&stack, "docker::pause().containers.map(|c| c.result)"),
        json!(["not running", "not running", "not running", "not running"])
    );

    stack
        .opsh()
        .args(["start", "services=web,worker"])
        .run()
        .code(0);
    assert_eq!(stack.state("web", 1), "running");
    assert_eq!(stack.state("stubborn", 1), "exited");
    let started = json_of(&stack, "docker::start()");
    assert_eq!(
        results(&started),
        [
            pair("stubborn", 1, "started"),
            pair("web", 1, "already running"),
            pair("worker", 1, "already running"),
            pair("worker", 2, "already running"),
        ]
    );
    let restarted = json_of(&stack, r#"docker::restart("worker", #{timeout: 2})"#);
    assert_eq!(restarted["changed"], 2);
    stack
        .opsh()
        .args(["restart", "services=web", "timeout=1s"])
        .run()
        .code(0);
    assert_eq!(stack.state("web", 1), "running");
    // A paused container stops too.
    json_of(&stack, r#"docker::pause("worker")"#);
    let s = json_of(&stack, r#"docker::stop("worker", #{timeout: 2})"#);
    assert_eq!(s["changed"], 2, "{s}");
    assert_eq!(stack.state("worker", 1), "exited");
}

#[test]
fn bad_input_unknown_service_missing_project_unreachable_engine() {
    let stack = Stack::new();
    let run = stack.opsh().args(["-e", r#"docker::stop("wrker")"#]).run();
    run.code(3);
    assert!(
        run.stderr.starts_with(&format!(
            "opsh: error: docker::stop: docker at unix:///var/run/docker.sock: unknown service `wrker`; did you mean `worker`? the project `{}` has stubborn, web, worker\n",
            stack.project
        )),
        "{}",
        run.stderr
    );
    // No container for the project: a warning naming the project and how to set it.
    Opsh::new()
        .env("COMPOSE_PROJECT_NAME", "opsh_no_such_project")
        .args(["ps"])
        .run()
        .expect(
            1,
            "Containers\n⚠️ containers: no container of the Compose project opsh_no_such_project; set compose.project or COMPOSE_PROJECT_NAME\nStatus: ⚠️ warning\n",
            " WARN no container of the Compose project `opsh_no_such_project` on this engine; set the project with compose.project in opsh.toml or COMPOSE_PROJECT_NAME\n",
        );
    let run = Opsh::new()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["-e", "docker::ps()"])
        .run();
    run.code(3);
    assert!(
        run.stderr.starts_with(
            "opsh: error: docker::ps: docker at unix:///nonexistent/docker.sock (docker.host, from DOCKER_HOST): no Docker socket at /nonexistent/docker.sock; is the engine running? (set DOCKER_HOST to its address)\n"
        ),
        "{}",
        run.stderr
    );
    let run = Opsh::new()
        .env("DOCKER_HOST", "tcp://127.0.0.1:9")
        .args([
            "--json",
            "-e",
            "let r = (); try { docker::ps() } catch (e) { r = [e.kind, e.address] } r",
        ])
        .run();
    assert_eq!(
        run.code(0).json(),
        json!(["unreachable", "tcp://127.0.0.1:9"])
    );
    let run = Opsh::new()
        .env("DOCKER_HOST", "tcp://127.0.0.1:9")
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", "/nonexistent/certs")
        .args(["-e", "docker::ps()"])
        .run();
    assert!(
        run.stderr.contains(
            "TLS is on (DOCKER_TLS_VERIFY) but /nonexistent/certs/ca.pem is missing; set DOCKER_CERT_PATH"
        ),
        "{}",
        run.stderr
    );
    let run = Opsh::new()
        .env("DOCKER_HOST", "fd://3")
        .args(["-e", "docker::ps()"])
        .run();
    assert!(
        run.stderr
            .contains("DOCKER_HOST `fd://3` has a scheme opsh does not know"),
        "{}",
        run.stderr
    );
}

#[test]
fn stats_logs_exec_inspect_and_their_procedures() {
    let stack = Stack::new();
    let p = stack.project.clone();
    // One container spins for 8 s, the others sleep: its CPU share shows, theirs does not.
    docker(&[
        "exec",
        "-d",
        &stack.name("stubborn", 1),
        "sh",
        "-c",
        "end=$(($(date +%s) + 8)); while [ $(date +%s) -lt $end ]; do :; done",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let stats = json_of(&stack, "docker::stats()");
    let stats = stats.as_array().unwrap();
    assert_eq!(stats.len(), 4);
    for s in stats {
        assert!(s["memory_limit"].as_i64().unwrap() > 0, "{s}");
        assert!(s["memory_used"].as_i64().unwrap() > 0, "{s}");
        assert!(s["pids"].as_i64().unwrap() >= 1, "{s}");
        let cpu = s["cpu_percent"].as_f64().unwrap();
        if s["service"] == "stubborn" {
            // A loaded 2-core machine still gives a spinning loop far more than a tenth of a core.
            assert!(cpu > 10.0, "{s}");
        } else {
            assert!(cpu < 10.0, "{s}");
        }
    }
    // The thresholds decide the status: no level reached is ok, every level reached critical.
    let run = stack
        .opsh()
        .args(["stats", "warn_percent=101", "critical_percent=102"])
        .run();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = stack
        .opsh()
        .args(["stats", "warn_percent=0", "critical_percent=101"])
        .run();
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let run = stack
        .opsh()
        .args(["stats", "warn_percent=0", "critical_percent=0"])
        .run();
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    let run = stack.opsh().args(["stats"]).run();
    assert!(run.stdout.starts_with("Resource use\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("✅ {p}_web_1: cpu ")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("disk /: / ("), "{}", run.stdout);
    assert!(run.stdout.contains(" memory: "), "{}", run.stdout);
    // web runs one process (sleep): its count in the singular.
    let web = run
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("✅ {p}_web_1: cpu ")))
        .unwrap_or_default();
    assert!(web.ends_with(" written, 1 pid"), "{web}");

    assert_eq!(
        json_of(
            &stack,
            r#"docker::logs("web", #{grep: "ERROR|CRITICAL|FATAL"}).lines.map(|l| [l.service, l.stream, l.text])"#
        ),
        json!([
            ["web", "stdout", "ERROR disk full"],
            ["web", "stdout", "CRITICAL cannot write"]
        ])
    );
    assert_eq!(
        json_of(
            &stack,
            r#"docker::logs("web", #{tail: 1}).lines.map(|l| l.text)"#
        ),
        json!(["CRITICAL cannot write"])
    );
    assert_eq!(
        json_of(
            &stack,
            r#"docker::logs("web", #{since: "1h", grep: "^web"}).count"#
        ),
        json!(1)
    );
    let bad = stack
        .opsh()
        .args(["-e", r#"docker::logs(#{grep: "("})"#])
        .run();
    bad.code(3);
    assert!(
        bad.stderr
            .contains("option `grep`: not a regular expression"),
        "{}",
        bad.stderr
    );
    // The containers' lines interleave by time, so the issues are compared as a set.
    let run = stack.opsh().args(["logs-error"]).run();
    run.code(1);
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort();
    let mut want = vec![
        "Error logs".to_string(),
        format!("⚠️ {p}_stubborn_1: 1 error line in the last day"),
        format!("⚠️ {p}_web_1: 2 error lines in the last day"),
        "Issues:".to_string(),
        format!("  - {p}_stubborn_1: FATAL ignoring SIGTERM"),
        format!("  - {p}_web_1: ERROR disk full"),
        format!("  - {p}_web_1: CRITICAL cannot write"),
        "Status: ⚠️ warning".to_string(),
    ];
    want.sort();
    assert_eq!(lines, want);
    // A window of one unit reads "the last day"; of several, "the last 2 hours".
    let run = stack.opsh().args(["logs-error", "since=2h"]).run();
    run.code(1);
    assert!(
        run.stdout.contains(&format!(
            "⚠️ {p}_web_1: 2 error lines in the last 2 hours\n"
        )),
        "{}",
        run.stdout
    );
    let run = stack.opsh().args(["logs", "services=web", "tail=2"]).run();
    run.expect(
        0,
        &format!("{p}_web_1 | ERROR disk full\n{p}_web_1 | CRITICAL cannot write\n"),
        "",
    );

    // docker.allow_exec lists where scripts may run commands; web and worker here.
    let exec_in = |code: &str| {
        stack
            .opsh()
            .env("OPSH_DOCKER_ALLOW_EXEC", "web:worker")
            .args(["--json", "-e", code])
            .run()
            .code(0)
            .json()
    };
    let exec = exec_in(r#"docker::exec("web", "echo out; echo err >&2; exit 3")"#);
    assert_eq!(exec["exit_code"], 3);
    assert_eq!(exec["stdout"], "out\n");
    assert_eq!(exec["stderr"], "err\n");
    assert_eq!(exec["container"], stack.name("web", 1));
    let exec = exec_in(r#"docker::exec("worker", ["echo", "a b"])"#);
    assert_eq!(
        (&exec["exit_code"], &exec["output"]),
        (&json!(0), &json!("a b\n"))
    );
    // A container name counts as its service.
    let exec = exec_in(&format!(
        r#"docker::exec("{}", "echo by name")"#,
        stack.name("worker", 2)
    ));
    assert_eq!(exec["output"], "by name\n");

    assert_eq!(
        json_of(
            &stack,
            r#"let i = docker::inspect("web"); [i.Name, i.State.Status, i.State.Health.Status]"#
        ),
        json!([format!("/{}", stack.name("web", 1)), "running", "healthy"])
    );
}

#[test]
fn exec_is_refused_unless_docker_allow_exec_lists_the_service() {
    let stack = Stack::new();
    let marker = "/tmp/opsh-exec-ran";
    let touch = format!(r#"docker::exec("web", "touch {marker}")"#);
    let ran = || {
        Command::new("docker")
            .args(["exec", &stack.name("web", 1), "test", "-e", marker])
            .status()
            .unwrap()
            .success()
    };
    let refused = |run: &support::Run, now: &str| {
        run.code(3);
        assert!(
            run.stderr.contains(&format!(
                "running a command in `web` is not allowed: scripts get no shell in containers unless the configuration allows it ({now}); list the service in docker.allow_exec"
            )),
            "{}",
            run.stderr
        );
    };
    // By default no service is allowed, and nothing runs.
    let run = stack.opsh().args(["-e", &touch]).run();
    refused(&run, "none is allowed now");
    // Another service listed: still refused, and the message says what is allowed.
    let run = stack
        .opsh()
        .env("OPSH_DOCKER_ALLOW_EXEC", "worker")
        .args(["-e", &touch])
        .run();
    refused(&run, "allowed now: worker");
    assert!(!ran(), "a refused exec ran its command");
    // Scripts can catch it by kind.
    let kind = stack
        .opsh()
        .args([
            "-e",
            r#"let k = (); try { docker::exec("web", "true") } catch (e) { k = e.kind } k"#,
        ])
        .run();
    kind.expect(0, "refused\n", "");

    // Allowed in opsh.toml, for the service; then "*" for all.
    let run = stack
        .opsh()
        .file("opsh.toml", "[docker]\nallow_exec = [\"web\"]\n")
        .args(["--json", "-e", &touch])
        .run();
    run.code(0);
    assert_eq!(run.json()["exit_code"], 0);
    assert!(ran(), "the allowed exec did not run");
    let run = stack
        .opsh()
        .env("OPSH_DOCKER_ALLOW_EXEC", "*")
        .args(["--json", "-e", r#"docker::exec("stubborn", "echo any")"#])
        .run();
    run.code(0);
    assert_eq!(run.json()["output"], "any\n");
}

#[test]
fn logs_follow_streams_until_ctrl_c() {
    let stack = Stack::new();
    let mut child = stack
        .opsh()
        .args(["logs", "services=worker", "tail=0", "follow=true"])
        .spawn();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(
        first == format!("{}_worker_1 | tick\n", stack.project)
            || first == format!("{}_worker_2 | tick\n", stack.project),
        "{first}"
    );
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
}

/// `opsh logs follow=true | head -1`: once the reader has gone, following stops at the next line
/// and opsh exits 141, as it does for a print. (It used to follow on, writing into the closed
/// pipe, until the containers stopped.)
#[test]
fn logs_follow_ends_when_its_reader_goes_away() {
    let stack = Stack::new();
    let mut child = stack
        .opsh()
        .args(["logs", "services=worker", "tail=0", "follow=true"])
        .spawn();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.ends_with(" | tick\n"), "{first}");
    drop(out);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("opsh still follows the logs 20s after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert_eq!((status.code(), stderr.as_str()), (Some(141), ""));
}

/// A one-shot HTTP server answering `status` to every request, on a free port.
fn http_server(status: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    port
}

#[test]
fn test_health_checks_containers_and_health_urls() {
    let stack = Stack::new();
    let p = stack.project.clone();
    let ok = http_server("200 OK");
    let sick = http_server("503 Service Unavailable");
    let run = stack
        .opsh()
        .args([
            "test-health".to_string(),
            format!(
                "urls=agent-service=http://127.0.0.1:{ok}/health,whisper-server=http://127.0.0.1:{sick}/health,embedding-server=http://127.0.0.1:9/health"
            ),
        ])
        .run();
    run.code(2);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "Health");
    assert_eq!(
        lines[1],
        format!("✅ {p}_stubborn_1: running (no healthcheck)")
    );
    assert_eq!(lines[2], format!("✅ {p}_web_1: running, healthy"));
    assert!(
        lines[5].starts_with(&format!(
            "✅ agent-service http://127.0.0.1:{ok}/health: HTTP 200 in "
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines[6],
        format!("❌ whisper-server http://127.0.0.1:{sick}/health: HTTP 503: ok")
    );
    assert_eq!(
        lines[7],
        "❌ embedding-server http://127.0.0.1:9/health: connection refused"
    );
    // A stopped container is critical too.
    json_of(&stack, r#"docker::stop("stubborn", #{timeout: 1})"#);
    let run = stack
        .opsh()
        .args([
            "test-health".to_string(),
            format!("urls=a=http://127.0.0.1:{ok}/"),
        ])
        .run();
    run.code(2);
    assert!(
        run.stdout
            .contains(&format!("❌ {p}_stubborn_1: exited (Exited (")),
        "{}",
        run.stdout
    );
}

fn temp_dirs(base: &Path) -> (PathBuf, PathBuf) {
    let a = base.join("shared_audio");
    let b = base.join("whisper_cache");
    for d in [&a, &b] {
        std::fs::create_dir_all(d.join("nested")).unwrap();
        std::fs::write(d.join("chunk.wav"), vec![0u8; 1000]).unwrap();
        std::fs::write(d.join("nested/part"), b"x").unwrap();
    }
    (a, b)
}

#[test]
fn safe_stop_waits_for_jobs_resets_the_rest_cleans_temp_and_stops_then_safe_start_recovers() {
    let stack = Stack::new();
    let db = TestDb::new();
    // 5 jobs processing right now, 2 long-finished ones.
    seed_jobs(
        &db,
        &[
            ("extract_transcript", "processing", 0, 0),
            ("process_audio", "processing", 0, 0),
            ("vectorize", "processing", 0, 1),
            ("vectorize", "processing", 0, 0),
            ("process_audio", "processing", 0, 0),
            ("vectorize", "completed", 60, 0),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = temp_dirs(tmp.path());
    let dirs = format!(
        "{}:{}:{}",
        a.display(),
        b.display(),
        tmp.path().join("absent").display()
    );
    // A worker finishes two jobs within the grace period.
    let url = db.url.clone();
    let worker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let status = Command::new("psql")
            .args([
                &url,
                "-q",
                "-c",
                "UPDATE processing_jobs SET status = 'completed', completed_at = LOCALTIMESTAMP WHERE id IN (1, 2)",
            ])
            .status()
            .unwrap();
        assert!(status.success());
    });
    let run = stack
        .opsh()
        .db(&db)
        .env("OPSH_FILES_TEMP_DIRS", &dirs)
        .args([
            "--yes",
            "--json",
            "safe-stop",
            "grace=6s",
            "stop_timeout=2s",
            "stop_last=stubborn",
        ])
        .run();
    worker.join().unwrap();
    run.code(0);
    let data = &run.report()["data"];
    assert_eq!(data["finished"], 2, "{data}");
    assert_eq!(data["reset"], 3, "{data}");
    assert_eq!(data["sample_reset_ids"], json!([3, 4, 5]));
    assert_eq!(data["stopped"], 4, "{data}");
    assert_eq!(data["removed_temp_entries"], 4, "{data}");
    assert_eq!(
        db.scalar(
            "SELECT string_agg(id || ':' || status || ':' || COALESCE(error_message, '-') || ':' || retry_count, ' ' ORDER BY id) FROM processing_jobs"
        ),
        "1:completed:-:0 2:completed:-:0 3:pending:Service stopped during processing:1 \
4:pending:Service stopped during processing:0 5:pending:Service stopped during processing:0 6:completed:-:0"
    );
    for d in [&a, &b] {
        assert!(d.is_dir());
        assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);
    }
    for (s, n) in [("web", 1), ("stubborn", 1), ("worker", 1), ("worker", 2)] {
        assert_eq!(stack.state(s, n), "exited", "{s}");
    }

    // safe-start: a job stuck for 2 h is reset, a fresh one left alone, all run and web is
    // healthy again.
    seed_jobs(
        &db,
        &[
            ("vectorize", "processing", 120, 0),
            ("vectorize", "processing", 1, 0),
        ],
    );
    temp_dirs(tmp.path());
    let run = stack
        .opsh()
        .db(&db)
        .env("OPSH_FILES_TEMP_DIRS", &dirs)
        .args(["--json", "safe-start", "wait=60s", "stop_last=stubborn"])
        .run();
    run.code(0);
    let data = &run.report()["data"];
    assert_eq!(data["started"], 4, "{data}");
    assert_eq!(data["reset"], 1, "{data}");
    assert_eq!(data["sample_reset_ids"], json!([7]));
    assert_eq!(data["removed_temp_entries"], 4, "{data}");
    assert_eq!(
        db.scalar("SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM processing_jobs WHERE id > 6"),
        "7:pending 8:processing"
    );
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.State.Health.Status}}",
            &stack.name("web", 1)
        ]),
        "healthy"
    );
    assert_eq!(stack.state("worker", 2), "running");
}

#[test]
fn safe_stop_dry_run_changes_nothing() {
    let stack = Stack::new();
    let db = TestDb::new();
    seed_jobs(&db, &[("vectorize", "processing", 0, 0)]);
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = temp_dirs(tmp.path());
    let run = stack
        .opsh()
        .db(&db)
        .env("OPSH_FILES_TEMP_DIRS", &a.display().to_string())
        .args(["--dry-run", "--json", "safe-stop", "grace=1s"])
        .run();
    run.code(0);
    let data = &run.report()["data"];
    assert_eq!(
        (&data["reset"], &data["stopped"]),
        (&json!(1), &json!(0)),
        "{data}"
    );
    assert_eq!(
        db.scalar("SELECT status FROM processing_jobs"),
        "processing"
    );
    assert_eq!(std::fs::read_dir(&a).unwrap().count(), 2);
    assert_eq!(stack.state("web", 1), "running");
}

#[test]
fn compose_up_and_down_use_the_compose_cli_with_file_and_project() {
    let stack = Stack::new();
    let p = stack.project.clone();
    // Dry run: names the command, removes nothing.
    let dry = stack
        .opsh()
        .args(["--dry-run", "--json", "-e", "compose::down()"])
        .run()
        .code(0)
        .json();
    assert_eq!(
        dry["command"],
        format!("docker-compose -f {} -p {p} down", stack.file().display())
    );
    assert_eq!(stack.state("web", 1), "running");
    // Volumes only with the phrase (no terminal here: refused without --yes).
    let refused = stack
        .opsh()
        .args(["-e", "compose::down(#{volumes: true})"])
        .run();
    refused.code(3);
    assert!(
        refused.stderr.contains("DELETE VOLUMES") || refused.stderr.contains("needs confirmation"),
        "{}",
        refused.stderr
    );
    assert_eq!(stack.state("web", 1), "running");

    let run = stack.opsh().args(["down"]).run();
    run.code(0);
    assert_eq!(
        run.stdout,
        format!(
            "Compose down\n✅ compose: docker-compose -f {} -p {p} down: 4 containers removed, volumes kept\nStatus: ✅ healthy\n",
            stack.file().display()
        )
    );
    assert_eq!(json_of(&stack, "docker::ps().len()"), json!(0));

    let run = stack.opsh().args(["up", "services=web"]).run();
    run.code(0);
    assert!(
        run.stdout
            .ends_with(&format!("✅ {p}_web_1: running\nStatus: ✅ healthy\n")),
        "{}",
        run.stdout
    );
    assert_eq!(json_of(&stack, "docker::services()"), json!({"web": 1}));
    let run = stack.opsh().args(["up"]).run();
    run.code(0);
    assert_eq!(
        json_of(&stack, "docker::services()"),
        json!({"stubborn": 1, "web": 1, "worker": 2})
    );
    // A missing compose file is a clear error.
    let run = Opsh::new()
        .env("COMPOSE_PROJECT_NAME", &p)
        .env("COMPOSE_FILE", "/nonexistent/docker-compose.yml")
        .args(["-e", "compose::up()"])
        .run();
    run.code(3);
    assert!(
        run.stderr.contains("compose file /nonexistent/docker-compose.yml not found (set compose.file in opsh.toml or COMPOSE_FILE)"),
        "{}",
        run.stderr
    );
}

#[test]
fn host_disk_memory_and_clean_temp() {
    let d = Opsh::new()
        .args(["--json", "-e", r#"host::disk(["/", "/tmp"])"#])
        .run()
        .code(0)
        .json();
    for x in d.as_array().unwrap() {
        let (total, used, avail) = (
            x["total"].as_i64().unwrap(),
            x["used"].as_i64().unwrap(),
            x["available"].as_i64().unwrap(),
        );
        assert!(total > 0 && used + avail == total, "{x}");
    }
    let m = Opsh::new()
        .args(["--json", "-e", "host::memory()"])
        .run()
        .code(0)
        .json();
    assert!(m["total"].as_i64().unwrap() > m["used"].as_i64().unwrap());
    let bad = Opsh::new()
        .args(["-e", r#"host::disk("/nonexistent/x")"#])
        .run();
    bad.code(3);
    assert!(
        bad.stderr
            .contains("/nonexistent/x: No such file or directory"),
        "{}",
        bad.stderr
    );

    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = temp_dirs(tmp.path());
    let code = format!(r#"host::clean_temp(#{{dirs: "{}"}})"#, a.display());
    let r = Opsh::new()
        .args(["--json", "--dry-run", "-e", &code])
        .run()
        .code(0)
        .json();
    assert_eq!(
        (&r["removed"], &r["bytes"], &r["dry_run"]),
        (&json!(2), &json!(1001), &json!(true))
    );
    assert_eq!(std::fs::read_dir(&a).unwrap().count(), 2);
    let r = Opsh::new()
        .args(["--json", "-e", &code])
        .run()
        .code(0)
        .json();
    assert_eq!((&r["removed"], &r["dry_run"]), (&json!(2), &json!(false)));
    assert_eq!(std::fs::read_dir(&a).unwrap().count(), 0);
}

#[test]
fn a_user_without_access_to_the_socket_is_told_so() {
    // Root reads any socket; the check needs an unprivileged user (nobody) to run as. Not root,
    // or no runuser: the test fails saying so (a skip that passes would hide the check).
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    assert!(
        is_root && Command::new("runuser").arg("--help").output().is_ok(),
        "this test runs opsh as the user nobody: run it as root (CI does) with runuser installed"
    );
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", support::BIN, "-e", "docker::ps()"])
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.starts_with(
            "opsh: error: docker::ps: docker at unix:///var/run/docker.sock (docker.host, the default; set it or DOCKER_HOST): permission denied on the Docker socket (run as root or a member of the docker group, or set DOCKER_HOST)\n"
        ),
        "{stderr}"
    );
}
