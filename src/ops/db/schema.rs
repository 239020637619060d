//! The managed schema and `opsh migrate`.
//!
//! The schema opsh works on is the deployment's: its own init.sql makes it, and sites change it
//! on their own (an index here, a column there). So `migrate` keeps no version history: it reads
//! the catalog, plans what the database lacks or has wrong compared with the deployment's schema
//! (../shared/deployment-schema.md) plus opsh's additions, and applies exactly that plan. A
//! database that has everything plans nothing, so a second run is a no-op, and `--dry-run` shows
//! the very plan a real run would apply.
//!
//! - A missing table is created as the deployment's init.sql creates it (same constraint and
//!   index names), all missing tables in one transaction. They are new and empty, so their
//!   indexes are built there too, without CONCURRENTLY.
//! - An index on a table that already existed is built `CREATE INDEX CONCURRENTLY`, each on its
//!   own outside any transaction, so the workers' writes go on meanwhile. No index is added when
//!   a valid index of the same definition (columns or expression, predicate, method) exists under
//!   any name: definitions are compared as `pg_get_indexdef` prints them, the wanted one taken
//!   from the same index built on an empty temporary copy of the table. An index that an
//!   interrupted CONCURRENTLY build left invalid is dropped and built again.
//! - Column changes are metadata-only ALTERs, each in a short transaction under a lock_timeout,
//!   so a long-running transaction makes migrate fail fast instead of queueing every worker
//!   behind its lock. A column made NOT NULL is first proven by a CHECK constraint validated
//!   without blocking writes.
//! - The first opsh release migrated with sqlx (`_sqlx_migrations`, versions 20250101000000-2).
//!   Its schema differed from the deployment's (content.url NOT NULL, content.language without
//!   default, vector_mappings.chunk_text nullable, deployment indexes missing or under its own
//!   names, two indexes the deployment does not have). Where that release's own first migration
//!   is recorded (its version and checksum), the indexes it made under its own names are renamed
//!   to the deployment's names or, when redundant or not part of the schema, dropped
//!   CONCURRENTLY; the column differences are corrected on any database. `_sqlx_migrations` is
//!   left as it is: nothing reads it any more, and an old opsh binary still sees its migrations
//!   applied and changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use serde::Serialize;
use sqlx::{Acquire, AssertSqlSafe, PgConnection, Row};

/// A table of the deployment, created exactly as its init.sql does.
pub struct Table {
    name: &'static str,
    ddl: &'static str,
}

/// In dependency order (foreign keys point to earlier tables).
const TABLES: &[Table] = &[
    Table {
        name: "channels",
        ddl: "CREATE TABLE IF NOT EXISTS channels (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    url VARCHAR(500) UNIQUE NOT NULL,
    platform VARCHAR(50) NOT NULL,
    category VARCHAR(100),
    description TEXT,
    language VARCHAR(10) DEFAULT 'ko',
    is_active BOOLEAN DEFAULT true,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)",
    },
    Table {
        name: "content",
        ddl: "CREATE TABLE IF NOT EXISTS content (
    id SERIAL PRIMARY KEY,
    channel_id INTEGER REFERENCES channels(id),
    external_id VARCHAR(255) NOT NULL,
    title VARCHAR(500) NOT NULL,
    url VARCHAR(500),
    description TEXT,
    duration INTEGER,
    publish_date TIMESTAMP,
    views_count INTEGER DEFAULT 0,
    transcript_available BOOLEAN DEFAULT false,
    transcript_type VARCHAR(50),
    language VARCHAR(10) DEFAULT 'ko',
    is_podcast BOOLEAN DEFAULT false,
    processed_at TIMESTAMP,
    vector_stored BOOLEAN DEFAULT false,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    UNIQUE(channel_id, external_id)
)",
    },
    Table {
        name: "transcripts",
        ddl: "CREATE TABLE IF NOT EXISTS transcripts (
    id SERIAL PRIMARY KEY,
    content_id INTEGER REFERENCES content(id),
    text TEXT NOT NULL,
    start_time FLOAT,
    end_time FLOAT,
    speaker VARCHAR(100),
    confidence FLOAT,
    segment_order INTEGER,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)",
    },
    Table {
        name: "processing_jobs",
        ddl: "CREATE TABLE IF NOT EXISTS processing_jobs (
    id SERIAL PRIMARY KEY,
    job_type VARCHAR(50) NOT NULL,
    content_id INTEGER REFERENCES content(id),
    status VARCHAR(20) DEFAULT 'pending',
    priority INTEGER DEFAULT 0,
    error_message TEXT,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)",
    },
    Table {
        name: "vector_mappings",
        ddl: "CREATE TABLE IF NOT EXISTS vector_mappings (
    id SERIAL PRIMARY KEY,
    content_id INTEGER REFERENCES content(id),
    chunk_id VARCHAR(100) NOT NULL,
    vector_collection VARCHAR(100) NOT NULL,
    chunk_text TEXT NOT NULL,
    chunk_order INTEGER,
    chunk_metadata JSONB,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)",
    },
];

