//! The model servers as they answer (models::health, test-health) and the host's GPUs
//! (host::gpu, stats, test-health): health bodies served by a small HTTP server in the test,
//! youtube_content's vector size from the Qdrant double, nvidia-smi faked by a script on PATH.

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};
use support::Opsh;

/// An HTTP server on a free port answering every request with `status` and `body`.
fn serve(status: &'static str, body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/health")
}

/// A Qdrant double whose youtube_content has vectors of `size`.
fn qdrant(size: u64) -> qdrant_double::Running {
    let running = qdrant_double::QdrantDouble::start(qdrant_double::Options::default())
        .expect("start the Qdrant double");
    let points = json!({"collections": {"youtube_content": {"size": size, "distance": "Cosine", "points": []}}});
    seed::seed(&running.grpc_url(), &points);
    running
}

/// A directory holding an executable `nvidia-smi` with this shell body, to put first on PATH.
fn fake_nvidia_smi(dir: &Path, body: &str) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join("nvidia-smi");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn health(opsh: Opsh, name: &str, url: &str) -> Value {
    let run = opsh
        .args([
            "--json",
            "-e",
            &format!("let m = models::health({name:?}, {url:?}); [m.status, m.detail]"),
        ])
        .run();
    run.code(0);
    run.json()
}

#[test]
fn whisper_on_cuda_is_ok_on_cpu_a_warning_that_jobs_go_to_the_paid_api() {
    let cuda = serve(
        "200 OK",
        r#"{"status":"healthy","model":"large-v3","device":"cuda"}"#,
    );
    assert_eq!(
        health(Opsh::new(), "whisper-server", &cuda),
        json!(["ok", "model large-v3 on cuda, healthy"])
    );
    let cpu = serve(
        "200 OK",
        r#"{"status":"healthy","model":"large-v3","device":"cpu"}"#,
    );
    assert_eq!(
        health(Opsh::new(), "whisper-server", &cpu),
        json!([
            "warning",
            "model large-v3 on cpu: the STT workers use whisper-server only on cuda or gpu, so every job goes to the paid OpenAI API"
        ])
    );
    let down = serve(
        "503 Service Unavailable",
        r#"{"detail":"Model not loaded"}"#,
    );
    assert_eq!(
        health(Opsh::new(), "whisper-server", &down),
        json!(["critical", "HTTP 503: Model not loaded"])
    );
    let html = serve(
        "200 OK",
        "<html><body>It works! This is the default page of a web server that is not whisper</body></html>",
    );
    assert_eq!(
        health(Opsh::new(), "whisper-server", &html),
        json!([
            "warning",
            "HTTP 200, a body that is not JSON: \"<html><body>It works! This is the default page of a web serv…\""
        ])
    );
}

#[test]
fn an_embedding_dimension_other_than_the_collections_vector_size_is_critical() {
    let q = qdrant(1024);
    let with_qdrant = || {
        Opsh::new()
            .env("QDRANT_URL", &q.grpc_url())
            .env("OPSH_QDRANT_REST_URL", &q.rest_url())
    };
    let same = serve(
        "200 OK",
        r#"{"status":"healthy","model":"BAAI/bge-m3","type":"sentence-transformers","dimension":1024,"device":"cuda"}"#,
    );
    assert_eq!(
        health(with_qdrant(), "embedding-server", &same),
        json!([
            "ok",
            "model BAAI/bge-m3 (sentence-transformers) on cuda, dimension 1024 = youtube_content's vector size 1024"
        ])
    );
    let other = serve(
        "200 OK",
        r#"{"status":"healthy","model":"text-embedding-3-small","type":"openai","dimension":1536,"device":"api"}"#,
    );
    assert_eq!(
        health(with_qdrant(), "embedding-server", &other),
        json!([
            "critical",
            "model text-embedding-3-small (openai) embeds to dimension 1536, but youtube_content's vector size 1024: no vector can be written"
        ])
    );
    // Without Qdrant the setting qdrant.vector_size stands in, and the detail says so.
    let run = Opsh::new()
        .env("QDRANT_URL", "http://127.0.0.1:1")
        .env("OPSH_QDRANT_VECTOR_SIZE", "1536")
        .args([
            "--json",
            "-e",
            &format!(r#"let m = models::health("embedding-server", {other:?}); [m.status, m.dimension, m.expected_dimension]"#),
        ])
        .run();
    run.code(0);
    assert_eq!(run.json(), json!(["ok", 1536, 1536]));
}

#[test]
fn gpu_reads_nvidia_smi_and_says_no_driver_without_it() {
    let opsh = Opsh::new();
    let path = fake_nvidia_smi(
        opsh.path(),
        r#"case "$*" in
  *--query-gpu=index,name,memory.used,memory.total,utilization.gpu,temperature.gpu*--format=csv,noheader,nounits*)
    echo "0, NVIDIA GeForce RTX 3090, 10240, 24576, 37, 61"
    echo "1, Tesla T4, [N/A], 15360, [N/A], 40";;
  *) echo "unexpected arguments: $*" >&2; exit 9;;
esac"#,
    );
    let run = opsh
        .env("PATH", &path)
        .args(["--json", "-e", "host::gpu()"])
        .run();
    run.code(0);
    assert_eq!(
        run.json(),
        json!({"available": true, "detail": "2 GPUs", "gpus": [
            {"index": 0, "name": "NVIDIA GeForce RTX 3090", "memory_used_mib": 10240, "memory_total_mib": 24576, "utilization_percent": 37, "temperature_c": 61},
            {"index": 1, "name": "Tesla T4", "memory_used_mib": null, "memory_total_mib": 15360, "utilization_percent": null, "temperature_c": 40}
        ]})
    );
    // Installed but no driver loaded: nvidia-smi's own words.
    let opsh = Opsh::new();
    let path = fake_nvidia_smi(
        opsh.path(),
        "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\"; exit 9",
    );
    let run = opsh
        .env("PATH", &path)
        .args(["--json", "-e", "host::gpu()"])
        .run();
    run.code(0);
    assert_eq!(
        run.json(),
        json!({"available": false, "detail": "no NVIDIA driver (nvidia-smi: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.)", "gpus": []})
    );
    // Not installed at all.
    let run = Opsh::new()
        .env("PATH", "/nonexistent")
        .args(["--json", "-e", "host::gpu().detail"])
        .run();
    run.code(0);
    assert_eq!(
        run.json(),
        json!("no NVIDIA driver (nvidia-smi is not installed)")
    );
}

