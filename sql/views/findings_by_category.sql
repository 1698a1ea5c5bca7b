-- How many findings and calls each category has.
CREATE OR REPLACE VIEW findings_by_category AS
SELECT
    category,
    count(*) AS findings,
    count(DISTINCT call_id) AS calls,
    max(CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END)
        AS worst_severity_rank
FROM findings
GROUP BY category;
