//! The by-payload comparison: a point names its row by a payload key (summaries by
//! content_id); the rows' ids are read first, then each point's value is looked up among them.

use std::collections::HashSet;

use super::pairs::{Pair, by_payload_select};
use super::report::{Lists, PairResult, compared};
use crate::ops::Target;
use crate::ops::error::OpError;
use crate::ops::qdrant::{self as qd, PointKey};

/// A payload value naming a row, as text (integers in decimal, strings as they are).
fn payload_text(v: &qdrant_client::qdrant::Value) -> Option<String> {
    match qd::json_of(v) {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

/// A by-payload pair: the rows' ids (and the required ones) first, then the points' payload
/// values looked up among them.
pub(super) async fn compare_by_payload(
    target: &Target,
    pair: &Pair,
    key: &str,
    page: u32,
) -> Result<(PairResult, Lists), OpError> {
    let pool = target.pg().await?;
    // Read-only, as the COPY of a by-id pair: the configured SQL may not write.
    let mut tx = pool.begin().await.map_err(target.pg_err())?;
    sqlx::raw_sql("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(target.pg_err())?;
    let all: Vec<(Option<String>, bool)> =
        sqlx::query_as(sqlx::AssertSqlSafe(by_payload_select(pair)))
            .fetch_all(&mut *tx)
            .await
            .map_err(target.pg_err())?;
    tx.commit().await.map_err(target.pg_err())?;
    let rows = all.len() as u64;
    let mut ids: Vec<String> = all.iter().filter_map(|(id, _)| id.clone()).collect();
    ids.sort_unstable();
    let mut seen: HashSet<String> = HashSet::new();
    let (mut orphans, mut invalid) = (Vec::new(), Vec::new());
    let mut points = 0u64;
    let mut matched = 0u64;
    qd::scroll(target, &pair.collection, page, &[key], |page| {
        for p in page {
            let Some(id) = p.id.as_ref().and_then(PointKey::from_grpc) else {
                continue;
            };
            points += 1;
            match p.payload.get(key).and_then(payload_text) {
                None => invalid.push(id.to_string()),
                Some(value) => {
                    if ids.binary_search(&value).is_ok() {
                        matched += 1;
                        seen.insert(value);
                    } else {
                        orphans.push(id);
                    }
                }
            }
        }
    })
    .await?;
    let mut missing: Vec<String> = all
        .into_iter()
        .filter(|(id, req)| *req && id.as_ref().is_some_and(|i| !seen.contains(i)))
        .filter_map(|(id, _)| id)
        .collect();
    missing.sort_by(|a, b| (a.len(), a.as_str()).cmp(&(b.len(), b.as_str())));
    orphans.sort();
    invalid.sort();
    Ok(compared(
        pair,
        rows,
        points,
        matched,
        Lists {
            missing,
            orphans,
            invalid,
        },
    ))
}
