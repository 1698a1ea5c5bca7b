-- Calls ranked by severity-weighted findings (low 1, medium 3, high 6, critical 10), with
-- the agent and debtor. Each thing said counts once per category (reportable_findings:
-- three threat rules matching one sentence are one threat). Findings a reviewer marked
-- false_positive don't count. Calls without a recording are included: contact rules can
-- flag them.
CREATE OR REPLACE VIEW call_risk AS
SELECT
    c.call_id,
    c.agent_id,
    c.debtor_id,
    c.started_at,
    c.duration_s,
    c.status,
    count(f.group_id) AS findings,
    CAST(coalesce(sum(f.weight), 0) AS INTEGER) AS risk_score,
    string_agg(DISTINCT f.category, ', ' ORDER BY f.category) AS categories
FROM calls c
LEFT JOIN (
    SELECT * FROM reportable_findings WHERE verdict IS DISTINCT FROM 'false_positive'
) f USING (call_id)
WHERE c.status IN ('ok', 'no_recording')
GROUP BY ALL;
