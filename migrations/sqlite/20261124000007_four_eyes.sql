-- Four-eyes approvals: how many different people must approve, and the
-- first of them while the second is awaited.
ALTER TABLE approvals ADD COLUMN approvals_needed INTEGER NOT NULL DEFAULT 1;
ALTER TABLE approvals ADD COLUMN first_approver TEXT;
