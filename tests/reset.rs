//! reset-soft and reset-hard through the binary, against the real PostgreSQL and Redis of
//! tools/with-services and the Qdrant double. Each test owns a database, a Redis db number
//! (5–8, emptied at its start and end), a double, temp dirs and a state dir.
//!
//! A run is killed part-way with OPSH_TEST_FAILPOINT=<point> (src/failpoint.rs, compiled in only
//! with the `failpoints` feature the tests turn on, aborts the process there, as kill -9 would);
//! running it again must end in the right state.

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use support::{Opsh, TestDb};

const QDRANT_POINTS: &str = include_str!("fixtures/examples-qdrant.json");

struct Env {
    db: TestDb,
    qdrant: qdrant_double::Running,
    redis_url: String,
    redis: redis::Connection,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(redis_db: u8) -> Env {
        let db = TestDb::new();
        db.exec(
            "INSERT INTO channels (name, url, platform) SELECT 'ch' || i, 'https://yt/c/' || i, 'youtube' FROM generate_series(1, 3) i;
             INSERT INTO content (channel_id, external_id, title, url) SELECT 1 + i % 3, 'v' || i, 't' || i, 'https://yt/v/' || i FROM generate_series(1, 20) i;
             INSERT INTO transcripts (content_id, text, segment_order) SELECT 1 + i % 20, 's' || i, i FROM generate_series(1, 50) i;
             INSERT INTO processing_jobs (job_type, content_id, status) SELECT 'vectorize', 1 + i % 20, 'pending' FROM generate_series(1, 10) i;
             INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text, chunk_order)
               SELECT 1 + i % 20, md5(i::text), 'youtube_content', 'c' || i, i FROM generate_series(1, 30) i;",
        );
        let qdrant =
            qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).expect("double");
        // Non-default sizes: youtube_content 4 dims, youtube_summaries 6 dims Dot.
        let mut points: Value = serde_json::from_str(QDRANT_POINTS).unwrap();
        points["collections"]["youtube_summaries"]["size"] = json!(6);
        points["collections"]["youtube_summaries"]["distance"] = json!("Dot");
        seed::seed(&qdrant.grpc_url(), &points);

        let server = std::env::var("REDIS_URL").expect("REDIS_URL (tools/with-services)");
        let mut url = url::Url::parse(&server).expect("REDIS_URL is a URL");
        url.set_path(&redis_db.to_string());
        let redis_url = url.to_string();
        let mut redis = redis::Client::open(redis_url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("FLUSHDB").exec(&mut redis).unwrap();
        for (k, v) in [
            ("stt:daily_cost:2026-11-26", "0.5"),
            ("stt:monthly_cost:2026-11", "1.75"),
            ("embedding:1024:aa", "[0.1]"),
            ("embedding:1024:bb", "[0.2]"),
        ] {
            redis::cmd("SET").arg(k).arg(v).exec(&mut redis).unwrap();
        }
        redis::cmd("HSET")
            .arg("stt:pending_approval")
            .arg("job-1")
            .arg("{}")
            .exec(&mut redis)
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        for t in ["audio", "downloads"] {
            let d = dir.path().join(t);
            std::fs::create_dir_all(d.join("sub")).unwrap();
            std::fs::write(d.join("a.wav"), b"0123456789").unwrap();
            std::fs::write(d.join("sub/b.wav"), b"01234").unwrap();
        }
        Env {
            db,
            qdrant,
            redis_url,
            redis,
            dir,
        }
    }

    fn temp(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn opsh(&self) -> Opsh {
        let dirs = format!(
            "{}:{}",
            self.temp("audio").display(),
            self.temp("downloads").display()
        );
        Opsh::new()
            .db(&self.db)
            .env("QDRANT_URL", &self.qdrant.grpc_url())
            .env("OPSH_QDRANT_REST_URL", &self.qdrant.rest_url())
            .env("REDIS_URL", &self.redis_url)
            .env("OPSH_FILES_TEMP_DIRS", &dirs)
            .env("XDG_STATE_HOME", &self.temp("state").display().to_string())
    }

    fn eval(&self, code: &str) -> Value {
        let run = self.opsh().args(["--json", "--yes", "-e", code]).run();
        run.code(0);
        run.json()
    }

    fn keys(&mut self) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut self.redis).unwrap();
        keys.sort();
        keys
    }

    fn rows(&self) -> Vec<String> {
        [
            "channels",
            "content",
            "transcripts",
            "processing_jobs",
            "vector_mappings",
        ]
        .iter()
        .map(|t| {
            format!(
                "{t}={}",
                self.db.scalar(&format!("SELECT count(*) FROM {t}"))
            )
        })
        .collect()
    }

    /// (points, size, distance) per collection.
    fn collections(&self) -> Value {
        let mut out = serde_json::Map::new();
        for c in ["youtube_content", "youtube_summaries"] {
            let i = self.eval(&format!("qdrant::info({c:?})"));
            out.insert(
                c.into(),
                json!([i["points"], i["vector_size"], i["distance"]]),
            );
        }
        Value::Object(out)
    }

    fn temp_entries(&self) -> usize {
        ["audio", "downloads"]
            .iter()
            .map(|t| std::fs::read_dir(self.temp(t)).unwrap().count())
            .sum()
    }

    /// Asserts the state after a finished soft reset.
    fn assert_soft_done(&mut self) {
        assert_eq!(
            self.rows(),
            [
                "channels=3",
                "content=0",
                "transcripts=0",
                "processing_jobs=0",
                "vector_mappings=0"
            ]
        );
        assert_eq!(
            self.collections(),
            json!({"youtube_content": [0, 4, "Cosine"], "youtube_summaries": [0, 6, "Dot"]})
        );
        assert_eq!(
            self.keys(),
            ["stt:daily_cost:2026-11-26", "stt:monthly_cost:2026-11"]
        );
        assert_eq!(self.temp_entries(), 0);
        // Identities restarted: the next content row is 1 again.
        self.db.exec(
            "INSERT INTO content (channel_id, external_id, title, url) VALUES (1, 'n', 'n', 'https://yt/v/n')",
        );
        assert_eq!(self.db.scalar("SELECT max(id) FROM content"), "1");
        self.db.exec("TRUNCATE content RESTART IDENTITY CASCADE");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = redis::cmd("FLUSHDB").exec(&mut self.redis);
    }
}

