-- opsh's own bookkeeping for integrity::fix (src/ops/integrity.rs): when each orphan vector (a
-- Qdrant point with no PostgreSQL row) was first seen. fix deletes a point only once it has
-- been an orphan for integrity.orphan_grace, so a worker that writes the point before its
-- vector_mappings row never loses it. fix makes it on first use (a dry run makes nothing);
-- `opsh migrate` does not.
CREATE TABLE IF NOT EXISTS opsh_orphan_candidates (
    collection varchar(100) NOT NULL,
    point_id   varchar(100) NOT NULL,
    first_seen timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, point_id)
);
