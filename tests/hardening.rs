//! Issue 6, items 3–11, each reproduction as a test: secrets, logs, site-script trust,
//! db::query's side effects, a closed stdout, bad bytes, the --json contract, configuration
//! validation, error texts.

mod support;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use pretty_assertions::assert_eq;
use support::{Opsh, Run, TestDb, seed_jobs};

/// How the error frame of `db::ping()` at `<-e>:1:5` ends.
const PING_FRAME: &str = "  --> <-e>:1:5\n   |\n 1 | db::ping()\n   |     ^\n";

fn run(mut cmd: Command) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Run::from(cmd.output().expect("run opsh"))
}

/// A URL as opsh shows it: the password masked (checked here by hand, not with opsh's own
/// redaction).
fn shown_address(url: &str) -> String {
    let mut url = url::Url::parse(url).expect("a URL");
    if url.password().is_some() {
        url.set_password(Some("***")).unwrap();
    }
    url.to_string()
}

fn config_value(json: &serde_json::Value, key: &str) -> String {
    json.as_array()
        .expect("config --json is an array")
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {json}"))["value"]
        .as_str()
        .unwrap()
        .to_string()
}

// --- 3. Secrets --------------------------------------------------------------------------

#[test]
fn a_url_that_does_not_parse_is_shown_only_by_its_length() {
    let cases = [
        (
            "postgres://postgres:S3cret@127.0.0.1:99999/db",
            "<unparseable, 45 chars>",
            "invalid port number",
        ),
        (
            "postgres://postgres:S3cret@/db",
            "<unparseable, 30 chars>",
            "empty host",
        ),
        (
            "[::1:5432",
            "<unparseable, 9 chars>",
            "relative URL without a base",
        ),
        (
            "S3cret is no URL",
            "<unparseable, 16 chars>",
            "relative URL without a base",
        ),
    ];
    for (url, shown, cause) in cases {
        let json = Opsh::new()
            .env("DATABASE_URL", url)
            .args(["--json", "config"])
            .run();
        json.code(0);
        assert_eq!(config_value(&json.json(), "postgres.url"), shown, "{url}");
        let text = Opsh::new().env("DATABASE_URL", url).args(["config"]).run();
        assert!(
            text.stdout.contains(&format!(
                "postgres.url                      = \"{shown}\"  # env DATABASE_URL\n"
            )),
            "{url}: {}",
            text.stdout
        );
        Opsh::new()
            .env("DATABASE_URL", url)
            .args(["-e", "db::ping()"])
            .run()
            .expect(
                3,
                "",
                &format!(
                    "error: db::ping: postgres at {shown}: error with configuration: {cause}\n{PING_FRAME}"
                ),
            );
    }
}

#[test]
fn passwords_secret_parameters_and_api_keys_are_masked() {
    let cases = [
        (
            "DATABASE_URL",
            "postgres://u@db:5432/x?password=S3cret&sslmode=disable",
            "postgres.url",
            "postgres://u@db:5432/x?password=***&sslmode=disable",
        ),
        (
            "REDIS_URL",
            "redis://:S3cret@cache:6379/0",
            "redis.url",
            "redis://:***@cache:6379/0",
        ),
        (
            "QDRANT_URL",
            "http://q:6334/?api_key=S3cret",
            "qdrant.url",
            "http://q:6334/?api_key=***",
        ),
        ("QDRANT_API_KEY", "S3cret", "qdrant.api_key", "***"),
        (
            "OPSH_COMPOSE_FILE",
            "compose.yml token=S3cret",
            "compose.file",
            "compose.yml token=***",
        ),
    ];
    for (var, value, key, shown) in cases {
        let run = Opsh::new().env(var, value).args(["--json", "config"]).run();
        run.code(0);
        assert_eq!(config_value(&run.json(), key), shown, "{var}={value}");
        assert!(!run.stdout.contains("S3cret"), "{}", run.stdout);
    }
}

#[test]
fn a_malformed_dotenv_line_is_named_by_file_and_line_without_its_value() {
    let cases = [
        (
            "DATABASE_URL=postgres://u:S3cret@h/db\nPASSWORD S3cret oops\n",
            2,
            9,
        ),
        ("A=1\n\nB=\"unterminated S3cret\n", 3, 23),
    ];
    for (dotenv, line, character) in cases {
        let opsh = Opsh::new().file(".env", dotenv).args(["config"]);
        let file = opsh.path().join(".env");
        opsh.run().expect(
            3,
            "",
            &format!(
                "opsh: error: {}:{line}: cannot parse this line (at character {character}); expected KEY=value (the line is not shown: it may hold a secret)\n",
                file.display()
            ),
        );
    }
}
