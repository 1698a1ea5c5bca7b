-- One row per agent: how calls were conducted, over all measured calls (call_metrics):
-- share of talk, overtalk and interruptions per call, the longest dead air, loudness
-- range, pace, and the calls where conduct checks could not run (mono recordings).
-- agent_scorecard shows the first columns; conduct_by_agent_day is the same per day.
CREATE OR REPLACE VIEW agent_conduct AS
SELECT
    c.agent_id,
    count(*) AS calls_measured,
    count(*) FILTER (WHERE m.not_run IS NOT NULL) AS calls_partly_unmeasured,
    round(avg(m.talk_ratio), 3) AS avg_talk_ratio,
    round(avg(m.overtalk_s), 2) AS avg_overtalk_s,
    round(avg(m.interruptions), 2) AS avg_interruptions,
    round(max(m.longest_silence_s), 1) AS longest_silence_s,
    round(avg(m.agent_loudness_range_db), 1) AS avg_loudness_range_db,
    round(avg(m.mean_pace_cps), 2) AS avg_pace_cps,
    round(max(m.max_pace_cps), 2) AS max_pace_cps
FROM call_metrics m
JOIN calls c USING (call_id)
WHERE c.status = 'ok'
GROUP BY c.agent_id;
