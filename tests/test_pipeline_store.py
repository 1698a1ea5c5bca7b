"""The pipeline and storage with a fake transcriber (the e2e test uses the real model)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from audit import batch, store
from audit.pipeline import AuditOptions, CallInput, audit_call, discover
from audit.transcribe import Utterance
from tests.conftest import tone, write_wav

SCRIPT = [
    ("agent", "您好，我是星辰消费金融的客服小王"),
    ("customer", "你们是不是要找我家人？"),
    ("agent", "你再不还钱，明天我们就去你单位，你这个老赖"),
    ("agent", "你的电话是13812345678"),
]


def fake_transcriber(channels, options):
    """Pretend Whisper heard SCRIPT; speakers follow the channel layout like the real one."""
    stereo = len(channels) == 2
    return [
        Utterance(
            i, speaker if stereo else "unknown", i * 3.0, i * 3.0 + 2.5, text, text, -0.2, 0.01
        )
        for i, (speaker, text) in enumerate(SCRIPT)
    ]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    box = tmp_path / "inbox"
    (box / "sub").mkdir(parents=True)
    write_wav(box / "call_a.wav", [tone(2.0), tone(2.0, freq=300)])
    write_wav(box / "sub" / "call b 中文.wav", [tone(1.5)])
    (box / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(200))
    (box / "notes.txt").write_text("not audio")
    return box


def run_batch(inbox: Path, db: Path, force: bool = False) -> dict:
    """The flow's loop without Prefect: plan, audit, write, summarise."""
    con = store.connect(db)
    options = AuditOptions()
    plan = batch.plan_batch(discover(inbox), con, options, force=force)
    progress = batch.Progress(total=len(plan.todo))
    for call in plan.todo:
        result = audit_call(call, options, transcriber=fake_transcriber)
        store.write_call(con, result)
        progress.update(result)
    summary = batch.summarize(con, str(db), plan, progress)
    counts = store.table_counts(con)
    con.close()
    return {"summary": summary, "counts": counts, "todo": [c.call_id for c in plan.todo]}


def test_discover_finds_audio_recursively_with_ids_from_paths(inbox):
    ids = [c.call_id for c in discover(inbox)]
    assert ids == ["broken", "call_a", "sub/call b 中文"]


def test_recordings_differing_only_by_extension_are_two_calls(inbox, tmp_path):
    write_wav(inbox / "call_a.flac", [tone(1.0, freq=500)])
    ids = [c.call_id for c in discover(inbox)]
    assert ids == ["broken", "call_a.flac", "call_a.wav", "sub/call b 中文"]
    db = tmp_path / "same-stem.duckdb"
    run_batch(inbox, db)
    again = run_batch(inbox, db)
    with duckdb.connect(str(db), read_only=True) as con:
        stored = {r[0] for r in con.execute("SELECT call_id FROM calls").fetchall()}
    assert {"call_a.flac", "call_a.wav"} <= stored and "call_a" not in stored
    assert not {"call_a.flac", "call_a.wav"} & set(again["todo"])  # neither lost on rerun


def test_stereo_call_findings_carry_evidence_and_pii_is_masked(inbox):
    result = audit_call(
        CallInput("call_a", str(inbox / "call_a.wav")), AuditOptions(), transcriber=fake_transcriber
    )
    assert result.status == "ok" and result.channels == 2 and result.sample_rate == 8000
    by_cat = {f.category: f for f in result.findings}
    assert {"threat", "insult", "pii_exposure"} <= set(by_cat)
    # The customer's question (你们是不是要找我家人？) is never an agent violation.
    assert not any(f.speaker == "customer" for f in result.findings)
    threat = by_cat["threat"]
    assert threat.speaker == "agent" and threat.start_s == 6.0 and threat.end_s == 8.5
    assert threat.citation.startswith("CBA-2026")
    assert "13812345678" not in by_cat["pii_exposure"].text  # masked by default
    assert by_cat["pii_exposure"].text.endswith("5678")
    stored = [u.text + u.raw_text for u in result.utterances]
    assert not any("13812345678" in t for t in stored)
    assert any("*******5678" in t for t in stored)
    kept = audit_call(
        CallInput("call_a", str(inbox / "call_a.wav")),
        AuditOptions(pii="keep"),
        transcriber=fake_transcriber,
    )
    assert any("13812345678" in u.text for u in kept.utterances)


def test_mono_speaker_is_unknown(inbox):
    result = audit_call(
        CallInput("b", str(inbox / "sub" / "call b 中文.wav")),
        AuditOptions(),
        transcriber=fake_transcriber,
    )
    assert {u.speaker for u in result.utterances} == {"unknown"}
    # Unknown speakers are judged: the customer's question is indistinguishable now.
    assert "threat" in {f.category for f in result.findings}


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"", "empty file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a readable audio file"),
        ("这不是音频".encode() * 50, "not a readable audio file"),
    ],
)
def test_bad_recordings_fail_with_a_readable_error(tmp_path, content, expected):
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    result = audit_call(CallInput("bad", str(path)), AuditOptions(), transcriber=fake_transcriber)
    assert result.status == "failed"
    assert expected in result.error
    assert result.utterances == [] and result.findings == []


