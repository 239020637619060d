//! `opsh migrate` against the real PostgreSQL on each path a database can take: empty, made by
//! the deployment's own init.sql (migrations/deployment/init.sql, written from
//! deployment-schema.md), and migrated by the first opsh release (its sqlx migrations, kept in
//! tests/fixtures/opsh-0.1-migrations). Each must end with the same catalog. Then the bundled
//! procedures on a deployment before and after migrate, and on a database without the tables.

mod support;

use pretty_assertions::assert_eq;
use support::{Opsh, TestDb};

const MANAGED: &str =
    "('channels', 'content', 'transcripts', 'processing_jobs', 'vector_mappings')";

/// The managed tables' catalog as text lines: columns (position, type with length,
/// nullability, default), constraints with their definitions, indexes with their definitions
/// and validity, sequences.
fn catalog(db: &TestDb) -> Vec<String> {
    let sql = format!(
        "SELECT format('column %s.%s #%s %s(%s) nullable=%s default=%s', table_name, column_name,
                ordinal_position, data_type, character_maximum_length, is_nullable, column_default)
           FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name IN {MANAGED}
         UNION ALL
         SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
           FROM pg_constraint WHERE conrelid::regclass::text IN {MANAGED}
         UNION ALL
         SELECT format('index %s valid=%s', pg_get_indexdef(indexrelid), indisvalid AND indisready)
           FROM pg_index WHERE indrelid::regclass::text IN {MANAGED}
         UNION ALL
         SELECT format('sequence %s %s', sequence_name, data_type)
           FROM information_schema.sequences WHERE sequence_schema = 'public'"
    );
    let mut lines = db.lines(&sql);
    lines.sort();
    lines
}

/// Every row of every managed table as JSON, without opsh's two columns.
fn rows(db: &TestDb) -> Vec<String> {
    let mut out = Vec::new();
    for table in [
        "channels",
        "content",
        "transcripts",
        "processing_jobs",
        "vector_mappings",
    ] {
        out.push(format!(
            "{table}: {}",
            db.scalar(&format!(
                "SELECT COALESCE(jsonb_agg(to_jsonb(t) - 'retry_count' - 'updated_at' ORDER BY id), '[]')
                 FROM {table} t"
            ))
        ));
    }
    out
}

/// Rows in every table, as a deployment that has run for a while has them. `podcast` adds an
/// episode without a URL (the deployment allows it; the first opsh release did not).
fn seed(db: &TestDb, podcast: bool) {
    db.exec(
        "INSERT INTO content (channel_id, external_id, title, url, duration, publish_date, processed_at, vector_stored)
         VALUES (1, 'v1', 'First video', 'https://youtu.be/v1', 600, '2026-01-02', '2026-01-03', true),
                (2, 'v2', 'Second video', 'https://youtu.be/v2', 300, '2026-02-02', NULL, false);
         INSERT INTO transcripts (content_id, text, start_time, end_time, speaker, confidence, segment_order)
         VALUES (1, '안녕하세요', 0.0, 2.5, 'host', 0.93, 0), (1, '오늘은', 2.5, 4.0, 'host', 0.88, 1);
         INSERT INTO processing_jobs (job_type, content_id, status, started_at, created_at)
         VALUES ('extract_transcript', 1, 'completed', '2026-01-02 10:00', '2026-01-02 09:00'),
                ('vectorize', 2, 'processing', LOCALTIMESTAMP - interval '2 hours', LOCALTIMESTAMP - interval '3 hours'),
                ('process_audio', 2, 'pending', NULL, LOCALTIMESTAMP);
         INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text, chunk_order, chunk_metadata)
         VALUES (1, '6f1c2d34-8a8e-5b8e-9a51-7c1f0e2b9d10', 'youtube_content', '안녕하세요 오늘은', 0, '{\"lang\": \"ko\"}');",
    );
    if podcast {
        db.exec(
            "INSERT INTO content (channel_id, external_id, title, url, is_podcast)
             VALUES (1, 'ep1', 'Episode 1', NULL, true)",
        );
    }
}

fn migrate(db: &TestDb) -> serde_json::Value {
    let run = Opsh::new().db(db).args(["--json", "migrate"]).run();
    run.code(0);
    run.json()
}

