-- opsh's columns on the deployment's processing_jobs. Its workers read and write both
-- (`COALESCE(retry_count, 0) + 1`, `updated_at = NOW()`), but its init.sql never creates them.
-- ADD COLUMN … NOT NULL DEFAULT 0 changes only the catalog (no table rewrite).
ALTER TABLE processing_jobs ADD COLUMN IF NOT EXISTS retry_count INTEGER NOT NULL DEFAULT 0;

-- updated_at gets no value for existing rows (stamping them "now" would make every stuck job
-- look freshly touched); only new rows get the default, hence two statements.
ALTER TABLE processing_jobs ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP;
ALTER TABLE processing_jobs ALTER COLUMN updated_at SET DEFAULT CURRENT_TIMESTAMP;
