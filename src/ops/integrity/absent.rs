//! Things made on first use. The workers create a collection when they write its first point
//! (youtube_summaries with the first summary), so a fresh deployment has none; a site pair may
//! name a table that a later release of its service creates. Missing while nothing is waiting
//! for it is "not created yet", healthy and said so; missing while rows expect points in the
//! collection (or points in the collection wait for the table's rows) stays critical.

use super::check::REQUIRED_TABLES;
use super::pairs::{Pair, ident, where_clause};
use super::report::{Lists, PairResult, compared};
use crate::ops::Target;
use crate::ops::error::OpError;

/// A table only a site pair names: the deployment's own tables are always required.
pub(super) fn site_table(table: &str) -> bool {
    !REQUIRED_TABLES.contains(&table)
}

/// A pair's rows and how many of them expect a point: by id, every row its filter selects; by
/// payload, those for which `required` holds.
pub(super) async fn rows_expecting(target: &Target, pair: &Pair) -> Result<(u64, u64), OpError> {
    let expecting = match (&pair.payload_key, pair.required.as_deref()) {
        (None, _) => "count(*)".to_string(),
        (Some(_), Some(r)) if !r.trim().is_empty() => {
            format!("count(*) FILTER (WHERE COALESCE(({r}), false))")
        }
        (Some(_), _) => "0::int8".to_string(),
    };
    let sql = format!(
        "SELECT count(*), {expecting} FROM {}{}",
        ident(&pair.table),
        where_clause(&pair.filter)
    );
    let pool = target.pg().await?;
    let (rows, expecting): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .map_err(target.pg_err())?;
    Ok((rows.max(0) as u64, expecting.max(0) as u64))
}

/// The rows that expect a point in a collection that does not exist, over the pairs naming it
/// whose table is there.
pub(super) async fn expecting_in(
    target: &Target,
    pairs: &[Pair],
    collection: &str,
    absent_tables: &[String],
) -> Result<u64, OpError> {
    let mut total = 0;
    for pair in pairs
        .iter()
        .filter(|p| p.collection == collection && !absent_tables.contains(&p.table))
    {
        total += rows_expecting(target, pair).await?.1;
    }
    Ok(total)
}

/// A pair whose collection is not created yet: its rows counted, no point, nothing missing;
/// `not_created` says so.
pub(super) async fn collection_not_created(
    target: &Target,
    pair: &Pair,
) -> Result<(PairResult, Lists), OpError> {
    let (rows, _) = rows_expecting(target, pair).await?;
    let (mut result, lists) = compared(pair, rows, 0, 0, Lists::default());
    result.not_created = if rows == 0 {
        format!(
            "collection {} not created yet (no row of {} expects a point)",
            pair.collection, pair.table
        )
    } else {
        format!(
            "collection {} not created yet ({} of {}, none expects a point)",
            pair.collection,
            crate::text::count(rows as i64, "row", None),
            pair.table
        )
    };
    Ok((result, lists))
}

/// A site pair whose table is not created yet (its collection holds no point).
pub(super) fn table_not_created(pair: &Pair) -> (PairResult, Lists) {
    let (mut result, lists) = compared(pair, 0, 0, 0, Lists::default());
    result.not_created = format!(
        "table {} not created yet, and collection {} holds no point",
        pair.table, pair.collection
    );
    (result, lists)
}
