"""Property-based tests of what an inbox and a dialler hand us: manifests with every
column fuzzed, recordings with damaged headers, and databases from older versions."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import store
from audit.manifest import REQUIRED_COLUMNS, ManifestError, duckdb_zones, load_manifest
from audit.pipeline import AuditOptions, CallInput, audit_call
from tests.conftest import tone, write_wav
from tests.test_pipeline_store import fake_transcriber

_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Per column: values a dialler might write, good and bad, and arbitrary text.
GOOD = {
    "call_id": ["c1", "呼叫-7", "=cmd", " padded "],
    "recording": ["a.wav", "", "nope.wav", "../a.wav", "sub/../a.wav", "/etc/passwd"],
    "agent_id": ["A1", "", "+SUM(1)"],
    "debtor_id": ["D1", "债务人"],
    "callee_number": ["13800000001", "", "-1"],
    "callee_relation": ["debtor", "third_party", "unknown", "THIRD_PARTY", "friend", ""],
    "started_at": [
        "2026-03-02T10:00:00+08:00",
        "2026-03-02T10:00:00",
        "2026-03-02 22:30:00-05:00",
        "yesterday",
        "2026-02-30T10:00:00+08:00",
        "",
    ],
    "duration_s": ["30", "", "-1", "nan", "inf", "1e309", "三十"],
    "direction": ["outbound", "in", "sideways", ""],
    "answered": ["true", "否", "maybe", ""],
    "timezone": ["Asia/Shanghai", "", "localtime", "posix/Asia/Shanghai", "UTC+8", "Mars/Base"],
}
COLUMNS = [*REQUIRED_COLUMNS, "answered", "timezone"]
cell = st.one_of(
    st.text(max_size=20), st.sampled_from(sorted({v for vs in GOOD.values() for v in vs}))
)


@st.composite
def manifest_rows(draw) -> list[list[str]]:
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row = [draw(st.one_of(st.sampled_from(GOOD[c]), cell)) for c in COLUMNS]
        if draw(st.booleans()):  # now and then a row with too few or too many fields
            row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(cell, max_size=2))
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    box = tmp_path_factory.mktemp("fuzz-inbox")
    write_wav(box / "a.wav", [tone(0.5), tone(0.5, freq=300)])
    return box


@_settings
@given(manifest_rows(), st.sampled_from(["utf-8", "utf-8-sig", "gbk"]))
def test_a_fuzzed_manifest_is_parsed_or_refused_row_by_row(inbox, rows, encoding):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as f:
        f.write(buf.getvalue().encode(encoding, errors="replace"))
    try:
        manifest = load_manifest(f.name, inbox)
    except ManifestError:
        return  # refused as a whole (e.g. undecodable): said, not crashed
    finally:
        Path(f.name).unlink()
    # Every non-blank row is either accepted or reported by its row number, never both.
    accepted = {r.row for r in manifest.records}
    rejected = {e.row for e in manifest.errors}
    assert not accepted & rejected
    for record in manifest.records:
        assert isinstance(record.started_at, datetime) and record.started_at.tzinfo
        assert record.timezone in duckdb_zones() or record.timezone.startswith("UTC")
        assert record.callee_relation in ("debtor", "third_party", "unknown")
        assert record.path is None or Path(record.path).is_relative_to(inbox.resolve())
        assert record.duration_s is None or 0 <= record.duration_s < float("inf")


@pytest.fixture(scope="module")
def wav_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("wav") / "ok.wav"
    write_wav(path, [tone(0.6), tone(0.6, freq=300)])
    return path.read_bytes()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1, max_size=6))
def test_a_damaged_header_is_audited_or_fails_with_a_reason(wav_bytes, tmp_path_factory, edits):
    data = bytearray(wav_bytes)
    for offset, value in edits:
        data[offset] = value
    path = tmp_path_factory.mktemp("hdr") / "damaged.wav"
    path.write_bytes(bytes(data))
    result = audit_call(
        CallInput("damaged", str(path)), AuditOptions(learned=False), transcriber=fake_transcriber
    )
    assert result.status in ("ok", "failed")
    if result.status == "failed":
        assert result.error and "Traceback" not in result.error
    else:
        assert result.duration_s is not None and result.duration_s >= 0


# The first released schema: no score, no callee_inferred, no review log.
OLD_SCHEMA = """
CREATE TABLE calls (call_id VARCHAR PRIMARY KEY, source_path VARCHAR, sha256 VARCHAR,
    duration_s DOUBLE, channels INTEGER, sample_rate INTEGER, codec VARCHAR,
    status VARCHAR NOT NULL, error VARCHAR, model VARCHAR, rules_version VARCHAR,
    audited_at TIMESTAMPTZ, processing_s DOUBLE, agent_id VARCHAR, debtor_id VARCHAR,
    callee_number VARCHAR, callee_relation VARCHAR, started_at TIMESTAMPTZ,
    timezone VARCHAR, direction VARCHAR, answered BOOLEAN);