/// opsh's own tables: its audit of destructive actions (see [`crate::ops::audit`]). Made by
/// `opsh migrate` beside the deployment's; nothing of the deployment reads or writes them.
pub const OPSH_TABLES: &[Table] = &[Table {
    name: "opsh_audit",
    ddl: "CREATE TABLE IF NOT EXISTS opsh_audit (
    id BIGSERIAL PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    at TIMESTAMPTZ NOT NULL,
    os_user TEXT NOT NULL,
    host TEXT NOT NULL,
    procedure TEXT,
    arguments JSONB NOT NULL DEFAULT '{}',
    target TEXT,
    op TEXT NOT NULL,
    summary TEXT NOT NULL,
    count BIGINT NOT NULL,
    dry_run BOOLEAN NOT NULL,
    outcome TEXT NOT NULL,
    run_started TIMESTAMPTZ,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
)",
}];

/// The tables opsh manages, in dependency order.
pub fn table_names() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|t| t.name)
}

/// opsh's own columns. The deployment's workers read and write both, but its init.sql never
/// creates them. ADD COLUMN … NOT NULL DEFAULT 0 changes only the catalog (no table rewrite).
/// updated_at gets no value for existing rows (stamping them "now" would make every stuck job
/// look freshly touched); only new rows get the default, hence two statements.
struct Column {
    table: &'static str,
    name: &'static str,
    add: &'static [&'static str],
}

const OPSH_COLUMNS: &[Column] = &[
    Column {
        table: "processing_jobs",
        name: "retry_count",
        add: &[
            "ALTER TABLE processing_jobs ADD COLUMN IF NOT EXISTS retry_count INTEGER NOT NULL DEFAULT 0",
        ],
    },
    Column {
        table: "processing_jobs",
        name: "updated_at",
        add: &[
            "ALTER TABLE processing_jobs ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP",
            "ALTER TABLE processing_jobs ALTER COLUMN updated_at SET DEFAULT CURRENT_TIMESTAMP",
        ],
    },
];

/// An index: its name, table, the columns it reads and its definition after `ON table`.
struct Index {
    name: &'static str,
    table: &'static str,
    columns: &'static [&'static str],
    def: &'static str,
}

/// The deployment's indexes, then opsh's additions.
#[rustfmt::skip]
const INDEXES: &[Index] = &[
    Index { name: "idx_channels_platform", table: "channels", columns: &["platform"], def: "(platform)" },
    Index { name: "idx_channels_active", table: "channels", columns: &["is_active"], def: "(is_active)" },
    Index { name: "idx_content_channel_id", table: "content", columns: &["channel_id"], def: "(channel_id)" },
    Index { name: "idx_content_processed", table: "content", columns: &["processed_at"], def: "(processed_at)" },
    Index { name: "idx_content_vector_stored", table: "content", columns: &["vector_stored"], def: "(vector_stored)" },
    Index { name: "idx_transcripts_content_id", table: "transcripts", columns: &["content_id"], def: "(content_id)" },
    Index { name: "idx_transcripts_time", table: "transcripts", columns: &["start_time", "end_time"], def: "(start_time, end_time)" },
    Index { name: "idx_jobs_status", table: "processing_jobs", columns: &["status"], def: "(status)" },
    Index { name: "idx_jobs_type", table: "processing_jobs", columns: &["job_type"], def: "(job_type)" },
    Index { name: "idx_vector_content_id", table: "vector_mappings", columns: &["content_id"], def: "(content_id)" },
    // opsh: the stuck-job query (jobs::stuck, jobs::reset_stuck) filters processing jobs by their
    // last sign of life (jobs::LAST_ACTIVITY); this partial index holds only processing rows, so
    // it stays small on a large queue.
    Index {
        name: "idx_processing_jobs_stuck",
        table: "processing_jobs",
        columns: &["started_at", "updated_at", "completed_at", "created_at", "status"],
        def: "((COALESCE(GREATEST(started_at, updated_at, completed_at), created_at))) WHERE status = 'processing'",
    },
    // opsh: the integrity check looks up Qdrant point ids in vector_mappings.chunk_id.
    Index {
        name: "idx_vector_mappings_chunk_id",
        table: "vector_mappings",
        columns: &["chunk_id"],
        def: "(chunk_id)",
    },
];