fn names(changes: &serde_json::Value) -> Vec<String> {
    changes
        .as_array()
        .expect("a list of changes")
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// A database migrated by the first opsh release, exactly as it did it: sqlx's migrator on its
/// three migration files (which records their checksums in _sqlx_migrations).
fn first_release_migrate(db: &TestDb) {
    let url = db.url.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let dir = concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/opsh-0.1-migrations"
                );
                let migrator = sqlx::migrate::Migrator::new(std::path::Path::new(dir))
                    .await
                    .expect("the first release's migrations");
                let pool = sqlx::PgPool::connect(&url).await.expect("connect");
                migrator
                    .run(&pool)
                    .await
                    .expect("the first release migrates");
                pool.close().await;
            })
    })
    .join()
    .unwrap();
}

/// The reference: an empty database after `opsh migrate`.
fn reference() -> Vec<String> {
    let db = TestDb::empty();
    let first = migrate(&db);
    assert_eq!(
        names(&first["applied"]),
        [
            "table channels",
            "table content",
            "table transcripts",
            "table processing_jobs",
            "table vector_mappings",
            "table opsh_audit"
        ]
    );
    catalog(&db)
}

#[test]
fn from_nothing_migrate_makes_the_deployments_schema_plus_opshs_additions() {
    let db = TestDb::empty();
    migrate(&db);
    let made = catalog(&db);
    // Spot checks of what the first release got wrong, against deployment-schema.md.
    for line in [
        "column content.url #5 character varying(500) nullable=YES default=",
        "column content.language #12 character varying(10) nullable=YES default='ko'::character varying",
        "column vector_mappings.chunk_text #5 text() nullable=NO default=",
        "column processing_jobs.retry_count #10 integer() nullable=NO default=0",
        "column processing_jobs.updated_at #11 timestamp without time zone() nullable=YES default=CURRENT_TIMESTAMP",
        "constraint channels channels_url_key UNIQUE (url)",
        "constraint content content_channel_id_external_id_key UNIQUE (channel_id, external_id)",
        "constraint content content_channel_id_fkey FOREIGN KEY (channel_id) REFERENCES channels(id)",
        "index CREATE INDEX idx_channels_platform ON public.channels USING btree (platform) valid=t",
        "index CREATE INDEX idx_channels_active ON public.channels USING btree (is_active) valid=t",
        "index CREATE INDEX idx_content_processed ON public.content USING btree (processed_at) valid=t",
        "index CREATE INDEX idx_content_vector_stored ON public.content USING btree (vector_stored) valid=t",
        "index CREATE INDEX idx_transcripts_time ON public.transcripts USING btree (start_time, end_time) valid=t",
        "index CREATE INDEX idx_jobs_status ON public.processing_jobs USING btree (status) valid=t",
    ] {
        assert!(
            made.contains(&line.to_string()),
            "missing: {line}\n{made:#?}"
        );
    }
    assert!(
        !made.iter().any(|l| l.contains("idx_processing_jobs_status")
            || l.contains("idx_processing_jobs_content_id")
            || l.contains("idx_content_publish_date")),
        "{made:#?}"
    );
    // Nothing else than the deployment's catalog plus opsh's additions: the same as a
    // deployment's database after migrate (asserted below), and exactly:
    let deployment = TestDb::deployment();
    let mut expected = catalog(&deployment);
    expected.extend(opsh_additions());
    expected.sort();
    assert_eq!(made, expected);
    // sqlx's bookkeeping table is no longer made.
    assert_eq!(db.scalar("to_regclass('_sqlx_migrations') IS NULL"), "true");
}

/// The files of migrations/, in the order `opsh migrate` builds them: the deployment's init.sql,
/// then opsh's additions (migrations/opsh/NN_*.sql; orphan_candidates.sql is integrity::fix's,
/// made on first use).
fn migration_files() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut opsh: Vec<_> = std::fs::read_dir(root.join("opsh"))
        .expect("migrations/opsh")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.as_bytes()[0].is_ascii_digit() && n.ends_with(".sql"))
        })
        .collect();
    opsh.sort();
    std::iter::once(root.join("deployment/init.sql"))
        .chain(opsh)
        .collect()
}

