-- contact_time: a call placed outside the allowed hours, in the debtor's local time.
--
-- Every outbound dial counts, answered or not: an unanswered call at 23:00 still rings.
-- Allowed is [$window_start, $window_end): with 08:00–22:00 a call at 22:00 is outside.
-- The call's start decides; a call begun at 21:59 that runs past 22:00 is not flagged.
-- Parameters: $window_start, $window_end (TIME); $rule_id, $category, $severity,
-- $citation, $rules_version describe the finding.
WITH placed AS (
    SELECT
        call_id,
        coalesce(timezone, 'UTC') AS zone,
        local_time(started_at, timezone) AS local_ts
    FROM calls
    WHERE started_at IS NOT NULL
      AND coalesce(direction, 'outbound') = 'outbound'
)
SELECT
    substr(md5(call_id || '|' || $rule_id), 1, 20) AS finding_id,
    call_id,
    $rule_id AS rule_id,
    $category AS category,
    $severity AS severity,
    'agent' AS speaker,
    strftime(local_ts, '%H:%M') || ' ' || zone || ' (debtor''s local time, '
        || strftime(local_ts, '%Y-%m-%d') || '), outside '
        || CAST($window_start::TIME AS VARCHAR)[1:5] || '–'
        || CAST($window_end::TIME AS VARCHAR)[1:5] AS text,
    strftime(local_ts, '%H:%M') AS match,
    'sql' AS via,
    $citation AS citation,
    $rules_version AS rules_version
FROM placed
WHERE CAST(local_ts AS TIME) < $window_start::TIME
   OR CAST(local_ts AS TIME) >= $window_end::TIME;
