//! check-data, check-data-fix, clean-orphans, daily-integrity-check and integrity:: through the
//! binary, against real PostgreSQL (the deployment's schema) and the Qdrant double, seeded with
//! the examples' fixtures (tests/fixtures/examples-qdrant.sql and .json; what each row and point
//! is for is written there).

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Opsh, TestDb};

const BASE_SQL: &str = include_str!("fixtures/examples.sql");
const QDRANT_SQL: &str = include_str!("fixtures/examples-qdrant.sql");
const QDRANT_POINTS: &str = include_str!("fixtures/examples-qdrant.json");

struct Env {
    db: TestDb,
    qdrant: qdrant_double::Running,
}

fn setup() -> Env {
    setup_with(qdrant_double::Options::default(), &[])
}

fn setup_with(options: qdrant_double::Options, skip: &[&str]) -> Env {
    let options_key = options.api_key.clone();
    let db = TestDb::new();
    db.exec(BASE_SQL);
    db.exec(QDRANT_SQL);
    let qdrant = qdrant_double::QdrantDouble::start(options).expect("double");
    let mut points: Value = serde_json::from_str(QDRANT_POINTS).unwrap();
    for name in skip {
        points["collections"].as_object_mut().unwrap().remove(*name);
    }
    seed::seed_with_key(&qdrant.grpc_url(), &points, options_key.as_deref());
    Env { db, qdrant }
}

impl Env {
    fn opsh(&self) -> Opsh {
        Opsh::new()
            .db(&self.db)
            .env("QDRANT_URL", &self.qdrant.grpc_url())
            .env("OPSH_QDRANT_REST_URL", &self.qdrant.rest_url())
    }

    fn eval(&self, code: &str) -> Value {
        let run = self.opsh().args(["--json", "--yes", "-e", code]).run();
        run.code(0);
        run.json()
    }

    fn ids(&self, collection: &str) -> Vec<String> {
        serde_json::from_value(self.eval(&format!("qdrant::ids({collection:?})"))).unwrap()
    }
}

fn pair<'a>(data: &'a Value, name: &str) -> &'a Value {
    data["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pair {name} in {data}"))
}

#[test]
fn check_data_compares_ids_as_qdrant_reads_them_and_lists_invalid_ones() {
    let env = setup();
    let run = env.opsh().args(["--json", "check-data"]).run();
    run.code(1);
    let report = run.report();
    assert_eq!(report["status"], "warning");
    let data = &report["data"];
    let chunks = pair(data, "chunks");
    // The MD5-hex chunk_id matches its hyphenated point; the upper-case one is missing.
    assert_eq!(
        (
            &chunks["rows"],
            &chunks["points"],
            &chunks["matched"],
            &chunks["sample_missing"],
            &chunks["sample_orphans"],
            &chunks["sample_invalid"]
        ),
        (
            &json!(4),
            &json!(4),
            &json!(2),
            &json!(["0f8e2a9c-3b1d-4c5e-8f7a-6b5c4d3e2f10"]),
            &json!(["7", "9b2c58c1-1e7f-5a4e-9d8e-0a1b2c3d4e5f"]),
            &json!(["chunk-three"])
        )
    );
    let summaries = pair(data, "summaries");
    assert_eq!(
        summaries["sample_orphans"],
        json!(["5c0d4f6e-7a8b-5c9d-8e0f-1a2b3c4d5e6f"])
    );
    assert_eq!(summaries["sample_missing"], json!(["3"]));
    assert_eq!(data["content_missing_vectors"], 1);
    let issues = report["issues"].as_array().unwrap();
    assert!(
        issues.iter().any(|i| i
            .as_str()
            .unwrap()
            .contains("1 chunk_id value that is neither an integer nor a UUID")),
        "{issues:?}"
    );
    // The text report, as the guide prints it.
    let text = env.opsh().args(["check-data"]).run();
    text.code(1);
    assert!(
        text.stdout.contains("vector_mappings ↔ youtube_content"),
        "{}",
        text.stdout
    );
}

