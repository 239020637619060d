//! Indexes on existing tables: those the first opsh release made under names of its own
//! (renamed to the deployment's or dropped), then every index the files make that the
//! database lacks, built CONCURRENTLY, unless an index of the same definition exists under any
//! name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::{Acquire, AssertSqlSafe, PgConnection};

use super::catalog::Live;
use super::files::Wanted;
use super::{Change, LEGACY_CHECKSUM, LEGACY_VERSION, Plan, Unit, ident, using};

/// The indexes the first opsh release made under names of its own (its other indexes had the
/// deployment's names): name, table, definition after `ON table`. Acted on only where that
/// release's migration is recorded and the index has exactly the definition it gave it.
const LEGACY_INDEXES: &[(&str, &str, &str)] = &[
    ("idx_processing_jobs_status", "processing_jobs", "(status)"),
    (
        "idx_processing_jobs_content_id",
        "processing_jobs",
        "(content_id)",
    ),
    (
        "idx_vector_mappings_content_id",
        "vector_mappings",
        "(content_id)",
    ),
    ("idx_content_publish_date", "content", "(publish_date)"),
];

pub fn plan(
    wanted: &Wanted,
    live: &Live,
    wanted_defs: &HashMap<String, String>,
    first_release: bool,
    plan: &mut Plan,
) {
    let mut present: HashMap<String, BTreeMap<String, (bool, String)>> = live
        .tables
        .iter()
        .map(|(n, t)| (n.clone(), t.indexes.clone()))
        .collect();
    if first_release {
        legacy(wanted, live, wanted_defs, &mut present, plan);
    }
    for index in &wanted.indexes {
        let (Some(t), Some(indexes)) = (live.tables.get(&index.table), present.get(&index.table))
        else {
            continue;
        };
        let wanted_def = wanted_defs.get(&index.name);
        let create = format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} {}",
            index.name, index.table, index.def
        );
        let qualified = format!("{}.{}", ident(&t.schema), index.name);
        match indexes.get(&index.name) {
            Some((true, def)) if Some(def) == wanted_def => continue,
            Some((false, _)) => {
                plan.changes.push(Change::new(
                    "index",
                    index.name.clone(),
                    "left invalid by an interrupted build; built again",
                    vec![
                        Unit::Alone(format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}")),
                        Unit::Alone(create),
                    ],
                ));
                continue;
            }
            Some((true, def)) => {
                // opsh's own name with another definition: an earlier opsh made it, it is
                // rebuilt. An index of any other name is the deployment's or the site's, and
                // never dropped.
                if index.opsh {
                    plan.changes.push(Change::new(
                        "index",
                        index.name.clone(),
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
        if let Some((other, _)) = indexes
            .iter()
            .find(|(_, (v, d))| *v && Some(d) == wanted_def)
        {
            tracing::debug!(
                "migrate: {} is covered by the existing index {other}",
                index.name
            );
            continue;
        }
        if let Some((_, schema)) = live
            .taken
            .iter()
            .find(|(n, s)| *n == index.name && *s == t.schema)
        {
            plan.warnings.push(format!(
                "cannot create index {} on {}: {schema}.{} is another relation; left out",
                index.name, index.table, index.name
            ));
            continue;
        }
        plan.changes.push(Change::new(
            "index",
            index.name.clone(),
            "missing; built CONCURRENTLY, so writes go on meanwhile",
            vec![Unit::Alone(create)],
        ));
    }
}

/// The first release's own index names: each renamed to the deployment's index it stands for,
/// or dropped CONCURRENTLY when it duplicates another, is not part of the schema, or was left
/// invalid.
fn legacy(
    wanted: &Wanted,
    live: &Live,
    wanted_defs: &HashMap<String, String>,
    present: &mut HashMap<String, BTreeMap<String, (bool, String)>>,
    plan: &mut Plan,
) {
    for &(old, table, _) in LEGACY_INDEXES {
        let (Some(t), Some(indexes)) = (live.tables.get(table), present.get_mut(table)) else {
            continue;
        };
        let Some((valid, def)) = indexes.get(old).cloned() else {
            continue;
        };
        let qualified = format!("{}.{}", ident(&t.schema), old);
        if valid && wanted_defs.get(old) != Some(&def) {
            continue; // not the index that release made: the site's own
        }
        let duplicates = indexes
            .iter()
            .find(|(n, (v, d))| *n != old && *v && *d == def)
            .map(|(n, _)| n.clone());
        // The deployment's index that it stands for.
        let stands_for = wanted
            .indexes
            .iter()
            .find(|i| i.table == table && wanted_defs.get(&i.name) == Some(&def));
        let drop = |why: String| {
            Change::new(
                "extra index",
                old,
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
                if indexes.contains_key(&new.name) || live.taken.iter().any(|(n, _)| *n == new.name)
                {
                    // The name is another index's (reported with the wanted indexes); this
                    // one stays.
                    continue;
                }
                indexes.insert(new.name.clone(), (true, def));
                Change::new(
                    "index name",
                    new.name.clone(),
                    format!("the first opsh release made this index as {old}"),
                    vec![Unit::Tx(vec![format!(
                        "ALTER INDEX {qualified} RENAME TO {}",
                        new.name
                    )])],
                )
            }
            (true, None, None) => {
                drop("made by the first opsh release; not part of the deployment's schema".into())
            }
        };
        indexes.remove(old);
        plan.changes.push(change);
    }
}

/// Whether the first opsh release migrated this database: its first migration is recorded
/// with that release's checksum. (Other sqlx migrations there are another program's business.)
pub async fn first_release(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
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
/// index built on an empty temporary copy of the table, in a transaction rolled back at once
/// (a copy of the database's table, so the printed casts follow its column types). An index
/// that reads a column the table lacks is left out (no index there can match it).
pub async fn probe(
    conn: &mut PgConnection,
    wanted: &Wanted,
    live: &Live,
) -> Result<HashMap<String, String>, sqlx::Error> {
    let mut defs = HashMap::new();
    let indexes: Vec<(&str, &str, &str)> = wanted
        .indexes
        .iter()
        .map(|i| (i.name.as_str(), i.table.as_str(), i.def.as_str()))
        .chain(LEGACY_INDEXES.iter().copied())
        .filter(|(_, table, _)| live.tables.contains_key(*table))
        .collect();
    if indexes.is_empty() {
        return Ok(defs);
    }
    let mut tx = conn.begin().await?;
    let mut copies = BTreeSet::new();
    for (n, (name, table, def)) in indexes.into_iter().enumerate() {
        let copy = format!("opsh_probe_{table}");
        if copies.insert(table) {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE TEMP TABLE {copy} (LIKE {table})"
            )))
            .execute(&mut *tx)
            .await?;
        }
        // Its own savepoint: a column the table lacks fails this index only.
        let mut one = tx.begin().await?;
        let made = sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE INDEX opsh_probe_{n} ON {copy} {def}"
        )))
        .execute(&mut *one)
        .await;
        match made {
            Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42703") => {
                one.rollback().await?;
                continue;
            }
            made => {
                made?;
            }
        }
        let printed: String = sqlx::query_scalar("SELECT pg_get_indexdef(to_regclass($1))")
            .bind(format!("pg_temp.opsh_probe_{n}"))
            .fetch_one(&mut *one)
            .await?;
        one.commit().await?;
        defs.insert(name.to_string(), using(&printed));
    }
    tx.rollback().await?;
    Ok(defs)
}
