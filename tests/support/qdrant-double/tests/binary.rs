//! The `qdrant-double` process: it says plainly what it is, serves on the ports given, and
//! stops on SIGTERM.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_qdrant-double");

#[test]
fn help_says_it_is_a_test_double_and_not_qdrant() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let first = help.lines().next().unwrap();
    assert!(first.contains("test double of Qdrant"), "{first}");
    assert!(
        first.contains("NOT Qdrant") || first.contains("not Qdrant"),
        "{first}"
    );
    for option in [
        "--grpc-port",
        "--rest-port",
        "--api-key",
        "--server-version",
        "--snapshots-dir",
    ] {
        assert!(help.contains(option), "{option} in --help");
    }
}

#[test]
fn runs_on_the_given_ports_says_what_it_is_first_and_stops_on_sigterm() {
    let grpc = free_port();
    let rest = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--grpc-port",
            &grpc.to_string(),
            "--rest-port",
            &rest.to_string(),
        ])
        .args(["--server-version", "1.9.7", "--api-key", "k"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(
        first,
        "qdrant-double: a test double of Qdrant for opsh's tests and benchmarks. It is not Qdrant."
    );
    assert_eq!(
        lines.next().unwrap().unwrap(),
        format!("gRPC: http://127.0.0.1:{grpc}")
    );
    assert_eq!(
        lines.next().unwrap().unwrap(),
        format!("REST: http://127.0.0.1:{rest}")
    );

    let addr = format!("127.0.0.1:{rest}").parse().unwrap();
    let root = common::http(addr, "GET", "/", &[], b"");
    assert_eq!(root.json()["version"], "1.9.7");
    let refused = common::http(addr, "GET", "/collections/x/snapshots", &[], b"");
    assert_eq!(refused.status, 401, "--api-key is applied");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = qdrant_client::Qdrant::from_url(&format!("http://127.0.0.1:{grpc}"))
        .api_key("k")
        .skip_compatibility_check()
        .build()
        .unwrap();
    let health = runtime.block_on(client.health_check()).unwrap();
    assert_eq!(health.version, "1.9.7");
    drop(client);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
