-- The knowledge base filters and lists documents by type, service and
-- category, and reports how many chunks each one was split into.
ALTER TABLE documents ADD COLUMN doc_type TEXT NOT NULL DEFAULT 'doc';
ALTER TABLE documents ADD COLUMN services JSONB NOT NULL DEFAULT '[]';
ALTER TABLE documents ADD COLUMN categories JSONB NOT NULL DEFAULT '[]';
ALTER TABLE documents ADD COLUMN chunks BIGINT NOT NULL DEFAULT 0;
