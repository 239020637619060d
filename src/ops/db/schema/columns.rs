//! Columns of existing tables: opsh's own (on the deployment's tables or its own) that are
//! missing or lack their default, then the
//! deployment's columns that the first opsh release made otherwise, where their nullability or
//! default differs from what the files make.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::catalog::{BuiltColumn, Live};
use super::files::Wanted;
use super::{Change, Plan, Unit};

/// The deployment's columns that the first opsh release made otherwise (content.url NOT NULL,
/// content.language without a default, vector_mappings.chunk_text nullable): given the files'
/// nullability and default back on any database. The other columns of a deployment's table are
/// left as the site has them (`db-stats` names the missing ones).
const CORRECTED: &[(&str, &str)] = &[
    ("content", "url"),
    ("content", "language"),
    ("vector_mappings", "chunk_text"),
];

/// What the general words leave out about a column's difference.
fn note(table: &str, column: &str) -> &'static str {
    match (table, column) {
        ("content", "url") => " (podcast episodes have no URL)",
        _ => "",
    }
}

/// What a table's rows are called, for a reason in words.
fn rows_of(table: &str) -> &'static str {
    match table {
        "processing_jobs" => "jobs",
        _ => "rows",
    }
}

pub async fn plan(
    conn: &mut PgConnection,
    wanted: &Wanted,
    built: &HashMap<String, Vec<BuiltColumn>>,
    live: &Live,
    plan: &mut Plan,
) -> Result<(), sqlx::Error> {
    let built_column = |table: &str, column: &str| {
        built
            .get(table)
            .and_then(|cs| cs.iter().find(|c| c.name == column))
    };
    // The default as the files write it, else as PostgreSQL printed it from them.
    let default_text = |table: &str, column: &BuiltColumn| {
        wanted
            .default_text(table, &column.name)
            .or_else(|| column.default.clone())
    };

    // opsh's columns. ADD COLUMN … NOT NULL DEFAULT x changes only the catalog (no rewrite).
    for column in &wanted.columns {
        let Some(t) = live.tables.get(&column.table) else {
            continue;
        };
        let name = format!("{}.{}", column.table, column.name);
        match t.columns.get(&column.name) {
            None => plan.changes.push(Change::new(
                "column",
                name,
                if wanted
                    .tables
                    .iter()
                    .any(|t| t.opsh && t.name == column.table)
                {
                    "missing; opsh's own table was made by an earlier opsh without it"
                } else {
                    "missing; the deployment's workers use it but its init.sql does not create it"
                },
                vec![Unit::Tx(column.statements.clone())],
            )),
            // A default the files give in a statement of its own (for new rows only, as
            // updated_at's) is set where the column exists without it. A default that is part
            // of the ADD COLUMN is left out: the column there was made by someone else.
            Some((_, None)) => {
                let set: Vec<String> = column
                    .statements
                    .iter()
                    .skip(1)
                    .filter(|s| s.to_ascii_uppercase().contains(" SET DEFAULT "))
                    .cloned()
                    .collect();
                let Some(text) = built_column(&column.table, &column.name)
                    .filter(|b| b.default.is_some() && !set.is_empty())
                    .and_then(|b| default_text(&column.table, b))
                else {
                    continue;
                };
                plan.changes.push(Change::new(
                    "default",
                    name,
                    format!("no default; new {} get {text}", rows_of(&column.table)),
                    vec![Unit::Tx(set)],
                ));
            }
            Some(_) => {}
        }
    }

    // The deployment's columns, in the files' order.
    for table in wanted.deployment_tables() {
        let (Some(t), Some(columns)) = (live.tables.get(&table.name), built.get(&table.name))
        else {
            continue;
        };
        for want in columns {
            if !CORRECTED.contains(&(table.name.as_str(), want.name.as_str())) {
                continue;
            }
            let Some((not_null, default)) = t.columns.get(&want.name) else {
                continue; // `db-stats` names a missing one; migrate does not add it
            };
            let name = format!("{}.{}", table.name, want.name);
            if *not_null && !want.not_null {
                plan.changes.push(Change::new(
                    "nullability",
                    name.clone(),
                    format!(
                        "NOT NULL here, nullable in the deployment{}",
                        note(&table.name, &want.name)
                    ),
                    vec![Unit::Tx(vec![format!(
                        "ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL",
                        table.name, want.name
                    )])],
                ));
            }
            if default.is_none()
                && want.default.is_some()
                && let Some(text) = default_text(&table.name, want)
            {
                plan.changes.push(Change::new(
                    "default",
                    name.clone(),
                    format!("no default here, {text} in the deployment"),
                    vec![Unit::Tx(vec![format!(
                        "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {text}",
                        table.name, want.name
                    )])],
                ));
            }
            if !*not_null && want.not_null {
                make_not_null(conn, &table.name, &want.name, plan).await?;
            }
        }
    }
    Ok(())
}

/// A nullable column made NOT NULL without blocking writes: a CHECK validated on its own, which
/// SET NOT NULL then trusts instead of scanning the table under an exclusive lock. Rows that
/// hold NULL keep it nullable, with a warning.
async fn make_not_null(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    plan: &mut Plan,
) -> Result<(), sqlx::Error> {
    let nulls: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} IS NULL)"
    )))
    .fetch_one(&mut *conn)
    .await?;
    if nulls {
        plan.warnings.push(format!(
            "{table}.{column} is nullable here (NOT NULL in the deployment) and some rows hold NULL; \
             left nullable: fill or delete those rows, then run `opsh migrate` again"
        ));
        return Ok(());
    }
    let check = format!("{table}_{column}_not_null");
    let mut units = Vec::new();
    let has_check: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2)",
    )
    .bind(table)
    .bind(&check)
    .fetch_one(&mut *conn)
    .await?;
    if !has_check {
        units.push(Unit::Tx(vec![format!(
            "ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"
        )]));
    }
    units.push(Unit::Alone(format!(
        "ALTER TABLE {table} VALIDATE CONSTRAINT {check}"
    )));
    units.push(Unit::Tx(vec![
        format!("ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL"),
        format!("ALTER TABLE {table} DROP CONSTRAINT {check}"),
    ]));
    plan.changes.push(Change::new(
        "nullability",
        format!("{table}.{column}"),
        "nullable here, NOT NULL in the deployment",
        units,
    ));
    Ok(())
}