/// opsh's own index names: when one exists with another definition (an earlier opsh build made
/// it), it is rebuilt; an index of any other name is the deployment's or the site's and is
/// never dropped.
const OPSH_INDEXES: &[&str] = &["idx_processing_jobs_stuck", "idx_vector_mappings_chunk_id"];

/// The indexes the first opsh release made under names of its own (its other indexes had the
/// deployment's names). Acted on only where that release's migration is recorded and the index
/// has exactly the definition it gave it.
#[rustfmt::skip]
const LEGACY_INDEXES: &[Index] = &[
    Index { name: "idx_processing_jobs_status", table: "processing_jobs", columns: &["status"], def: "(status)" },
    Index { name: "idx_processing_jobs_content_id", table: "processing_jobs", columns: &["content_id"], def: "(content_id)" },
    Index { name: "idx_vector_mappings_content_id", table: "vector_mappings", columns: &["content_id"], def: "(content_id)" },
    Index { name: "idx_content_publish_date", table: "content", columns: &["publish_date"], def: "(publish_date)" },
];

/// The first opsh release's first migration as sqlx recorded it: version and SHA-384 checksum
/// of migrations/20250101000000_managed_schema.sql (tests/fixtures/opsh-0.1-migrations holds
/// the release's three files).
pub const LEGACY_VERSION: i64 = 20250101000000;
pub const LEGACY_CHECKSUM: &str = "0cef35bf60912a2f3410101d7e90db9a66613bc70a20a0c65a5828e6aa71f79fdb9e9c10d4dd93da47d7104b1200cc8f";

/// How long a schema change may wait for a table lock before migrate gives up (and says so),
/// rather than queueing every worker's statement behind its own waiting lock.
const LOCK_TIMEOUT: &str = "10s";

/// One change that migrate makes (or, with --dry-run, would make).
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// table, column, default, nullability, index, index name, extra index
    pub kind: &'static str,
    pub name: String,
    pub reason: String,
    /// The SQL, in order.
    pub statements: Vec<String>,
    #[serde(skip)]
    units: Vec<Unit>,
}

/// How statements run: together in one short transaction under the lock timeout, or alone
/// outside any transaction (CONCURRENTLY, VALIDATE CONSTRAINT), without a lock timeout.
#[derive(Debug, Clone)]
enum Unit {
    Tx(Vec<String>),
    Alone(String),
}

impl Change {
    fn new(
        kind: &'static str,
        name: impl Into<String>,
        reason: impl Into<String>,
        units: Vec<Unit>,
    ) -> Change {
        let statements = units
            .iter()
            .flat_map(|u| match u {
                Unit::Tx(s) => s.clone(),
                Unit::Alone(s) => vec![s.clone()],
            })
            .collect();
        Change {
            kind,
            name: name.into(),
            reason: reason.into(),
            statements,
            units,
        }
    }
}

/// What a database lacks or has wrong, in the order it is to be fixed.
#[derive(Debug, Default, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// What migrate leaves alone and the operator should know (a name taken by another index,
    /// rows that stop a NOT NULL, migrations it does not know).
    pub warnings: Vec<String>,
}

/// The result of `opsh migrate`.
#[derive(Debug, Serialize)]
pub struct Migrated {
    pub dry_run: bool,
    /// Made by this run (empty with --dry-run).
    pub applied: Vec<Change>,
    /// With --dry-run: what a run would make (empty otherwise).
    pub pending: Vec<Change>,
    pub warnings: Vec<String>,
}

