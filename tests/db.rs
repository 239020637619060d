//! db:: against the real PostgreSQL: type mapping, read-only queries, bound parameters, the
//! schema check, migrations on an existing deployment, advisory locks.

mod support;

use std::io::{BufRead, BufReader};

use support::{Opsh, TestDb};

fn eval(db: &TestDb, code: &str) -> support::Run {
    Opsh::new().db(db).args(["--json", "-e", code]).run()
}

#[test]
fn query_maps_the_common_postgresql_types() {
    let db = TestDb::new();
    let sql = r#"SELECT 1::int2 AS i2, 2::int4 AS i4, 3::int8 AS i8, 1.5::float4 AS f4, 2.25::float8 AS f8,
        12.50::numeric AS num, 7::numeric AS whole, sum(x) AS summed, 'txt'::text AS t, 'vc'::varchar AS vc,
        true AS b, '2026-11-26 02:00:00'::timestamp AS ts, '2026-11-26 02:00:00+00'::timestamptz AS tstz,
        '2026-11-26'::date AS d, '90 minutes'::interval AS iv,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '{"k": [1, "v"]}'::jsonb AS j, '{"n": null}'::json AS js,
        ARRAY[1, 2]::int4[] AS ai, ARRAY['x', NULL]::text[] AS at, NULL::int AS nothing
        FROM generate_series(1, 3) AS x"#;
    let code = format!("db::query({sql:?})[0]");
    let run = eval(&db, &code);
    run.code(0);
    assert_eq!(
        run.json(),
        serde_json::json!({
            "i2": 1, "i4": 2, "i8": 3, "f4": 1.5, "f8": 2.25, "num": 12.5, "whole": 7, "summed": 6,
            "t": "txt", "vc": "vc", "b": true, "ts": "2026-11-26T02:00:00", "tstz": "2026-11-26T02:00:00Z",
            "d": "2026-11-26", "iv": 5400.0, "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "j": {"k": [1, "v"]}, "js": {"n": null}, "ai": [1, 2], "at": ["x", null], "nothing": null
        })
    );
}

#[test]
fn query_binds_parameters_instead_of_splicing_them() {
    let db = TestDb::new();
    db.exec("INSERT INTO channels (name, url, platform) VALUES ('a', 'https://a', 'youtube'), ('b''; DROP TABLE channels; --', 'https://b', 'youtube')");
    let run = eval(
        &db,
        r#"db::query("SELECT name FROM channels WHERE name = $1", ["b'; DROP TABLE channels; --"]).len()"#,
    );
    run.expect(0, "1\n", "");
    let run = eval(
        &db,
        r#"db::query("SELECT count(*) AS n FROM channels WHERE id = ANY($1)", [[1, 2, 99]])[0].n"#,
    );
    run.expect(0, "2\n", "");
    let run = eval(
        &db,
        r#"db::query("SELECT $1::text IS NULL AS unset, $2::float8 * 2 AS f, $3::bool AS b", [(), 1.25, true])[0]"#,
    );
    assert_eq!(
        run.json(),
        serde_json::json!({"unset": true, "f": 2.5, "b": true})
    );
}

