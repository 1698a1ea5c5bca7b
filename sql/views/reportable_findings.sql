-- One row per thing said: the findings of one category on one utterance grouped, as a
-- reviewer sees them, with every rule and match of the group. Call-level findings
-- (missing disclosure, contact rules) have no utterance and stand alone. `group_id` is
-- the smallest finding id of the group, stable across re-audits like the ids. A
-- reviewer's verdict on any finding of the group is the group's (the latest one counts),
-- so one false positive clears what was said, not one of its rules. Risk scores and
-- scorecards count these rows; rule_stats keeps the rule-level findings.
CREATE OR REPLACE VIEW reportable_findings AS
WITH ranked AS (
    SELECT
        f.*,
        r.verdict,
        r.reviewed_at,
        CASE f.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3
                        WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END AS severity_rank,
        CASE WHEN f.utterance_idx IS NULL THEN f.finding_id
             ELSE f.call_id || '#' || f.utterance_idx || '#' || f.category END AS group_key
    FROM findings f
    LEFT JOIN reviews r USING (finding_id)
)
SELECT
    min(finding_id) AS group_id,
    any_value(call_id) AS call_id,
    any_value(category) AS category,
    arg_max(severity, severity_rank) AS severity,
    CAST(max(severity_rank) AS INTEGER) AS severity_rank,
    CAST(CASE max(severity_rank) WHEN 4 THEN 10 WHEN 3 THEN 6 WHEN 2 THEN 3
                                 WHEN 1 THEN 1 ELSE 0 END AS INTEGER) AS weight,
    string_agg(DISTINCT rule_id, ', ' ORDER BY rule_id) AS rule_ids,
    count(*) AS rule_findings,
    any_value(speaker) AS speaker,
    any_value(utterance_idx) AS utterance_idx,
    min(start_s) AS start_s,
    max(end_s) AS end_s,
    any_value(text) AS text,
    string_agg(match, ' | ' ORDER BY char_start, rule_id) AS matches,
    string_agg(DISTINCT citation, '; ' ORDER BY citation) AS citations,
    arg_max(verdict, reviewed_at) FILTER (WHERE verdict IS NOT NULL) AS verdict
FROM ranked
GROUP BY group_key;
