"""The HTML report, the CSV/Parquet exports, the Prefect artifact contents, and a real
rendering of the report in headless Chromium."""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest

from audit import report, store
from audit.report import Period
from tests.conftest import SAMPLES
from tests.test_manifest import audit_with_manifest, dialogues

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    """The sample calls audited with the manifest, one review, and a hostile evidence text."""
    path = tmp_path_factory.mktemp("report") / "audit.duckdb"
    audit_with_manifest(SAMPLES / "inbox", SAMPLES / "calls.csv", path)
    con = store.connect(path)
    con.execute(
        "UPDATE findings SET text = text || '<img src=x onerror=alert(1)>' "
        "WHERE call_id = 'call_08_inducement'"
    )
    fid = con.execute("SELECT finding_id FROM findings WHERE call_id = 'call_04_insult'").fetchone()
    con.execute("INSERT INTO reviews (finding_id, verdict) VALUES (?, 'confirmed')", [fid[0]])
    con.close()
    return path


@pytest.fixture(scope="module")
def page(db, tmp_path_factory) -> Path:
    return report.render_report(db, tmp_path_factory.mktemp("html") / "report.html")


def test_report_has_charts_scorecard_and_evidence(page):
    text = page.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in text and "Noto Sans CJK SC" in text
    assert text.count("<svg") == 2 and text.count("<rect") > 10
    for heading in ("Findings per day, by category", "Agent scorecard", "Highest-risk calls"):
        assert heading in text
    assert all(f"<td>{agent}</td>" in text for agent in ("A07", "A12", "A15"))
    threat_line = next(t for s, t in dialogues()["call_03_threat"] if "单位" in t)
    assert threat_line in text  # the agent's words, as evidence
    assert "22:30 Asia/Shanghai (debtor&#x27;s local time" in text
    assert "CBA-2026 §prohibited-7" in text and "CN-CT-QUIET-HOURS" in text


def test_report_is_self_contained_and_escaped(page):
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    links = re.findall(r"<[a-zA-Z][^<>]*\s(?:src|href)\s*=[^<>]*>", text)
    assert links == []  # no element fetches anything: no CDN, no images, no fonts
    assert "@import" not in text and "url(" not in text
    assert "http://www.w3.org/2000/svg" in text  # (the SVG namespace is a name, not a fetch)
    assert "<img src=x" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


def test_period_filter(db, tmp_path):
    one_day = Period(date(2026, 3, 2), date(2026, 3, 2))
    text = report.render_report(db, tmp_path / "r.html", one_day).read_text(encoding="utf-8")
    assert "call_03_threat" in text and "call_07_false_legal" not in text
    assert "2026-03-02 to 2026-03-02" in text


def test_report_reads_the_database_without_changing_it(db, tmp_path):
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    report.render_report(db, tmp_path / "r.html")
    report.export(db, tmp_path / "csv", "csv")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_exports_every_table_and_view(db, tmp_path, fmt):
    written = report.export(db, tmp_path / fmt, fmt, Period(date(2026, 3, 3), None))
    names = {p.stem for p in written}
    assert names == {*report.EXPORT_TABLES, *report.EXPORT_VIEWS}
    reader = "read_csv_auto" if fmt == "csv" else "read_parquet"
    con = duckdb.connect()
    calls = con.execute(f"SELECT call_id FROM {reader}('{tmp_path / fmt / ('calls.' + fmt)}')")
    ids = {r[0] for r in calls.fetchall()}
    assert "call_04_insult" in ids and "call_03_threat" not in ids  # 03-02 is before --from
    scorecard = con.execute(
        f"SELECT agent_id, calls FROM {reader}('{tmp_path / fmt / ('agent_scorecard.' + fmt)}')"
    ).fetchall()
    assert dict(scorecard)["A15"] == 7