#[test]
fn the_files_of_migrations_are_the_schema_that_migrate_makes() {
    // Loaded as they are (as psql or the sandbox's first start runs them) on an empty database.
    let db = TestDb::empty();
    let files = migration_files();
    assert_eq!(files.len(), 4, "{files:?}");
    for file in &files {
        db.exec(&std::fs::read_to_string(file).unwrap());
    }
    assert_eq!(catalog(&db), reference());
    // Nothing left for migrate to do.
    assert_eq!(migrate(&db)["applied"], serde_json::json!([]));
    // The sandbox's PostgreSQL and the tests start from the same file.
    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .unwrap();
    assert!(
        compose
            .contains("- ./migrations/deployment/init.sql:/docker-entrypoint-initdb.d/init.sql:ro"),
        "{compose}"
    );
    assert_eq!(
        std::fs::read_to_string(&files[0]).unwrap(),
        support::DEPLOYMENT_INIT
    );
}

#[test]
fn the_plan_follows_the_files_it_is_given() {
    use opsh::ops::db::schema::{self, files};
    // opsh's additions and one more file: a column and an index of it; and the deployment's
    // file with content.language defaulting to 'en'.
    let deployment = files::DEPLOYMENT.replace(
        "language VARCHAR(10) DEFAULT 'ko',\n    is_podcast",
        "language VARCHAR(10) DEFAULT 'en',\n    is_podcast",
    );
    assert_ne!(deployment, files::DEPLOYMENT);
    let mut opsh: Vec<&str> = files::OPSH.iter().map(|(_, sql)| *sql).collect();
    opsh.push(
        "ALTER TABLE content ADD COLUMN IF NOT EXISTS summary TEXT;
         CREATE INDEX IF NOT EXISTS idx_content_summary ON content (summary);",
    );
    let wanted = files::Wanted::parse(&deployment, &opsh);
    let audit = wanted.tables[5].ddl.clone();
    let db = TestDb::deployment();
    db.exec("ALTER TABLE content ALTER COLUMN language DROP DEFAULT");
    let url = db.url.clone();
    let plan = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                schema::plan_for(&mut conn, &wanted).await.unwrap()
            })
    })
    .join()
    .unwrap();
    let changes: Vec<String> = plan
        .changes
        .iter()
        .map(|c| format!("{} {}: {}", c.kind, c.name, c.statements.join("; ")))
        .collect();
    assert_eq!(
        changes,
        [
            format!("table opsh_audit: {audit}; CREATE INDEX IF NOT EXISTS opsh_audit_at ON opsh_audit (at)"),
            "column processing_jobs.retry_count: ALTER TABLE processing_jobs ADD COLUMN IF NOT EXISTS retry_count INTEGER NOT NULL DEFAULT 0".into(),
            "column processing_jobs.updated_at: ALTER TABLE processing_jobs ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP; ALTER TABLE processing_jobs ALTER COLUMN updated_at SET DEFAULT CURRENT_TIMESTAMP".into(),
            "column content.summary: ALTER TABLE content ADD COLUMN IF NOT EXISTS summary TEXT".into(),
            "default content.language: ALTER TABLE content ALTER COLUMN language SET DEFAULT 'en'".into(),
            "index idx_processing_jobs_stuck: CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_processing_jobs_stuck ON processing_jobs ((COALESCE(GREATEST(started_at, updated_at, completed_at), created_at))) WHERE status = 'processing'".into(),
            "index idx_vector_mappings_chunk_id: CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_vector_mappings_chunk_id ON vector_mappings (chunk_id)".into(),
            "index idx_content_summary: CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_content_summary ON content (summary)".into(),
        ]
    );
    assert_eq!(
        plan.changes[4].reason,
        "no default here, 'en' in the deployment"
    );
}

#[test]
fn a_column_added_to_opshs_own_table_by_a_later_file_is_planned_on_an_existing_one() {
    use opsh::ops::db::schema::{self, files};
    let mut opsh: Vec<&str> = files::OPSH.iter().map(|(_, sql)| *sql).collect();
    opsh.push("ALTER TABLE opsh_audit ADD COLUMN IF NOT EXISTS note TEXT;");
    let wanted = files::Wanted::parse(files::DEPLOYMENT, &opsh);
    let db = TestDb::new();
    let url = db.url.clone();
    let plan = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                let mine = schema::plan_for(&mut conn, &wanted).await.unwrap();
                // The embedded files: nothing to do on a migrated database.
                assert_eq!(schema::plan(&mut conn).await.unwrap().changes.len(), 0);
                mine
            })
    })
    .join()
    .unwrap();
    let changes: Vec<String> = plan
        .changes
        .iter()
        .map(|c| {
            format!(
                "{} {}: {}: {}",
                c.kind,
                c.name,
                c.reason,
                c.statements.join("; ")
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            "column opsh_audit.note: missing; opsh's own table was made by an earlier opsh without it: ALTER TABLE opsh_audit ADD COLUMN IF NOT EXISTS note TEXT"
        ]
    );
}

