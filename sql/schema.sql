-- callaudit storage: one DuckDB file holds calls, utterances and findings.
-- Created with IF NOT EXISTS so opening an existing database is harmless.

CREATE TABLE IF NOT EXISTS calls (
    call_id          VARCHAR PRIMARY KEY,   -- file name without extension, or the manifest's id
    source_path      VARCHAR,               -- where the recording was read from (NULL: no recording)
    sha256           VARCHAR,               -- content hash: identifies a recording across renames
    duration_s       DOUBLE,
    channels         INTEGER,
    sample_rate      INTEGER,
    codec            VARCHAR,
    status           VARCHAR NOT NULL,      -- ok | failed | no_recording
    error            VARCHAR,               -- readable reason when status = failed
    model            VARCHAR,               -- ASR model that produced the utterances
    rules_version    VARCHAR,               -- rule catalogue version that produced the findings
    audited_at       TIMESTAMPTZ,
    processing_s     DOUBLE,
    -- call-detail record fields (from --manifest), NULL when unknown
    agent_id         VARCHAR,
    debtor_id        VARCHAR,
    callee_number    VARCHAR,
    callee_relation  VARCHAR,               -- debtor | third_party | unknown
    started_at       TIMESTAMPTZ,
    timezone         VARCHAR,               -- IANA zone of the debtor (from the offset or manifest)
    direction        VARCHAR,
    answered         BOOLEAN
);

CREATE TABLE IF NOT EXISTS utterances (
    call_id          VARCHAR NOT NULL,
    idx              INTEGER NOT NULL,      -- order in the call (both channels merged by time)
    speaker          VARCHAR NOT NULL,      -- agent | customer | unknown
    start_s          DOUBLE NOT NULL,
    end_s            DOUBLE NOT NULL,
    text             VARCHAR NOT NULL,      -- simplified, normalised (PII masked by default)
    raw_text         VARCHAR NOT NULL,      -- what Whisper said
    avg_logprob      DOUBLE,
    no_speech_prob   DOUBLE,
    asr_flag         VARCHAR,               -- phantom | no_speech | repetition: ignored by detection
    PRIMARY KEY (call_id, idx)
);

CREATE TABLE IF NOT EXISTS findings (
    finding_id       VARCHAR PRIMARY KEY,   -- stable: hash of call, rule and position
    call_id          VARCHAR NOT NULL,
    rule_id          VARCHAR NOT NULL,
    category         VARCHAR NOT NULL,
    severity         VARCHAR NOT NULL,      -- low | medium | high | critical
    speaker          VARCHAR,
    utterance_idx    INTEGER,
    start_s          DOUBLE,
    end_s            DOUBLE,
    text             VARCHAR,               -- the evidence: the utterance as stored
    match            VARCHAR,               -- the words that matched
    char_start       INTEGER,
    char_end         INTEGER,
    via              VARCHAR,               -- text | pinyin | validator | regex | call | sql | learned
    citation         VARCHAR NOT NULL,      -- regulation clause the rule rests on
    rules_version    VARCHAR,
    created_at       TIMESTAMPTZ DEFAULT now(),
    score            DOUBLE                 -- learned stage: the classifier's score (else NULL)
);
-- Databases created before the learned stage had no score column.
ALTER TABLE findings ADD COLUMN IF NOT EXISTS score DOUBLE;
-- Who answered, as the conversation shows it when the call record does not say
-- (audit/callee.py): 'third_party: customer 3.2-4.1 s said '我是他妈妈''.  NULL: nothing inferred.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS callee_inferred VARCHAR;
-- Who spoke on stereo channels 0 and 1 ('agent,customer'): the report's audio clips
-- play the speaker's own channel.  NULL for calls audited before it was kept.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS channel_roles VARCHAR;

-- How each call was conducted, measured from its audio (audit/conduct.py): one row per
-- audited call, written in the call's own transaction. NULL where a measure could not be
-- taken; `not_run` says which conduct checks could not run and why (a mono recording mixes
-- both parties, so who talked over whom, the agent's loudness and pace are unknown).
-- Databases from before conduct checks get the table, empty, when opened.
CREATE TABLE IF NOT EXISTS call_metrics (
    call_id                    VARCHAR PRIMARY KEY,
    agent_talk_s               DOUBLE,    -- seconds the agent talks (VAD narrowed to speech energy)
    customer_talk_s            DOUBLE,
    talk_ratio                 DOUBLE,    -- agent share of all talk, 0..1
    overtalk_s                 DOUBLE,    -- both talking at once, in total
    overtalk_events            INTEGER,   -- overlaps at least as long as the overtalk rule's limit
    interruptions              INTEGER,   -- the agent starting over the customer (interruption rule)
    longest_silence_s          DOUBLE,    -- neither talking, between the first and last talk
    agent_median_dbfs          DOUBLE,    -- the agent's median level (100 ms RMS frames of talk)
    agent_loudness_range_db    DOUBLE,    -- 95th minus 10th percentile of those frames
    agent_max_above_median_db  DOUBLE,    -- loudest second of agent talk over that median
    agent_peak_dbfs            DOUBLE,
    mean_pace_cps              DOUBLE,    -- agent characters per second over its utterances
    max_pace_cps               DOUBLE,    -- fastest agent utterance long enough to time
    not_run                    VARCHAR,   -- 'check: why; ...' for checks that could not run
    conduct_version            VARCHAR,   -- policy pack and thresholds that judged the call
    conduct_s                  DOUBLE     -- seconds measuring and judging took
);

-- Reviewers' verdicts. Keyed by the stable finding id, so they survive re-audits.
CREATE TABLE IF NOT EXISTS reviews (
    finding_id       VARCHAR PRIMARY KEY,
    verdict          VARCHAR NOT NULL,      -- confirmed | false_positive
    note             VARCHAR,
    reviewer         VARCHAR,
    reviewed_at      TIMESTAMPTZ DEFAULT now()
);

-- Every verdict ever given, oldest first: who, when, why. `reviews` holds the current
-- (latest) verdict per finding; this log keeps the ones it replaced.
CREATE TABLE IF NOT EXISTS review_log (
    finding_id       VARCHAR NOT NULL,
    verdict          VARCHAR NOT NULL,
    note             VARCHAR,
    reviewer         VARCHAR NOT NULL,
    reviewed_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Databases from before the log: their current verdicts are its first entries.
INSERT INTO review_log
SELECT r.finding_id, r.verdict, r.note, coalesce(r.reviewer, 'unknown'),
       coalesce(r.reviewed_at, now())
FROM reviews r
WHERE NOT EXISTS (SELECT 1 FROM review_log l WHERE l.finding_id = r.finding_id);

CREATE TABLE IF NOT EXISTS runs (
    run_id           VARCHAR PRIMARY KEY,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    inbox            VARCHAR,
    audited          INTEGER,
    skipped          INTEGER,
    failed           INTEGER,
    model            VARCHAR,
    rules_version    VARCHAR
);
