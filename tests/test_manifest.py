"""Call-detail manifests: parsing, row-numbered errors, encodings, and auditing with one."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import duckdb
import pytest
import yaml

from audit import batch, store
from audit.contact import check_calls
from audit.manifest import ManifestError, format_report, load_manifest, plan_inbox
from audit.pipeline import AuditOptions, audit_call
from audit.policy import load_policy
from audit.transcribe import Utterance
from tests.conftest import SAMPLES, tone, write_wav
from tests.test_pipeline_store import fake_transcriber

HEADER = (
    "call_id,recording,agent_id,debtor_id,callee_number,callee_relation,started_at,"
    "duration_s,direction,answered"
)


@cache
def dialogues() -> dict[str, list[tuple[str, str]]]:
    data = yaml.safe_load((SAMPLES / "dialogues.yaml").read_text(encoding="utf-8"))
    return {c["call_id"]: [(t["speaker"], t["text"]) for t in c["turns"]] for c in data["calls"]}


def scripted(call_id: str):
    """A transcriber that 'hears' the sample call's script (any other call: the fake one)."""
    turns = dialogues().get(call_id)
    if turns is None:
        return fake_transcriber

    def transcribe(channels, options):
        return [
            Utterance(i, spk, i * 3.0, i * 3.0 + 2.5, text, text, -0.2, 0.01)
            for i, (spk, text) in enumerate(turns)
        ]

    return transcribe


def audit_with_manifest(
    inbox: Path, manifest: Path | None, db: Path, policy: str = "cn", force: bool = False, **kw
) -> dict:
    """The flow's steps without Prefect: plan, audit (scripted), store, call records, rules."""
    con = store.connect(db)
    options = AuditOptions()
    try:
        plan, records = plan_inbox(con, inbox, str(manifest) if manifest else None, options, force)
        progress = batch.Progress(total=len(plan.todo))
        for call in plan.todo:
            result = audit_call(call, options, transcriber=scripted(call.call_id))
            store.write_call(con, result)
            progress.update(result)
        checked = check_calls(con, records, plan, load_policy(policy, **kw))
        summary = {**batch.summarize(con, str(db), plan, progress).as_dict(), **checked}
    finally:
        con.close()
    return {**summary, "todo": [c.call_id for c in plan.todo]}


def query(db: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    box = tmp_path / "inbox"
    box.mkdir()
    write_wav(box / "a.wav", [tone(1.0), tone(1.0, freq=300)])
    write_wav(box / "b.wav", [tone(1.0), tone(1.0, freq=350)])
    write_wav(box / "c.wav", [tone(1.0), tone(1.0, freq=400)])
    (tmp_path / "secret.wav").write_bytes((box / "a.wav").read_bytes())
    return box


def write_manifest(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding=encoding)
    return path


BAD_MANIFEST = [
    "c1,a.wav,A1,D1,13800000001,debtor,2026-03-02T10:00:00+08:00,1.0,outbound,true",  # row 2
    "c2,b.wav,A1,D2,13800000002,third_party,2026-03-02T11:00:00+08:00,1.0,outbound",  # 3: short
    "c3,b.wav,A1,D3,13800000003,debtor,yesterday evening,1.0,outbound,true",  # 4: bad time
    "c4,nope.wav,A1,D4,13800000004,debtor,2026-03-02T12:00:00+08:00,1.0,outbound,true",  # 5
    "c5,../secret.wav,A1,D5,13800000005,debtor,2026-03-02T12:00:00+08:00,1,outbound,true",  # 6
    "c1,c.wav,A2,D6,13800000006,debtor,2026-03-02T13:00:00+08:00,1.0,outbound,true",  # 7: dup
    "c7,c.wav,A2,D7,13800000007,friend,2026-03-02T13:00:00+08:00,1.0,outbound,true",  # 8
    "c8,,A2,D1,13800000001,debtor,2026-03-02T14:00:00,0,outbound,false",  # 9: no offset
    "c9,,A2,D1,13800000001,debtor,2026-03-02T15:00:00+08:00,,outbound,false",  # 10: ok
    "c10,b.wav,A2,D2,13800000002,third_party,2026-03-02T16:00:00+08:00,1,outbound,yes",  # 11
    "c11,b.wav,A2,D2,13800000002,debtor,2026-03-02T17:00:00+08:00,1,outbound,yes",  # 12: reused
]


def test_bad_rows_are_reported_by_row_number_and_the_good_rows_kept(inbox, tmp_path):
    m = load_manifest(write_manifest(tmp_path / "calls.csv", BAD_MANIFEST), inbox)
    errors = {e.row: e.message for e in m.errors}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8, 9, 12]
    assert "has 9 fields, the header has 10" in errors[3]
    assert "'yesterday evening' is not an ISO 8601 time" in errors[4]
    assert "'nope.wav' not found in the inbox" in errors[5]
    assert "'../secret.wav' points outside the inbox" in errors[6]
    assert "duplicate call_id 'c1' (first on row 2)" in errors[7]
    assert "callee_relation 'friend'" in errors[8]
    assert "no UTC offset" in errors[9]
    assert "already the call on row 11" in errors[12]
    assert [r.call_id for r in m.records] == ["c1", "c9", "c10"]
    c9, c10 = m.records[1], m.records[2]
    assert c9.path is None and c9.answered is False and c9.duration_s is None
    assert c10.callee_relation == "third_party" and c10.answered is True
    assert m.summary()["rows"] == 11 and m.summary()["accepted"] == 3


