//! The two catalogs the planner compares: the database's own (what its managed tables have),
//! and the wanted one, which PostgreSQL makes from the files of migrations/ in a scratch place
//! (the session's temporary schema, in a transaction rolled back at once).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::{Acquire, AssertSqlSafe, PgConnection, Row};

use super::files::Wanted;
use super::using;

/// What the catalog says about one existing managed table.
pub struct TableInfo {
    pub schema: String,
    /// column → (NOT NULL, default expression)
    pub columns: HashMap<String, (bool, Option<String>)>,
    /// index name → (valid, definition from USING on)
    pub indexes: BTreeMap<String, (bool, String)>,
}

/// The database's managed tables (the deployment's and opsh's), and the relations that hold a name opsh would give an index
/// (other than indexes of the managed tables): (name, schema).
pub struct Live {
    pub tables: HashMap<String, TableInfo>,
    pub taken: Vec<(String, String)>,
}

/// Reads the tables the files make (the deployment's and opsh's) as the database has them,
/// found the way unqualified names in the procedures' SQL find them: through search_path.
pub async fn read(conn: &mut PgConnection, wanted: &Wanted) -> Result<Live, sqlx::Error> {
    let names: Vec<&str> = wanted.tables.iter().map(|t| t.name.as_str()).collect();
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
    let wanted_names: Vec<&str> = wanted
        .indexes
        .iter()
        .filter(|i| names.contains(&i.table.as_str()))
        .map(|i| i.name.as_str())
        .collect();
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
    .bind(&wanted_names)
    .bind(&schemas)
    .bind(&oid_list)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Live { tables, taken })
}

/// A column of the wanted catalog: its name, NOT NULL, and default as PostgreSQL prints it.
pub struct BuiltColumn {
    pub name: String,
    pub not_null: bool,
    pub default: Option<String>,
}

/// The wanted catalog: each table the files make, its columns in order. PostgreSQL builds the
/// files in the session's temporary schema (search_path set to it, so every unqualified name
/// in them lands there), it is read, and the transaction is rolled back: nothing stays, and the
/// database's own tables are not touched.
pub async fn build(
    conn: &mut PgConnection,
    wanted: &Wanted,
) -> Result<HashMap<String, Vec<BuiltColumn>>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    // One batch, one round trip: the files are opsh's own, embedded.
    let batch = std::iter::once("SET LOCAL search_path = pg_temp")
        .chain(wanted.build.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(";\n");
    sqlx::raw_sql(AssertSqlSafe(batch))
        .execute(&mut *tx)
        .await?;
    let names: Vec<&str> = wanted.tables.iter().map(|t| t.name.as_str()).collect();
    let rows = sqlx::query(
        "SELECT c.relname::text, a.attname::text, a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
         FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r' AND c.relname = ANY($1)
           AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY c.relname, a.attnum",
    )
    .bind(&names)
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    let mut built: HashMap<String, Vec<BuiltColumn>> = HashMap::new();
    for row in rows {
        built.entry(row.get(0)).or_default().push(BuiltColumn {
            name: row.get(1),
            not_null: row.get(2),
            default: row.get(3),
        });
    }
    Ok(built)
}
