-- cerebro schema, SQLite dialect. Ids are UUID blobs, times RFC 3339 text.
-- Append-only: later changes come as new files.

CREATE TABLE incidents (
    id          BLOB PRIMARY KEY NOT NULL,
    org_id      TEXT NOT NULL DEFAULT 'default',
    title       TEXT NOT NULL,
    status      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    service     TEXT,
    group_key   TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX incidents_active_group ON incidents (org_id, group_key)
    WHERE status NOT IN ('resolved', 'closed');
CREATE INDEX incidents_opened ON incidents (org_id, opened_at DESC);

CREATE TABLE alerts (
    id          BLOB PRIMARY KEY NOT NULL,
    incident_id BLOB REFERENCES incidents (id),
    source      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    service     TEXT,
    namespace   TEXT,
    resource    TEXT,
    labels      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    description TEXT,
    starts_at   TEXT NOT NULL,
    ends_at     TEXT,
    last_seen   TEXT NOT NULL,
    count       INTEGER NOT NULL DEFAULT 1,
    raw         TEXT NOT NULL
);
-- One firing alert per fingerprint: a repeat updates it, never duplicates it.
CREATE UNIQUE INDEX alerts_firing_fingerprint ON alerts (source, fingerprint)
    WHERE status = 'firing';
CREATE INDEX alerts_incident ON alerts (incident_id);

CREATE TABLE timeline_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id BLOB NOT NULL REFERENCES incidents (id),
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    message     TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX timeline_incident ON timeline_events (incident_id, seq);

CREATE TABLE evidence (
    id           BLOB PRIMARY KEY NOT NULL,
    incident_id  BLOB NOT NULL REFERENCES incidents (id),
    tool         TEXT NOT NULL,
    args         TEXT NOT NULL,
    summary      TEXT NOT NULL,
    data         TEXT NOT NULL,
    collected_at TEXT NOT NULL
);
CREATE INDEX evidence_incident ON evidence (incident_id);

CREATE TABLE diagnoses (
    id          BLOB PRIMARY KEY NOT NULL,
    incident_id BLOB NOT NULL REFERENCES incidents (id),
    category    TEXT NOT NULL,
    component   TEXT NOT NULL,
    confidence  REAL NOT NULL,
    explanation TEXT NOT NULL,
    citations   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX diagnoses_incident ON diagnoses (incident_id, created_at);

CREATE TABLE action_proposals (
    id           BLOB PRIMARY KEY NOT NULL,
    incident_id  BLOB NOT NULL REFERENCES incidents (id),
    diagnosis_id BLOB REFERENCES diagnoses (id),
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    params       TEXT NOT NULL,
    risk         TEXT NOT NULL,
    rationale    TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX proposals_incident ON action_proposals (incident_id);

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
CREATE INDEX approvals_pending ON approvals (expires_at) WHERE status = 'pending';

-- Hash-chained: each row's hash covers its content and the previous hash.
-- `data` is the exact JSON text that was hashed.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY NOT NULL,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE llm_calls (
    id          BLOB PRIMARY KEY NOT NULL,
    incident_id BLOB REFERENCES incidents (id),
    role        TEXT NOT NULL,
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL,
    tokens_in   INTEGER NOT NULL,
    tokens_out  INTEGER NOT NULL,
    cost_usd    REAL NOT NULL,
    latency_ms  INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX llm_calls_incident ON llm_calls (incident_id);
CREATE INDEX llm_calls_at ON llm_calls (at);

CREATE TABLE documents (
    id           BLOB PRIMARY KEY NOT NULL,
    org_id       TEXT NOT NULL DEFAULT 'default',
    source       TEXT NOT NULL,
    path         TEXT NOT NULL,
    title        TEXT NOT NULL,
    mime         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (org_id, source, path)
);