def test_batch_records_failures_and_rerun_changes_no_row_count(inbox, tmp_path):
    db = tmp_path / "audit.duckdb"
    first = run_batch(inbox, db)
    assert first["counts"]["calls"] == 3
    assert first["summary"].failed == 1 and first["summary"].audited == 2
    con = store.connect(db)
    status = dict(con.execute("SELECT call_id, status FROM calls").fetchall())
    error = con.execute("SELECT error FROM calls WHERE call_id='broken'").fetchone()[0]
    con.close()
    assert status == {"broken": "failed", "call_a": "ok", "sub/call b 中文": "ok"}
    assert "not a readable audio file" in error

    again = run_batch(inbox, db)
    assert again["counts"] == first["counts"]
    assert again["todo"] == ["broken"]  # failed calls are retried, audited ones skipped

    forced = run_batch(inbox, db, force=True)
    assert forced["counts"] == first["counts"]
    assert len(forced["todo"]) == 3


def test_finding_ids_are_stable_across_reruns(inbox, tmp_path):
    db = tmp_path / "a.duckdb"
    run_batch(inbox, db)
    con = store.connect(db)
    before = sorted(r[0] for r in con.execute("SELECT finding_id FROM findings").fetchall())
    con.close()
    run_batch(inbox, db, force=True)
    con = store.connect(db)
    after = sorted(r[0] for r in con.execute("SELECT finding_id FROM findings").fetchall())
    con.close()
    assert before == after and len(before) > 0


def test_renamed_copy_is_not_audited_twice(inbox, tmp_path):
    db = tmp_path / "a.duckdb"
    run_batch(inbox, db)
    (inbox / "copy_of_a.wav").write_bytes((inbox / "call_a.wav").read_bytes())
    again = run_batch(inbox, db)
    assert "copy_of_a" not in again["todo"]
    plan_skips = dict(
        batch.plan_batch(
            discover(inbox), store.connect(tmp_path / "b.duckdb"), AuditOptions()
        ).skipped
    )
    assert plan_skips.get("copy_of_a") == "same content as call_a"


def test_a_failed_write_leaves_nothing_half_stored(inbox, tmp_path, monkeypatch):
    db = tmp_path / "a.duckdb"
    con = store.connect(db)
    result = audit_call(
        CallInput("call_a", str(inbox / "call_a.wav")), AuditOptions(), transcriber=fake_transcriber
    )

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "write_findings", explode)
    with pytest.raises(RuntimeError):
        store.write_call(con, result)
    assert store.table_counts(con) == {"calls": 0, "utterances": 0, "findings": 0, "reviews": 0}
    con.close()


def test_database_file_is_private(tmp_path):
    db = tmp_path / "p.duckdb"
    store.connect(db).close()
    assert db.stat().st_mode & 0o077 == 0


def test_another_applications_duckdb_file_is_left_untouched(tmp_path):
    foreign = tmp_path / "crm.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE calls (id INTEGER, note VARCHAR)")
    before = foreign.read_bytes()
    for read_only in (False, True):
        with pytest.raises(store.StoreError, match="another application's database"):
            store.connect(foreign, read_only=read_only)
    assert foreign.read_bytes() == before
    with duckdb.connect(str(foreign), read_only=True) as con:
        assert [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()] == [
            "calls"
        ]


def test_a_sqlite_or_other_file_is_refused_before_duckdb_opens_it(tmp_path):
    import sqlite3

    lite = tmp_path / "app.db"
    with sqlite3.connect(lite) as con:
        con.execute("CREATE TABLE t (x)")
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database at all, but long enough to have a header")
    for path, what in ((lite, "SQLite"), (text, "not a DuckDB database file")):
        before = path.read_bytes()
        with pytest.raises(store.StoreError, match=what):
            store.connect(path)
        assert path.read_bytes() == before


def test_display_names_cannot_forge_log_lines_or_show_numbers():
    from audit.batch import display_name, format_summary

    name = "客户13812345678\n  FAILED other_call: \x1b[31mforged"
    shown = display_name(name)
    assert "\n" not in shown and "\x1b" not in shown and "13812345678" not in shown
    assert shown.startswith("客户*******5678\\n") and "\\x1b" in shown
    summary = {
        "discovered": 1,
        "audited": 0,
        "skipped": 0,
        "failed": 1,
        "audio_minutes": 0.0,
        "db": "x",
        "db_calls": 1,
        "db_findings": 0,
        "findings_by_category": {},
        "failures": [(name, "bad\nline")],
    }
    lines = format_summary(summary).splitlines()
    assert sum(line.strip().startswith("FAILED") for line in lines) == 1
