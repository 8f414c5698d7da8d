-- A tool that acts may be asked for outside an incident (an MCP client):
-- its proposal has no incident, and records which tool, with which
-- arguments (`params`), for whom, so the same call runs once approved.
--
-- SQLite cannot drop NOT NULL in place, so the table is rebuilt, inside
-- the migration's transaction where foreign keys stay on. Its only child,
-- `approvals`, is set aside first (dropping a parent that rows still refer
-- to would count as deleting them), then rebuilt onto the new table.
CREATE TABLE action_proposals_new (
    id           BLOB PRIMARY KEY NOT NULL,
    incident_id  BLOB REFERENCES incidents (id),
    diagnosis_id BLOB REFERENCES diagnoses (id),
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    params       TEXT NOT NULL,
    risk         TEXT NOT NULL,
    rationale    TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    tool         TEXT,
    requested_by TEXT NOT NULL DEFAULT 'agent'
);
INSERT INTO action_proposals_new (id, incident_id, diagnosis_id, action, target, params, risk, rationale, status, created_at)
    SELECT id, incident_id, diagnosis_id, action, target, params, risk, rationale, status, created_at FROM action_proposals;

CREATE TEMP TABLE approvals_aside AS SELECT * FROM approvals;
DROP TABLE approvals;
DROP TABLE action_proposals;
ALTER TABLE action_proposals_new RENAME TO action_proposals;
CREATE INDEX proposals_incident ON action_proposals (incident_id);
CREATE INDEX proposals_tool_call ON action_proposals (tool, requested_by) WHERE tool IS NOT NULL;

CREATE TABLE approvals (
    id           BLOB PRIMARY KEY NOT NULL,
    proposal_id  BLOB NOT NULL UNIQUE REFERENCES action_proposals (id),
    status       TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    decided_at   TEXT,
    decided_by   TEXT,
    reason       TEXT
);
INSERT INTO approvals (id, proposal_id, status, requested_at, expires_at, decided_at, decided_by, reason)
    SELECT id, proposal_id, status, requested_at, expires_at, decided_at, decided_by, reason FROM approvals_aside;
DROP TABLE approvals_aside;
CREATE INDEX approvals_pending ON approvals (expires_at) WHERE status = 'pending';