/// What opsh adds to the deployment's schema, as the catalog shows it.
fn opsh_additions() -> Vec<String> {
    [
        "sequence opsh_audit_id_seq bigint",
        "column processing_jobs.retry_count #10 integer() nullable=NO default=0",
        "column processing_jobs.updated_at #11 timestamp without time zone() nullable=YES default=CURRENT_TIMESTAMP",
        "index CREATE INDEX idx_processing_jobs_stuck ON public.processing_jobs USING btree (COALESCE(GREATEST(started_at, updated_at, completed_at), created_at)) WHERE ((status)::text = 'processing'::text) valid=t",
        "index CREATE INDEX idx_vector_mappings_chunk_id ON public.vector_mappings USING btree (chunk_id) valid=t",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn on_a_deployment_migrate_adds_only_opshs_additions_concurrently_and_keeps_every_row() {
    let db = TestDb::deployment();
    seed(&db, true);
    let before_rows = rows(&db);
    let before = catalog(&db);

    // --dry-run lists the plan and changes nothing.
    let dry = Opsh::new()
        .db(&db)
        .args(["--json", "--dry-run", "migrate"])
        .run();
    dry.code(0);
    let plan = dry.json();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["applied"], serde_json::json!([]));
    let expected = [
        "table opsh_audit",
        "column processing_jobs.retry_count",
        "column processing_jobs.updated_at",
        "index idx_processing_jobs_stuck",
        "index idx_vector_mappings_chunk_id",
    ];
    assert_eq!(names(&plan["pending"]), expected);
    assert_eq!(catalog(&db), before, "the dry run changed nothing");

    let done = migrate(&db);
    assert_eq!(done["dry_run"], false);
    assert_eq!(names(&done["applied"]), expected);
    assert_eq!(done["pending"], serde_json::json!([]));
    assert_eq!(done["warnings"], serde_json::json!([]));
    // Indexes on the existing (possibly large) tables are built without blocking writes.
    let statements: Vec<&str> = done["applied"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["statements"].as_array().unwrap())
        .map(|s| s.as_str().unwrap())
        // opsh_audit is a new, empty table: its index is made with it.
        .filter(|s| s.starts_with("CREATE INDEX") && !s.contains(" ON opsh_audit "))
        .collect();
    assert_eq!(statements.len(), 2);
    assert!(
        statements
            .iter()
            .all(|s| s.starts_with("CREATE INDEX CONCURRENTLY")),
        "{statements:?}"
    );

    // The catalog is the deployment's plus opsh's additions, nothing else; the same as from
    // nothing; every row is still there; existing jobs read retry_count 0 and no updated_at.
    let after = catalog(&db);
    let mut expected_catalog = before.clone();
    expected_catalog.extend(opsh_additions());
    expected_catalog.sort();
    assert_eq!(after, expected_catalog);
    assert_eq!(after, reference());
    assert_eq!(rows(&db), before_rows);
    assert_eq!(
        db.scalar("SELECT string_agg(retry_count || '/' || (updated_at IS NULL), ',' ORDER BY id) FROM processing_jobs"),
        "0/true,0/true,0/true"
    );

    // A second run changes nothing.
    let again = migrate(&db);
    assert_eq!(again["applied"], serde_json::json!([]));
    assert_eq!(catalog(&db), after);
    let dry = Opsh::new()
        .db(&db)
        .args(["--json", "--dry-run", "migrate"])
        .run();
    assert_eq!(dry.json()["pending"], serde_json::json!([]));
}

#[test]
fn migrate_never_adds_an_index_that_an_existing_one_already_is_by_definition() {
    let db = TestDb::deployment();
    // The site indexed chunk_id itself, under its own name; and named an index as opsh names
    // its stuck index but on something else.
    db.exec(
        "CREATE INDEX site_chunk_lookup ON vector_mappings (chunk_id);
         CREATE INDEX idx_processing_jobs_stuck ON processing_jobs (priority);",
    );
    let done = migrate(&db);
    assert_eq!(
        names(&done["applied"]),
        [
            "table opsh_audit",
            "column processing_jobs.retry_count",
            "column processing_jobs.updated_at",
            "index idx_processing_jobs_stuck",
        ]
    );
    let indexes = db.lines(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'vector_mappings'::regclass ORDER BY 1",
    );
    assert_eq!(
        indexes,
        [
            "idx_vector_content_id",
            "site_chunk_lookup",
            "vector_mappings_pkey"
        ]
    );
    // opsh's own index name with another definition (an earlier opsh build's) is rebuilt.
    assert_eq!(
        db.scalar("pg_get_indexdef('idx_processing_jobs_stuck'::regclass)"),
        "CREATE INDEX idx_processing_jobs_stuck ON public.processing_jobs USING btree (COALESCE(GREATEST(started_at, updated_at, completed_at), created_at)) WHERE ((status)::text = 'processing'::text)"
    );
    // No second index on processing_jobs(status) beside the deployment's idx_jobs_status.
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_index WHERE indrelid = 'processing_jobs'::regclass AND pg_get_indexdef(indexrelid) LIKE '%USING btree (status)'"),
        "1"
    );

    // A deployment index under a name the site chose is not duplicated either, and an index
    // name taken by a different definition is reported, not replaced.
    let db = TestDb::empty();
    db.exec(
        &support::DEPLOYMENT_INIT
            .replace("idx_jobs_type ON", "jobs_by_type ON")
            .replace(
                "idx_channels_active ON channels(is_active)",
                "idx_channels_active ON channels(name)",
            ),
    );
    let done = migrate(&db);
    assert!(
        !names(&done["applied"])
            .iter()
            .any(|n| n.contains("idx_jobs_type") || n.contains("idx_channels_active"))
    );
    assert_eq!(
        done["warnings"],
        serde_json::json!([
            "index idx_channels_active on channels is USING btree (name), not (is_active); left alone"
        ])
    );
}

