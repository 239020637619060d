//! https health URLs: host::http_check and test-health against a local TLS server whose
//! certificate is signed by a test CA (tests/fixtures/tls: ca.pem, and server.pem/server.key
//! for localhost and 127.0.0.1; the CA's key was not kept). Untrusted, the check fails with
//! the certificate error and names health.ca_file; with the CA configured it passes.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use support::Opsh;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A TLS server on a free port answering every request with 200 and `ok`; handshakes the
/// client refuses end that connection only.
fn tls_server() -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 2048];
                if tls.read(&mut buf).is_err() {
                    return;
                }
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

fn check(opsh: Opsh, code: &str) -> serde_json::Value {
    opsh.args(["--json", "-e", code]).run().code(0).json()
}

#[test]
fn an_untrusted_certificate_is_reported_with_the_setting_that_trusts_it() {
    let port = tls_server();
    let url = format!("https://127.0.0.1:{port}/health");
    let h = check(Opsh::new(), &format!(r#"host::http_check("{url}")"#));
    assert_eq!(
        (&h["ok"], &h["status"]),
        (&json!(false), &json!(null)),
        "{h}"
    );
    let error = h["error"].as_str().unwrap();
    assert!(
        error
            .starts_with("TLS: certificate not trusted; trust the server's CA with health.ca_file"),
        "{error}"
    );
}

#[test]
fn the_configured_ca_file_makes_the_server_trusted() {
    let port = tls_server();
    let ca = fixture("ca.pem").display().to_string();
    // The setting, by the environment and by opsh.toml.
    for opsh in [
        Opsh::new().env("OPSH_HEALTH_CA_FILE", &ca),
        Opsh::new().file("opsh.toml", &format!("[health]\nca_file = \"{ca}\"\n")),
    ] {
        let h = check(
            opsh,
            &format!(r#"host::http_check("https://127.0.0.1:{port}/health")"#),
        );
        assert_eq!(
            (&h["ok"], &h["status"], &h["body"], &h["error"]),
            (&json!(true), &json!(200), &json!("ok"), &json!(null)),
            "{h}"
        );
    }
    // The option, and the server's DNS name.
    let h = check(
        Opsh::new(),
        &format!(r#"host::http_check("https://localhost:{port}/", #{{ca_file: "{ca}"}})"#),
    );
    assert_eq!(h["ok"], true, "{h}");
    // A CA file that holds no certificate is said so, not taken as "trust nothing more".
    let h = check(
        Opsh::new(),
        &format!(
            r#"host::http_check("https://127.0.0.1:{port}/", #{{ca_file: "{}"}})"#,
            fixture("server.key").display()
        ),
    );
    assert_eq!(h["ok"], false, "{h}");
    assert!(
        h["error"]
            .as_str()
            .unwrap()
            .ends_with("(health.ca_file) holds no PEM certificate"),
        "{h}"
    );
}

#[test]
fn test_health_checks_https_urls() {
    let port = tls_server();
    let url = format!("https://127.0.0.1:{port}/health");
    // A project with no containers: the containers part is a warning, the URL decides the rest.
    let opsh = || {
        Opsh::new()
            .env(
                "COMPOSE_PROJECT_NAME",
                &format!("opshtls{}", std::process::id()),
            )
            .args(["test-health".to_string(), format!("urls=tls={url}")])
    };
    let run = opsh()
        .env(
            "OPSH_HEALTH_CA_FILE",
            &fixture("ca.pem").display().to_string(),
        )
        .run();
    run.code(1);
    assert!(
        run.stdout.contains(&format!("✅ tls {url}: HTTP 200 in ")),
        "{}",
        run.stdout
    );
    let run = opsh().run();
    run.code(2);
    assert!(
        run.stdout.contains(&format!(
            "❌ tls {url}: TLS: certificate not trusted; trust the server's CA with health.ca_file"
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn a_docker_engine_behind_an_untrusted_certificate_says_so_in_words() {
    let port = tls_server();
    // A client that trusts another CA: the server's own certificate, which signed nothing.
    let opsh = Opsh::new();
    let certs = opsh.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(fixture("server.pem"), certs.join("ca.pem")).unwrap();
    std::fs::copy(fixture("server.pem"), certs.join("cert.pem")).unwrap();
    std::fs::copy(fixture("server.key"), certs.join("key.pem")).unwrap();
    let run = opsh
        .env("DOCKER_HOST", &format!("tcp://127.0.0.1:{port}"))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", certs.to_str().unwrap())
        .args(["-e", "docker::ps()"])
        .run();
    run.code(3);
    assert_eq!(
        run.stderr.lines().next().unwrap(),
        format!(
            "opsh: error: docker::ps: docker at tcp://127.0.0.1:{port} (docker.host, from DOCKER_HOST): TLS: certificate not trusted; the ca.pem in DOCKER_CERT_PATH must be the CA that signed the engine's certificate"
        )
    );
}
