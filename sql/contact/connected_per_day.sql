-- contact_frequency: more than $max_connected_per_day connected calls with one debtor
-- on one day (the debtor's local day). The calls beyond the limit are the findings.
--
-- Counted: outbound calls that were answered, to the debtor (callee_relation debtor or
-- unknown; a call to a third party is not a conversation with the debtor). Calls without
-- a recording count too: the call record says they happened.
-- Yields (call_id, text, match); audit/contact.py makes them findings of the rule.
WITH ranked AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY debtor_id, local_day ORDER BY started_at, call_id) AS nth
    FROM contact_calls()
    WHERE debtor_id IS NOT NULL AND outbound AND answered AND to_debtor
)
SELECT
    call_id,
    'connected call no. ' || nth || ' with debtor ' || debtor_id || ' on ' || local_day
        || ' (' || zone || '); limit ' || $max_connected_per_day || ' a day' AS text,
    nth || ' > ' || $max_connected_per_day AS match
FROM ranked
WHERE nth > $max_connected_per_day;
