-- When the notifiers were reminded of a pending approval (once, shortly
-- before it expires).
ALTER TABLE approvals ADD COLUMN reminded_at TEXT;
