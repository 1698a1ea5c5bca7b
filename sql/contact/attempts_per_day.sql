-- contact_frequency: more than $max_attempts_per_day call attempts to one number on
-- one day (the debtor's local day). The attempts beyond the limit are the findings.
--
-- Every outbound dial is an attempt, answered or not, with or without a recording.
-- The number is shown masked (last 4 digits) in the evidence.
-- Yields (call_id, text, match); audit/contact.py makes them findings of the rule.
WITH ranked AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY callee_number, local_day ORDER BY started_at, call_id)
            AS nth
    FROM contact_calls()
    WHERE callee_number IS NOT NULL AND outbound
)
SELECT
    call_id,
    'attempt no. ' || nth || ' to number ***' || right(callee_number, 4) || ' on ' || local_day
        || ' (' || zone || '); limit ' || $max_attempts_per_day || ' a day' AS text,
    nth || ' > ' || $max_attempts_per_day AS match
FROM ranked
WHERE nth > $max_attempts_per_day;
