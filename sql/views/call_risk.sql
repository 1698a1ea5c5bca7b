-- Calls ranked by severity-weighted findings (low 1, medium 3, high 6, critical 10), with
-- the agent and debtor. Findings a reviewer marked false_positive don't count. Calls
-- without a recording are included: contact rules can flag them.
CREATE OR REPLACE VIEW call_risk AS
SELECT
    c.call_id,
    c.agent_id,
    c.debtor_id,
    c.started_at,
    c.duration_s,
    c.status,
    count(f.finding_id) AS findings,
    coalesce(sum(CASE f.severity WHEN 'critical' THEN 10 WHEN 'high' THEN 6
                                 WHEN 'medium' THEN 3 WHEN 'low' THEN 1 ELSE 0 END), 0)
        AS risk_score,
    string_agg(DISTINCT f.category, ', ' ORDER BY f.category) AS categories
FROM calls c
LEFT JOIN (
    SELECT f.*
    FROM findings f
    LEFT JOIN reviews r USING (finding_id)
    WHERE r.verdict IS DISTINCT FROM 'false_positive'
) f USING (call_id)
WHERE c.status IN ('ok', 'no_recording')
GROUP BY ALL;
