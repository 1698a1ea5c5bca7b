-- contact_frequency: more than $max_attempts_per_day call attempts to one number on
-- one day (the debtor's local day). The attempts beyond the limit are the findings.
--
-- Every outbound dial is an attempt, answered or not, with or without a recording.
-- The number is shown masked (last 4 digits) in the evidence.
WITH attempts AS (
    SELECT
        call_id,
        callee_number,
        started_at,
        coalesce(timezone, 'UTC') AS zone,
        CAST(local_time(started_at, timezone) AS DATE) AS local_day
    FROM calls
    WHERE started_at IS NOT NULL
      AND callee_number IS NOT NULL
      AND coalesce(direction, 'outbound') = 'outbound'
),
ranked AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY callee_number, local_day ORDER BY started_at, call_id)
            AS nth
    FROM attempts
)
SELECT
    substr(md5(call_id || '|' || $rule_id), 1, 20) AS finding_id,
    call_id,
    $rule_id AS rule_id,
    $category AS category,
    $severity AS severity,
    'agent' AS speaker,
    'attempt no. ' || nth || ' to number ***' || right(callee_number, 4) || ' on ' || local_day
        || ' (' || zone || '); limit ' || $max_attempts_per_day || ' a day' AS text,
    nth || ' > ' || $max_attempts_per_day AS match,
    'sql' AS via,
    $citation AS citation,
    $rules_version AS rules_version
FROM ranked
WHERE nth > $max_attempts_per_day;
