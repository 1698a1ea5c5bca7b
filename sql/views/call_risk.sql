-- Calls ranked by severity-weighted findings (low 1, medium 3, high 6, critical 10).
CREATE OR REPLACE VIEW call_risk AS
SELECT
    c.call_id,
    c.agent_id,
    c.started_at,
    c.duration_s,
    count(f.finding_id) AS findings,
    coalesce(sum(CASE f.severity WHEN 'critical' THEN 10 WHEN 'high' THEN 6
                                 WHEN 'medium' THEN 3 WHEN 'low' THEN 1 ELSE 0 END), 0)
        AS risk_score,
    string_agg(DISTINCT f.category, ', ' ORDER BY f.category) AS categories
FROM calls c
LEFT JOIN findings f USING (call_id)
WHERE c.status = 'ok'
GROUP BY ALL;
