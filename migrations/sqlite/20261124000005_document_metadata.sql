-- The knowledge base filters and lists documents by type, service and
-- category, and reports how many chunks each one was split into.
ALTER TABLE documents ADD COLUMN doc_type TEXT NOT NULL DEFAULT 'doc';
ALTER TABLE documents ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
ALTER TABLE documents ADD COLUMN categories TEXT NOT NULL DEFAULT '[]';
ALTER TABLE documents ADD COLUMN chunks INTEGER NOT NULL DEFAULT 0;
