-- Findings per category per day (the call's local day; the audit day for recordings
-- without a call record), each thing said once per category (reportable_findings).
-- Reviewed false positives are left out.
CREATE OR REPLACE VIEW findings_by_category_day AS
SELECT
    call_day(c.started_at, c.timezone, c.audited_at) AS day,
    f.category,
    count(*) AS findings,
    count(DISTINCT f.call_id) AS calls
FROM reportable_findings f
JOIN calls c USING (call_id)
WHERE f.verdict IS DISTINCT FROM 'false_positive'
GROUP BY ALL;