#[test]
fn query_is_read_only() {
    let db = TestDb::new();
    let run = Opsh::new()
        .db(&db)
        .args(["-e", "db::query(\"DELETE FROM channels\")"])
        .run();
    run.code(3);
    assert!(
        run.stderr.contains("cannot execute DELETE in a read-only transaction (db::query runs in a read-only transaction)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_wrong_parameter_type_is_a_clear_error() {
    let db = TestDb::new();
    let run = Opsh::new()
        .db(&db)
        .args([
            "-e",
            "db::query(\"SELECT * FROM processing_jobs WHERE created_at > $1\", [\"2026-01-01\"])",
        ])
        .run();
    run.code(3);
    assert!(
        run.stderr
            .contains("operator does not exist: timestamp without time zone > text"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cast in SQL, e.g. $1::timestamp"),
        "{}",
        run.stderr
    );
    let run = Opsh::new()
        .db(&db)
        .args(["-e", "db::query(\"SELECT $1\", [#{a: 1}.keys()[0], || 1])"])
        .run();
    run.code(3);
    assert!(
        run.stderr.contains("parameter $2: a Fn cannot be bound"),
        "{}",
        run.stderr
    );
    let run = Opsh::new()
        .db(&db)
        .args(["-e", "db::query(\"SELECT '(1,2)'::point AS m\")"])
        .run();
    run.code(3);
    assert!(
        run.stderr.contains(
            "column `m` has type POINT, which opsh does not map; cast it in SQL, e.g. m::text"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn schema_check_names_what_is_missing_and_how_to_fix_it() {
    let db = TestDb::empty();
    db.exec("CREATE TABLE processing_jobs (id serial PRIMARY KEY, job_type varchar(50), content_id int, status varchar(20),
             error_message text, started_at timestamp, completed_at timestamp, created_at timestamp)");
    let run = eval(&db, "db::schema_check()");
    run.code(0);
    let json = run.json();
    assert_eq!(json["ok"], false);
    let missing: Vec<String> = json["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {} ({})",
                m["kind"].as_str().unwrap(),
                m["name"].as_str().unwrap(),
                m["fix"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        missing,
        [
            "table channels (run `opsh migrate`)",
            "table content (run `opsh migrate`)",
            "table transcripts (run `opsh migrate`)",
            "table vector_mappings (run `opsh migrate`)",
            // opsh's own audit table.
            "table opsh_audit (run `opsh migrate`)",
            "column processing_jobs.retry_count (run `opsh migrate`)",
            "column processing_jobs.updated_at (run `opsh migrate`)",
            "index idx_jobs_status (run `opsh migrate`)",
            "index idx_jobs_type (run `opsh migrate`)",
            "index idx_processing_jobs_stuck (run `opsh migrate`)",
            // A deployment column that migrate does not add to an existing table.
            "column processing_jobs.priority (add it by hand as deployment-schema.md defines processing_jobs.priority)",
        ]
    );
}

#[test]
fn migrate_is_safe_on_an_existing_deployment_and_dry_run_lists_what_would_run() {
    // The deployment's own init.sql ran long ago; its data must survive.
    let db = TestDb::deployment();
    db.exec("INSERT INTO processing_jobs (job_type, status, started_at, created_at) VALUES ('vectorize', 'processing', LOCALTIMESTAMP - interval '2 hours', LOCALTIMESTAMP - interval '3 hours')");

    let dry = Opsh::new()
        .db(&db)
        .args(["--dry-run", "--json", "migrate"])
        .run();
    dry.code(0);
    let json = dry.json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["applied"], serde_json::json!([]));
    // retry_count, updated_at, the stuck-job index, the chunk_id index, opsh_audit.
    assert_eq!(json["pending"].as_array().unwrap().len(), 5);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_attribute WHERE attrelid = 'processing_jobs'::regclass AND attname = 'retry_count'"),
        "0",
        "dry run changed nothing"
    );

    Opsh::new().db(&db).args(["migrate"]).run().code(0);
    // The existing job kept its data, got retry_count 0 and no made-up updated_at.
    assert_eq!(db.scalar("SELECT status || '/' || retry_count || '/' || (updated_at IS NULL) FROM processing_jobs"), "processing/0/true");
    let again = Opsh::new().db(&db).args(["--json", "migrate"]).run();
    assert_eq!(again.json()["applied"], serde_json::json!([]));
    eval(&db, "db::schema_check().ok").expect(0, "true\n", "");
    // The stuck job is found through the new index's expression.
    eval(&db, "jobs::stuck(#{older_than: \"1h\"}).len()").expect(0, "1\n", "");
}

#[test]
fn tables_and_size_report_the_schema() {
    let db = TestDb::new();
    db.exec("INSERT INTO channels (name, url, platform) SELECT 'c' || i, 'https://c/' || i, 'youtube' FROM generate_series(1, 25) i");
    let run = eval(
        &db,
        "db::tables(#{exact: true}).filter(|t| t.name == \"channels\")[0]",
    );
    let json = run.json();
    assert_eq!(json["exact_rows"], 25);
    assert!(json["total_bytes"].as_i64().unwrap() > 0);
    assert!(json["total_size"].as_str().unwrap().ends_with("kB"));
    let size = eval(&db, "db::size()").json();
    assert_eq!(size["database"], db.name.as_str());
    assert!(size["bytes"].as_i64().unwrap() > 1_000_000);
}

#[test]
fn an_advisory_lock_keeps_a_second_run_out() {
    let db = TestDb::new();
    let holder = Opsh::new().db(&db).args([
        "-e",
        "db::try_lock(\"nightly\"); print(\"started\"); sleep(30)",
    ]);
    let mut child = holder.spawn();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    eval(&db, "db::try_lock(\"nightly\")").expect(0, "false\n", "");
    eval(&db, "db::try_lock(\"other\")").expect(0, "true\n", "");
    child.kill().unwrap();
    child.wait().unwrap();
    // The lock ends with the session that held it.
    let mut free = String::new();
    for _ in 0..50 {
        free = eval(&db, "db::try_lock(\"nightly\")").stdout;
        if free == "true\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(free, "true\n");
}
