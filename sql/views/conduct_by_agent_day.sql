-- How each agent conducted calls, per day (the call's local day; the audit day for
-- recordings without a call record): averages of call_metrics over the calls where the
-- measure could be taken (mono recordings leave most of them NULL), and the conduct
-- findings (reviewed false positives left out). The trend behind the scorecard's columns.
CREATE OR REPLACE VIEW conduct_by_agent_day AS
SELECT
    call_day(c.started_at, c.timezone, c.audited_at) AS day,
    c.agent_id,
    count(*) AS calls_measured,
    count(m.talk_ratio) AS stereo_calls,
    round(avg(m.talk_ratio), 3) AS avg_talk_ratio,
    round(avg(m.overtalk_s), 2) AS avg_overtalk_s,
    CAST(coalesce(sum(m.interruptions), 0) AS INTEGER) AS interruptions,
    round(max(m.longest_silence_s), 1) AS longest_silence_s,
    round(avg(m.agent_loudness_range_db), 1) AS avg_loudness_range_db,
    round(max(m.agent_max_above_median_db), 1) AS max_above_median_db,
    round(avg(m.mean_pace_cps), 2) AS avg_pace_cps,
    CAST(coalesce(sum(f.findings), 0) AS INTEGER) AS conduct_findings
FROM call_metrics m
JOIN calls c USING (call_id)
LEFT JOIN (
    SELECT call_id, count(*) AS findings
    FROM reportable_findings
    WHERE category = 'conduct' AND verdict IS DISTINCT FROM 'false_positive'
    GROUP BY call_id
) f USING (call_id)
WHERE c.status = 'ok'
GROUP BY ALL;
