-- Findings per category per day (the call's local day; the audit day for recordings
-- without a call record). Reviewed false positives are left out.
CREATE OR REPLACE VIEW findings_by_category_day AS
SELECT
    call_day(c.started_at, c.timezone, c.audited_at) AS day,
    f.category,
    count(*) AS findings,
    count(DISTINCT f.call_id) AS calls
FROM findings f
JOIN calls c USING (call_id)
LEFT JOIN reviews r USING (finding_id)
WHERE r.verdict IS DISTINCT FROM 'false_positive'
GROUP BY ALL;
