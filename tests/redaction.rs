//! One redaction for everything opsh prints or writes: a corpus of lines that hold secrets (URL
//! passwords whatever they contain, values of keys that name a secret, in every notation) goes
//! through every writer — reports (text, JSON, --output, Prometheus), print, logs (stderr and
//! --log-file, text and JSON), errors, `opsh config`, the audit (table, file, `opsh audit`) and
//! the compose and configuration copies in backup-all's folder — and no secret comes out.

mod support;

use std::path::Path;

use support::{Opsh, TestDb};

/// Each line and the part of it that must never be seen.
const CORPUS: &[(&str, &str)] = &[
    ("DATABASE_URL: postgres://u:pa/ss9Zq@db/x", "ss9Zq"),
    ("DATABASE_URL=postgres://u:p@ss7Kw@db/x", "ss7Kw"),
    ("url = \"postgres://u:pa:ss3Jx@db/x\"", "ss3Jx"),
    ("REDIS_URL=redis://:pa%2Fss4Hy@cache:6379/0", "ss4Hy"),
    ("see postgres://u:pa\"ss5Gt@db/x now", "ss5Gt"),
    ("see postgres://u:pa'ss6Vb@db/x now", "ss6Vb"),
    ("see postgres://u:pässwört7Nm@db/x now", "7Nm"),
    ("POSTGRES_PASSWORD=hunter2Xy", "hunter2Xy"),
    ("      POSTGRES_PASSWORD: two words8Qp", "words8Qp"),
    ("  - OPENAI_API_KEY=sk-live9Rt", "live9Rt"),
    ("db_pass: passvalue1Lk", "passvalue1Lk"),
    ("{\"apiKey\": \"jsonkey2Wd\"}", "jsonkey2Wd"),
    ("client_secret = 'tomlsecret3Ce'", "tomlsecret3Ce"),
    ("GITHUB_TOKEN=ghp_token4Fg", "token4Fg"),
    ("Credentials: creds5Hj", "creds5Hj"),
    (
        "SENTRY_DSN=https://dsnkey6Mn@o1.ingest.example/1",
        "dsnkey6Mn",
    ),
    ("KEY=plainkey7Zx", "plainkey7Zx"),
    ("export PGPASSWORD=pgpw8Uy", "pgpw8Uy"),
    ("host=db password=conninfo9Ab user=u", "conninfo9Ab"),
    ("mysql_password: \"a 'quoted' one0Ws\"", "one0Ws"),
];

/// The test database's own password (tools/with-services) is a secret too.
const DB_PASSWORD: &str = "youtube_pass";

