-- "Does this incident still have a firing alert?" is asked on every
-- resolution; answer it from the index, not by reading every alert.
CREATE INDEX alerts_incident_status ON alerts (incident_id, status);
