-- opsh's own table: the audit of destructive actions (src/ops/audit.rs, `opsh audit`). Made by
-- `opsh migrate` beside the deployment's tables; nothing of the deployment reads or writes it.
CREATE TABLE IF NOT EXISTS opsh_audit (
    id BIGSERIAL PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    at TIMESTAMPTZ NOT NULL,
    os_user TEXT NOT NULL,
    host TEXT NOT NULL,
    procedure TEXT,
    arguments JSONB NOT NULL DEFAULT '{}',
    target TEXT,
    op TEXT NOT NULL,
    summary TEXT NOT NULL,
    count BIGINT NOT NULL,
    dry_run BOOLEAN NOT NULL,
    outcome TEXT NOT NULL,
    run_started TIMESTAMPTZ,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS opsh_audit_at ON opsh_audit (at);
