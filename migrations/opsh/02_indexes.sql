-- opsh's indexes on the deployment's tables. On a table that already exists `opsh migrate`
-- builds them CREATE INDEX CONCURRENTLY, and not at all where an index of the same definition
-- exists under another name.

-- The stuck-job query (jobs::stuck, jobs::reset_stuck) filters processing jobs by their last
-- sign of life (jobs::LAST_ACTIVITY); this partial index holds only processing rows, so it
-- stays small on a large queue.
CREATE INDEX IF NOT EXISTS idx_processing_jobs_stuck ON processing_jobs ((COALESCE(GREATEST(started_at, updated_at, completed_at), created_at))) WHERE status = 'processing';

-- The integrity check looks up Qdrant point ids in vector_mappings.chunk_id.
CREATE INDEX IF NOT EXISTS idx_vector_mappings_chunk_id ON vector_mappings (chunk_id);