#[test]
fn an_index_left_invalid_by_an_interrupted_concurrent_build_is_built_again() {
    let db = TestDb::deployment();
    migrate(&db);
    // As a CREATE INDEX CONCURRENTLY that was cancelled half-way leaves it.
    db.exec("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx_processing_jobs_stuck'::regclass");
    let done = migrate(&db);
    assert_eq!(names(&done["applied"]), ["index idx_processing_jobs_stuck"]);
    assert_eq!(
        done["applied"][0]["statements"],
        serde_json::json!([
            "DROP INDEX CONCURRENTLY IF EXISTS public.idx_processing_jobs_stuck",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_processing_jobs_stuck ON processing_jobs ((COALESCE(GREATEST(started_at, updated_at, completed_at), created_at))) WHERE status = 'processing'"
        ])
    );
    assert_eq!(catalog(&db), reference());
}

#[test]
fn a_database_the_first_release_made_from_nothing_migrates_to_the_same_schema() {
    let db = TestDb::empty();
    first_release_migrate(&db);
    db.exec(
        "INSERT INTO channels (name, url, platform, category, language)
         VALUES ('Finance channel', 'https://www.youtube.com/@finance-ko', 'youtube', 'finance', 'ko'),
                ('Tech channel', 'https://www.youtube.com/@tech-ko', 'youtube', 'tech', 'ko')",
    );
    seed(&db, false);
    let before_rows = rows(&db);
    let legacy = db.lines(
        "SELECT version || ' ' || encode(checksum, 'hex') FROM _sqlx_migrations ORDER BY version",
    );
    assert_eq!(legacy.len(), 3);
    assert!(
        legacy[0].ends_with(opsh::ops::db::schema::LEGACY_CHECKSUM),
        "{legacy:?}"
    );

    let done = migrate(&db);
    assert_eq!(
        names(&done["applied"]),
        [
            "table opsh_audit",
            "nullability content.url",
            "default content.language",
            "nullability vector_mappings.chunk_text",
            "index name idx_jobs_status",
            "extra index idx_processing_jobs_content_id",
            "index name idx_vector_content_id",
            "extra index idx_content_publish_date",
            "index idx_channels_platform",
            "index idx_channels_active",
            "index idx_content_processed",
            "index idx_content_vector_stored",
            "index idx_transcripts_time",
            "index idx_jobs_type",
        ]
    );
    assert_eq!(catalog(&db), reference());
    assert_eq!(rows(&db), before_rows);
    assert_eq!(migrate(&db)["applied"], serde_json::json!([]));
    // Its bookkeeping stays: the first release's binary, if still run somewhere, finds its
    // migrations applied with their checksums and changes nothing.
    first_release_migrate(&db);
    assert_eq!(catalog(&db), reference());
}

