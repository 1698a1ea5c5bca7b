-- Hits per rule and what reviewers said about them. reviewed_precision =
-- confirmed / reviewed (NULL until someone reviews a finding of the rule).
CREATE OR REPLACE VIEW rule_stats AS
SELECT
    f.rule_id,
    any_value(f.category) AS category,
    any_value(f.severity) AS severity,
    count(*) AS findings,
    count(DISTINCT f.call_id) AS calls,
    count(r.verdict) AS reviewed,
    count(*) FILTER (WHERE r.verdict = 'confirmed') AS confirmed,
    count(*) FILTER (WHERE r.verdict = 'false_positive') AS false_positives,
    round(count(*) FILTER (WHERE r.verdict = 'confirmed') / nullif(count(r.verdict), 0), 3)
        AS reviewed_precision
FROM findings f
LEFT JOIN reviews r USING (finding_id)
GROUP BY f.rule_id;