#[test]
fn reset_soft_keeps_channels_costs_and_each_collections_own_vectors() {
    let mut env = Env::new(5);
    let run = env.opsh().args(["--json", "--yes", "reset-soft"]).run();
    run.code(0);
    let report = run.report();
    let data = &report["data"];
    assert_eq!(
        data["deleted"][0],
        "110 rows from content (20), transcripts (50), processing_jobs (10), vector_mappings (30)"
    );
    let deleted = data["deleted"].to_string();
    assert!(deleted.contains("stt:pending_approval"), "{deleted}");
    assert!(
        data["preserved"][0] == "table channels (3 rows)",
        "{}",
        data["preserved"]
    );
    env.assert_soft_done();
}

#[test]
fn reset_hard_deletes_channels_and_cost_counters() {
    let mut env = Env::new(6);
    let r = env.eval("reset::hard()");
    assert_eq!(r["preserved_tables"], json!([]));
    assert_eq!(r["redis"]["deleted"], 5);
    assert_eq!(env.rows()[0], "channels=0");
    assert_eq!(env.keys(), Vec::<String>::new());
    assert_eq!(
        env.collections(),
        json!({"youtube_content": [0, 4, "Cosine"], "youtube_summaries": [0, 6, "Dot"]})
    );
    assert_eq!(env.temp_entries(), 0);
}

#[test]
fn reset_hard_without_yes_or_terminal_refuses_with_exit_3_and_deletes_nothing() {
    let mut env = Env::new(7);
    let before = (
        env.rows(),
        env.collections(),
        env.keys(),
        env.temp_entries(),
    );
    let run = env.opsh().args(["reset-hard"]).run();
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    // The question names the counts that would go, as the dry run does.
    for counts in [
        "113 rows from channels (3), content (20), transcripts (50), processing_jobs (10), vector_mappings (30)",
        "6 points from youtube_content (4), youtube_summaries (2)",
        "5 keys of redis db 7",
        "4 entries in the temp dirs",
    ] {
        assert!(
            run.stderr.contains(counts),
            "no `{counts}` in {}",
            run.stderr
        );
    }
    assert_eq!(
        (
            env.rows(),
            env.collections(),
            env.keys(),
            env.temp_entries()
        ),
        before
    );
}

#[test]
fn dry_run_names_the_counts_and_changes_nothing() {
    let mut env = Env::new(8);
    let before = (
        env.rows(),
        env.collections(),
        env.keys(),
        env.temp_entries(),
    );
    let run = env.opsh().args(["--json", "--dry-run", "reset-soft"]).run();
    run.code(0);
    let data = &run.report()["data"];
    assert_eq!(
        data["deleted"],
        json!([
            "110 rows from content (20), transcripts (50), processing_jobs (10), vector_mappings (30)",
            "6 points from youtube_content (4), youtube_summaries (2)",
            "3 keys of redis db 8, among them stt:pending_approval (STT jobs waiting for cost approval (hash), 1 entries)",
            format!(
                "4 entries in the temp dirs {}, {}",
                env.temp("audio").display(),
                env.temp("downloads").display()
            ),
        ])
    );
    assert_eq!(
        (
            env.rows(),
            env.collections(),
            env.keys(),
            env.temp_entries()
        ),
        before
    );
}

#[test]
fn reset_soft_killed_part_way_is_finished_by_running_it_again() {
    for (i, point) in [
        "after_postgres",
        "qdrant_deleted",
        "after_qdrant",
        "after_redis",
    ]
    .into_iter()
    .enumerate()
    {
        let mut env = Env::new(1 + i as u8);
        let run = env
            .opsh()
            .env("OPSH_TEST_FAILPOINT", point)
            .args(["--json", "--yes", "reset-soft"])
            .run();
        // Aborted (SIGABRT, no exit code) at the point, as kill -9 would end it.
        assert_eq!(
            run.code, -1,
            "{point}: the failpoint did not stop the run\n{}",
            run.stderr
        );
        if point == "qdrant_deleted" {
            // The window: the collection is gone, only its kept configuration knows it.
            // A warning names it: missing after an interrupted reset, created from what was kept.
            let run = env.opsh().args(["--json", "--dry-run", "reset-soft"]).run();
            run.code(1);
            let c = &run.report()["data"]["deleted"];
            assert!(
                c[1].as_str().unwrap().contains("youtube_content (0)"),
                "{c}"
            );
        }
        let run = env.opsh().args(["--json", "--yes", "reset-soft"]).run();
        assert_eq!(run.code, 0, "{point}: {}\n{}", run.stdout, run.stderr);
        env.assert_soft_done();
    }
}
