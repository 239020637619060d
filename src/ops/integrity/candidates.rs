//! opsh_orphan_candidates: when each orphan vector was first seen, so that fix deletes a point
//! only once it has been an orphan for the grace period.

use sqlx::postgres::PgPool;

use crate::ops::Target;
use crate::ops::error::OpError;
use crate::ops::qdrant::PointKey;

/// When each orphan vector (a Qdrant point with no PostgreSQL row) was first seen: fix deletes a
/// point only once it has been an orphan for integrity.orphan_grace, so a worker that writes the
/// point before its vector_mappings row never loses it. Defined in
/// migrations/opsh/orphan_candidates.sql.
pub const CANDIDATES_TABLE: &str = crate::ops::db::schema::ORPHAN_CANDIDATES;

/// The table as one fix run reads and writes it.
pub(super) struct Seen<'a> {
    target: &'a Target,
    pool: &'a PgPool,
    /// What "when first seen" is read from: the table, or under a dry run without the table,
    /// an empty relation of its shape.
    from: &'static str,
}

impl<'a> Seen<'a> {
    /// opsh's own bookkeeping table, made on first use (not by `opsh migrate`); a dry run
    /// creates nothing and reads an absent table as "no orphan seen before".
    pub(super) async fn open(
        target: &'a Target,
        pool: &'a PgPool,
        dry_run: bool,
    ) -> Result<Seen<'a>, OpError> {
        let have_candidates: bool =
            sqlx::query_scalar("SELECT to_regclass('opsh_orphan_candidates') IS NOT NULL")
                .fetch_one(pool)
                .await
                .map_err(target.pg_err())?;
        if !dry_run && !have_candidates {
            sqlx::query(CANDIDATES_TABLE)
                .execute(pool)
                .await
                .map_err(target.pg_err())?;
        }
        let from = if dry_run && !have_candidates {
            "(SELECT NULL::text AS collection, NULL::text AS point_id, NULL::timestamptz AS first_seen WHERE false)"
        } else {
            "opsh_orphan_candidates"
        };
        Ok(Seen { target, pool, from })
    }

    /// Records this check's orphans of a collection (the point ids as text).
    pub(super) async fn record(&self, collection: &str, texts: &[String]) -> Result<(), OpError> {
        // First seen: recorded once; forgotten when the point is no orphan any more.
        sqlx::query(
            "DELETE FROM opsh_orphan_candidates WHERE collection = $1 AND NOT (point_id = ANY($2))",
        )
        .bind(collection)
        .bind(texts)
        .execute(self.pool)
        .await
        .map_err(self.target.pg_err())?;
        sqlx::query(
            "INSERT INTO opsh_orphan_candidates (collection, point_id)
             SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(collection)
        .bind(texts)
        .execute(self.pool)
        .await
        .map_err(self.target.pg_err())?;
        Ok(())
    }

    /// Of these orphans, the ones first seen at least `grace` seconds ago (one not recorded
    /// counts as seen now), in order.
    pub(super) async fn eligible(
        &self,
        collection: &str,
        texts: &[String],
        grace: f64,
    ) -> Result<Vec<PointKey>, OpError> {
        let eligible: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t.point_id FROM unnest($2::text[]) AS t(point_id)
             LEFT JOIN {} c ON c.collection = $1 AND c.point_id = t.point_id
             WHERE COALESCE(c.first_seen, now()) <= now() - make_interval(secs => $3)",
            self.from
        )))
        .bind(collection)
        .bind(texts)
        .bind(grace)
        .fetch_all(self.pool)
        .await
        .map_err(self.target.pg_err())?;
        let mut eligible: Vec<PointKey> =
            eligible.iter().filter_map(|t| PointKey::parse(t)).collect();
        eligible.sort_unstable();
        Ok(eligible)
    }

    /// When the last of these orphans that are not yet past `grace` will be (one not recorded
    /// counts as seen now), as "2026-12-02 12:41:05 UTC"; None when all are past it.
    pub(super) async fn deferred_until(
        &self,
        collection: &str,
        texts: &[String],
        grace: f64,
    ) -> Result<Option<String>, OpError> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT to_char(max(COALESCE(c.first_seen, now()) + make_interval(secs => $3))
                            AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
             FROM unnest($2::text[]) AS t(point_id)
             LEFT JOIN {} c ON c.collection = $1 AND c.point_id = t.point_id
             WHERE COALESCE(c.first_seen, now()) > now() - make_interval(secs => $3)",
            self.from
        )))
        .bind(collection)
        .bind(texts)
        .bind(grace)
        .fetch_one(self.pool)
        .await
        .map_err(self.target.pg_err())
    }

    /// Forgets deleted points.
    pub(super) async fn forget(&self, collection: &str, texts: &[String]) -> Result<(), OpError> {
        sqlx::query(
            "DELETE FROM opsh_orphan_candidates WHERE collection = $1 AND point_id = ANY($2)",
        )
        .bind(collection)
        .bind(texts)
        .execute(self.pool)
        .await
        .map_err(self.target.pg_err())?;
        Ok(())
    }
}