def test_prefect_artifacts_carry_no_transcript_text(db):
    con = report.open_snapshot(db)
    try:
        top = report.top_findings(con, limit=5)
    finally:
        con.close()
    assert len(top) == 5 and top[0]["severity"] == "critical"
    assert set(top[0]) == {
        "rule_id", "category", "severity", "call_id", "agent_id", "started_at", "start_s", "end_s"
    }  # fmt: skip
    assert not any(CJK.search(str(v)) for row in top for v in row.values())
    md = report.summary_markdown(
        {
            "discovered": 8, "audited": 8, "skipped": 0, "failed": 0, "audio_minutes": 3.5,
            "db_calls": 15, "db_findings": 24, "findings_by_category": {"threat": 3},
            "failures": [], "manifest": {"accepted": 15, "rows": 16, "encoding": "utf-8",
                                         "errors": ["row 3: bad"]},
            "contact": {"policy": "cn", "version": "1", "findings": {"CN-CT-QUIET-HOURS": 2}},
        }
    )  # fmt: skip
    assert "| threat | 3 |" in md and "15 of 16 rows accepted" in md
    assert "CN-CT-QUIET-HOURS 2" in md


def test_report_command(db, tmp_path, cli):
    out = tmp_path / "r.html"
    proc = subprocess.run(
        [*cli, "report", "--db", str(db), "--out", str(out), "--from", "2026-03-03"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "call_07_false_legal" in out.read_text(encoding="utf-8")
    missing = subprocess.run(
        [*cli, "report", "--db", str(tmp_path / "none.duckdb"), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 1 and "no audit database" in missing.stderr


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(
    report.find_chromium() is None,
    reason="chromium not installed (scripts/test.sh installs Debian's chromium)",
)
def test_report_renders_in_headless_chromium(page, tmp_path):
    # Without a CJK font Chromium draws the evidence as empty boxes.
    fonts = subprocess.run(
        ["fc-list", ":lang=zh", "family"], capture_output=True, text=True
    ).stdout if shutil.which("fc-list") else ""  # fmt: skip
    assert fonts.strip(), "no Chinese font installed (Debian: fonts-noto-cjk)"
    png = report.chromium_screenshot(page, tmp_path / "report.png", 1280, 2000)
    assert png_size(png) == (1280, 2000)
    # A blank or error page compresses to a few kB; charts, tables and text don't.
    assert png.stat().st_size > 60_000


def test_an_encrypted_database_is_reported_with_its_key(tmp_path):
    from audit.contact import run_contact_rules
    from audit.manifest import load_manifest
    from audit.policy import load_policy

    db = tmp_path / "enc.duckdb"
    con = store.connect(db, encryption_key="correct horse")
    store.write_call_records(con, load_manifest(SAMPLES / "calls.csv", SAMPLES / "inbox").records)
    run_contact_rules(con, load_policy("cn"))
    con.close()
    page = report.render_report(db, tmp_path / "r.html", encryption_key="correct horse")
    assert "22:30 Asia/Shanghai" in page.read_text(encoding="utf-8")
    with pytest.raises(store.StoreError, match="is encrypted"):
        report.render_report(db, tmp_path / "r.html")
    with pytest.raises(store.StoreError, match="wrong encryption key"):
        report.export(db, tmp_path / "csv", "csv", encryption_key="guess")


def test_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path):
    import csv

    db = tmp_path / "hostile.duckdb"
    con = store.connect(db)
    con.execute(
        "INSERT INTO calls (call_id, status, agent_id, debtor_id, started_at) VALUES "
        "('=HYPERLINK(\"http://x\")', 'no_recording', '+A1', '@SUM(1)', "
        "TIMESTAMPTZ '2026-03-02 02:00:00+00'), "
        "('plain', 'no_recording', '-1+1', 'D=1', TIMESTAMPTZ '2026-03-02 02:00:00+00')"
    )
    con.close()
    report.export(db, tmp_path / "csv", "csv")
    with open(tmp_path / "csv" / "calls.csv", encoding="utf-8", newline="") as f:
        rows = {r["debtor_id"]: r for r in csv.DictReader(f)}
    hostile, plain = rows["'@SUM(1)"], rows["D=1"]
    assert hostile["call_id"] == '\'=HYPERLINK("http://x")' and hostile["agent_id"] == "'+A1"
    assert plain["call_id"] == "plain" and plain["agent_id"] == "'-1+1"
    # Parquet keeps the values as they are: it is typed data, not a spreadsheet.
    report.export(db, tmp_path / "pq", "parquet")
    ids = duckdb.connect().execute(f"SELECT call_id FROM '{tmp_path / 'pq' / 'calls.parquet'}'")
    assert '=HYPERLINK("http://x")' in {r[0] for r in ids.fetchall()}