/// A failed migrate: which change failed and how far it got.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Reading the catalog failed.
    #[error("{0}")]
    Db(#[from] sqlx::Error),
    #[error("another `opsh migrate` is running on this database; try again when it has finished")]
    Busy,
    #[error("{}", failed_change(kind, name, &error.to_string(), is_lock_timeout(error), *done))]
    Change {
        kind: &'static str,
        name: String,
        error: sqlx::Error,
        /// Changes made before this one.
        done: usize,
    },
}

/// A failed change in words: what failed, the cause (the error in words), why a lock timed
/// out, and what was made before it.
pub fn failed_change(
    kind: &str,
    name: &str,
    cause: &str,
    lock_timeout: bool,
    done: usize,
) -> String {
    let mut text = format!("{kind} {name}: {cause}");
    if lock_timeout {
        text.push_str(&format!(
            " (waited {LOCK_TIMEOUT} for a lock that a running transaction holds; try again when it has ended)"
        ));
    }
    if done > 0 {
        text.push_str(&format!(
            "; the {done} changes before it were made, `opsh migrate` again continues from here"
        ));
    }
    text
}

/// lock_not_available: the lock_timeout of a schema change ran out.
pub fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03")
}

/// Plans and (unless `dry_run`) applies the managed schema on one connection. The connection
/// must not be inside a transaction. Concurrent runs are kept apart by an advisory lock.
pub async fn migrate(conn: &mut PgConnection, dry_run: bool) -> Result<Migrated, MigrateError> {
    if dry_run {
        let plan = plan(conn).await?;
        return Ok(Migrated {
            dry_run,
            applied: Vec::new(),
            pending: plan.changes,
            warnings: plan.warnings,
        });
    }
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended('opsh migrate', 0))")
            .fetch_one(&mut *conn)
            .await?;
    if !locked {
        return Err(MigrateError::Busy);
    }
    let result = async {
        let plan = plan(conn).await?;
        apply(conn, &plan.changes).await?;
        Ok::<_, MigrateError>(plan)
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtextextended('opsh migrate', 0))")
        .execute(&mut *conn)
        .await;
    let plan = result?;
    Ok(Migrated {
        dry_run,
        applied: plan.changes,
        pending: Vec::new(),
        warnings: plan.warnings,
    })
}

async fn apply(conn: &mut PgConnection, changes: &[Change]) -> Result<(), MigrateError> {
    let fail = |change: &Change, done: usize, error: sqlx::Error| MigrateError::Change {
        kind: change.kind,
        name: change.name.clone(),
        error,
        done,
    };
    // Missing tables are made together: all or none.
    let (tables, rest): (Vec<&Change>, Vec<&Change>) =
        changes.iter().partition(|c| c.kind == "table");
    if !tables.is_empty() {
        let statements: Vec<String> = tables
            .iter()
            .flat_map(|c| c.units.iter())
            .flat_map(|u| match u {
                Unit::Tx(s) => s.clone(),
                Unit::Alone(s) => vec![s.clone()],
            })
            .collect();
        run_tx(conn, &statements)
            .await
            .map_err(|e| fail(tables[0], 0, e))?;
        for table in &tables {
            tracing::info!("migrate: table {}", table.name);
        }
    }
    for (i, change) in rest.iter().enumerate() {
        for unit in &change.units {
            let done = tables.len() + i;
            match unit {
                Unit::Tx(statements) => run_tx(conn, statements).await,
                Unit::Alone(sql) => sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                    .execute(&mut *conn)
                    .await
                    .map(|_| ()),
            }
            .map_err(|e| fail(change, done, e))?;
        }
        tracing::info!("migrate: {} {}", change.kind, change.name);
    }
    Ok(())
}