#[test]
fn test_health_reads_the_model_servers_bodies_and_shows_the_gpus() {
    let q = qdrant(1024);
    let whisper = serve(
        "200 OK",
        r#"{"status":"healthy","model":"large-v3","device":"cpu"}"#,
    );
    let embedding = serve(
        "200 OK",
        r#"{"status":"healthy","model":"bge-m3","type":"st","dimension":768,"device":"cpu"}"#,
    );
    let agent = serve("200 OK", "not json, and nobody minds");
    let opsh = Opsh::new();
    let path = fake_nvidia_smi(opsh.path(), "echo '0, Tesla T4, 512, 15360, 3, 35'");
    let run = opsh
        .env("PATH", &path)
        .env("QDRANT_URL", &q.grpc_url())
        .env(
            "COMPOSE_PROJECT_NAME",
            &format!("opshmodels{}", std::process::id()),
        )
        .args([
            "test-health".to_string(),
            format!(
                "urls=whisper-server={whisper},embedding-server={embedding},agent-service={agent}"
            ),
        ])
        .run();
    run.code(2);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[2..5],
        [
            format!(
                "⚠️ whisper-server {whisper}: model large-v3 on cpu: the STT workers use whisper-server only on cuda or gpu, so every job goes to the paid OpenAI API"
            ),
            format!(
                "❌ embedding-server {embedding}: model bge-m3 (st) embeds to dimension 768, but youtube_content's vector size 1024: no vector can be written"
            ),
            lines[4].to_string(),
        ],
        "{}",
        run.stdout
    );
    assert!(
        lines[4].starts_with(&format!("✅ agent-service {agent}: HTTP 200 in ")),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines[5],
        "✅ gpu 0: Tesla T4: 512 of 15360 MiB, 3% busy, 35°C"
    );
}

#[test]
fn stats_shows_the_gpus_or_that_there_is_no_driver() {
    let project = format!("opshmodelstats{}", std::process::id());
    let run = Opsh::new()
        .env("PATH", "/nonexistent")
        .env("COMPOSE_PROJECT_NAME", &project)
        .args(["stats"])
        .run();
    assert!(
        run.stdout
            .contains("\n✅ gpu: no NVIDIA driver (nvidia-smi is not installed)\n"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    let opsh = Opsh::new();
    let path = fake_nvidia_smi(opsh.path(), "echo '0, Tesla T4, 512, 15360, 3, 35'");
    let run = opsh
        .env("PATH", &path)
        .env("COMPOSE_PROJECT_NAME", &project)
        .args(["--json", "stats"])
        .run();
    assert_eq!(
        run.report()["data"]["gpus"],
        json!([{"index": 0, "name": "Tesla T4", "memory_used_mib": 512, "memory_total_mib": 15360, "utilization_percent": 3, "temperature_c": 35}])
    );
}
