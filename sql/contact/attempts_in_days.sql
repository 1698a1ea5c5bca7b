-- contact_frequency: more than $max_attempts call attempts to one debtor within $days
-- consecutive days (the debtor's local days), counting the attempt itself and those
-- before it. The attempts beyond the limit are the findings.
--
-- Every outbound dial to the debtor's case counts (answered or not, to any number).
WITH attempts AS (
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
),
counted AS (
    SELECT
        *,
        -- attempts on the ($days - 1) days before this one...
        coalesce(count(*) OVER (
            PARTITION BY debtor_id ORDER BY local_day - DATE '1970-01-01'
            RANGE BETWEEN ($days - 1) PRECEDING AND 1 PRECEDING), 0)
        -- ...plus this day's attempts up to and including this one
        + row_number() OVER (PARTITION BY debtor_id, local_day ORDER BY started_at, call_id)
            AS in_window
    FROM attempts
)
SELECT
    substr(md5(call_id || '|' || $rule_id), 1, 20) AS finding_id,
    call_id,
    $rule_id AS rule_id,
    $category AS category,
    $severity AS severity,
    'agent' AS speaker,
    'attempt no. ' || in_window || ' to debtor ' || debtor_id || ' in the ' || $days
        || ' days ending ' || local_day || ' (' || zone || '); limit ' || $max_attempts AS text,
    in_window || ' > ' || $max_attempts AS match,
    'sql' AS via,
    $citation AS citation,
    $rules_version AS rules_version
FROM counted
WHERE in_window > $max_attempts;
