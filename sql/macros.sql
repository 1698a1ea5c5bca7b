-- Helpers for views and contact rules; applied before the views.

-- The call's local wall-clock time in the debtor's zone. `tz` is an IANA name
-- (Asia/Shanghai) or a fixed offset written as UTC+08:00 (what a manifest's started_at
-- offset gives when it has no timezone column); NULL means UTC.
CREATE OR REPLACE MACRO local_time(ts, tz) AS
    CASE
        WHEN tz IS NULL THEN timezone('UTC', ts)
        WHEN regexp_matches(tz, '^UTC[+-]\d\d:\d\d$')
            THEN timezone('UTC', ts)
                 + to_minutes(CAST((CASE WHEN tz[4] = '-' THEN -1 ELSE 1 END)
                              * (CAST(tz[5:6] AS INTEGER) * 60 + CAST(tz[8:9] AS INTEGER))
                              AS BIGINT))
        -- A zone Python knows but DuckDB does not (localtime, posix/...) from an older
        -- database: time unknown, rather than every report failing on it.
        WHEN tz NOT IN (SELECT name FROM pg_timezone_names()) THEN NULL
        ELSE timezone(tz, ts)
    END;

-- The day a call belongs to in reports: its local date, or the audit date (UTC) for
-- recordings that came without a call record.
CREATE OR REPLACE MACRO call_day(started_at, tz, audited_at) AS
    CAST(CASE WHEN started_at IS NULL THEN timezone('UTC', audited_at)
              ELSE local_time(started_at, tz) END AS DATE);

-- The call records the contact rules judge, each with the debtor's local time and day,
-- so every rule reads "local" the same way.
CREATE OR REPLACE MACRO contact_calls() AS TABLE
    SELECT
        call_id,
        debtor_id,
        callee_number,
        started_at,
        coalesce(direction, 'outbound') = 'outbound' AS outbound,
        coalesce(answered, false) AS answered,
        coalesce(callee_relation, 'unknown') <> 'third_party' AS to_debtor,
        coalesce(timezone, 'UTC') AS zone,
        local_time(started_at, timezone) AS local_ts,
        CAST(local_time(started_at, timezone) AS DATE) AS local_day
    FROM calls
    WHERE started_at IS NOT NULL;
