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

#[test]
fn peers_starts_a_cluster_and_announces_each_peer() {
    let mut child = Command::new(BIN)
        .args(["--peers", "3", "--grpc-port", "0", "--rest-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("It is not Qdrant."));
    let mut announced = Vec::new();
    for i in 1..=3 {
        let line = lines.next().unwrap().unwrap();
        let words: Vec<&str> = line.split(' ').collect();
        // peer <i>: id <id> gRPC <url> REST <url> p2p <uri> snapshots in <dir>
        assert_eq!(&words[..2], ["peer", &*format!("{i}:")], "{line}");
        assert_eq!(
            (words[2], words[4], words[6], words[8]),
            ("id", "gRPC", "REST", "p2p")
        );
        let id: u64 = words[3].parse().expect("a peer id");
        let rest: std::net::SocketAddr = words[7].strip_prefix("http://").unwrap().parse().unwrap();
        announced.push((id, rest, words[9].to_string()));
        assert_eq!(line.ends_with("(leader)"), i == 1, "{line}");
    }
    for (id, rest, _) in &announced {
        let status = common::http(*rest, "GET", "/cluster", &[], b"").json();
        assert_eq!(status["result"]["peer_id"], serde_json::json!(id));
        assert_eq!(
            status["result"]["raft_info"]["leader"],
            serde_json::json!(announced[0].0)
        );
        for (other, _, p2p) in &announced {
            assert_eq!(
                status["result"]["peers"][other.to_string()]["uri"],
                serde_json::json!(p2p)
            );
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn peers_on_overlapping_default_ports_is_a_one_line_error() {
    let out = Command::new(BIN).args(["--peers", "3"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "qdrant-double: with --peers 3 the REST ports 6333-6335 and the gRPC ports 6334-6336 overlap; give --grpc-port 6336 or more\n"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
