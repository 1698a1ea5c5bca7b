-- contact_frequency: a call placed to a debtor within $quiet_days days after a telephone
-- conversation with them (the conversation's local day is day 1 of the period, so a
-- later call the same day counts).
--
-- A conversation is an answered call, either direction, not with a third party.
-- Only outbound calls are findings: the debtor calling back is not a violation.
WITH calls_to_debtor AS (
    SELECT
        call_id,
        debtor_id,
        started_at,
        coalesce(direction, 'outbound') = 'outbound' AS placed,
        coalesce(answered, false)
            AND coalesce(callee_relation, 'unknown') <> 'third_party' AS conversation,
        coalesce(timezone, 'UTC') AS zone,
        CAST(local_time(started_at, timezone) AS DATE) AS local_day
    FROM calls
    WHERE started_at IS NOT NULL AND debtor_id IS NOT NULL
),
with_last AS (
    SELECT
        *,
        last_value(CASE WHEN conversation THEN local_day END IGNORE NULLS) OVER w AS conv_day,
        last_value(CASE WHEN conversation THEN call_id END IGNORE NULLS) OVER w AS conv_call
    FROM calls_to_debtor
    WINDOW w AS (PARTITION BY debtor_id ORDER BY started_at, call_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT
    substr(md5(call_id || '|' || $rule_id), 1, 20) AS finding_id,
    call_id,
    $rule_id AS rule_id,
    $category AS category,
    $severity AS severity,
    'agent' AS speaker,
    'call on ' || local_day || ', '
        || CASE WHEN local_day = conv_day THEN 'the same day as'
                ELSE (local_day - conv_day) || ' day(s) after' END
        || ' conversation ' || conv_call || ' on ' || conv_day || ' (' || zone || '); no calls for '
        || $quiet_days || ' days after a conversation' AS text,
    (local_day - conv_day) || ' < ' || $quiet_days AS match,
    'sql' AS via,
    $citation AS citation,
    $rules_version AS rules_version
FROM with_last
WHERE placed AND conv_day IS NOT NULL AND local_day - conv_day < $quiet_days;
