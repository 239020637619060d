//! TLS to every backend against real servers: a PostgreSQL with ssl=on and a Redis with
//! --tls-port that this file starts itself (Debian's builds have TLS), and the Qdrant double
//! serving TLS on both ports. The certificates are made here with the openssl CLI: a CA, a
//! second CA that signed nothing of these servers, a localhost leaf (CA:FALSE) and a client
//! certificate. Every connection URL carries a password that no message may show.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Opsh;

const PASSWORD: &str = "s3cretTLSpw";

/// The certificates of one test, in a directory the postgres user can read.
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("opsh-tls-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=opsh test {ca}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        for (leaf, cn, ext) in [
            (
                "server",
                "localhost",
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
            ),
            (
                "client",
                "postgres",
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=clientAuth\n",
            ),
        ] {
            std::fs::write(d.join(format!("{leaf}.ext")), ext).unwrap();
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{leaf}.key"),
                    "-out",
                    &format!("{leaf}.csr"),
                    "-subj",
                    &format!("/CN={cn}"),
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{leaf}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{leaf}.pem"),
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{leaf}.ext"),
                ],
            );
        }
        std::fs::write(d.join("junk.pem"), "this is not a certificate\n").unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command as the PostgreSQL owner: the postgres user when root (initdb refuses root).
fn as_pg(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's PostgreSQL server")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
}

/// A PostgreSQL of this test's own with ssl=on and the test CA's localhost certificate; trust
/// authentication (the URL's password is sent only if asked for, and is never shown).
struct TlsPostgres {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl TlsPostgres {
    fn start(pki: &Pki) -> TlsPostgres {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("opsh-tls-pg-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let own = dir.path().join("pg");
        std::fs::create_dir(&own).unwrap();
        for f in ["server.pem", "server.key", "ca.pem"] {
            std::fs::copy(pki.dir.path().join(f), own.join(f)).unwrap();
        }
        std::fs::set_permissions(
            own.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&own)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let bin = pg_bin();
        let data = own.join("data");
        let out = as_pg(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--auth=trust",
                "--no-sync",
            ])
            .current_dir(&own)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut child = as_pg(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "ssl=on",
                "-c",
                "fsync=off",
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", own.display()))
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                own.join("server.pem").display()
            ))
            .arg("-c")
            .arg(format!("ssl_key_file={}", own.join("server.key").display()))
            .current_dir(&own)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "postgres");
        TlsPostgres { dir, child, port }
    }

    /// postgres.url with `query` (e.g. `sslmode=verify-full&sslrootcert=…`).
    fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@localhost:{}/postgres{}{query}",
            self.port,
            if query.is_empty() { "" } else { "?" }
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = as_pg(&pg_bin().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("pg/data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `code` with postgres.url set to `url` and the extra environment; returns the run.
fn opsh_pg(url: &str, env: &[(&str, &str)], code: &str) -> support::Run {
    // db::query's read-only role may not see other sessions' pg_stat_ssl rows without this.
    let mut opsh = Opsh::new()
        .env("DATABASE_URL", url)
        .env("OPSH_POSTGRES_QUERY_ROLE", "pg_read_all_stats");
    for (k, v) in env {
        opsh = opsh.env(k, v);
    }
    opsh.args(["--json", "-e", code]).run()
}

/// Whether any connection to the server is encrypted (opsh's are its only ones).
const SSL_IN_USE: &str =
    r#"db::query("SELECT count(*) FILTER (WHERE ssl) AS n FROM pg_stat_ssl")[0].n > 0"#;

/// The error line of a run (the lines after it point at the call in the script).
fn error_line(run: &support::Run) -> String {
    assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    run.stderr.lines().next().unwrap_or_default().to_string()
}

#[test]
fn postgres_verify_full_connects_over_tls_from_the_url_or_the_environment() {
    let pki = Pki::new();
    let pg = TlsPostgres::start(&pki);
    let ca = pki.path("ca.pem");
    let run = opsh_pg(
        &pg.url(&format!("sslmode=verify-full&sslrootcert={ca}")),
        &[],
        SSL_IN_USE,
    );
    run.code(0);
    assert_eq!(run.stdout.trim(), "true", "{}", run.stderr);
    // libpq's environment variables, as psql reads them.
    let run = opsh_pg(
        &pg.url(""),
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca)],
        SSL_IN_USE,
    );
    run.code(0);
    assert_eq!(run.stdout.trim(), "true", "{}", run.stderr);
    // sslmode=disable stays plaintext.
    let run = opsh_pg(&pg.url("sslmode=disable"), &[], SSL_IN_USE);
    run.code(0);
    assert_eq!(run.stdout.trim(), "false", "{}", run.stderr);
}