CREATE TABLE utterances (call_id VARCHAR NOT NULL, idx INTEGER NOT NULL,
    speaker VARCHAR NOT NULL, start_s DOUBLE NOT NULL, end_s DOUBLE NOT NULL,
    text VARCHAR NOT NULL, raw_text VARCHAR NOT NULL, avg_logprob DOUBLE,
    no_speech_prob DOUBLE, asr_flag VARCHAR, PRIMARY KEY (call_id, idx));
CREATE TABLE findings (finding_id VARCHAR PRIMARY KEY, call_id VARCHAR NOT NULL,
    rule_id VARCHAR NOT NULL, category VARCHAR NOT NULL, severity VARCHAR NOT NULL,
    speaker VARCHAR, utterance_idx INTEGER, start_s DOUBLE, end_s DOUBLE, text VARCHAR,
    match VARCHAR, char_start INTEGER, char_end INTEGER, via VARCHAR,
    citation VARCHAR NOT NULL, rules_version VARCHAR, created_at TIMESTAMPTZ DEFAULT now());
CREATE TABLE reviews (finding_id VARCHAR PRIMARY KEY, verdict VARCHAR NOT NULL,
    note VARCHAR, reviewer VARCHAR, reviewed_at TIMESTAMPTZ DEFAULT now());
CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ, inbox VARCHAR, audited INTEGER, skipped INTEGER,
    failed INTEGER, model VARCHAR, rules_version VARCHAR);
INSERT INTO calls (call_id, status, agent_id, started_at, timezone)
    VALUES ('old-1', 'ok', 'A1', TIMESTAMPTZ '2026-01-05 10:00:00+08', 'Asia/Shanghai');
INSERT INTO findings (finding_id, call_id, rule_id, category, severity, utterance_idx,
    citation) VALUES ('f1', 'old-1', 'CN-INS-ABUSE', 'insult', 'high', 0, 'CBA-2026');
INSERT INTO reviews (finding_id, verdict, reviewer) VALUES ('f1', 'confirmed', 'qa-li');
"""


def test_a_database_from_the_first_schema_is_migrated_not_refused(tmp_path):
    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(OLD_SCHEMA)
    con = store.connect(db)  # migrates: new columns, the review log, every view
    try:
        assert con.execute("SELECT score FROM findings").fetchall() == [(None,)]
        assert con.execute("SELECT callee_inferred FROM calls").fetchall() == [(None,)]
        assert con.execute(
            "SELECT verdict, reviewer, is_current FROM review_history"
        ).fetchall() == [("confirmed", "qa-li", True)]
        assert con.execute("SELECT call_id, risk_score FROM call_risk").fetchall() == [
            ("old-1", 6)
        ]  # high, confirmed
    finally:
        con.close()
    con = store.connect(db)  # and opening it again changes nothing
    try:
        assert con.execute("SELECT count(*) FROM review_log").fetchone() == (1,)
    finally:
        con.close()