def test_a_missing_required_column_rejects_the_file(inbox, tmp_path):
    path = tmp_path / "calls.csv"
    path.write_text("call_id,recording,agent_id\nc1,a.wav,A1\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="missing required column.*debtor_id.*started_at"):
        load_manifest(path, inbox)


def test_unknown_columns_are_named_not_silently_dropped(inbox, tmp_path):
    path = tmp_path / "calls.csv"
    path.write_text(
        HEADER + ",callee_relaton,remark\n"
        "c1,a.wav,A1,D1,13800000001,debtor,2026-03-02T10:00:00+08:00,1,outbound,true,x,y\n",
        encoding="utf-8",
    )
    m = load_manifest(path, inbox)
    assert m.ignored_columns == ["callee_relaton", "remark"]
    assert "unknown column(s) ignored: callee_relaton, remark" in format_report(m.summary())
    assert len(m.records) == 1


@pytest.mark.parametrize(
    "recording,started_at,expected",
    [
        ("../../etc/passwd", "2026-03-02T10:00:00+08:00", "row 2"),
        ("a.wav", "2026-02-30T10:00:00+08:00", "row 2"),  # no 30 February
        ("a.wav", "2026-03-02T25:00:00+08:00", "row 2"),  # no 25 o'clock
    ],
)
def test_escaping_paths_and_impossible_times_are_row_errors(
    inbox, tmp_path, recording, started_at, expected
):
    line = f"c1,{recording},A1,D1,13800000001,debtor,{started_at},1,outbound,true"
    m = load_manifest(write_manifest(tmp_path / "calls.csv", [line]), inbox)
    assert m.records == [] and [str(e).split(":")[0] for e in m.errors] == [expected]


@pytest.mark.parametrize("encoding,expected", [("utf-8-sig", "utf-8-sig"), ("gbk", "gbk")])
def test_excel_encodings_are_read_and_named(inbox, tmp_path, encoding, expected):
    line = "c1,a.wav,王小明,D1,13800000001,debtor,2026-03-02T10:00:00+08:00,1,outbound,是"
    m = load_manifest(write_manifest(tmp_path / "calls.csv", [line], encoding), inbox)
    assert m.encoding == expected and not m.errors
    assert m.records[0].agent_id == "王小明" and m.records[0].answered is True


def test_time_zone_comes_from_the_column_or_the_offset(inbox, tmp_path):
    path = tmp_path / "calls.csv"
    path.write_text(
        HEADER + ",timezone\n"
        "c1,,A1,D1,1,debtor,2026-03-02T10:00:00+08:00,0,outbound,false,Asia/Shanghai\n"
        "c2,,A1,D1,1,debtor,2026-03-02T10:00:00-05:30,0,inbound,false,\n"
        "c3,,A1,D1,1,debtor,2026-03-02T10:00:00+08:00,0,outbound,false,Mars/Olympus\n",
        encoding="utf-8",
    )
    m = load_manifest(path, inbox)
    assert [r.timezone for r in m.records] == ["Asia/Shanghai", "UTC-05:30"]
    assert m.records[1].direction == "inbound"
    assert "not an IANA zone" in m.errors[0].message and m.errors[0].row == 4


@pytest.mark.parametrize("duration", ["nan", "inf", "-inf", "NaN"])
def test_durations_that_are_not_numbers_of_seconds_are_rejected(inbox, tmp_path, duration):
    line = f"c1,,A1,D1,1,debtor,2026-03-02T10:00:00+08:00,{duration},outbound,false"
    m = load_manifest(write_manifest(tmp_path / "calls.csv", [line]), inbox)
    assert m.records == [] and "duration_s" in m.errors[0].message


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "posix/Asia/Shanghai"])
def test_zones_python_accepts_but_duckdb_cannot_read_are_rejected(inbox, tmp_path, zone):
    path = tmp_path / "calls.csv"
    path.write_text(
        HEADER + ",timezone\n"
        f"c1,,A1,D1,1,debtor,2026-03-02T10:00:00+08:00,0,outbound,false,{zone}\n",
        encoding="utf-8",
    )
    m = load_manifest(path, inbox)
    assert m.records == [] and "not an IANA zone" in m.errors[0].message