#[test]
fn a_deployment_the_first_release_migrated_loses_its_duplicate_indexes() {
    let db = TestDb::deployment();
    seed(&db, true);
    first_release_migrate(&db);
    let before_rows = rows(&db);
    // What the first release did to a deployment: a second index on processing_jobs(status)
    // and on vector_mappings(content_id), and two the deployment does not have.
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_class WHERE relname IN ('idx_processing_jobs_status', 'idx_vector_mappings_content_id', 'idx_processing_jobs_content_id', 'idx_content_publish_date')"),
        "4"
    );
    let done = migrate(&db);
    assert_eq!(
        names(&done["applied"]),
        [
            "table opsh_audit",
            "extra index idx_processing_jobs_status",
            "extra index idx_processing_jobs_content_id",
            "extra index idx_vector_mappings_content_id",
            "extra index idx_content_publish_date",
        ]
    );
    assert_eq!(
        done["applied"][1]["reason"],
        "made by the first opsh release; duplicates idx_jobs_status"
    );
    assert_eq!(
        done["applied"][1]["statements"],
        serde_json::json!(["DROP INDEX CONCURRENTLY IF EXISTS public.idx_processing_jobs_status"])
    );
    assert_eq!(catalog(&db), reference());
    assert_eq!(rows(&db), before_rows);
    assert_eq!(migrate(&db)["applied"], serde_json::json!([]));
}

#[test]
fn a_null_chunk_text_keeps_the_column_nullable_with_a_warning() {
    let db = TestDb::empty();
    first_release_migrate(&db);
    db.exec(
        "INSERT INTO vector_mappings (chunk_id, vector_collection, chunk_text) VALUES ('a', 'youtube_content', NULL)",
    );
    let done = migrate(&db);
    assert!(
        !names(&done["applied"]).contains(&"nullability vector_mappings.chunk_text".to_string())
    );
    assert_eq!(
        done["warnings"],
        serde_json::json!([
            "vector_mappings.chunk_text is nullable here (NOT NULL in the deployment) and some rows hold NULL; left nullable: fill or delete those rows, then run `opsh migrate` again"
        ])
    );
    assert_eq!(db.scalar("SELECT count(*) FROM vector_mappings"), "1");
    db.exec("UPDATE vector_mappings SET chunk_text = '' WHERE chunk_text IS NULL");
    assert_eq!(
        names(&migrate(&db)["applied"]),
        ["nullability vector_mappings.chunk_text"]
    );
    assert_eq!(catalog(&db), reference());
}

/// Runs statements in a transaction on a connection of its own, held open until dropped (a
/// worker's long transaction, another migrate).
struct Held(
    Option<std::sync::mpsc::Sender<()>>,
    Option<std::thread::JoinHandle<()>>,
);

fn hold(db: &TestDb, sql: &str) -> Held {
    let (url, sql) = (db.url.clone(), sql.to_string());
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::{Connection, Executor};
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                conn.execute("BEGIN").await.unwrap();
                conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
                ready_tx.send(()).unwrap();
                let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
                let _ = conn.close().await;
            })
    });
    ready.recv().expect("the holding session started");
    Held(Some(stop), Some(thread))
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.0.take());
        if let Some(thread) = self.1.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn migrate_gives_up_on_a_busy_table_instead_of_stalling_the_workers_and_runs_alone() {
    let db = TestDb::deployment();
    // A long transaction that read processing_jobs: ALTER TABLE would wait for it, and every
    // worker's statement would queue behind the ALTER.
    let reader = hold(&db, "SELECT count(*) FROM processing_jobs");
    let run = Opsh::new().db(&db).args(["migrate"]).run();
    run.code(3);
    assert!(
        run.stderr.contains(
            "column processing_jobs.retry_count: canceling statement due to lock timeout (waited 10s for a lock that a running transaction holds; try again when it has ended)"
        ),
        "{}",
        run.stderr
    );
    drop(reader);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_attribute WHERE attrelid = 'processing_jobs'::regclass AND attname IN ('retry_count', 'updated_at')"),
        "0"
    );

    let other = hold(
        &db,
        "SELECT pg_advisory_lock(hashtextextended('opsh migrate', 0))",
    );
    let run = Opsh::new().db(&db).args(["migrate"]).run();
    run.code(3);
    assert!(
        run.stderr.contains(
            "another `opsh migrate` is running on this database; try again when it has finished"
        ),
        "{}",
        run.stderr
    );
    drop(other);
    assert_eq!(names(&migrate(&db)["applied"]).len(), 4);
}

