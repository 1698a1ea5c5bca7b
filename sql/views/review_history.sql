-- Every verdict on every finding, newest first, with the finding it was given on: who
-- changed their mind, when, and why. `is_current` marks the verdict that counts.
CREATE OR REPLACE VIEW review_history AS
SELECT
    l.finding_id,
    f.call_id,
    f.rule_id,
    f.category,
    l.verdict,
    l.reviewer,
    l.note,
    l.reviewed_at,
    row_number() OVER (PARTITION BY l.finding_id ORDER BY l.reviewed_at DESC) = 1 AS is_current
FROM review_log l
LEFT JOIN findings f USING (finding_id)
ORDER BY l.reviewed_at DESC;
