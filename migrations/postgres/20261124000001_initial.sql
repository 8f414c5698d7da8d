-- cerebro schema, PostgreSQL dialect. Append-only: later changes come as new files.

CREATE TABLE incidents (
    id          UUID PRIMARY KEY,
    org_id      TEXT NOT NULL DEFAULT 'default',
    title       TEXT NOT NULL,
    status      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    service     TEXT,
    group_key   TEXT NOT NULL,
    opened_at   TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ
);
CREATE INDEX incidents_active_group ON incidents (org_id, group_key)
    WHERE status NOT IN ('resolved', 'closed');
CREATE INDEX incidents_opened ON incidents (org_id, opened_at DESC);

CREATE TABLE alerts (
    id          UUID PRIMARY KEY,
    incident_id UUID REFERENCES incidents (id),
    source      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    service     TEXT,
    namespace   TEXT,
    resource    TEXT,
    labels      JSONB NOT NULL,
    summary     TEXT NOT NULL,
    description TEXT,
    starts_at   TIMESTAMPTZ NOT NULL,
    ends_at     TIMESTAMPTZ,
    last_seen   TIMESTAMPTZ NOT NULL,
    count       BIGINT NOT NULL DEFAULT 1,
    raw         JSONB NOT NULL
);
-- One firing alert per fingerprint: a repeat updates it, never duplicates it.
CREATE UNIQUE INDEX alerts_firing_fingerprint ON alerts (source, fingerprint)
    WHERE status = 'firing';
CREATE INDEX alerts_incident ON alerts (incident_id);

CREATE TABLE timeline_events (
    seq         BIGSERIAL PRIMARY KEY,
    incident_id UUID NOT NULL REFERENCES incidents (id),
    at          TIMESTAMPTZ NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    message     TEXT NOT NULL,
    data        JSONB NOT NULL
);
CREATE INDEX timeline_incident ON timeline_events (incident_id, seq);

CREATE TABLE evidence (
    id           UUID PRIMARY KEY,
    incident_id  UUID NOT NULL REFERENCES incidents (id),
    tool         TEXT NOT NULL,
    args         JSONB NOT NULL,
    summary      TEXT NOT NULL,
    data         JSONB NOT NULL,
    collected_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX evidence_incident ON evidence (incident_id);

CREATE TABLE diagnoses (
    id          UUID PRIMARY KEY,
    incident_id UUID NOT NULL REFERENCES incidents (id),
    category    TEXT NOT NULL,
    component   TEXT NOT NULL,
    confidence  DOUBLE PRECISION NOT NULL,
    explanation TEXT NOT NULL,
    citations   JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX diagnoses_incident ON diagnoses (incident_id, created_at);

CREATE TABLE action_proposals (
    id           UUID PRIMARY KEY,
    incident_id  UUID NOT NULL REFERENCES incidents (id),
    diagnosis_id UUID REFERENCES diagnoses (id),
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    params       JSONB NOT NULL,
    risk         TEXT NOT NULL,
    rationale    TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX proposals_incident ON action_proposals (incident_id);

CREATE TABLE approvals (
    id           UUID PRIMARY KEY,
    proposal_id  UUID NOT NULL UNIQUE REFERENCES action_proposals (id),
    status       TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    decided_at   TIMESTAMPTZ,
    decided_by   TEXT,
    reason       TEXT
);
CREATE INDEX approvals_pending ON approvals (expires_at) WHERE status = 'pending';

-- Hash-chained: each row's hash covers its content and the previous hash.
-- `data` is the exact JSON text that was hashed (TEXT, not JSONB, so it is
-- returned byte for byte).
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE llm_calls (
    id          UUID PRIMARY KEY,
    incident_id UUID REFERENCES incidents (id),
    role        TEXT NOT NULL,
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL,
    tokens_in   BIGINT NOT NULL,
    tokens_out  BIGINT NOT NULL,
    cost_usd    DOUBLE PRECISION NOT NULL,
    latency_ms  BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX llm_calls_incident ON llm_calls (incident_id);
CREATE INDEX llm_calls_at ON llm_calls (at);

CREATE TABLE documents (
    id           UUID PRIMARY KEY,
    org_id       TEXT NOT NULL DEFAULT 'default',
    source       TEXT NOT NULL,
    path         TEXT NOT NULL,
    title        TEXT NOT NULL,
    mime         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, source, path)
);
