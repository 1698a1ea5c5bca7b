-- contact_frequency: a call placed to a debtor within $quiet_days days after a telephone
-- conversation with them (the conversation's local day is day 1 of the period, so a
-- later call the same day counts).
--
-- A conversation is an answered call, either direction, not with a third party.
-- Only outbound calls are findings: the debtor calling back is not a violation.
-- Yields (call_id, text, match); audit/contact.py makes them findings of the rule.
WITH with_last AS (
    SELECT
        *,
        last_value(CASE WHEN answered AND to_debtor THEN local_day END IGNORE NULLS) OVER w
            AS conv_day,
        last_value(CASE WHEN answered AND to_debtor THEN call_id END IGNORE NULLS) OVER w
            AS conv_call
    FROM contact_calls()
    WHERE debtor_id IS NOT NULL
    WINDOW w AS (PARTITION BY debtor_id ORDER BY started_at, call_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT
    call_id,
    'call on ' || local_day || ', '
        || CASE WHEN local_day = conv_day THEN 'the same day as'
                ELSE (local_day - conv_day) || ' day(s) after' END
        || ' conversation ' || conv_call || ' on ' || conv_day || ' (' || zone || '); no calls for '
        || $quiet_days || ' days after a conversation' AS text,
    (local_day - conv_day) || ' < ' || $quiet_days AS match
FROM with_last
WHERE outbound AND conv_day IS NOT NULL AND local_day - conv_day < $quiet_days;
