-- contact_time: a call placed outside the allowed hours, in the debtor's local time.
--
-- Every outbound dial counts, answered or not: an unanswered call at 23:00 still rings.
-- Allowed is [$window_start, $window_end): with 08:00–22:00 a call at 22:00 is outside.
-- The call's start decides; a call begun at 21:59 that runs past 22:00 is not flagged.
-- Yields (call_id, text, match); audit/contact.py makes them findings of the rule.
SELECT
    call_id,
    strftime(local_ts, '%H:%M') || ' ' || zone || ' (debtor''s local time, '
        || strftime(local_ts, '%Y-%m-%d') || '), outside '
        || CAST($window_start::TIME AS VARCHAR)[1:5] || '–'
        || CAST($window_end::TIME AS VARCHAR)[1:5] AS text,
    strftime(local_ts, '%H:%M') AS match
FROM contact_calls()
WHERE outbound
  AND (CAST(local_ts AS TIME) < $window_start::TIME
       OR CAST(local_ts AS TIME) >= $window_end::TIME);