#[test]
fn fix_deletes_every_orphan_past_its_grace_and_never_an_invalid_or_matched_point() {
    let env = setup();
    // First sight: recorded, nothing deleted yet.
    let first = env
        .opsh()
        .args(["--json", "--yes", "clean-orphans", "grace=1h"])
        .run();
    first.code(1);
    let first = first.report();
    assert_eq!(first["data"]["deleted"], 0);
    assert_eq!(first["data"]["pairs"][0]["deferred"], 2);
    assert_eq!(env.ids("youtube_content").len(), 4);
    // Past the grace period they go, all of them.
    std::thread::sleep(Duration::from_millis(1500));
    let second = env
        .opsh()
        .args(["--json", "--yes", "check-data-fix", "grace=1s"])
        .run();
    let second = second.report();
    assert_eq!(second["data"]["deleted"], 3, "{second}");
    assert_eq!(
        env.ids("youtube_content"),
        [
            "4a7d1ed4-1447-4e40-33ac-29ccb8653d9b",
            "6f1ed002-ab5d-5c5c-8a8f-2f6a3c0f7e01"
        ]
    );
    assert_eq!(
        env.ids("youtube_summaries"),
        ["1c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f"]
    );
    // The invalid chunk id's row is untouched and still listed.
    assert_eq!(
        env.eval(r#"integrity::invalid("chunks")"#),
        json!(["chunk-three"])
    );
    assert_eq!(
        env.db.scalar("SELECT count(*) FROM opsh_orphan_candidates"),
        "0"
    );
}

#[test]
fn dry_run_lists_what_would_be_deleted_and_changes_nothing() {
    let env = setup();
    let run = env
        .opsh()
        .args([
            "--json",
            "--dry-run",
            "check-data-fix",
            "grace=0s",
            "stuck_after=1h",
        ])
        .run();
    let report = run.report();
    assert_eq!(report["data"]["dry_run"], true);
    assert_eq!(
        report["data"]["fix"][0]["sample_would_delete"],
        json!(["7", "9b2c58c1-1e7f-5a4e-9d8e-0a1b2c3d4e5f"])
    );
    assert_eq!(report["data"]["jobs_reset"], 1);
    assert_eq!(env.ids("youtube_content").len(), 4);
    assert_eq!(env.ids("youtube_summaries").len(), 2);
    assert_eq!(
        env.db
            .scalar("SELECT to_regclass('opsh_orphan_candidates') IS NULL"),
        "true"
    );
    assert_eq!(
        env.db
            .scalar("SELECT count(*) FROM processing_jobs WHERE status = 'processing'"),
        "3"
    );
}

/// A worker writes each point, then its mapping row a moment later. clean-orphans runs over
/// and over meanwhile; not one of the worker's points may go.
#[test]
fn a_concurrent_writer_never_loses_a_vector() {
    let env = setup();
    let url = env.qdrant.grpc_url();
    let db_url = env.db.url.clone();
    let writer = std::thread::spawn(move || {
        let rt = seed::runtime();
        let pool = rt.block_on(sqlx::PgPool::connect(&db_url)).unwrap();
        let mut written = Vec::new();
        for i in 0..25u32 {
            let id = format!("{:032x}", 0xabc0_0000_u128 + u128::from(i));
            seed::upsert(
                &url,
                "youtube_content",
                4,
                &[(json!(id.clone()), json!({"content_id": 1}))],
            );
            std::thread::sleep(Duration::from_millis(150));
            rt.block_on(
                sqlx::query(
                    "INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text)
                     VALUES (1, $1, 'youtube_content', 'live')",
                )
                .bind(&id)
                .execute(&pool),
            )
            .unwrap();
            written.push(id);
        }
        written
    });
    let started = Instant::now();
    let mut runs = 0;
    while !writer.is_finished() || runs < 2 {
        let run = env
            .opsh()
            .args(["--json", "--yes", "clean-orphans", "grace=1s"])
            .run();
        assert!(
            run.code == 0 || run.code == 1,
            "{}\n{}",
            run.stdout,
            run.stderr
        );
        runs += 1;
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "took too long"
        );
    }
    let written = writer.join().unwrap();
    // One more pass after the grace period: the real orphans go, every live point stays.
    std::thread::sleep(Duration::from_millis(1200));
    env.opsh()
        .args(["--yes", "clean-orphans", "grace=1s"])
        .run();
    let ids = env.ids("youtube_content");
    for id in &written {
        let hyphenated = uuid::Uuid::parse_str(id).unwrap().to_string();
        assert!(
            ids.contains(&hyphenated),
            "live point {hyphenated} was deleted"
        );
    }
    assert!(
        !ids.contains(&"7".to_string()),
        "the orphan 7 is still there: {ids:?}"
    );
    assert_eq!(ids.len(), written.len() + 2, "{ids:?}");
}