// --- The bundled procedures on a deployment never migrated, after migrate, and without tables.

const NOT_MIGRATED: &str = " WARN processing_jobs has no retry_count and no updated_at (the deployment's init.sql does not create them): read as 0 and NULL; `opsh migrate` adds them\n";

const NO_RETRY_COUNT: &str = "processing_jobs has no column retry_count (the deployment's init.sql does not create it), and resetting stuck jobs counts their retries so that max_retries stops a job that keeps getting stuck; run `opsh migrate` to add it (existing jobs start at 0)";

#[test]
fn the_procedures_work_on_a_deployment_before_and_after_migrate() {
    let db = TestDb::deployment();
    seed(&db, true);
    let check_jobs = "Job queue\n✅ database: connected\n✅ jobs: 3 in all: pending 1, processing 1, completed 1, failed 0\n\
✅ extract_transcript: pending 0, processing 0, completed 1, failed 0\n\
✅ process_audio: pending 1, processing 0, completed 0, failed 0\n\
✅ vectorize: pending 0, processing 1, completed 0, failed 0\n\
✅ oldest processing job: job 2 (vectorize) for 2h\n⚠️ stuck jobs: 1 processing for more than 1h\n\
Issues:\n  - 1 jobs stuck in processing; reset them with: opsh reset-stuck-jobs older_than=1h\nStatus: ⚠️ warning\n";

    // Before: reads work, with one warning that migrate adds what is missing.
    Opsh::new()
        .db(&db)
        .args(["check-jobs"])
        .run()
        .expect(1, check_jobs, NOT_MIGRATED);
    let run = Opsh::new()
        .db(&db)
        .args(["--json", "-e", "jobs::list(#{status: \"processing\"})[0]"])
        .run();
    run.code(0);
    assert_eq!(run.json()["retry_count"], 0);
    assert_eq!(run.json()["updated_at"], serde_json::Value::Null);
    assert_eq!(run.stderr, NOT_MIGRATED);
    // A write that needs retry_count says so, also as a dry run; nothing changes.
    for args in [
        &["reset-stuck-jobs"][..],
        &["reset-stuck-jobs", "--dry-run"],
    ] {
        let run = Opsh::new().db(&db).args(args).run();
        run.code(3);
        let address = db.url.replace("youtube_pass", "***");
        assert!(
            run.stderr.starts_with(&format!(
                "{NOT_MIGRATED}opsh: error: jobs::reset_stuck: postgres at {address}: {NO_RETRY_COUNT}\n"
            )),
            "{}",
            run.stderr
        );
    }
    // Scripts can tell this failure from others.
    Opsh::new()
        .db(&db)
        .args([
            "-e",
            "let k = (); try { jobs::reset_stuck(#{}) } catch (e) { k = e.kind }; k",
        ])
        .run()
        .expect(0, "missing_schema\n", NOT_MIGRATED);
    assert_eq!(
        db.scalar("SELECT status FROM processing_jobs WHERE id = 2"),
        "processing"
    );
    // Writes that only stamp updated_at work without it.
    Opsh::new()
        .db(&db)
        .args([
            "--yes",
            "-e",
            "jobs::retry_failed(#{}).retried + jobs::reset_processing(#{reason: \"test\"}).reset",
        ])
        .run()
        .expect(
            0,
            "1\n",
            &format!("{NOT_MIGRATED} INFO jobs::reset_processing: reset 1 processing jobs to pending? (confirmed by --yes)\n"),
        );
    db.exec("UPDATE processing_jobs SET status = 'processing', error_message = NULL, started_at = LOCALTIMESTAMP - interval '2 hours' WHERE id = 2");
    let stats = Opsh::new().db(&db).args(["db-stats"]).run();
    stats.code(1);
    assert!(
        stats.stdout.contains(
            "⚠️ missing column: processing_jobs.retry_count: run `opsh migrate`\n\
⚠️ missing column: processing_jobs.updated_at: run `opsh migrate`\n\
⚠️ missing index: idx_processing_jobs_stuck: run `opsh migrate`\n\
⚠️ missing index: idx_vector_mappings_chunk_id: run `opsh migrate`\nStatus: ⚠️ warning\n"
        ),
        "{}",
        stats.stdout
    );
    psql_stand_in(&db);

    // After: the same reports without the warning, and the reset works.
    migrate(&db);
    Opsh::new()
        .db(&db)
        .args(["check-jobs"])
        .run()
        .expect(1, check_jobs, "");
    let run = Opsh::new().db(&db).args(["reset-stuck-jobs"]).run();
    run.code(0);
    assert!(
        run.stdout
            .contains("✅ reset: 1 jobs processing for more than 1h are pending again\n"),
        "{}",
        run.stdout
    );
    assert_eq!(
        db.scalar("SELECT status || '/' || retry_count || '/' || (updated_at IS NOT NULL) FROM processing_jobs WHERE id = 2"),
        "pending/1/true"
    );
    let stats = Opsh::new().db(&db).args(["db-stats"]).run();
    stats.code(0);
    assert!(!stats.stdout.contains("missing"), "{}", stats.stdout);
    psql_stand_in(&db);
}