#[test]
fn postgres_require_encrypts_but_checks_no_certificate_as_the_readme_warns() {
    let pki = Pki::new();
    let pg = TlsPostgres::start(&pki);
    // The other CA signed nothing of this server: require does not look.
    let other = pki.path("other-ca.pem");
    let run = opsh_pg(
        &pg.url(&format!("sslmode=require&sslrootcert={other}")),
        &[],
        SSL_IN_USE,
    );
    run.code(0);
    assert_eq!(run.stdout.trim(), "true", "{}", run.stderr);
}

#[test]
fn postgres_refuses_a_server_the_configured_ca_did_not_sign_and_names_sslrootcert() {
    let pki = Pki::new();
    let pg = TlsPostgres::start(&pki);
    let other = pki.path("other-ca.pem");
    let url = pg.url(&format!("sslmode=verify-full&sslrootcert={other}"));
    let run = opsh_pg(&url, &[], "db::ping()");
    run.code(3);
    let shown = url.replace(PASSWORD, "***");
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: db::ping: postgres at {shown} (postgres.url, from DATABASE_URL): TLS: certificate not trusted; the server's \
             certificate is not signed by a CA of sslrootcert {other} (sslrootcert in postgres.url)"
        )
    );
    // From the environment, it says so.
    let run = opsh_pg(
        &pg.url("sslmode=verify-ca"),
        &[("PGSSLROOTCERT", &other)],
        "db::ping()",
    );
    run.code(3);
    assert!(
        error_line(&run).ends_with(&format!("sslrootcert {other} (PGSSLROOTCERT)")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(PASSWORD));
}

#[test]
fn postgres_certificate_files_that_cannot_be_used_are_config_errors_naming_the_setting() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem");
    let junk = pki.path("junk.pem");
    // No server is needed: the files are read before any connection.
    let url = |query: &str| {
        format!("postgres://youtube_user:{PASSWORD}@127.0.0.1:1/youtube_agent?{query}")
    };
    for (query, env, cause) in [
        (
            format!("sslmode=verify-full&sslrootcert={missing}"),
            vec![],
            format!(
                "cannot read the CA file {missing} (sslrootcert in postgres.url): No such file or directory"
            ),
        ),
        (
            "sslmode=verify-full".to_string(),
            vec![("PGSSLROOTCERT", junk.as_str())],
            format!("the CA file {junk} (PGSSLROOTCERT) holds no PEM certificate"),
        ),
        (
            format!(
                "sslmode=require&sslcert={}&sslkey={junk}",
                pki.path("client.pem")
            ),
            vec![],
            format!("the key file {junk} (sslkey in postgres.url) holds no PEM private key"),
        ),
    ] {
        let u = url(&query);
        let run = opsh_pg(&u, &env, "db::ping()");
        run.code(3);
        assert_eq!(
            error_line(&run),
            format!(
                "opsh: error: db::ping: postgres at {} (postgres.url, from DATABASE_URL): {cause}",
                u.replace(PASSWORD, "***")
            )
        );
    }
}

