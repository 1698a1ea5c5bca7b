-- One row per agent: calls (with or without a recording, failed audits included),
-- call minutes, findings (each thing said once per category, as in reportable_findings;
-- reviewed false positives left out), findings per 100 calls,
-- severity-weighted risk points, and the worst category (most risk points); then how
-- calls were conducted (agent_conduct: share of talk, overtalk seconds and interruptions
-- per call, pace), NULL for agents with no measured call.
CREATE OR REPLACE VIEW agent_scorecard AS
WITH per_agent AS (
    SELECT
        agent_id,
        count(*) AS calls,
        count(*) FILTER (WHERE status = 'ok') AS recorded_calls,
        round(coalesce(sum(duration_s), 0) / 60, 1) AS minutes
    FROM calls
    GROUP BY agent_id
),
valid AS (
    SELECT c.agent_id, f.category, f.severity, f.weight
    FROM reportable_findings f
    JOIN calls c USING (call_id)
    WHERE f.verdict IS DISTINCT FROM 'false_positive'
),
per_category AS (
    SELECT
        agent_id,
        category,
        count(*) AS findings,
        sum(weight) AS points,
        row_number() OVER (PARTITION BY agent_id
                           ORDER BY sum(weight) DESC, count(*) DESC, category) AS rank
    FROM valid
    GROUP BY agent_id, category
),
totals AS (
    SELECT
        agent_id,
        CAST(sum(findings) AS BIGINT) AS findings,
        sum(points) AS risk_points,
        max(category) FILTER (WHERE rank = 1) AS worst_category
    FROM per_category
    GROUP BY agent_id
)
SELECT
    a.agent_id,
    a.calls,
    a.recorded_calls,
    a.minutes,
    coalesce(t.findings, 0) AS findings,
    round(100.0 * coalesce(t.findings, 0) / a.calls, 1) AS findings_per_100_calls,
    CAST(coalesce(t.risk_points, 0) AS INTEGER) AS risk_points,
    t.worst_category,
    k.avg_talk_ratio,
    k.avg_overtalk_s,
    k.avg_interruptions,
    k.avg_pace_cps
FROM per_agent a
LEFT JOIN totals t ON t.agent_id IS NOT DISTINCT FROM a.agent_id
LEFT JOIN agent_conduct k ON k.agent_id IS NOT DISTINCT FROM a.agent_id;
