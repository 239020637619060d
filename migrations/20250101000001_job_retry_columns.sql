-- The deployment's workers read and write processing_jobs.retry_count and updated_at, which its
-- init.sql never creates. ADD COLUMN ... DEFAULT 0 is a metadata-only change (no table rewrite).
ALTER TABLE processing_jobs ADD COLUMN IF NOT EXISTS retry_count INTEGER NOT NULL DEFAULT 0;

-- updated_at gets no value for existing rows: stamping them all with "now" would make every
-- stuck job look freshly touched. Only new rows get the default.
ALTER TABLE processing_jobs ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP;
ALTER TABLE processing_jobs ALTER COLUMN updated_at SET DEFAULT CURRENT_TIMESTAMP;