#[test]
fn psql_started_by_db_shell_gets_the_same_tls_settings() {
    let pki = Pki::new();
    let pg = TlsPostgres::start(&pki);
    let ca = pki.path("ca.pem");
    let run = Opsh::new()
        .env(
            "DATABASE_URL",
            &pg.url(&format!("sslmode=verify-full&sslrootcert={ca}")),
        )
        .stdin("SELECT 'ssl=' || ssl FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name = 'psql';\n")
        .args(["db-shell"])
        .run();
    run.code(0);
    assert!(
        run.stdout.contains("ssl=true"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    // With the other CA, libpq refuses the server as opsh does.
    let run = Opsh::new()
        .env(
            "DATABASE_URL",
            &pg.url(&format!(
                "sslmode=verify-full&sslrootcert={}",
                pki.path("other-ca.pem")
            )),
        )
        .stdin("SELECT 1;\n")
        .args(["db-shell"])
        .run();
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("certificate verify failed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(PASSWORD));
}

#[test]
fn pg_dump_started_by_db_backup_gets_the_same_tls_settings() {
    let pki = Pki::new();
    let pg = TlsPostgres::start(&pki);
    let ca = pki.path("ca.pem");
    // libpq alone would look for ~/.postgresql/root.crt (HOME is the run's temp dir) and
    // refuse verify-full: the dump works only if pg_dump gets sslrootcert too.
    let run = Opsh::new()
        .env(
            "DATABASE_URL",
            &pg.url(&format!("sslmode=verify-full&sslrootcert={ca}")),
        )
        .env("OPSH_BACKUP_PG_TOOLS", "host")
        .args(["--json", "db-backup", "dir=dumps"])
        .run();
    run.code(0);
    let report = run.report();
    let file = report["data"]["file"].as_str().unwrap().to_string();
    assert!(file.contains("dumps/"), "{report}");
}

/// A Redis serving TLS only (--port 0), with a password; `clients` asks for client
/// certificates.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl TlsRedis {
    fn start(pki: &Pki, clients: bool) -> TlsRedis {
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &pki.path("server.pem")])
            .args(["--tls-key-file", &pki.path("server.key")])
            .args(["--tls-ca-cert-file", &pki.path("ca.pem")])
            .args(["--tls-auth-clients", if clients { "yes" } else { "no" }])
            .args(["--requirepass", PASSWORD])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "redis-server");
        TlsRedis { child, port }
    }

    fn url(&self) -> String {
        format!("rediss://:{PASSWORD}@localhost:{}/3", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn opsh_redis(url: &str, env: &[(&str, &str)], code: &str) -> support::Run {
    let mut opsh = Opsh::new().env("REDIS_URL", url);
    for (k, v) in env {
        opsh = opsh.env(k, v);
    }
    opsh.args(["--json", "-e", code]).run()
}

#[test]
fn redis_over_rediss_trusts_the_configured_ca_and_shows_a_client_certificate() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki, false);
    let ca = pki.path("ca.pem");
    let run = opsh_redis(
        &redis.url(),
        &[("OPSH_REDIS_CA_FILE", &ca)],
        "cache::ping().db",
    );
    run.code(0);
    assert_eq!(run.stdout.trim(), "3", "{}", run.stderr);
    // Untrusted: one line, the setting that fixes it, no password.
    let run = opsh_redis(&redis.url(), &[], "cache::ping()");
    run.code(3);
    let shown = redis.url().replace(PASSWORD, "***");
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: cache::ping: redis at {shown} (redis.url, from REDIS_URL): TLS: certificate not trusted; trust its CA \
             with redis.ca_file (a PEM file)"
        )
    );

    let mtls = TlsRedis::start(&pki, true);
    let with_cert = [
        ("OPSH_REDIS_CA_FILE", ca.as_str()),
        ("OPSH_REDIS_CERT_FILE", &pki.path("client.pem")),
        ("OPSH_REDIS_KEY_FILE", &pki.path("client.key")),
    ];
    let run = opsh_redis(&mtls.url(), &with_cert, "cache::ping().db");
    run.code(0);
    assert_eq!(run.stdout.trim(), "3", "{}", run.stderr);
    let run = opsh_redis(&mtls.url(), &with_cert[..1], "cache::ping()");
    run.code(3);
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: cache::ping: redis at {} (redis.url, from REDIS_URL): TLS: the server wants a client certificate; show \
             one with redis.cert_file and redis.key_file",
            mtls.url().replace(PASSWORD, "***")
        )
    );
}

#[test]
fn redis_certificate_files_that_cannot_be_used_are_config_errors_naming_the_setting() {
    let pki = Pki::new();
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:1/0");
    let shown = url.replace(PASSWORD, "***");
    let missing = pki.path("missing.pem");
    let junk = pki.path("junk.pem");
    for (env, cause) in [
        (
            vec![("OPSH_REDIS_CA_FILE", missing.as_str())],
            format!("cannot read the CA file {missing} (redis.ca_file): No such file or directory"),
        ),
        (
            vec![("OPSH_REDIS_CA_FILE", junk.as_str())],
            format!("the CA file {junk} (redis.ca_file) holds no PEM certificate"),
        ),
        (
            vec![("OPSH_REDIS_CERT_FILE", junk.as_str())],
            "redis.cert_file is set without redis.key_file".to_string(),
        ),
    ] {
        let run = opsh_redis(&url, &env, "cache::ping()");
        run.code(3);
        assert_eq!(
            error_line(&run),
            format!(
                "opsh: error: cache::ping: redis at {shown} (redis.url, from REDIS_URL): {cause}"
            )
        );
    }
}

