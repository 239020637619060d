//! The managed schema and `opsh migrate`.
//!
//! The schema opsh works on is the deployment's: its own init.sql makes it, and sites change it
//! on their own (an index here, a column there). So `migrate` keeps no version history: it reads
//! the catalog, plans what the database lacks or has wrong compared with the schema the files of
//! migrations/ make (the deployment's init.sql as it is, then opsh's additions; see [`files`]),
//! and applies exactly that plan. A database that has everything plans nothing, so a second run
//! is a no-op, and `--dry-run` shows the very plan a real run would apply.
//!
//! The wanted state is read from those files, never written twice: PostgreSQL builds them in
//! the session's temporary schema, in a transaction rolled back at once ([`catalog::build`]),
//! and the planner compares that catalog with the database's ([`catalog::read`]). What each
//! part plans:
//!
//! - [`tables`]: a missing table is created with its statement from the files (same constraint
//!   and index names), all missing tables in one transaction. They are new and empty, so their
//!   indexes are built there too, without CONCURRENTLY.
//! - [`columns`]: opsh's columns and the deployment's column definitions. Column changes are
//!   metadata-only ALTERs, each in a short transaction under a lock_timeout, so a long-running
//!   transaction makes migrate fail fast instead of queueing every worker behind its lock. A
//!   column made NOT NULL is first proven by a CHECK constraint validated without blocking
//!   writes.
//! - [`indexes`]: an index on a table that already existed is built `CREATE INDEX
//!   CONCURRENTLY`, each on its own outside any transaction, so the workers' writes go on
//!   meanwhile. No index is added when a valid index of the same definition (columns or
//!   expression, predicate, method) exists under any name: definitions are compared as
//!   `pg_get_indexdef` prints them, the wanted one taken from the same index built on an empty
//!   temporary copy of the table. An index that an interrupted CONCURRENTLY build left invalid
//!   is dropped and built again.
//! - The first opsh release migrated with sqlx (`_sqlx_migrations`, versions 20250101000000-2).
//!   Its schema differed from the deployment's (content.url NOT NULL, content.language without
//!   default, vector_mappings.chunk_text nullable, deployment indexes missing or under its own
//!   names, two indexes the deployment does not have). Where that release's own first migration
//!   is recorded (its version and checksum), the indexes it made under its own names are renamed
//!   to the deployment's names or, when redundant or not part of the schema, dropped
//!   CONCURRENTLY; the column differences are corrected on any database. `_sqlx_migrations` is
//!   left as it is: nothing reads it any more, and an old opsh binary still sees its migrations
//!   applied and changes nothing.

mod catalog;
mod columns;
pub mod files;
mod indexes;
mod tables;

pub use files::ORPHAN_CANDIDATES;

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use sqlx::{Acquire, AssertSqlSafe, PgConnection};

/// The deployment's tables opsh manages, in dependency order.
pub fn table_names() -> impl Iterator<Item = &'static str> {
    files::wanted().deployment_tables().map(|t| t.name.as_str())
}

/// The first opsh release's first migration as sqlx recorded it: version and SHA-384 checksum
/// of that release's own 20250101000000_managed_schema.sql (tests/fixtures/opsh-0.1-migrations
/// holds the release's three files; they are history, not the schema of migrations/).
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

/// Reads the catalog and plans. Reads only, apart from temporary tables in transactions that
/// are rolled back (the files built to learn the wanted catalog, and copies of the tables to
/// learn how PostgreSQL prints the wanted index definitions).
pub async fn plan(conn: &mut PgConnection) -> Result<Plan, sqlx::Error> {
    plan_for(conn, files::wanted()).await
}

/// The plan that would bring the database to what `wanted` makes (the embedded files in
/// [`plan`]; other files in tests).
pub async fn plan_for(
    conn: &mut PgConnection,
    wanted: &files::Wanted,
) -> Result<Plan, sqlx::Error> {
    let built = catalog::build(conn, wanted).await?;
    let live = catalog::read(conn, wanted).await?;
    let first_release = indexes::first_release(conn).await?;
    let wanted_defs = indexes::probe(conn, wanted, &live).await?;
    let mut plan = Plan::default();
    tables::plan(conn, wanted, &live, &mut plan).await?;
    columns::plan(conn, wanted, &built, &live, &mut plan).await?;
    indexes::plan(wanted, &live, &wanted_defs, first_release, &mut plan);
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
        // The one warning of a run on a database opsh never migrated: what reads and writes
        // do without the columns.
        let mut effects = Vec::new();
        if !retry_count {
            effects.push("retries are not counted, so max_retries cannot apply to stuck jobs");
        }
        if !updated_at {
            effects.push("updated_at reads as NULL");
        }
        let missing: Vec<&str> = [("retry_count", retry_count), ("updated_at", updated_at)]
            .iter()
            .filter(|(_, has)| !has)
            .map(|(c, _)| *c)
            .collect();
        let them = if missing.len() == 1 { "it" } else { "them" };
        tracing::warn!(
            "processing_jobs has no {} (the deployment's init.sql does not create {them}): {}; `opsh migrate` adds {them}",
            missing.join(" and no "),
            effects.join(", and "),
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
}
