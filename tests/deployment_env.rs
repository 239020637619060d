//! The deployment's own .env, read as it is written: `DATABASE_URL=postgresql://…`,
//! `REDIS_URL` without a db number, and `QDRANT_URL` on Qdrant's REST port 6333 (its Python
//! services speak REST), from which opsh takes gRPC on 6334 of the same host. Qdrant's fixed
//! ports are served by the double on an address of its own in 127/8, so two runs (or another
//! test on 6333) never meet.

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};
use support::{Opsh, TestDb};

/// The double on 6333 (REST) and 6334 (gRPC) of a loopback address nobody else uses.
fn qdrant_on_standard_ports() -> (qdrant_double::Running, String) {
    let mut last = None;
    for attempt in 0..50u32 {
        let seed = std::process::id()
            .wrapping_mul(2654435761)
            .wrapping_add(attempt * 7919);
        let ip = Ipv4Addr::new(
            127,
            1 + (seed % 250) as u8,
            (seed >> 8) as u8,
            2 + (seed >> 16) as u8 % 250,
        );
        let options = qdrant_double::Options {
            host: IpAddr::V4(ip),
            grpc_port: 6334,
            rest_port: 6333,
            ..Default::default()
        };
        match qdrant_double::QdrantDouble::start(options) {
            Ok(running) => return (running, ip.to_string()),
            Err(e) => last = Some(e),
        }
    }
    panic!("no loopback address with 6333 and 6334 free: {last:?}");
}

/// The deployment's collections, empty, at their real size.
fn collections(grpc: &str) {
    seed::seed(
        grpc,
        &json!({"collections": {
            "youtube_content": {"size": 1024, "distance": "Cosine", "points": []},
            "youtube_summaries": {"size": 1024, "distance": "Cosine", "points": []},
        }}),
    );
}

/// The deployment's DATABASE_URL for the test database: the `postgresql://` scheme.
fn postgresql_url(db: &TestDb) -> String {
    db.url.replacen("postgres://", "postgresql://", 1)
}

/// The test server's Redis as the deployment writes it: no db number (db 0).
fn redis_without_db() -> String {
    let mut url = url::Url::parse(&seed::redis_url()).unwrap();
    url.set_path("");
    url.to_string().trim_end_matches('/').to_string()
}

/// An opsh in a directory holding the deployment's .env (0600, as a file with passwords is).
fn with_env_file(lines: &str) -> Opsh {
    let opsh = Opsh::new().file(".env", lines);
    let env = opsh.path().join(".env");
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    opsh
}

fn setting<'a>(config: &'a Value, key: &str) -> (&'a str, &'a str) {
    let s = config["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {config}"));
    (s["value"].as_str().unwrap(), s["source"].as_str().unwrap())
}

#[test]
fn the_deployments_env_as_written_reaches_every_store() {
    let db = TestDb::deployment();
    let (qdrant, ip) = qdrant_on_standard_ports();
    collections(&qdrant.grpc_url());
    let database_url = postgresql_url(&db);
    let redis = redis_without_db();
    assert!(!redis.ends_with("/0"), "{redis}");
    let env_file = format!(
        "# the deployment's .env\nPOSTGRES_PASSWORD=youtube_pass\nDATABASE_URL={database_url}\nREDIS_URL={redis}\nQDRANT_URL=http://{ip}:6333\nOPENAI_API_KEY=sk-not-read-by-opsh\n"
    );
    let opsh = |args: &[&str]| with_env_file(&env_file).args(args).run();

    let config = opsh(&["--json", "config"]);
    config.code(0);
    let config = config.json();
    let (_, url_source) = setting(&config, "qdrant.url");
    assert!(url_source.ends_with("/.env"), "{url_source}");
    assert_eq!(
        setting(&config, "qdrant.grpc_url"),
        (
            format!("http://{ip}:6334").as_str(),
            format!("qdrant.url ({url_source}) is the REST port 6333: gRPC on the same host, 6334")
                .as_str()
        )
    );
    assert_eq!(
        setting(&config, "qdrant.rest_url"),
        (
            format!("http://{ip}:6333").as_str(),
            format!("qdrant.url ({url_source})").as_str()
        )
    );
    assert_eq!(
        setting(&config, "postgres.url").0,
        database_url.replace(":youtube_pass@", ":***@")
    );

    // Every store answers at the address the .env names; REST (a snapshot download) too.
    let run = opsh(&[
        "--json",
        "-e",
        r#"let s = qdrant::snapshot("youtube_summaries");
           let d = qdrant::download_snapshot("youtube_summaries", s.name, "s.snapshot");
           #{db: db::ping().address, redis_db: cache::ping().db, qdrant: qdrant::ping().address, rest: d.verified}"#,
    ]);
    run.code(0);
    assert_eq!(
        run.json(),
        json!({
            "db": database_url.replace(":youtube_pass@", ":***@"),
            "redis_db": 0,
            "qdrant": format!("http://{ip}:6334"),
            "rest": true,
        })
    );

    // The guide's check runs on it as it is.
    let check = opsh(&["--json", "check-data"]);
    check.code(0);
    let report = check.report();
    assert_eq!(report["status"], "ok", "{}", check.stdout);
    let detail = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["detail"].as_str().unwrap().to_string())
    };
    assert_eq!(
        (detail("postgres"), detail("qdrant")),
        (
            Some(format!(
                "{}: connected",
                database_url.replace(":youtube_pass@", ":***@")
            )),
            Some(format!("http://{ip}:6334: version 1.20.0"))
        )
    );
}

#[test]
fn a_grpc_qdrant_url_finds_rest_on_its_own_host() {
    let (qdrant, ip) = qdrant_on_standard_ports();
    collections(&qdrant.grpc_url());
    let env_file = format!("QDRANT_URL=http://{ip}:6334\n");
    let run = with_env_file(&env_file)
        .args([
            "--json",
            "-e",
            r#"let s = qdrant::snapshot("youtube_content");
               qdrant::download_snapshot("youtube_content", s.name, "c.snapshot").verified"#,
        ])
        .run();
    run.code(0);
    assert_eq!(run.json(), json!(true));
    let config = with_env_file(&env_file)
        .args(["--json", "config"])
        .run()
        .json();
    assert_eq!(
        setting(&config, "qdrant.rest_url"),
        (
            format!("http://{ip}:6333").as_str(),
            "the gRPC address's host on 6333"
        )
    );
}
