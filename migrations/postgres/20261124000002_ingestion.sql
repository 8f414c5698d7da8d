-- Ingestion: redelivery keys, the change feed, suspects, the agents' queue.

-- A webhook delivery seen recently; a retry with the same key changes nothing.
CREATE TABLE deliveries (
    source      TEXT NOT NULL,
    key         TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE INDEX deliveries_received ON deliveries (received_at);

CREATE TABLE changes (
    id          UUID PRIMARY KEY,
    org_id      TEXT NOT NULL DEFAULT 'default',
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    service     TEXT,
    target      TEXT NOT NULL,
    environment TEXT,
    description TEXT NOT NULL,
    author      TEXT,
    at          TIMESTAMPTZ NOT NULL,
    url         TEXT,
    received_at TIMESTAMPTZ NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX changes_service_at ON changes (org_id, service, at);
CREATE INDEX changes_at ON changes (at);

-- Recent changes to an incident's service, attached as suspects.
CREATE TABLE incident_changes (
    incident_id UUID NOT NULL REFERENCES incidents (id),
    change_id   UUID NOT NULL REFERENCES changes (id),
    attached_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, change_id)
);

-- Incidents waiting for the agents. Workers claim with a lease
-- (FOR UPDATE SKIP LOCKED).
CREATE TABLE agent_queue (
    incident_id  UUID PRIMARY KEY REFERENCES incidents (id),
    enqueued_at  TIMESTAMPTZ NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  TIMESTAMPTZ
);
CREATE INDEX agent_queue_available ON agent_queue (available_at);

CREATE INDEX alerts_source_fingerprint ON alerts (source, fingerprint);
CREATE INDEX incidents_service_updated ON incidents (org_id, service, updated_at);