async fn run_tx(conn: &mut PgConnection, statements: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
    )))
    .execute(&mut *tx)
    .await?;
    for sql in statements {
        sqlx::raw_sql(AssertSqlSafe(sql.clone()))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// What the catalog says about one existing managed table.
struct TableInfo {
    schema: String,
    /// column → (NOT NULL, default expression)
    columns: HashMap<String, (bool, Option<String>)>,
    /// index name → (valid, definition from USING on)
    indexes: BTreeMap<String, (bool, String)>,
}

/// Reads the catalog and plans. Reads only, apart from a temporary table in a transaction that
/// is rolled back (to learn how PostgreSQL prints the wanted index definitions).
pub async fn plan(conn: &mut PgConnection) -> Result<Plan, sqlx::Error> {
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    // Found the way unqualified names in the procedures' SQL find them: through search_path.
    let rows = sqlx::query(
        "SELECT t.name, c.oid::int8, n.nspname::text
         FROM unnest($1::text[]) AS t(name)
         JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name))
         JOIN pg_namespace n ON n.oid = c.relnamespace",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    let mut tables: HashMap<String, TableInfo> = HashMap::new();
    let mut oids: HashMap<i64, String> = HashMap::new();
    for row in rows {
        let name: String = row.get(0);
        oids.insert(row.get(1), name.clone());
        tables.insert(
            name,
            TableInfo {
                schema: row.get(2),
                columns: HashMap::new(),
                indexes: BTreeMap::new(),
            },
        );
    }
    let oid_list: Vec<i64> = oids.keys().copied().collect();
    let columns = sqlx::query(
        "SELECT a.attrelid::int8, a.attname::text, a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = ANY($1::int8[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(&oid_list)
    .fetch_all(&mut *conn)
    .await?;
    for row in columns {
        if let Some(t) = oids
            .get(&row.get::<i64, _>(0))
            .and_then(|n| tables.get_mut(n))
        {
            t.columns.insert(row.get(1), (row.get(2), row.get(3)));
        }
    }
    let indexes = sqlx::query(
        "SELECT i.indrelid::int8, c.relname::text, i.indisvalid AND i.indisready, pg_get_indexdef(i.indexrelid)
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = ANY($1::int8[]::oid[])",
    )
    .bind(&oid_list)
    .fetch_all(&mut *conn)
    .await?;
    for row in indexes {
        if let Some(t) = oids
            .get(&row.get::<i64, _>(0))
            .and_then(|n| tables.get_mut(n))
        {
            t.indexes
                .insert(row.get(1), (row.get(2), using(&row.get::<String, _>(3))));
        }
    }
    // Relations that hold a name opsh would give an index, other than indexes of the managed
    // tables (already known above).
    let wanted: Vec<&str> = INDEXES.iter().map(|i| i.name).collect();
    let schemas: Vec<String> = tables
        .values()
        .map(|t| t.schema.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let taken: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_index i ON i.indexrelid = c.oid
         WHERE c.relname = ANY($1) AND n.nspname = ANY($2)
           AND (i.indrelid IS NULL OR NOT i.indrelid = ANY($3::int8[]::oid[]))",
    )
    .bind(&wanted)
    .bind(&schemas)
    .bind(&oid_list)
    .fetch_all(&mut *conn)
    .await?;
    let first_release = first_release(conn).await?;
    let wanted_defs = probe(conn, &tables).await?;

    let mut plan = Plan::default();

    // Missing tables: as the deployment makes them, with opsh's columns and all their indexes.
    for table in TABLES.iter().filter(|t| !tables.contains_key(t.name)) {
        let mut statements = vec![table.ddl.to_string()];
        for column in OPSH_COLUMNS.iter().filter(|c| c.table == table.name) {
            statements.extend(column.add.iter().map(|s| s.to_string()));
        }
        for index in INDEXES.iter().filter(|i| i.table == table.name) {
            statements.push(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} {}",
                index.name, table.name, index.def
            ));
        }
        plan.changes.push(Change::new(
            "table",
            table.name,
            "missing; created as the deployment's init.sql creates it",
            vec![Unit::Tx(statements)],
        ));
    }

    // opsh's own tables, after the deployment's.
    for table in OPSH_TABLES {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table.name)
            .fetch_one(&mut *conn)
            .await?;
        if !exists {
            plan.changes.push(Change::new(
                "table",
                table.name,
                "missing; opsh's own: the audit of destructive actions (`opsh audit`)",
                vec![Unit::Tx(vec![
                    table.ddl.to_string(),
                    format!("CREATE INDEX IF NOT EXISTS {0}_at ON {0} (at)", table.name),
                ])],
            ));
        }
    }

    // opsh's columns on existing tables.
    for column in OPSH_COLUMNS {
        let Some(t) = tables.get(column.table) else {
            continue;
        };
        match t.columns.get(column.name) {
            None => plan.changes.push(Change::new(
                "column",
                format!("{}.{}", column.table, column.name),
                "missing; the deployment's workers use it but its init.sql does not create it",
                vec![Unit::Tx(column.add.iter().map(|s| s.to_string()).collect())],
            )),
            Some((_, None)) if column.name == "updated_at" => plan.changes.push(Change::new(
                "default",
                "processing_jobs.updated_at",
                "no default; new jobs get CURRENT_TIMESTAMP",
                vec![Unit::Tx(vec![column.add[1].to_string()])],
            )),
            Some(_) => {}
        }
    }

    // Columns that differ from the deployment's (as the first opsh release made them).
    if let Some((true, _)) = tables.get("content").and_then(|t| t.columns.get("url")) {
        plan.changes.push(Change::new(
            "nullability",
            "content.url",
            "NOT NULL here, nullable in the deployment (podcast episodes have no URL)",
            vec![Unit::Tx(vec![
                "ALTER TABLE content ALTER COLUMN url DROP NOT NULL".into(),
            ])],
        ));
    }
    if let Some((_, None)) = tables
        .get("content")
        .and_then(|t| t.columns.get("language"))
    {
        plan.changes.push(Change::new(
            "default",
            "content.language",
            "no default here, 'ko' in the deployment",
            vec![Unit::Tx(vec![
                "ALTER TABLE content ALTER COLUMN language SET DEFAULT 'ko'".into(),
            ])],
        ));
    }
    if let Some((false, _)) = tables
        .get("vector_mappings")
        .and_then(|t| t.columns.get("chunk_text"))
    {
        let nulls: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM vector_mappings WHERE chunk_text IS NULL)",
        )
        .fetch_one(&mut *conn)
        .await?;
        if nulls {
            plan.warnings.push(
                "vector_mappings.chunk_text is nullable here (NOT NULL in the deployment) and some rows hold NULL; \
                 left nullable: fill or delete those rows, then run `opsh migrate` again"
                    .into(),
            );
        } else {
            // The CHECK is validated without blocking writes; SET NOT NULL then trusts it instead
            // of scanning the table under an exclusive lock.
            let check = "vector_mappings_chunk_text_not_null";
            let mut units = Vec::new();
            let has_check: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass('vector_mappings') AND conname = $1)",
            )
            .bind(check)
            .fetch_one(&mut *conn)
            .await?;
            if !has_check {
                units.push(Unit::Tx(vec![format!(
                    "ALTER TABLE vector_mappings ADD CONSTRAINT {check} CHECK (chunk_text IS NOT NULL) NOT VALID"
                )]));
            }
            units.push(Unit::Alone(format!(
                "ALTER TABLE vector_mappings VALIDATE CONSTRAINT {check}"
            )));
            units.push(Unit::Tx(vec![
                "ALTER TABLE vector_mappings ALTER COLUMN chunk_text SET NOT NULL".into(),
                format!("ALTER TABLE vector_mappings DROP CONSTRAINT {check}"),
            ]));
            plan.changes.push(Change::new(
                "nullability",
                "vector_mappings.chunk_text",
                "nullable here, NOT NULL in the deployment",
                units,
            ));
        }
    }

    // Indexes on existing tables.
    let mut present: HashMap<String, BTreeMap<String, (bool, String)>> = tables
        .iter()
        .map(|(n, t)| (n.clone(), t.indexes.clone()))
        .collect();
    if first_release {
        for old in LEGACY_INDEXES {
            let (Some(t), Some(indexes)) = (tables.get(old.table), present.get_mut(old.table))
            else {
                continue;
            };
            let Some((valid, def)) = indexes.get(old.name).cloned() else {
                continue;
            };
            let qualified = format!("{}.{}", ident(&t.schema), old.name);
            if valid && wanted_defs.get(old.name) != Some(&def) {
                continue; // not the index that release made: the site's own
            }
            let duplicates = indexes
                .iter()
                .find(|(n, (v, d))| *n != old.name && *v && *d == def)
                .map(|(n, _)| n.clone());
            // The deployment's index that it stands for.
            let stands_for = INDEXES
                .iter()
                .find(|i| i.table == old.table && wanted_defs.get(i.name) == Some(&def));
            let drop = |why: String| {
                Change::new(
                    "extra index",
                    old.name,
                    why,
                    vec![Unit::Alone(format!(
                        "DROP INDEX CONCURRENTLY IF EXISTS {qualified}"
                    ))],
                )
            };
            let change = match (valid, duplicates, stands_for) {
                (false, _, _) => drop("left invalid by an interrupted build".into()),
                (true, Some(other), _) => drop(format!(
                    "made by the first opsh release; duplicates {other}"
                )),
                (true, None, Some(new)) => {
                    if indexes.contains_key(new.name) || taken.iter().any(|(n, _)| n == new.name) {
                        // The name is another index's (reported below); this one stays.
                        continue;
                    }
                    indexes.insert(new.name.to_string(), (true, def));
                    Change::new(
                        "index name",
                        new.name,
                        format!("the first opsh release made this index as {}", old.name),
                        vec![Unit::Tx(vec![format!(
                            "ALTER INDEX {qualified} RENAME TO {}",
                            new.name
                        )])],
                    )
                }
                (true, None, None) => drop(
                    "made by the first opsh release; not part of the deployment's schema".into(),
                ),
            };
            indexes.remove(old.name);
            plan.changes.push(change);
        }
    }
    for index in INDEXES {
        let (Some(t), Some(indexes)) = (tables.get(index.table), present.get(index.table)) else {
            continue;
        };
        let wanted = wanted_defs.get(index.name);
        let create = format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} {}",
            index.name, index.table, index.def
        );
        let qualified = format!("{}.{}", ident(&t.schema), index.name);
        match indexes.get(index.name) {
            Some((true, def)) if Some(def) == wanted => continue,
            Some((false, _)) => {
                plan.changes.push(Change::new(
                    "index",
                    index.name,
                    "left invalid by an interrupted build; built again",
                    vec![
                        Unit::Alone(format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}")),
                        Unit::Alone(create),
                    ],
                ));
                continue;
            }
            Some((true, def)) => {
                if OPSH_INDEXES.contains(&index.name) {
                    plan.changes.push(Change::new(
                        "index",
                        index.name,
                        format!(
                            "an earlier opsh made it {def}; built again as {}",
                            index.def
                        ),
                        vec![
                            Unit::Alone(format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}")),
                            Unit::Alone(create),
                        ],
                    ));
                } else {
                    plan.warnings.push(format!(
                        "index {} on {} is {def}, not {}; left alone",
                        index.name, index.table, index.def
                    ));
                }
                continue;
            }
            None => {}
        }
        if let Some((other, _)) = indexes.iter().find(|(_, (v, d))| *v && Some(d) == wanted) {
            tracing::debug!(
                "migrate: {} is covered by the existing index {other}",
                index.name
            );
            continue;
        }
        if let Some((_, schema)) = taken
            .iter()
            .find(|(n, s)| n == index.name && *s == t.schema)
        {
            plan.warnings.push(format!(
                "cannot create index {} on {}: {schema}.{} is another relation; left out",
                index.name, index.table, index.name
            ));
            continue;
        }
        plan.changes.push(Change::new(
            "index",
            index.name,
            "missing; built CONCURRENTLY, so writes go on meanwhile",
            vec![Unit::Alone(create)],
        ));
    }
    Ok(plan)
}

