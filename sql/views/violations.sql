-- Every finding with the call's context: the view compliance officers start from.
CREATE OR REPLACE VIEW violations AS
SELECT
    f.finding_id,
    f.call_id,
    c.agent_id,
    c.debtor_id,
    c.started_at,
    f.category,
    f.severity,
    f.rule_id,
    f.speaker,
    f.start_s,
    f.end_s,
    f.match,
    f.text,
    f.citation,
    r.verdict AS review_verdict,
    r.reviewer,
    r.note AS review_note,
    r.reviewed_at
FROM findings f
JOIN calls c USING (call_id)
LEFT JOIN reviews r USING (finding_id);
