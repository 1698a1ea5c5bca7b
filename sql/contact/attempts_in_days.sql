-- contact_frequency: more than $max_attempts call attempts to one debtor within $days
-- consecutive days (the debtor's local days), counting the attempt itself and those
-- before it. The attempts beyond the limit are the findings.
--
-- Every outbound dial to the debtor's case counts (answered or not, to any number).
-- Yields (call_id, text, match); audit/contact.py makes them findings of the rule.
WITH counted AS (
    SELECT
        *,
        -- attempts on the ($days - 1) days before this one...
        coalesce(count(*) OVER (
            PARTITION BY debtor_id ORDER BY local_day - DATE '1970-01-01'
            RANGE BETWEEN ($days - 1) PRECEDING AND 1 PRECEDING), 0)
        -- ...plus this day's attempts up to and including this one
        + row_number() OVER (PARTITION BY debtor_id, local_day ORDER BY started_at, call_id)
            AS in_window
    FROM contact_calls()
    WHERE debtor_id IS NOT NULL AND outbound
)
SELECT
    call_id,
    'attempt no. ' || in_window || ' to debtor ' || debtor_id || ' in the ' || $days
        || ' days ending ' || local_day || ' (' || zone || '); limit ' || $max_attempts AS text,
    in_window || ' > ' || $max_attempts AS match
FROM counted
WHERE in_window > $max_attempts;