#[test]
fn qdrant_over_https_uses_the_configured_ca_for_grpc_the_id_scroll_and_rest() {
    let pki = Pki::new();
    let qdrant = qdrant_double::QdrantDouble::start(
        qdrant_double::Options::default()
            .api_key(PASSWORD)
            .tls(pki.path("server.pem"), pki.path("server.key")),
    )
    .unwrap();
    let grpc = format!("https://localhost:{}", qdrant.grpc_addr().port());
    let rest = format!("https://localhost:{}", qdrant.rest_addr().port());
    assert!(qdrant.grpc_url().starts_with("https://"));
    let opsh = || {
        Opsh::new()
            .env("QDRANT_URL", &grpc)
            .env("OPSH_QDRANT_REST_URL", &rest)
            .env("QDRANT_API_KEY", PASSWORD)
    };
    let code = r#"
        qdrant::recreate("youtube_content");
        let s = qdrant::snapshot("youtube_content");
        let d = qdrant::download_snapshot("youtube_content", s.name, "s.snapshot");
        [qdrant::collections().map(|c| c.name), qdrant::ids("youtube_content"), d.verified]
    "#;
    let run = opsh()
        .env("OPSH_QDRANT_CA_FILE", &pki.path("ca.pem"))
        .args(["--json", "--yes", "-e", code])
        .run();
    run.code(0);
    assert_eq!(
        run.json(),
        serde_json::json!([["youtube_content"], [], true]),
        "{}",
        run.stderr
    );
    // Without the CA: one line naming the setting, no API key.
    let run = opsh().args(["--json", "-e", "qdrant::ping()"]).run();
    run.code(3);
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: qdrant::ping: qdrant at {grpc} (qdrant.url, from QDRANT_URL): TLS: certificate not trusted; trust its CA \
             with qdrant.ca_file (a PEM file)"
        )
    );
    let run = opsh()
        .env("OPSH_QDRANT_CA_FILE", &pki.path("junk.pem"))
        .args(["--json", "-e", "qdrant::ping()"])
        .run();
    run.code(3);
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: qdrant::ping: qdrant at {grpc} (qdrant.url, from QDRANT_URL): the CA file {} (qdrant.ca_file) holds no PEM certificate",
            pki.path("junk.pem")
        )
    );
}

/// A URL as opsh shows it: the password masked.
fn shown(url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(p) => url.replacen(&format!(":{p}@"), ":***@", 1),
        None => url.to_string(),
    }
}

#[test]
fn tls_required_of_a_postgres_without_it_is_one_line_saying_so() {
    // tools/with-services' server is plain. (A rediss:// URL on Redis's plain port gets no
    // answer: Redis waits for the end of a command line the TLS hello never sends.)
    let pg = std::env::var("DATABASE_URL").expect("DATABASE_URL (tools/with-services)");
    let url = format!("{pg}?sslmode=require");
    let run = opsh_pg(&url, &[], "db::ping()");
    run.code(3);
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: db::ping: postgres at {} (postgres.url, from DATABASE_URL): TLS: the server does not offer TLS",
            shown(&url)
        )
    );
}

#[test]
fn https_to_qdrants_plain_port_is_one_line_saying_so() {
    let qdrant = qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).unwrap();
    let grpc = format!("https://127.0.0.1:{}", qdrant.grpc_addr().port());
    let run = Opsh::new()
        .env("QDRANT_URL", &grpc)
        .args(["--json", "-e", "qdrant::ping()"])
        .run();
    run.code(3);
    assert_eq!(
        error_line(&run),
        format!(
            "opsh: error: qdrant::ping: qdrant at {grpc} (qdrant.url, from QDRANT_URL): TLS: the server did not answer in TLS (is \
             this its TLS port?)"
        )
    );
}
