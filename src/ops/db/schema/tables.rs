//! Missing tables: the deployment's as its init.sql creates them (with opsh's columns and every
//! index on them), then opsh's own.

use sqlx::PgConnection;

use super::catalog::Live;
use super::files::Wanted;
use super::{Change, Plan, Unit};

/// Why opsh's own table is there, for the plan.
fn purpose(table: &str) -> &'static str {
    match table {
        "opsh_audit" => "the audit of destructive actions (`opsh audit`)",
        _ => "opsh's bookkeeping",
    }
}

pub async fn plan(
    conn: &mut PgConnection,
    wanted: &Wanted,
    live: &Live,
    plan: &mut Plan,
) -> Result<(), sqlx::Error> {
    // They are new and empty: their indexes are built with them, without CONCURRENTLY.
    let statements = |table: &str, ddl: &str| {
        let mut statements = vec![ddl.to_string()];
        for column in wanted.columns.iter().filter(|c| c.table == table) {
            statements.extend(column.statements.iter().cloned());
        }
        for index in wanted.indexes.iter().filter(|i| i.table == table) {
            statements.push(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} {}",
                index.name, table, index.def
            ));
        }
        statements
    };
    for table in wanted
        .deployment_tables()
        .filter(|t| !live.tables.contains_key(&t.name))
    {
        plan.changes.push(Change::new(
            "table",
            table.name.clone(),
            "missing; created as the deployment's init.sql creates it",
            vec![Unit::Tx(statements(&table.name, &table.ddl))],
        ));
    }
    for table in wanted.tables.iter().filter(|t| t.opsh) {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&table.name)
            .fetch_one(&mut *conn)
            .await?;
        if !exists {
            plan.changes.push(Change::new(
                "table",
                table.name.clone(),
                format!("missing; opsh's own: {}", purpose(&table.name)),
                vec![Unit::Tx(statements(&table.name, &table.ddl))],
            ));
        }
    }
    Ok(())
}
