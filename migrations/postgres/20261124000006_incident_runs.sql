-- The orchestrator's durable progress per incident: the last step done,
-- what later steps need from it, and which worker holds it until when.
CREATE TABLE incident_runs (
    incident_id UUID PRIMARY KEY REFERENCES incidents (id),
    step        TEXT NOT NULL,
    state       JSONB NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    attempts    BIGINT NOT NULL DEFAULT 0,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX incident_runs_open ON incident_runs (updated_at) WHERE step <> 'done';
-- The workers look for open incidents without a run every few seconds.
CREATE INDEX incidents_open ON incidents (opened_at) WHERE status = 'open';