/// db-shell needs no schema: a stand-in psql shows that it runs.
fn psql_stand_in(db: &TestDb) {
    Opsh::new()
        .db(db)
        .stand_in("psql", "#!/bin/sh\necho \"psql $*\"\n")
        .args(["db-shell"])
        .run()
        .expect(
            0,
            &format!(
                "psql --host 127.0.0.1 --port {} --username youtube_user --dbname {}\n",
                port(db),
                db.name
            ),
            "",
        );
}

fn port(db: &TestDb) -> u16 {
    url::Url::parse(&db.url).unwrap().port().unwrap()
}

#[test]
fn without_the_tables_every_procedure_says_run_opsh_migrate() {
    let db = TestDb::empty();
    let address = db.url.replace("youtube_pass", "***");
    let missing = format!(
        "postgres at {address}: database {} has no table processing_jobs: run `opsh migrate` to create the deployment's schema, or point postgres.url at the deployment's database",
        db.name
    );
    Opsh::new().db(&db).args(["check-jobs"]).run().expect(
        2,
        &format!("Job queue\n❌ database: jobs::counts: {missing}\nStatus: ❌ critical\n"),
        "",
    );
    for args in [
        &["reset-stuck-jobs"][..],
        &["reset-stuck-jobs", "--dry-run"],
    ] {
        let run = Opsh::new().db(&db).args(args).run();
        run.code(3);
        assert!(
            run.stderr
                .contains(&format!("jobs::reset_stuck: {missing}")),
            "{}",
            run.stderr
        );
    }
    let stats = Opsh::new().db(&db).args(["db-stats"]).run();
    stats.code(1);
    assert!(
        stats.stdout.ends_with(
            "⚠️ missing table: channels: run `opsh migrate`\n⚠️ missing table: content: run `opsh migrate`\n\
⚠️ missing table: transcripts: run `opsh migrate`\n⚠️ missing table: processing_jobs: run `opsh migrate`\n\
⚠️ missing table: vector_mappings: run `opsh migrate`\n⚠️ missing table: opsh_audit: run `opsh migrate`\n\
Status: ⚠️ warning\n"
        ),
        "{}",
        stats.stdout
    );
    psql_stand_in(&db);
    // Nothing was created behind the operator's back.
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"),
        "0"
    );
}

#[test]
fn after_db_migrate_in_the_same_run_the_jobs_functions_use_the_new_columns() {
    let db = TestDb::deployment();
    seed(&db, false);
    Opsh::new()
        .db(&db)
        .args([
            "-e",
            "let before = jobs::list(#{}).len(); db::migrate(); before + jobs::reset_stuck(#{older_than: \"1h\"}).reset",
        ])
        .run()
        .code(0)
        .expect(0, "4\n", &format!("{NOT_MIGRATED}{}", [
            " INFO migrate: table opsh_audit\n",
            " INFO migrate: column processing_jobs.retry_count\n",
            " INFO migrate: column processing_jobs.updated_at\n",
            " INFO migrate: index idx_processing_jobs_stuck\n",
            " INFO migrate: index idx_vector_mappings_chunk_id\n",
            " INFO reset 1 stuck jobs to pending, 0 to failed\n",
        ].concat()));
}
