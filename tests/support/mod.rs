//! Test support: run the real opsh binary in a temp dir and compare its whole output; make a
//! fresh PostgreSQL database (migrated) per test from the server tools/with-services started.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use pretty_assertions::assert_eq;

pub mod docker;

pub const BIN: &str = env!("CARGO_BIN_EXE_opsh");

/// An opsh invocation: clean environment (PATH only), a temp dir as working dir and HOME.
pub struct Opsh {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Opsh {
    pub fn new() -> Opsh {
        let dir = tempfile::tempdir().expect("temp dir");
        Opsh {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Opsh {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Opsh {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn db(self, db: &TestDb) -> Opsh {
        let url = db.url.clone();
        self.env("DATABASE_URL", &url)
    }

    pub fn stdin(mut self, text: &str) -> Opsh {
        self.stdin = Some(text.into());
        self
    }

    /// Writes a file under the working dir (directories 0755, files 0644).
    pub fn file(self, path: &str, contents: &str) -> Opsh {
        write_file(&self.dir.path().join(path), contents);
        self
    }

    /// Puts an executable shell script named `name` first on PATH (a stand-in for a tool
    /// such as psql that records how it was called).
    pub fn stand_in(self, name: &str, script: &str) -> Opsh {
        let bin = self.dir.path().join("bin");
        let file = bin.join(name);
        write_file(&file, script);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        self.env("PATH", &path)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            // The tests read opsh's text as a terminal shows it, emoji and all; in a pipe it
            // writes status words instead, which tests ask for with `.env("OPSH_OUTPUT_EMOJI",
            // "auto")`.
            .env("OPSH_OUTPUT_EMOJI", "always");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self) -> Run {
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run opsh");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(text) = &self.stdin {
            stdin.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(stdin);
        let out = child.wait_with_output().expect("wait for opsh");
        Run::from(out)
    }

    /// Starts opsh and keeps its working directory alive until the child is done with.
    pub fn spawn(self) -> Spawned {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Spawned {
            child: cmd.spawn().expect("spawn opsh"),
            _dir: self.dir,
        }
    }
}

/// A running opsh and the temp dir it runs in (dropped after the child).
pub struct Spawned {
    pub child: Child,
    _dir: tempfile::TempDir,
}

impl Spawned {
    pub fn wait_with_output(self) -> std::io::Result<Output> {
        self.child.wait_with_output()
    }
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Exit code, stdout and stderr, all compared whole.
    #[track_caller]
    pub fn expect(&self, code: i32, stdout: &str, stderr: &str) {
        assert_eq!(
            (self.code, self.stdout.as_str(), self.stderr.as_str()),
            (code, stdout, stderr),
            "exit code, stdout, stderr"
        );
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    /// A procedure's `--json` document: its envelope checked (every field there, the exit code
    /// the process's), and the report (or value) inside it.
    #[track_caller]
    pub fn report(&self) -> serde_json::Value {
        let mut doc = self.json();
        let envelope = doc
            .as_object()
            .unwrap_or_else(|| panic!("no envelope: {doc}"));
        for key in [
            "procedure",
            "target",
            "opsh_version",
            "started_at",
            "duration_seconds",
            "exit_code",
            "status",
            "report",
        ] {
            assert!(envelope.contains_key(key), "envelope without {key}: {doc}");
        }
        assert_eq!(
            doc["exit_code"], self.code,
            "the envelope's exit code: {doc}"
        );
        doc["report"].take()
    }
}

pub fn write_file(path: &Path, contents: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dirs");
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))
            .expect("chmod dir");
    }
    std::fs::write(path, contents).expect("write file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod file");
}

/// The PostgreSQL server of the test run (a superuser URL), from tools/with-services.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run the tests with `make test`, which starts PostgreSQL and Redis")
    })
}

/// A fresh database with the managed schema migrated in, dropped at the end of the test.
pub struct TestDb {
    pub name: String,
    pub url: String,
    server: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The deployment's init.sql as deployment-schema.md describes it.
pub const DEPLOYMENT_INIT: &str = include_str!("../../migrations/deployment/init.sql");

/// Runs a future to completion on a runtime of its own, on a thread of its own, so the helpers
/// work from plain tests and from inside #[tokio::test] alike.
fn block_on<T: Send>(fut: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(fut)
        })
        .join()
        .expect("helper thread")
    })
}