#[test]
fn daily_integrity_check_fixes_and_exits_with_the_final_state() {
    let env = setup();
    let run = env
        .opsh()
        .args(["--json", "--yes", "daily-integrity-check", "grace=0s"])
        .run();
    // The missing vector and the invalid chunk id are not fixable: still a warning.
    run.code(1);
    let report = run.report();
    assert_eq!(report["data"]["first_status"], "warning");
    assert_eq!(report["data"]["deleted"], 3);
    let chunks = pair(&report["data"], "chunks");
    assert_eq!(
        (&chunks["orphans"], &chunks["missing"]),
        (&json!(0), &json!(1))
    );
}

#[test]
fn a_missing_collection_is_critical_and_named() {
    let env = setup_with(qdrant_double::Options::default(), &["youtube_summaries"]);
    let run = env.opsh().args(["--json", "check-data"]).run();
    run.code(2);
    let report = run.report();
    let issues = report["issues"].to_string();
    assert!(
        issues.contains("Qdrant collection `youtube_summaries` does not exist"),
        "{issues}"
    );
    // The other pair is still compared.
    assert_eq!(pair(&report["data"], "chunks")["orphans"], 2);
    // The fix acts on the pair that was compared, says what it skipped, and exits with the
    // state after: still critical.
    let fix = env
        .opsh()
        .args(["--yes", "check-data-fix", "grace=0s"])
        .run();
    assert_eq!(fix.code, 2, "{}\n{}", fix.stdout, fix.stderr);
    for line in [
        "✅ orphans in youtube_content: 2 of 2 orphan vectors were deleted; 1 invalid id is never deleted\n",
        "⚠️ skipped: orphans of summaries (content ↔ youtube_summaries): not compared: collection `youtube_summaries` does not exist\n",
    ] {
        assert!(fix.stdout.contains(line), "no `{line}` in\n{}", fix.stdout);
    }
}

#[test]
fn postgres_down_is_a_critical_report_not_a_crash() {
    let env = setup();
    let run = env
        .opsh()
        .env(
            "DATABASE_URL",
            "postgres://youtube_user:youtube_pass@127.0.0.1:1/youtube_agent",
        )
        .args(["--json", "check-data"])
        .run();
    run.code(2);
    let report = run.report();
    let pg = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "postgres")
        .unwrap();
    assert_eq!(pg["status"], "critical");
    assert!(
        pg["detail"].as_str().unwrap().contains("127.0.0.1:1"),
        "{pg}"
    );
    assert!(!run.stdout.contains("youtube_pass"));
}

