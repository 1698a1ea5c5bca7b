-- Findings per agent per day: the call's local day in the debtor's zone (the audit day,
-- UTC, for recordings without a call record). Reviewed false positives are left out.
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
FROM findings f
JOIN calls c USING (call_id)
LEFT JOIN reviews r USING (finding_id)
WHERE r.verdict IS DISTINCT FROM 'false_positive'
GROUP BY ALL;
