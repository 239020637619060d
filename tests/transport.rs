//! Connection errors in words: each backend, pointed at a closed port or at a name that does
//! not resolve, says what happened, naming the backend and its address (password masked);
//! -v adds the libraries' whole error chain.

#[path = "support/seed.rs"]
mod seed;
mod support;

use support::{Opsh, Run};

/// RFC 6761: names under .invalid never resolve.
const NOWHERE: &str = "nowhere.invalid";

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    free.local_addr().unwrap().port()
}

/// The error line opsh prints (the source excerpt follows it).
fn error_line(run: &Run) -> &str {
    assert_eq!(run.code, 3, "{}", run.stderr);
    run.stderr.lines().next().unwrap_or_default()
}

fn eval(env: (&str, &str), code: &str) -> Run {
    Opsh::new().env(env.0, env.1).args(["-e", code]).run()
}

#[test]
fn postgres_refused_and_unresolved_say_so() {
    let port = closed_port();
    let run = eval(
        (
            "DATABASE_URL",
            &format!("postgres://u:s3cret@127.0.0.1:{port}/db"),
        ),
        "db::ping()",
    );
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: db::ping: postgres at postgres://u:***@127.0.0.1:{port}/db (postgres.url, from DATABASE_URL): connection refused"
        )
    );
    let run = eval(
        (
            "DATABASE_URL",
            &format!("postgres://u:s3cret@{NOWHERE}:5432/db"),
        ),
        "db::ping()",
    );
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: db::ping: postgres at postgres://u:***@{NOWHERE}:5432/db (postgres.url, from DATABASE_URL): name not resolved"
        )
    );
}

#[test]
fn the_whole_chain_is_shown_at_verbose() {
    let port = closed_port();
    let run = Opsh::new()
        .env("QDRANT_URL", &format!("http://127.0.0.1:{port}"))
        .args(["-v", "-e", "qdrant::ping()"])
        .run();
    assert!(
        run.stderr.contains(&format!(
            "opsh: error: qdrant::ping: qdrant at http://127.0.0.1:{port} (qdrant.url, from QDRANT_URL): connection refused\n"
        )),
        "{}",
        run.stderr
    );
    // The libraries' own account, for whoever digs deeper.
    assert!(
        run.stderr.contains("tcp connect error") && run.stderr.contains("ConnectionRefused"),
        "{}",
        run.stderr
    );
    // Without -v, only the words.
    let run = eval(
        ("QDRANT_URL", &format!("http://127.0.0.1:{port}")),
        "qdrant::ping()",
    );
    assert!(!run.stderr.contains("tonic"), "{}", run.stderr);
}

#[test]
fn qdrant_grpc_refused_and_unresolved_say_so() {
    let port = closed_port();
    let run = eval(
        ("QDRANT_URL", &format!("http://127.0.0.1:{port}")),
        "qdrant::ping()",
    );
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: qdrant::ping: qdrant at http://127.0.0.1:{port} (qdrant.url, from QDRANT_URL): connection refused"
        )
    );
    let run = eval(
        ("QDRANT_URL", &format!("http://{NOWHERE}:6334")),
        "qdrant::ping()",
    );
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: qdrant::ping: qdrant at http://{NOWHERE}:6334 (qdrant.url, from QDRANT_URL): name not resolved"
        )
    );
}

#[test]
fn qdrant_rest_refused_and_unresolved_say_so() {
    let qdrant =
        qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).expect("double");
    let points =
        serde_json::json!({"collections": {"youtube_summaries": {"size": 4, "points": []}}});
    seed::seed(&qdrant.grpc_url(), &points);
    let code = "let s = qdrant::snapshot(\"youtube_summaries\"); \
                qdrant::download_snapshot(\"youtube_summaries\", s.name, \"s.snapshot\")";
    let port = closed_port();
    for (rest, words) in [
        (format!("http://127.0.0.1:{port}"), "connection refused"),
        (format!("http://{NOWHERE}:6333"), "name not resolved"),
    ] {
        let run = Opsh::new()
            .env("QDRANT_URL", &qdrant.grpc_url())
            .env("OPSH_QDRANT_REST_URL", &rest)
            .args(["-e", code])
            .run();
        assert_eq!(
            error_line(&run),
            format!(
                "opsh: error: qdrant::download_snapshot: qdrant at {} (qdrant.rest_url, from OPSH_QDRANT_REST_URL): REST {rest}: {words}",
                qdrant.grpc_url()
            )
        );
    }
}

#[test]
fn redis_refused_and_unresolved_say_so() {
    let port = closed_port();
    let run = eval(
        ("REDIS_URL", &format!("redis://:s3cret@127.0.0.1:{port}/0")),
        "cache::ping()",
    );
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: cache::ping: redis at redis://:***@127.0.0.1:{port}/0 (redis.url, from REDIS_URL): connection refused"
        )
    );
    let run = eval(
        ("REDIS_URL", &format!("redis://{NOWHERE}:6379/0")),
        "cache::ping()",
    );
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: cache::ping: redis at redis://{NOWHERE}:6379/0 (redis.url, from REDIS_URL): name not resolved"
        )
    );
}

#[test]
fn docker_refused_and_unresolved_say_so() {
    let port = closed_port();
    let run = eval(
        ("DOCKER_HOST", &format!("tcp://127.0.0.1:{port}")),
        "docker::ps()",
    );
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: docker::ps: docker at tcp://127.0.0.1:{port} (docker.host, from DOCKER_HOST): connection refused; is the Docker Engine running? (DOCKER_HOST names where opsh looks)"
        )
    );
    let run = eval(
        ("DOCKER_HOST", &format!("tcp://{NOWHERE}:2375")),
        "docker::ps()",
    );
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: docker::ps: docker at tcp://{NOWHERE}:2375 (docker.host, from DOCKER_HOST): name not resolved (check DOCKER_HOST)"
        )
    );
}

#[test]
fn health_urls_refused_and_unresolved_say_so() {
    let port = closed_port();
    let code = format!(
        "[host::http_check(\"http://127.0.0.1:{port}/health\").error, \
          host::http_check(\"http://{NOWHERE}/health\").error]"
    );
    let run = Opsh::new().args(["--json", "-e", &code]).run();
    run.code(0);
    assert_eq!(
        run.json(),
        serde_json::json!(["connection refused", "name not resolved"])
    );
}