/// The part of `pg_get_indexdef` that is the definition: from the access method on (columns or
/// expressions, INCLUDE, WITH, WHERE), without the index's name and table.
fn using(indexdef: &str) -> String {
    indexdef
        .find(" USING ")
        .map(|at| indexdef[at + 1..].to_string())
        .unwrap_or_else(|| indexdef.to_string())
}

/// Whether the first opsh release migrated this database: its first migration is recorded
/// with that release's checksum. (Other sqlx migrations there are another program's business.)
async fn first_release(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM _sqlx_migrations
                        WHERE version = $1 AND success AND encode(checksum, 'hex') = $2)",
    )
    .bind(LEGACY_VERSION)
    .bind(LEGACY_CHECKSUM)
    .fetch_one(&mut *conn)
    .await
}

/// How PostgreSQL prints each wanted (and legacy) index definition on the existing tables: the
/// index built on an empty temporary copy of the table, in a transaction rolled back at once.
/// Indexes that read a column the table lacks are left out (no index there can match them).
async fn probe(
    conn: &mut PgConnection,
    tables: &HashMap<String, TableInfo>,
) -> Result<HashMap<&'static str, String>, sqlx::Error> {
    let mut defs = HashMap::new();
    let indexes: Vec<&Index> = INDEXES
        .iter()
        .chain(LEGACY_INDEXES)
        .filter(|i| {
            tables
                .get(i.table)
                .is_some_and(|t| i.columns.iter().all(|c| t.columns.contains_key(*c)))
        })
        .collect();
    if indexes.is_empty() {
        return Ok(defs);
    }
    let mut tx = conn.begin().await?;
    let mut copies = BTreeSet::new();
    for (n, index) in indexes.iter().enumerate() {
        let copy = format!("opsh_probe_{}", index.table);
        if copies.insert(index.table) {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE TEMP TABLE {copy} (LIKE {})",
                index.table
            )))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE INDEX opsh_probe_{n} ON {copy} {}",
            index.def
        )))
        .execute(&mut *tx)
        .await?;
        let def: String = sqlx::query_scalar("SELECT pg_get_indexdef(to_regclass($1))")
            .bind(format!("pg_temp.opsh_probe_{n}"))
            .fetch_one(&mut *tx)
            .await?;
        defs.insert(index.name, using(&def));
    }
    tx.rollback().await?;
    Ok(defs)
}

