-- The managed schema exactly as the deployment's init.sql defines it. Every statement is
-- IF NOT EXISTS, so applying it to a running deployment's database changes nothing there.
-- (No foreign key has ON DELETE and statuses are plain VARCHAR, as in the original.)

CREATE TABLE IF NOT EXISTS channels (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    url VARCHAR(500) UNIQUE NOT NULL,
    platform VARCHAR(50) NOT NULL,
    category VARCHAR(100),
    description TEXT,
    language VARCHAR(10) DEFAULT 'ko',
    is_active BOOLEAN DEFAULT true,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS content (
    id SERIAL PRIMARY KEY,
    channel_id INTEGER REFERENCES channels(id),
    external_id VARCHAR(255) NOT NULL,
    title VARCHAR(500) NOT NULL,
    url VARCHAR(500) NOT NULL,
    description TEXT,
    duration INTEGER,
    publish_date TIMESTAMP,
    views_count INTEGER DEFAULT 0,
    transcript_available BOOLEAN DEFAULT false,
    transcript_type VARCHAR(50),
    language VARCHAR(10),
    is_podcast BOOLEAN DEFAULT false,
    processed_at TIMESTAMP,
    vector_stored BOOLEAN DEFAULT false,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    UNIQUE(channel_id, external_id)
);

CREATE TABLE IF NOT EXISTS transcripts (
    id SERIAL PRIMARY KEY,
    content_id INTEGER REFERENCES content(id),
    text TEXT NOT NULL,
    start_time FLOAT,
    end_time FLOAT,
    speaker VARCHAR(100),
    confidence FLOAT,
    segment_order INTEGER,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS processing_jobs (
    id SERIAL PRIMARY KEY,
    job_type VARCHAR(50) NOT NULL,
    content_id INTEGER REFERENCES content(id),
    status VARCHAR(20) DEFAULT 'pending',
    priority INTEGER DEFAULT 0,
    error_message TEXT,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS vector_mappings (
    id SERIAL PRIMARY KEY,
    content_id INTEGER REFERENCES content(id),
    chunk_id VARCHAR(100) NOT NULL,
    vector_collection VARCHAR(100) NOT NULL,
    chunk_text TEXT,
    chunk_order INTEGER,
    chunk_metadata JSONB,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_content_channel_id ON content(channel_id);
CREATE INDEX IF NOT EXISTS idx_content_publish_date ON content(publish_date);
CREATE INDEX IF NOT EXISTS idx_transcripts_content_id ON transcripts(content_id);
CREATE INDEX IF NOT EXISTS idx_processing_jobs_status ON processing_jobs(status);
CREATE INDEX IF NOT EXISTS idx_processing_jobs_content_id ON processing_jobs(content_id);
CREATE INDEX IF NOT EXISTS idx_vector_mappings_content_id ON vector_mappings(content_id);