def test_a_database_holding_an_unreadable_zone_still_reports(tmp_path):
    # Written by an older version that let `localtime` through: the views must still run.
    db = tmp_path / "old.duckdb"
    con = store.connect(db)
    con.execute(
        "INSERT INTO calls (call_id, status, started_at, timezone) "
        "VALUES ('x', 'no_recording', TIMESTAMPTZ '2026-03-02 02:00:00+00', 'localtime'), "
        "('y', 'no_recording', TIMESTAMPTZ '2026-03-02 02:00:00+00', 'Asia/Shanghai')"
    )
    con.close()
    con = store.connect(db)
    try:
        local = dict(
            con.execute("SELECT call_id, local_time(started_at, timezone) FROM calls").fetchall()
        )
        assert local["x"] is None and local["y"].hour == 10
        for view in store.view_files():
            con.execute(f"SELECT count(*) FROM {view.stem}").fetchone()
    finally:
        con.close()


def test_the_sample_manifest_covers_the_sample_calls():
    m = load_manifest(SAMPLES / "calls.csv", SAMPLES / "inbox")
    assert m.errors == []
    with_audio = {r.call_id for r in m.records if r.path}
    assert with_audio == {p.stem for p in (SAMPLES / "inbox").iterdir()}
    assert {r.callee_relation for r in m.records if r.call_id == "call_05_third_party"} == {
        "third_party"
    }
    assert sum(not r.answered for r in m.records) >= 3


def test_auditing_with_a_bad_manifest_audits_the_rest(inbox, tmp_path):
    db = tmp_path / "a.duckdb"
    summary = audit_with_manifest(inbox, write_manifest(tmp_path / "m.csv", BAD_MANIFEST), db)
    assert len(summary["manifest"]["errors"]) == 8
    assert summary["manifest"]["errors"][0].startswith("row 3:")
    calls = dict(query(db, "SELECT call_id, status FROM calls"))
    # c1, c10 audited under the manifest's ids; c9 stored without audio; c.wav, listed
    # only on rejected rows, is still audited under its file name.
    assert calls == {"c1": "ok", "c10": "ok", "c9": "no_recording", "c": "ok"}
    c10 = query(db, "SELECT agent_id, callee_relation, answered FROM calls WHERE call_id='c10'")
    assert c10 == [("A2", "third_party", True)]


def test_callee_relation_reaches_the_detector_and_a_change_reaudits(inbox, tmp_path):
    """The recording is named after the sample whose script the fake transcriber plays."""
    (inbox / "a.wav").rename(inbox / "call_05_third_party.wav")
    db = tmp_path / "a.duckdb"
    line = (
        "call_05_third_party,call_05_third_party.wav,A1,D1,1380000001,{rel},"
        "2026-03-02T10:00:00+08:00,1,outbound,"
    )
    rule = "SELECT count(*) FROM findings WHERE rule_id = 'CN-TPD-THIRD-PARTY-DEBT'"
    first = audit_with_manifest(inbox, None, db)  # no call records yet
    assert "call_05_third_party" in first["todo"]
    # Without a record the conversation says who answered (请问是张伟的妈妈吗 / 你是他妈妈):
    # the third-party rule applies and the inference is stored as evidence.
    assert query(db, rule)[0][0] >= 1
    (inferred,) = query(
        db, "SELECT callee_inferred FROM calls WHERE call_id = 'call_05_third_party'"
    )[0]
    assert inferred.startswith("third_party: agent")
    manifest = write_manifest(tmp_path / "m.csv", [line.format(rel="debtor")])
    again = audit_with_manifest(inbox, manifest, db)
    assert again["todo"] == []  # still not a third party: nothing re-transcribed
    write_manifest(manifest, [line.format(rel="third_party")])
    third = audit_with_manifest(inbox, manifest, db)
    assert third["todo"] == ["call_05_third_party"]
    assert query(db, rule)[0][0] >= 1  # the debt mentioned to the debtor's mother
    assert query(db, "SELECT callee_relation FROM calls WHERE call_id = 'call_05_third_party'") == [
        ("third_party",)
    ]


def test_a_file_name_taken_by_another_recording_is_still_audited(inbox, tmp_path):
    line = "b,a.wav,A1,D1,1380000001,debtor,2026-03-02T10:00:00+08:00,1,outbound,"
    db = tmp_path / "a.duckdb"
    audit_with_manifest(inbox, write_manifest(tmp_path / "m.csv", [line]), db)
    ids = {r[0]: r[1] for r in query(db, "SELECT call_id, source_path FROM calls")}
    assert ids["b"].endswith("a.wav") and ids["b.unlisted"].endswith("b.wav")
    assert "c" in ids