fn corpus() -> String {
    CORPUS
        .iter()
        .map(|(l, _)| *l)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails naming the writer, the secret and the text around it when any secret is in `text`.
fn clean(writer: &str, text: &str) {
    for secret in CORPUS.iter().map(|(_, s)| *s).chain([DB_PASSWORD]) {
        if let Some(at) = text.find(secret) {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(60)
                .map_or(0, |(i, _)| i);
            let to = (at + secret.len() + 20).min(text.len());
            let to = (to..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap();
            panic!("{writer} shows `{secret}`: …{}…", &text[from..to]);
        }
    }
}

fn clean_dir(writer: &str, dir: &Path) -> usize {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files += clean_dir(writer, &path);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        clean(
            &format!("{writer} ({})", path.display()),
            &String::from_utf8_lossy(&bytes),
        );
        files += 1;
    }
    files
}

/// A procedure that hands every line to print, log, a report and the audit (through the
/// arguments of a destructive operation and its own argument).
const SCRIPT: &str = "// Corpus (test): every writer gets the corpus\n\
// arg note: string = \"\" -- a line\n\
let lines = env(\"CORPUS\").split(\"\\n\");\n\
for l in lines { print(l); log::warn(l); }\n\
host::clean_temp(#{dirs: [env(\"TEMP_DIR\")]});\n\
let r = report::new(\"corpus\");\n\
for l in lines { r.warn(l, l); }\n\
r\n";

fn site(db_url: &str, temp: &Path) -> Opsh {
    Opsh::new()
        .env("DATABASE_URL", db_url)
        .env("REDIS_URL", &std::env::var("REDIS_URL").unwrap())
        .env("QDRANT_URL", "http://127.0.0.1:1")
        .env("QDRANT_API_KEY", "qdrantkey0Qa")
        .env("CORPUS", &corpus())
        .env("TEMP_DIR", &temp.display().to_string())
        .file("ops/corpus.rhai", SCRIPT)
        .file(
            "docker-compose.yml",
            &format!(
                "services:\n  agent:\n    environment:\n{}\n",
                corpus()
                    .lines()
                    .map(|l| format!("      {}", l.trim_start()))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        )
}

#[test]
fn no_secret_of_the_corpus_comes_out_of_any_writer() {
    let db = TestDb::new();
    let temp = tempfile::tempdir().unwrap();
    let note = format!("note={}", corpus());
    let opsh = site(&db.url, temp.path());
    let home = opsh.path().to_path_buf();
    std::fs::create_dir_all(home.join("out")).unwrap();
    let rerun = |args: &[&str]| {
        let mut cmd = opsh.command();
        cmd.args(args);
        support::Run::from(cmd.output().unwrap())
    };

    // A report, print and logs, text and JSON, on the terminal and in files; and the audit.
    for args in [
        vec!["corpus", note.as_str()],
        vec!["--json", "corpus", note.as_str()],
        vec![
            "corpus",
            note.as_str(),
            "--log-file",
            "logs/opsh.log",
            "--output",
            "out/report.txt",
        ],
        vec![
            "corpus",
            note.as_str(),
            "--log-format",
            "json",
            "--log-file",
            "logs/opsh.json",
            "--format",
            "json",
            "--output",
            "out/report.json",
        ],
        vec![
            "corpus",
            note.as_str(),
            "--format",
            "prometheus",
            "--output",
            "out/opsh.prom",
        ],
    ] {
        let run = rerun(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        clean(&format!("stdout of {args:?}"), &run.stdout);
        clean(&format!("stderr of {args:?}"), &run.stderr);
    }
    // The lines did reach each writer (masked).
    let report = rerun(&["--json", "corpus"]).report();
    assert_eq!(report["checks"].as_array().unwrap().len(), CORPUS.len());
    assert_eq!(
        report["checks"][0]["detail"],
        "DATABASE_URL: postgres://u:***@db/x"
    );
    assert!(clean_dir("--output", &home.join("out")) == 3);
    assert!(clean_dir("--log-file", &home.join("logs")) >= 2);

    // Errors, and a value printed as it is.
    for args in [
        vec!["-e", "throw env(\"CORPUS\")"],
        vec!["--json", "-e", "throw env(\"CORPUS\")"],
        vec!["-e", "env(\"CORPUS\")"],
        vec!["--json", "-e", "env(\"CORPUS\").split(\"\\n\")"],
        vec![
            "-e",
            "db::query(\"SELECT $1::text AS line\", [env(\"CORPUS\")])",
        ],
    ] {
        let run = rerun(&args);
        clean(&format!("stdout of {args:?}"), &run.stdout);
        clean(&format!("stderr of {args:?}"), &run.stderr);
    }

    // The audit: the table, `opsh audit`, and the file kept while PostgreSQL is down.
    let rows = db.lines("SELECT row_to_json(a)::text FROM opsh_audit a");
    assert!(rows.len() >= 5, "{rows:?}");
    clean("opsh_audit", &rows.join("\n"));
    for args in [vec!["audit"], vec!["--json", "audit"]] {
        let run = rerun(&args);
        run.code(0);
        clean(&format!("stdout of {args:?}"), &run.stdout);
    }
    let down = "postgres://youtube_user:youtube_pass@127.0.0.1:1/youtube_agent";
    let down_site = site(down, temp.path());
    let mut cmd = down_site.command();
    cmd.env("HOME", &home).args(["corpus", note.as_str()]);
    let run = support::Run::from(cmd.output().unwrap());
    clean("stderr, PostgreSQL down", &run.stderr);
    let kept = std::fs::read_to_string(home.join(".local/state/opsh/audit.jsonl"))
        .unwrap_or_else(|e| panic!("no audit file ({e}): {}", run.stderr));
    assert_eq!(kept.lines().count(), 1);
    clean("the audit file", &kept);

    // `opsh config`, with secrets in the configured URLs and key.
    for url in [
        "postgres://u:pa/ss9Zq@db/x",
        "postgres://u:p@ss7Kw@db:5432/x",
    ] {
        for args in [vec!["config"], vec!["--json", "config"]] {
            let run = site(url, temp.path())
                .env("REDIS_URL", "redis://:pa%2Fss4Hy@cache:6379/0")
                .args(&args)
                .run();
            run.code(0);
            clean(&format!("opsh {args:?} with {url}"), &run.stdout);
        }
    }

    // backup-all: the compose file and the configuration copied into its folder.
    let run = rerun(&["--json", "backup-all", "dir=backups"]);
    clean("stdout of backup-all", &run.stdout);
    clean("stderr of backup-all", &run.stderr);
    let dir = home.join(run.report()["data"]["dir"].as_str().unwrap());
    let compose = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
    assert_eq!(compose.lines().count(), CORPUS.len() + 3, "{compose}");
    assert!(clean_dir("backup-all's folder", &dir) >= 4);
}
