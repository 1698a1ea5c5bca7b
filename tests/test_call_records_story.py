"""The offset-less call-record story of issue 15, replayed.

A dialler exports times without a UTC offset.  Then: with ``--default-timezone`` every
row is accepted the first time; without it the audit stops before any audio; a
recording audited earlier under its file name (audited without its call records) is
re-linked to the manifest's call id when the file is fixed, not audited twice, with or
without ``--force``; ``callaudit check`` shows all of this without decoding audio.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from audit import batch, store
from audit.cli import main
from audit.contact import check_calls
from audit.manifest import ManifestError, check_inbox, load_manifest, plan_inbox
from audit.pipeline import AuditOptions, audit_call
from audit.policy import load_policy
from tests.conftest import SAMPLES
from tests.test_manifest import HEADER, scripted

# Two sample calls under the dialler's own ids; times as Excel writes them (no offset).
ROWS = {
    "call_03_threat": "CDR-0003,call_03_threat.wav,A07,D1003,13800131003,debtor,"
    "2026-03-02T22:30:00,30.0,outbound,true",
    "call_05_third_party": "CDR-0005,call_05_third_party.wav,A09,D1005,13900131005,"
    "third_party,2026-03-02T19:31:00,30.0,outbound,true",
}


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    box = tmp_path / "inbox"
    box.mkdir()
    for stem in ROWS:
        shutil.copy(SAMPLES / "inbox" / f"{stem}.wav", box)
    return box


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "cdr.csv"
    path.write_text("\n".join([HEADER, *ROWS.values()]) + "\n", encoding="utf-8")
    return path


def audit(inbox: Path, manifest: Path | None, db: Path, force: bool = False, **kw) -> dict:
    """The flow's steps without Prefect; each recording 'heard' as its sample script."""
    con = store.connect(db)
    options = AuditOptions()
    try:
        plan, records = plan_inbox(
            con, inbox, str(manifest) if manifest else None, options, force, **kw
        )
        progress = batch.Progress(total=len(plan.todo))
        for call in plan.todo:
            result = audit_call(call, options, transcriber=scripted(Path(call.path).stem))
            store.write_call(con, result)
            progress.update(result)
        checked = check_calls(con, records, plan, load_policy("cn"))
    finally:
        con.close()
    return {**checked, "todo": [c.call_id for c in plan.todo]}


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_default_time_zone_accepts_every_row_the_first_time(inbox, manifest, tmp_path):
    db = tmp_path / "a.duckdb"
    summary = audit(inbox, manifest, db, default_timezone="Asia/Shanghai")
    assert summary["manifest"]["accepted"] == 2 and not summary["manifest"]["errors"]
    calls = dict(rows(db, "SELECT call_id, timezone FROM calls"))
    assert calls == {"CDR-0003": "Asia/Shanghai", "CDR-0005": "Asia/Shanghai"}
    # 22:30 in Shanghai is outside the allowed hours: the contact rule needs the zone.
    time_findings = rows(db, "SELECT call_id FROM findings WHERE category = 'contact_time'")
    assert ("CDR-0003",) in time_findings
    tpd = rows(
        db,
        "SELECT count(*) FROM findings WHERE call_id = 'CDR-0005' "
        "AND category = 'third_party_disclosure'",
    )
    assert tpd[0][0] >= 1


