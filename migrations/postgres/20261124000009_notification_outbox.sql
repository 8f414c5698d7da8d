-- What the notifiers (Slack, PagerDuty) must still be told, in order per
-- notifier and incident. A row is written with the event that causes it
-- and delivered by a worker with retries, so a notifier that is down or
-- rate-limited delays nothing else and loses nothing across a restart.
CREATE TABLE notification_outbox (
    seq             BIGSERIAL PRIMARY KEY,
    notifier        TEXT NOT NULL,
    incident_id     UUID NOT NULL,
    notification    JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    delivered_at    TIMESTAMPTZ,
    failed_at       TIMESTAMPTZ,
    last_error      TEXT
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX notification_outbox_incident ON notification_outbox (notifier, incident_id, seq)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

-- What a notifier remembers of what it sent: the Slack message of an
-- approval, the thread of an incident, the PagerDuty incident it pages.
CREATE TABLE notifier_refs (
    notifier   TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (notifier, key)
);
