-- "Does this incident still have a firing alert?" is asked on every
-- resolution; answer it from the index, not by reading every alert. The new
-- index also serves every lookup by incident, so the old one goes: one index
-- fewer to update per alert.
CREATE INDEX alerts_incident_status ON alerts (incident_id, status);
DROP INDEX alerts_incident;
