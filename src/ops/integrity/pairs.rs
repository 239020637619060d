//! What is compared: a [`Pair`] (a table, its id column and row filter, and a collection), the
//! deployment's defaults and the `integrity.pairs` setting, and the SQL that reads a pair's rows
//! (with the check that a configured filter is one read-only expression).

use serde::{Deserialize, Serialize};
use sqlx::SqlSafeStr;

use crate::config::key;
use crate::ops::Target;
use crate::ops::error::OpError;

/// One table ↔ collection comparison.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pair {
    pub name: String,
    pub table: String,
    pub id_column: String,
    /// A SQL predicate selecting the table's rows that belong to the collection.
    #[serde(default)]
    pub filter: Option<String>,
    pub collection: String,
    /// None: the id column holds the point id. Some(key): a point's payload `key` holds the
    /// row's id.
    #[serde(default)]
    pub payload_key: Option<String>,
    /// Rows that must have a point: a SQL predicate (by payload pairs; by id pairs: every row).
    #[serde(default)]
    pub required: Option<String>,
}

pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The deployment's pairs, with the configured collection names.
pub fn default_pairs(target: &Target) -> Vec<Pair> {
    let content = target
        .settings
        .text(key::QDRANT_CONTENT_COLLECTION)
        .to_string();
    let summaries = target
        .settings
        .text(key::QDRANT_SUMMARIES_COLLECTION)
        .to_string();
    vec![
        Pair {
            name: "chunks".into(),
            table: "vector_mappings".into(),
            id_column: "chunk_id".into(),
            filter: Some(format!("vector_collection = {}", literal(&content))),
            collection: content,
            payload_key: None,
            required: None,
        },
        Pair {
            name: "summaries".into(),
            table: "content".into(),
            id_column: "id".into(),
            filter: None,
            collection: summaries,
            payload_key: Some("content_id".into()),
            required: Some("vector_stored".into()),
        },
    ]
}

/// The default pairs plus those of the setting `integrity.pairs` (TOML tables, kept as JSON).
pub fn configured_pairs(target: &Target) -> Result<Vec<Pair>, OpError> {
    let mut pairs = default_pairs(target);
    let extra = target.settings.text(key::INTEGRITY_PAIRS).trim();
    if !extra.is_empty() {
        let more: Vec<Pair> = serde_json::from_str(extra).map_err(|e| {
            OpError::invalid(format!(
                "setting integrity.pairs: {e} (each pair needs name, table, id_column and collection; filter, payload_key and required are optional)"
            ))
        })?;
        for p in more {
            pairs.retain(|q| q.name != p.name);
            pairs.push(p);
        }
    }
    Ok(pairs)
}

/// The statement that reads a by-id pair's rows (COPY'd whole).
pub(super) fn by_id_select(pair: &Pair) -> String {
    format!(
        "SELECT {}::text FROM {}{}",
        ident(&pair.id_column),
        ident(&pair.table),
        where_clause(&pair.filter)
    )
}

/// The statement that reads a by-payload pair's rows and whether each needs a point.
pub(super) fn by_payload_select(pair: &Pair) -> String {
    let required = pair
        .required
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("false");
    format!(
        "SELECT {col}::text, COALESCE(({required}), false) FROM {table}{filter}",
        col = ident(&pair.id_column),
        table = ident(&pair.table),
        filter = where_clause(&pair.filter)
    )
}

/// The configured SQL of each pair (`filter`, `required`) must be one SQL expression: the
/// statement that will read the pair is prepared (the extended protocol refuses a second
/// statement, and the server parses the rest) before anything runs. A refusal is a
/// configuration error naming the pair. Pairs whose table is missing are left to the check.
pub(super) async fn refuse_bad_sql(
    target: &Target,
    pairs: &[Pair],
    missing: &[String],
) -> Result<(), OpError> {
    let pool = target.pg().await?;
    for pair in pairs.iter().filter(|p| !missing.contains(&p.table)) {
        let select = match pair.payload_key {
            None => by_id_select(pair),
            Some(_) => by_payload_select(pair),
        };
        if let Err(e) =
            sqlx::Executor::prepare(pool, sqlx::AssertSqlSafe(select).into_sql_str()).await
        {
            let cause = e
                .as_database_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            return Err(OpError::invalid(format!(
                "integrity pair `{}`: its filter and required must each be one SQL expression on table `{}` ({cause}); fix setting integrity.pairs",
                pair.name, pair.table
            )));
        }
    }
    Ok(())
}

pub(super) fn where_clause(filter: &Option<String>) -> String {
    match filter {
        Some(f) if !f.trim().is_empty() => format!(" WHERE ({f})"),
        _ => String::new(),
    }
}
