-- contact_frequency: more than $max_connected_per_day connected calls with one debtor
-- on one day (the debtor's local day). The calls beyond the limit are the findings.
--
-- Counted: outbound calls that were answered, to the debtor (callee_relation debtor or
-- unknown; a call to a third party is not a conversation with the debtor). Calls without
-- a recording count too: the call record says they happened.
WITH connected AS (
    SELECT
        call_id,
        debtor_id,
        started_at,
        coalesce(timezone, 'UTC') AS zone,
        CAST(local_time(started_at, timezone) AS DATE) AS local_day
    FROM calls
    WHERE started_at IS NOT NULL
      AND debtor_id IS NOT NULL
      AND coalesce(direction, 'outbound') = 'outbound'
      AND answered
      AND coalesce(callee_relation, 'unknown') <> 'third_party'
),
ranked AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY debtor_id, local_day ORDER BY started_at, call_id) AS nth
    FROM connected
)
SELECT
    substr(md5(call_id || '|' || $rule_id), 1, 20) AS finding_id,
    call_id,
    $rule_id AS rule_id,
    $category AS category,
    $severity AS severity,
    'agent' AS speaker,
    'connected call no. ' || nth || ' with debtor ' || debtor_id || ' on ' || local_day
        || ' (' || zone || '); limit ' || $max_connected_per_day || ' a day' AS text,
    nth || ' > ' || $max_connected_per_day AS match,
    'sql' AS via,
    $citation AS citation,
    $rules_version AS rules_version
FROM ranked
WHERE nth > $max_connected_per_day;
