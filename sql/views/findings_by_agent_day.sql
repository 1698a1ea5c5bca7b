-- Findings per agent per day: the call's local day in the debtor's zone (the audit day,
-- UTC, for recordings without a call record), each thing said once per category
-- (reportable_findings). Reviewed false positives are left out.
CREATE OR REPLACE VIEW findings_by_agent_day AS
SELECT
    call_day(c.started_at, c.timezone, c.audited_at) AS day,
    c.agent_id,
    count(*) AS findings,
    count(DISTINCT f.call_id) AS calls_with_findings,
    count(*) FILTER (WHERE f.severity = 'critical') AS critical,
    count(*) FILTER (WHERE f.severity = 'high') AS high,
    count(*) FILTER (WHERE f.severity = 'medium') AS medium,
    count(*) FILTER (WHERE f.severity = 'low') AS low
FROM reportable_findings f
JOIN calls c USING (call_id)
WHERE f.verdict IS DISTINCT FROM 'false_positive'
GROUP BY ALL;