#[test]
fn qdrant_down_wrong_port_and_refused_key_say_so() {
    let env = setup_with(qdrant_double::Options::default().api_key("right-key"), &[]);
    // Down: nothing listens.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let down = env
        .opsh()
        .env("QDRANT_URL", &format!("http://127.0.0.1:{port}"))
        .env("QDRANT_API_KEY", "right-key")
        .args(["-e", "qdrant::ping()"])
        .run();
    assert_eq!(down.code, 3);
    assert!(
        down.stderr
            .contains(&format!("qdrant::ping: qdrant at http://127.0.0.1:{port}")),
        "{}",
        down.stderr
    );
    // The REST port where gRPC is needed.
    let rest = env
        .opsh()
        .env("QDRANT_URL", &env.qdrant.rest_url())
        .env("QDRANT_API_KEY", "right-key")
        .args(["-e", "qdrant::ping()"])
        .run();
    assert_eq!(rest.code, 3);
    assert!(
        rest.stderr
            .contains("is the gRPC address Qdrant's REST port? opsh needs the gRPC port"),
        "{}",
        rest.stderr
    );
    // A wrong key.
    let refused = env
        .opsh()
        .env("QDRANT_API_KEY", "wrong-key")
        .args([
            "-e",
            "try { qdrant::ping() } catch (e) { print(e.kind); throw e; }",
        ])
        .run();
    assert_eq!(refused.code, 3);
    assert!(refused.stdout.starts_with("refused"), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("the API key was refused"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("wrong-key"));
    // check-data makes each of them a critical report.
    let report = env
        .opsh()
        .env("QDRANT_API_KEY", "wrong-key")
        .args(["--json", "check-data"])
        .run();
    report.code(2);
    // With the right key it works.
    let ok = env
        .opsh()
        .env("QDRANT_API_KEY", "right-key")
        .args(["--json", "-e", "qdrant::count(\"youtube_content\")"])
        .run();
    ok.code(0);
    assert_eq!(ok.json(), 4);
}

#[test]
fn a_missing_collection_is_not_found_by_name() {
    let env = setup();
    let run = env
        .opsh()
        .args([
            "-e",
            r#"try { qdrant::count("nope") } catch (e) { print(e.kind); throw e; }"#,
        ])
        .run();
    assert_eq!(run.code, 3);
    assert!(run.stdout.starts_with("not_found"), "{}", run.stdout);
    assert!(
        run.stderr.contains("collection `nope` does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn delete_content_interrupted_after_qdrant_is_reported_and_finished_by_a_rerun() {
    let env = setup();
    // The first half of a cascade delete: content 1's points are gone, its rows are not.
    env.eval(r#"qdrant::delete_by_filter("youtube_content", #{content_id: 1}); qdrant::delete_by_filter("youtube_summaries", #{content_id: 1})"#);
    let check = env.eval("integrity::check()");
    assert_eq!(pair(&check, "chunks")["missing"], 3);
    assert_eq!(check["sample_content_missing_vectors"], json!([1, 3]));
    // Run again: it finishes.
    let done = env.eval("integrity::delete_content(1)");
    assert_eq!(done["mappings"], 2);
    assert_eq!(
        env.db.scalar("SELECT count(*) FROM content WHERE id = 1"),
        "0"
    );
    let check = env.eval("integrity::check()");
    assert_eq!(pair(&check, "chunks")["missing"], 1);
    assert_eq!(check["sample_content_missing_vectors"], json!([3]));
}

#[test]
fn snapshot_downloads_verified_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = setup();
    let opsh = env.opsh().args([
        "--json",
        "-e",
        r#"let s = qdrant::snapshot("youtube_content"); qdrant::download_snapshot("youtube_content", s.name, "snap.bin")"#,
    ]);
    let run = opsh.run();
    run.code(0);
    assert_eq!(run.json()["verified"], true);
    let mode = std::fs::metadata(opsh.path().join("snap.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn qdrant_stats_lists_the_collections() {
    let env = setup();
    let run = env.opsh().args(["qdrant-stats"]).run();
    run.code(0);
    assert!(run.stdout.contains("youtube_content"), "{}", run.stdout);
    assert!(
        run.stdout.contains("4 points, 4 dims Cosine"),
        "{}",
        run.stdout
    );
}

/// Inside the tested range (1.18 to 1.20) a server gives no warning; outside, one line on stderr
/// and no change to the check's status.
#[test]
fn qdrant_versions_outside_the_tested_range_warn_once_and_change_no_status() {
    for (version, warned) in [("1.18.3", false), ("1.20.0", false), ("1.12.0", true)] {
        let env = setup_with(
            qdrant_double::Options {
                server_version: version.to_string(),
                ..Default::default()
            },
            &[],
        );
        let run = env.opsh().args(["qdrant-stats"]).run();
        run.code(0);
        let warnings: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("outside the versions opsh is tested against"))
            .collect();
        assert_eq!(
            warnings.len(),
            usize::from(warned),
            "{version}: {}",
            run.stderr
        );
        assert!(
            run.stdout.contains(&format!("version {version}")),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn recreate_keeps_the_collections_own_vector_configuration() {
    let env = setup();
    let r = env.eval(r#"qdrant::recreate("youtube_content")"#);
    assert_eq!(
        (&r["vector_size"], &r["config_from"]),
        (&json!(4), &json!("collection"))
    );
    let r = env.eval(r#"qdrant::recreate("brand_new")"#);
    assert_eq!(
        (&r["vector_size"], &r["distance"], &r["config_from"]),
        (&json!(1024), &json!("Cosine"), &json!("settings"))
    );
}

#[test]
fn a_site_pair_from_opsh_toml_is_compared_without_code() {
    let env = setup();
    env.db.exec(
        "CREATE TABLE documents (point_id text, deleted_at timestamptz);
               INSERT INTO documents VALUES ('7', NULL), ('42', NULL), ('99', now());",
    );
    let toml = "[[integrity.pairs]]\nname = \"documents\"\ntable = \"documents\"\n\
                id_column = \"point_id\"\nfilter = \"deleted_at IS NULL\"\n\
                collection = \"youtube_content\"\n";
    let run = env
        .opsh()
        .file("opsh.toml", toml)
        .args(["--json", "--config", "opsh.toml", "check-data"])
        .run();
    let report = run.report();
    let docs = pair(&report["data"], "documents");
    // Point 7 has its row; 42 has none; the deleted row is filtered out; the collection's other
    // three points have no document.
    assert_eq!(
        (
            &docs["rows"],
            &docs["matched"],
            &docs["sample_missing"],
            &docs["orphans"]
        ),
        (&json!(2), &json!(1), &json!(["42"]), &json!(3))
    );
    // Its table is required too: six, all present.
    assert!(
        run.stdout.contains("6 required tables present"),
        "{}",
        run.stdout
    );
}

/// A collection of 10,000 points (ids 1..=10000) and vector_mappings rows whose chunk ids are
/// `chunk_ids`, all of one content item; youtube_summaries empty. Deleted ids go to `ids`.
struct Scaled {
    db: TestDb,
    qdrant: qdrant_double::Running,
    ids: tempfile::TempDir,
}

const SCALED_POINTS: u64 = 10_000;

fn scaled(chunk_ids: &str) -> Scaled {
    let db = TestDb::new();
    db.exec(&format!(
        "INSERT INTO channels (name, url, platform) VALUES ('ch', 'https://yt/c/1', 'youtube');
         INSERT INTO content (channel_id, external_id, title, url) VALUES (1, 'v1', 't1', 'https://yt/v/1');
         INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text, chunk_order)
           SELECT 1, i::text, 'youtube_content', 'c', i FROM {chunk_ids} AS i;"
    ));
    let qdrant =
        qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).expect("double");
    let points: Vec<Value> = (1..=SCALED_POINTS)
        .map(|i| json!({"id": i, "payload": {"content_id": 1}}))
        .collect();
    seed::seed(
        &qdrant.grpc_url(),
        &json!({"collections": {
            "youtube_content": {"size": 4, "points": points},
            "youtube_summaries": {"size": 4, "points": []}
        }}),
    );
    Scaled {
        db,
        qdrant,
        ids: tempfile::tempdir().unwrap(),
    }
}

impl Scaled {
    fn opsh(&self) -> Opsh {
        Opsh::new()
            .db(&self.db)
            .env("QDRANT_URL", &self.qdrant.grpc_url())
            .env("OPSH_QDRANT_REST_URL", &self.qdrant.rest_url())
            .env(
                "OPSH_DELETE_IDS_DIR",
                &self.ids.path().display().to_string(),
            )
    }

    fn eval(&self, code: &str) -> Value {
        let run = self.opsh().args(["--json", "--yes", "-e", code]).run();
        run.code(0);
        run.json()
    }

    fn points(&self) -> u64 {
        self.eval(r#"qdrant::count("youtube_content")"#)
            .as_u64()
            .unwrap()
    }

    fn snapshots(&self) -> u64 {
        self.eval(r#"qdrant::snapshots("youtube_content").len()"#)
            .as_u64()
            .unwrap()
    }

    /// The id files written so far: (mode, ids listed).
    fn id_files(&self) -> Vec<(u32, Vec<String>)> {
        use std::os::unix::fs::PermissionsExt;
        let mut files: Vec<_> = std::fs::read_dir(self.ids.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
                let text = std::fs::read_to_string(p).unwrap();
                let ids = text
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(str::to_string)
                    .collect();
                (mode, ids)
            })
            .collect()
    }
}

/// opsh pointed at the wrong database: 20 rows, none of them among the 10,000 points. Every
/// unattended fix refuses, deletes nothing and says how to go on; max_delete=10000 goes on,
/// leaving a snapshot and the file of the deleted ids, both named in the audit.
#[test]
fn a_wrong_database_deletes_nothing_until_max_delete_allows_it() {
    let env = scaled("generate_series(20001, 20020)");
    for procedure in ["check-data-fix", "clean-orphans", "daily-integrity-check"] {
        let run = env
            .opsh()
            .args(["--json", "--yes", procedure, "grace=0s"])
            .run();
        assert_eq!(run.code, 2, "{procedure}: {}\n{}", run.stdout, run.stderr);
        let report = run.report();
        assert_eq!(report["status"], "critical", "{procedure}: {report}");
        let text = report.to_string();
        for part in [
            "refused, nothing was deleted",
            "10000 of the 10000 points of collection youtube_content",
            "matched nothing while both sides hold data (20 rows, 10000 points, 0 matched)",
            "wrong database",
            "max_delete=10000",
        ] {
            assert!(text.contains(part), "{procedure}: no `{part}` in {text}");
        }
        assert_eq!(env.points(), SCALED_POINTS, "{procedure} deleted points");
    }
    // A dry run says the same, and the text report names the way on.
    let dry = env
        .opsh()
        .args(["--dry-run", "check-data-fix", "grace=0s"])
        .run();
    assert_eq!(dry.code, 2, "{}\n{}", dry.stdout, dry.stderr);
    assert!(dry.stdout.contains("max_delete=10000"), "{}", dry.stdout);
    assert_eq!(env.snapshots(), 0);
    assert!(env.id_files().is_empty());
    // A max_delete below the count is refused too.
    let short = env
        .opsh()
        .args([
            "--json",
            "--yes",
            "clean-orphans",
            "grace=0s",
            "max_delete=9999",
        ])
        .run();
    assert_eq!(short.code, 2, "{}", short.stdout);
    assert!(
        short.stdout.contains("more than max_delete=9999 allows"),
        "{}",
        short.stdout
    );
    assert_eq!(env.points(), SCALED_POINTS);
    // The refusals are in the audit, as changing nothing.
    assert_eq!(
        env.db.scalar(
            "SELECT count(*) FROM opsh_audit WHERE op = 'integrity::fix' AND outcome LIKE 'refused, nothing was deleted%'"
        ),
        "5"
    );

    let run = env
        .opsh()
        .args([
            "--json",
            "--yes",
            "check-data-fix",
            "grace=0s",
            "max_delete=10000",
        ])
        .run();
    // The 20 rows stay without points: a warning.
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = run.report();
    assert_eq!(report["data"]["deleted"], 10_000, "{report}");
    assert_eq!(env.points(), 0);
    assert_eq!(env.snapshots(), 1);
    let files = env.id_files();
    assert_eq!(files.len(), 1);
    let (mode, ids) = &files[0];
    assert_eq!(*mode, 0o600);
    let expected: Vec<String> = (1..=SCALED_POINTS).map(|i| i.to_string()).collect();
    assert_eq!(ids, &expected);
    let fix = &report["data"]["fix"][0];
    let file = fix["ids_file"].as_str().unwrap();
    let snapshot = fix["snapshot"].as_str().unwrap();
    let outcome = env.db.scalar(
        "SELECT outcome FROM opsh_audit WHERE op = 'integrity::fix' AND NOT dry_run ORDER BY id DESC LIMIT 1",
    );
    assert!(
        outcome.starts_with("10000 orphan vectors deleted"),
        "{outcome}"
    );
    assert!(outcome.contains(file), "{outcome}");
    assert!(
        outcome.contains(&format!("snapshot {snapshot} of youtube_content")),
        "{outcome}"
    );
    // The README's way back: download the snapshot, restore it with backup::restore_qdrant.
    let back = tempfile::tempdir().unwrap();
    let file = back.path().join("before-delete.snapshot");
    let restored = env.eval(&format!(
        r#"qdrant::download_snapshot("youtube_content", "{snapshot}", "{f}"); backup::restore_qdrant("{f}", "youtube_content").points_after"#,
        f = file.display()
    ));
    assert_eq!(restored, SCALED_POINTS);
    assert_eq!(env.points(), SCALED_POINTS);
}

/// A normal day: 1% of the collection orphaned goes, as before the budget, without a snapshot
/// (100 is not above delete.snapshot_above) but with its id file.
#[test]
fn a_one_percent_orphan_case_proceeds_as_before() {
    let env = scaled("generate_series(1, 9900)");
    let run = env
        .opsh()
        .args(["--json", "--yes", "clean-orphans", "grace=0s"])
        .run();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.report()["data"]["deleted"], 100);
    assert_eq!(env.points(), 9_900);
    assert_eq!(env.snapshots(), 0);
    let expected: Vec<String> = (9901..=SCALED_POINTS).map(|i| i.to_string()).collect();
    assert_eq!(env.id_files(), vec![(0o600, expected)]);
}

/// qdrant::delete and delete_by_filter keep the same budget: past it nothing goes, and --yes
/// does not change that.
#[test]
fn qdrant_deletes_keep_the_budget() {
    let env = scaled("generate_series(1, 10000)");
    let run = env
        .opsh()
        .args([
            "--json",
            "--yes",
            "-e",
            r#"let ids = []; for i in 1..1502 { ids.push(i) } let k = (); try { qdrant::delete("youtube_content", ids) } catch (e) { k = [e.kind, e.message] } k"#,
        ])
        .run();
    run.code(0);
    let refused = run.json();
    assert_eq!(refused[0], "over_budget");
    assert!(
        refused[1].as_str().unwrap().contains("max_delete=1501"),
        "{refused}"
    );
    assert_eq!(env.points(), SCALED_POINTS);
    // Uncaught, it is a refusal (exit 3) naming the way on.
    let run = env
        .opsh()
        .args([
            "--yes",
            "-e",
            r#"qdrant::delete_by_filter("youtube_content", #{content_id: 1})"#,
        ])
        .run();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("max_delete=10000"), "{}", run.stderr);
    assert_eq!(env.points(), SCALED_POINTS);
    let d = env.eval(r#"let ids = []; for i in 1..1502 { ids.push(i) } qdrant::delete("youtube_content", ids, #{max_delete: 1501})"#);
    assert_eq!(d["deleted"], 1501);
    assert!(d["snapshot"].is_string(), "{d}");
    assert_eq!(env.points(), SCALED_POINTS - 1501);
    let f = env
        .eval(r#"qdrant::delete_by_filter("youtube_content", #{content_id: 1, max_delete: 8499})"#);
    assert_eq!(f["deleted"], 8499);
    assert_eq!(env.points(), 0);
    let files = env.id_files();
    assert_eq!(
        files.iter().map(|(_, ids)| ids.len()).sum::<usize>(),
        10_000
    );
}

/// A table whose rows a hostile filter would like to drop, delete or count up.
const VICTIM: &str = "CREATE TABLE victim (id text);
    INSERT INTO victim VALUES ('7'), ('42'), ('99');
    CREATE SEQUENCE victim_seq;
    CREATE FUNCTION empty_victim() RETURNS boolean LANGUAGE sql AS
        'DELETE FROM victim; SELECT true';";

fn victim_pair(filter: &str) -> String {
    format!(
        "[[integrity.pairs]]\nname = \"evil\"\ntable = \"victim\"\nid_column = \"id\"\n\
         collection = \"youtube_content\"\nfilter = {filter:?}\n"
    )
}

#[test]
fn a_filter_with_a_second_statement_is_refused_naming_the_pair_and_nothing_runs() {
    let env = setup();
    env.db.exec(VICTIM);
    for filter in [
        "true; DROP TABLE victim",
        "true); DROP TABLE victim; SELECT (1",
        // Balanced: on the simple query protocol this COPY, then the DROP, then a COPY ran.
        "true)) TO STDOUT; DROP TABLE victim; COPY (SELECT (1",
        // Out of the COPY's parentheses: a COPY TO PROGRAM would run a command as the server.
        "true)) TO PROGRAM 'rm -f /tmp/never' --",
    ] {
        let run = env
            .opsh()
            .file("opsh.toml", &victim_pair(filter))
            .args(["--config", "opsh.toml", "check-data"])
            .run();
        assert_eq!(run.code, 3, "{filter}: {}", run.stderr);
        assert!(
            run.stderr.contains("integrity pair `evil`: its filter and required must each be one SQL expression on table `victim`")
                && run.stderr.contains("fix setting integrity.pairs"),
            "{filter}: {}",
            run.stderr
        );
        assert_eq!(
            env.db.scalar("SELECT count(*) FROM victim"),
            "3",
            "{filter}"
        );
    }
}

#[test]
fn a_filter_that_writes_is_refused_by_the_read_only_transaction_and_the_run_goes_on() {
    let env = setup();
    env.db.exec(VICTIM);
    for filter in ["empty_victim()", "nextval('victim_seq') > 0"] {
        let code = r#"
            let c = integrity::check();
            let evil = c.pairs.filter(|p| p.name == "evil")[0];
            // The next queries of the same run, on the same pool, work.
            let n = db::query("SELECT count(*) AS n FROM victim")[0].n;
            let m = db::query("SELECT min(id) AS m FROM victim")[0].m;
            `${c.status} ${evil.compared} ${n} ${m}`
        "#;
        let run = env
            .opsh()
            .file("opsh.toml", &victim_pair(filter))
            .args(["--config", "opsh.toml", "-e", code])
            .run();
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, "critical false 3 42\n"),
            "{filter}: {}",
            run.stderr
        );
        let issues = env
            .opsh()
            .file("opsh.toml", &victim_pair(filter))
            .args([
                "--config",
                "opsh.toml",
                "--json",
                "-e",
                "integrity::check().issues",
            ])
            .run()
            .json();
        assert!(
            issues.to_string().contains("evil: comparison failed")
                && issues.to_string().contains("in a read-only transaction"),
            "{filter}: {issues}"
        );
    }
    assert_eq!(env.db.scalar("SELECT count(*) FROM victim"), "3");
    assert_eq!(
        env.db
            .scalar("SELECT last_value || ' ' || is_called FROM victim_seq"),
        "1 false"
    );
}

#[test]
fn a_pairs_names_are_quoted_identifiers_not_sql() {
    let env = setup();
    env.db.exec(VICTIM);
    let toml = "[[integrity.pairs]]\nname = \"evil\"\ntable = \"victim\\\"; DROP TABLE victim; --\"\n\
                id_column = \"id\"\ncollection = \"youtube_content\"\n";
    let run = env
        .opsh()
        .file("opsh.toml", toml)
        .args(["--config", "opsh.toml", "--json", "check-data"])
        .run();
    run.code(2);
    assert!(
        run.stdout
            .contains(r#"table `victim\"; DROP TABLE victim; --` of an integrity pair does not exist, but its collection holds 4 points"#),
        "{}",
        run.stdout
    );
    assert_eq!(env.db.scalar("SELECT count(*) FROM victim"), "3");
}

#[test]
fn list_functions_read_the_runs_last_check() {
    let env = setup();
    // A check of one renamed pair is what the list functions read for the rest of the run: its
    // orphans, and no `chunks` pair (a fresh check would have had one).
    let got = env.eval(
        r#"let c = integrity::check(#{pairs: [#{name: "renamed", table: "vector_mappings",
               id_column: "chunk_id", filter: "vector_collection = 'youtube_content'",
               collection: "youtube_content"}]});
           let chunks_listed = true;
           try { integrity::orphans("chunks"); } catch { chunks_listed = false; }
           [c.pairs[0].sample_orphans, integrity::orphans("renamed"), chunks_listed]"#,
    );
    assert!(!got[0].as_array().unwrap().is_empty(), "{got}");
    assert_eq!(got[0], got[1], "{got}");
    assert_eq!(got[2], json!(false), "{got}");
}
