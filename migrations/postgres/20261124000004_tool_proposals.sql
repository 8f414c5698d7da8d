-- A tool that acts may be asked for outside an incident (an MCP client):
-- its proposal has no incident, and records which tool, with which
-- arguments (`params`), for whom, so the same call runs once approved.
ALTER TABLE action_proposals ALTER COLUMN incident_id DROP NOT NULL;
ALTER TABLE action_proposals ADD COLUMN tool TEXT;
ALTER TABLE action_proposals ADD COLUMN requested_by TEXT NOT NULL DEFAULT 'agent';
CREATE INDEX proposals_tool_call ON action_proposals (tool, requested_by) WHERE tool IS NOT NULL;