fn with_db(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).expect("DATABASE_URL is a URL");
    url.set_path(name);
    url.to_string()
}

impl TestDb {
    pub fn new() -> TestDb {
        Self::create(true)
    }

    /// A database without the managed schema.
    pub fn empty() -> TestDb {
        Self::create(false)
    }

    /// A copy of another test database (CREATE DATABASE … TEMPLATE), rows and all.
    pub fn copy_of(template: &TestDb) -> TestDb {
        let server = server_url();
        let name = format!(
            "opsh_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let url = with_db(&server, &name);
        let sql = format!("CREATE DATABASE {name} TEMPLATE {}", template.name);
        let admin_url = server.clone();
        block_on(async move {
            let admin = sqlx::PgPool::connect(&admin_url)
                .await
                .expect("connect to the test server");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&admin)
                .await
                .expect("copy test database");
            admin.close().await;
        });
        TestDb { name, url, server }
    }

    /// A database as the deployment's own init.sql makes it (migrations/deployment/init.sql:
    /// its schema and two seed channels), never migrated by opsh.
    pub fn deployment() -> TestDb {
        let db = Self::create(false);
        db.exec(DEPLOYMENT_INIT);
        db
    }

    fn create(migrate: bool) -> TestDb {
        let server = server_url();
        let name = format!(
            "opsh_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let url = with_db(&server, &name);
        block_on(async {
            let admin = sqlx::PgPool::connect(&server)
                .await
                .expect("connect to the test server");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .expect("create test database");
            admin.close().await;
            if migrate {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url)
                    .await
                    .expect("connect to test database");
                opsh::ops::db::schema::migrate(&mut conn, false)
                    .await
                    .expect("migrate test database");
                let _ = conn.close().await;
            }
        });
        TestDb { name, url, server }
    }

    /// Runs SQL statements (no results).
    pub fn exec(&self, sql: &str) {
        let url = self.url.clone();
        let sql = sql.to_string();
        block_on(async move {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .expect("exec SQL");
            pool.close().await;
        });
    }

    /// The rows of a query that yields one column, each as text (NULL as "NULL").
    pub fn lines(&self, sql: &str) -> Vec<String> {
        let url = self.url.clone();
        let sql = format!("SELECT (x)::text FROM ({sql}) AS q(x)");
        block_on(async move {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            let rows: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .expect("query");
            pool.close().await;
            rows.into_iter()
                .map(|v| v.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
    }

    /// How many statements containing `text` run in this database (pg_stat_activity), other
    /// than the one asking.
    pub fn active(&self, text: &str) -> i64 {
        self.scalar(&format!(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state = 'active'
               AND strpos(query, '{}') > 0 AND pid <> pg_backend_pid()",
            text.replace('\'', "''")
        ))
        .parse()
        .expect("a count")
    }

    /// One scalar, as text.
    pub fn scalar(&self, sql: &str) -> String {
        let url = self.url.clone();
        let sql = format!("SELECT ({sql})::text");
        block_on(async move {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            let v: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .expect("query");
            pool.close().await;
            v.unwrap_or_else(|| "NULL".into())
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        block_on(async move {
            if let Ok(admin) = sqlx::PgPool::connect(&server).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await;
                admin.close().await;
            }
        });
    }
}

/// Inserts jobs: (job_type, status, minutes since last activity, retry_count). Returns nothing;
/// ids are assigned in order from 1.
pub fn seed_jobs(db: &TestDb, jobs: &[(&str, &str, i64, i64)]) {
    let mut sql = String::new();
    for (job_type, status, minutes, retries) in jobs {
        sql.push_str(&format!(
            "INSERT INTO processing_jobs (job_type, status, retry_count, created_at, started_at, updated_at)
             VALUES ('{job_type}', '{status}', {retries},
                     LOCALTIMESTAMP - make_interval(mins => {minutes} + 5),
                     LOCALTIMESTAMP - make_interval(mins => {minutes}),
                     LOCALTIMESTAMP - make_interval(mins => {minutes}));\n"
        ));
    }
    db.exec(&sql);
}

pub fn home_path(opsh: &Opsh, rel: &str) -> PathBuf {
    opsh.path().join(rel)
}