/// An identifier as SQL: bare when it is plain lower case, quoted otherwise.
fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Which of processing_jobs' optional columns a database has: the deployment's init.sql makes
/// neither retry_count nor updated_at. Read from the catalog once per process and database.
#[derive(Debug, Clone, Copy)]
pub struct JobShape {
    pub table: bool,
    pub retry_count: bool,
    pub updated_at: bool,
}

static SHAPES: Mutex<BTreeMap<String, (JobShape, String)>> = Mutex::new(BTreeMap::new());

/// processing_jobs' shape (cached per database URL), and the database's name for messages.
/// The first time the columns are found missing, one warning says that reads go on without them.
pub async fn job_shape(url: &str, pool: &sqlx::PgPool) -> Result<(JobShape, String), sqlx::Error> {
    if let Some(known) = SHAPES.lock().unwrap_or_else(|e| e.into_inner()).get(url) {
        return Ok(known.clone());
    }
    let (table, retry_count, updated_at, database): (bool, bool, bool, String) = sqlx::query_as(
        "SELECT to_regclass('processing_jobs') IS NOT NULL,
                EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('processing_jobs')
                        AND attname = 'retry_count' AND NOT attisdropped),
                EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('processing_jobs')
                        AND attname = 'updated_at' AND NOT attisdropped),
                current_database()::text",
    )
    .fetch_one(pool)
    .await?;
    let shape = JobShape {
        table,
        retry_count,
        updated_at,
    };
    if table && !(retry_count && updated_at) {
        let missing: Vec<&str> = [("retry_count", retry_count), ("updated_at", updated_at)]
            .iter()
            .filter(|(_, has)| !has)
            .map(|(c, _)| *c)
            .collect();
        tracing::warn!(
            "processing_jobs has no {} (the deployment's init.sql does not create {}): read as {}; `opsh migrate` adds {}",
            missing.join(" and no "),
            if missing.len() == 1 { "it" } else { "them" },
            missing
                .iter()
                .map(|c| if *c == "retry_count" { "0" } else { "NULL" })
                .collect::<Vec<_>>()
                .join(" and "),
            if missing.len() == 1 { "it" } else { "them" },
        );
    }
    SHAPES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(url.to_string(), (shape, database.clone()));
    Ok((shape, database))
}

/// Forgets the cached shape (after a migrate changed it).
pub fn forget_shape(url: &str) {
    SHAPES.lock().unwrap_or_else(|e| e.into_inner()).remove(url);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_compared_from_the_access_method_on() {
        assert_eq!(
            using("CREATE INDEX idx_jobs_status ON public.processing_jobs USING btree (status)"),
            "USING btree (status)"
        );
        assert_eq!(
            using("CREATE UNIQUE INDEX \"x y\" ON s.t USING btree (a) WHERE (b IS NULL)"),
            "USING btree (a) WHERE (b IS NULL)"
        );
    }

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(ident("public"), "public");
        assert_eq!(ident("Ops"), "\"Ops\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn every_index_is_on_a_managed_table_and_reads_only_its_columns() {
        for index in INDEXES.iter().chain(LEGACY_INDEXES) {
            let table = TABLES
                .iter()
                .find(|t| t.name == index.table)
                .expect(index.name);
            for column in index.columns {
                let opsh = OPSH_COLUMNS
                    .iter()
                    .any(|c| c.table == index.table && c.name == *column);
                assert!(
                    opsh || table.ddl.contains(&format!("\n    {column} ")),
                    "{}: {column}",
                    index.name
                );
            }
        }
    }
}