def test_without_a_zone_nothing_is_audited_and_the_cli_stops_before_audio(
    inbox, manifest, tmp_path, capsys
):
    db = tmp_path / "b.duckdb"
    with pytest.raises(ManifestError, match="none of its 2 rows"):
        audit(inbox, manifest, db)
    assert rows(db, "SELECT count(*) FROM calls") == [(0,)]
    cli_db = tmp_path / "cli.duckdb"
    code = main(["audit", str(inbox), "--db", str(cli_db), "--manifest", str(manifest)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--default-timezone" in err[0]
    assert not cli_db.exists()


def test_a_fixed_manifest_relinks_recordings_instead_of_auditing_them_twice(
    inbox, manifest, tmp_path
):
    db = tmp_path / "c.duckdb"
    first = audit(inbox, manifest, db, without_records=True)  # as the old version did
    assert sorted(first["todo"]) == sorted(ROWS)
    before = rows(
        db,
        "SELECT rule_id, utterance_idx, char_start FROM findings "
        "WHERE call_id = 'call_03_threat' AND utterance_idx IS NOT NULL ORDER BY ALL",
    )
    assert before, "the threat call has findings under its file name"
    reviewed = rows(
        db,
        "SELECT finding_id FROM findings WHERE call_id = 'call_03_threat' "
        "ORDER BY finding_id LIMIT 1",
    )[0][0]
    with store.connect(db) as con:
        con.execute("INSERT INTO reviews (finding_id, verdict) VALUES (?, 'confirmed')", [reviewed])

    second = audit(inbox, manifest, db, default_timezone="Asia/Shanghai")
    assert sorted(second["manifest"]["relinked"]) == [
        "call_03_threat -> CDR-0003",
        "call_05_third_party -> CDR-0005",
    ]
    # The debtor's call was not transcribed again; the third-party one was re-detected
    # under its relation (the third-party rules depend on it).
    assert second["todo"] == ["CDR-0005"]
    assert rows(db, "SELECT call_id FROM calls ORDER BY call_id") == [("CDR-0003",), ("CDR-0005",)]
    after = rows(
        db,
        "SELECT rule_id, utterance_idx, char_start FROM findings "
        "WHERE call_id = 'CDR-0003' AND utterance_idx IS NOT NULL ORDER BY ALL",
    )
    assert after == before
    # Its call record now reaches the contact rules: 22:30 is outside the allowed hours.
    assert ("CN-CT-QUIET-HOURS",) in rows(
        db, "SELECT rule_id FROM findings WHERE call_id = 'CDR-0003' AND utterance_idx IS NULL"
    )
    assert rows(
        db,
        "SELECT count(*) FROM reviews r JOIN findings f USING (finding_id) "
        "WHERE f.call_id = 'CDR-0003'",
    ) == [(1,)]

    for force in (False, True):
        audit(inbox, manifest, db, force=force, default_timezone="Asia/Shanghai")
        assert rows(db, "SELECT count(*), count(DISTINCT sha256) FROM calls") == [(2, 2)]
        dup = rows(
            db,
            "SELECT call_id, rule_id, utterance_idx, char_start, count(*) "
            "FROM findings GROUP BY ALL HAVING count(*) > 1",
        )
        assert dup == []
        assert (
            rows(
                db,
                "SELECT rule_id, utterance_idx, char_start FROM findings "
                "WHERE call_id = 'CDR-0003' AND utterance_idx IS NOT NULL ORDER BY ALL",
            )
            == before
        )


def test_check_lists_problems_and_ids_without_decoding_or_writing(inbox, manifest, tmp_path):
    report = check_inbox(inbox, str(manifest))
    text = "\n".join(report.lines)
    assert report.problems == 2 and "STOP" in text and "has no UTC offset" in text
    report = check_inbox(inbox, str(manifest), "Asia/Shanghai")
    text = "\n".join(report.lines)
    assert report.problems == 0
    assert "CDR-0003" in text and "call_03_threat.wav" in text and "third_party" in text

    db = tmp_path / "d.duckdb"
    audit(inbox, None, db)  # audited under file names
    con = store.connect(db, read_only=True)
    try:
        text = "\n".join(check_inbox(inbox, str(manifest), "Asia/Shanghai", con).lines)
    finally:
        con.close()
    assert text.count("would be re-linked") == 2
    assert rows(db, "SELECT call_id FROM calls ORDER BY 1") == [
        ("call_03_threat",),
        ("call_05_third_party",),
    ]


def test_check_command_exit_codes(inbox, manifest, tmp_path, capsys):
    check = ["check", "--inbox", str(inbox), "--manifest", str(manifest)]
    assert main(check) == 3
    assert main([*check, "--default-timezone", "Asia/Shanghai"]) == 0
    assert main([*check, "--default-timezone", "Mars/Olympus"]) == 2
    assert main(["check", "--inbox", str(inbox), "--db", str(tmp_path / "none.duckdb")]) == 1
    assert not (tmp_path / "none.duckdb").exists()
    capsys.readouterr()


def test_an_invalid_default_zone_is_refused(inbox, manifest):
    with pytest.raises(ManifestError, match="IANA"):
        load_manifest(manifest, inbox, "localtime")


def test_the_default_zone_is_only_for_times_written_without_an_offset(inbox, tmp_path):
    path = tmp_path / "mixed.csv"
    rows_ = [
        ROWS["call_03_threat"].replace("2026-03-02T22:30:00", "2026-03-02T22:30:00+09:00"),
        ROWS["call_05_third_party"],
    ]
    path.write_text("\n".join([HEADER, *rows_]) + "\n", encoding="utf-8")
    m = load_manifest(path, inbox, "Asia/Shanghai")
    assert {r.call_id: r.timezone for r in m.records} == {
        "CDR-0003": "UTC+09:00",  # the offset written is a fact; the default doesn't apply
        "CDR-0005": "Asia/Shanghai",
    }


def test_relinking_never_lands_on_another_audited_call(inbox, manifest, tmp_path):
    db = tmp_path / "e.duckdb"
    audit(inbox, None, db)  # both audited under their file names
    with store.connect(db) as con:  # CDR-0003 is already another recording; CDR-0005 failed
        con.execute(
            "INSERT INTO calls (call_id, sha256, status) VALUES ('CDR-0003', 'other', 'ok'), "
            "('CDR-0005', NULL, 'failed')"
        )
    second = audit(inbox, manifest, db, default_timezone="Asia/Shanghai")
    assert second["manifest"]["relinked"] == ["call_05_third_party -> CDR-0005"]
    calls = dict(rows(db, "SELECT call_id, status FROM calls"))
    assert calls["CDR-0005"] == "ok" and "call_05_third_party" not in calls
    assert calls["CDR-0003"] == "ok" and calls["call_03_threat"] == "ok"  # nothing lost
