"""The HTML report, the CSV/Parquet exports, the Prefect artifact contents, and a real
rendering of the report in headless Chromium."""

from __future__ import annotations

import hashlib
import html
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
    # One inline script (the filters), no script fetched; the policy lets only it run.
    assert text.lower().count("<script") == 1 and "<script>" in text
    assert "script-src &#x27;sha256-" in text and "default-src &#x27;none&#x27;" in text
    links = re.findall(r"<[a-zA-Z][^<>]*\s(?:src|href)\s*=[^<>]*>", text)
    fetching = [
        x
        for x in links
        if not re.fullmatch(r'<audio [^<>]*src="data:audio/webm;base64,[A-Za-z0-9+/=]+">', x)
    ]
    assert fetching == []  # nothing fetched: no CDN, no images, no fonts; clips are inline
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


def _clips(html: str) -> list[bytes]:
    import base64

    return [
        base64.b64decode(m)
        for m in re.findall(r'<audio [^<>]*src="data:audio/webm;base64,([A-Za-z0-9+/=]+)"', html)
    ]


def _decode(clip: bytes):
    import io

    import av
    import numpy as np

    with av.open(io.BytesIO(clip)) as f:
        frames = [fr.to_ndarray().reshape(-1) for fr in f.decode(audio=0)]
        rate = f.streams.audio[0].rate
    return np.concatenate(frames).astype("float32"), rate


def test_each_finding_of_the_top_calls_can_be_heard(page, db):
    text = page.read_text(encoding="utf-8")
    clips = _clips(text)
    spans = query_spans(db)
    assert len(clips) == len(spans) >= 8  # one per finding span of the top calls
    for clip in clips:
        samples, rate = _decode(clip)
        seconds = len(samples) / rate
        assert 1.0 < seconds <= 20.5  # the span and up to 2 s either side, at most 20 s
        assert float(abs(samples).max()) > 0.01  # speech, not silence
    assert len(text.encode()) < 5_500_000


def query_spans(db: Path) -> set[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        top = [
            r[0]
            for r in con.execute(
                "SELECT call_id FROM call_risk WHERE findings > 0 "
                "ORDER BY risk_score DESC, findings DESC, call_id LIMIT 10"
            ).fetchall()
        ]
        return {
            r for r in con.execute(
                "SELECT call_id, speaker, start_s, end_s FROM findings "
                "WHERE start_s IS NOT NULL AND list_contains(?, call_id)", [top]).fetchall()
        }  # fmt: skip


def test_a_budget_leaves_clips_out_and_says_so(db, tmp_path):
    text = report.render_report(db, tmp_path / "r.html", clip_budget_bytes=50_000).read_text(
        encoding="utf-8"
    )
    kept = len(_clips(text))
    assert 0 < kept < len(query_spans(db))
    assert "audio clip(s) left out: over the 0.05 MB budget for clips" in text
    none = report.render_report(db, tmp_path / "n.html", clip_budget_bytes=None)
    assert "<audio" not in none.read_text(encoding="utf-8")


def test_personal_numbers_are_bleeped_in_the_clip(tmp_path):
    """The agent reads a phone number (0-2.5 s), then threatens (3-5.5 s): the threat's
    clip starts at 1 s and its first 1.5 s, still the number, is a 1 kHz tone."""
    import numpy as np

    from audit.pipeline import AuditOptions, CallInput, audit_call
    from audit.transcribe import Utterance
    from tests.conftest import tone, write_wav

    wav = write_wav(tmp_path / "pii.wav", [tone(8.0, freq=300), tone(8.0, freq=500, amp=0.05)])

    def heard(channels, options):
        lines = [
            ("agent", 0.0, 2.5, "您的手机号是13812345678对吧"),
            ("agent", 3.0, 5.5, "你再不还钱我们就去你单位闹"),
        ]
        return [Utterance(i, spk, a, b, t, t, -0.2, 0.01) for i, (spk, a, b, t) in enumerate(lines)]

    db = tmp_path / "pii.duckdb"
    result = audit_call(CallInput("pii-call", str(wav)), AuditOptions(), transcriber=heard)
    with store.connect(db) as con:
        store.write_call(con, result)
    page = report.render_report(db, tmp_path / "r.html").read_text(encoding="utf-8")
    threat_clip = None
    with duckdb.connect(str(db), read_only=True) as con:
        spans = con.execute(
            "SELECT DISTINCT start_s FROM findings WHERE start_s IS NOT NULL ORDER BY 1"
        ).fetchall()
    assert (3.0,) in spans
    for clip in _clips(page):
        samples, rate = _decode(clip)
        if abs(len(samples) / rate - 6.5) < 0.3:  # 1.0-7.5 s: the threat's clip
            threat_clip = (samples, rate)
    assert threat_clip is not None
    samples, rate = threat_clip

    def peak_hz(piece):
        spectrum = np.abs(np.fft.rfft(piece * np.hanning(len(piece))))
        return np.fft.rfftfreq(len(piece), 1 / rate)[int(np.argmax(spectrum))]

    assert abs(peak_hz(samples[int(0.3 * rate) : int(1.2 * rate)]) - 1000) < 30  # bleeped
    assert abs(peak_hz(samples[int(3.0 * rate) : int(4.0 * rate)]) - 300) < 30  # the threat


# ---------------------------------------------------------------- per-call drill-down

HOSTILE = "喂，你好。</script><b>\"引号\" & '单' <!--"
THREAT = "你再不还钱，我们就派人去你单位找你。"
CARD = "我的卡号是****5678，<img src=x>你们别<骂人"


@pytest.fixture(scope="module")
def drill_db(tmp_path_factory) -> Path:
    """One call built by hand: a hostile utterance, two overlapping findings in one
    utterance, a finding on the customer's side, a conduct finding between utterances,
    a whole-call finding, a call record with markup in its ids, and conduct metrics."""
    db = tmp_path_factory.mktemp("drill") / "drill.duckdb"
    con = store.connect(db)
    con.execute(
        "INSERT INTO calls (call_id, status, agent_id, debtor_id, callee_number, "
        "callee_relation, callee_inferred, started_at, timezone, direction, answered, "
        "duration_s, channels, sample_rate, codec, channel_roles, audited_at, model, "
        "rules_version) VALUES ('drill-call', 'ok', 'A<9>', 'D&1', '13812345678', "
        "'third_party', 'third_party: customer said 我是他妈妈', "
        "TIMESTAMPTZ '2026-03-02 14:30:00+00', 'Asia/Shanghai', 'outbound', true, 20.0, 2, "
        "8000, 'pcm_s16le', 'agent,customer', TIMESTAMPTZ '2026-03-03 01:00:00+00', "
        "'whisper-base', 'cn-test')"
    )
    utterances = [  # stored out of time order on purpose
        (3, "customer", 9.0, 11.0, "好的"),
        (2, "agent", 6.0, 8.5, THREAT),
        (0, "agent", 0.0, 2.5, HOSTILE),
        (1, "customer", 3.0, 5.5, CARD),
    ]
    for idx, speaker, a, b, text in utterances:
        con.execute(
            "INSERT INTO utterances (call_id, idx, speaker, start_s, end_s, text, raw_text) "
            "VALUES ('drill-call', ?, ?, ?, ?, ?, 'RAW-NOT-SHOWN 13812345678')",
            [idx, speaker, a, b, text],
        )

    def finding(fid, rule, cat, sev, speaker, idx, a, b, text, match, citation="CIT <§1>"):
        start = text.index(match) if idx is not None and match in text else None
        con.execute(
            "INSERT INTO findings (finding_id, call_id, rule_id, category, severity, speaker, "
            "utterance_idx, start_s, end_s, text, match, char_start, char_end, via, citation) "
            "VALUES (?, 'drill-call', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'text', ?)",
            [fid, rule, cat, sev, speaker, idx, a, b, text, match, start,
             None if start is None else start + len(match), citation],
        )  # fmt: skip

    finding("f-violence", "CN-THR-VIOLENCE", "threat", "critical", "agent", 2, 6.0, 8.5, THREAT,
            "派人去你")  # fmt: skip
    finding("f-visit", "CN-THR-VISIT", "threat", "high", "agent", 2, 6.0, 8.5, THREAT, "去你单位")
    finding("f-card", "CN-PII-CARD", "pii_exposure", "medium", "customer", 1, 3.0, 5.5, CARD,
            "****5678")  # fmt: skip
    finding("f-overtalk", "CN-CD-OVERTALK", "conduct", "low", "agent", None, 8.0, 9.5,
            "overtalk 1.5 s", "1.5 s")  # fmt: skip
    finding("f-hours", "CN-CT-QUIET-HOURS", "contact_time", "high", "agent", None, None, None,
            "22:30 Asia/Shanghai", "22:30")  # fmt: skip
    con.execute(
        "INSERT INTO call_metrics (call_id, agent_talk_s, customer_talk_s, talk_ratio, "
        "overtalk_s, interruptions, conduct_version) "
        "VALUES ('drill-call', 9.5, 6.5, 0.594, 1.5, 2, 'conduct-test')"
    )
    con.close()
    return db


@pytest.fixture(scope="module")
def drill_page(drill_db, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("drill-html") / "r.html"
    return report.render_report(drill_db, out, clip_budget_bytes=None).read_text(encoding="utf-8")


def _call_block(page: str, call_id: str) -> str:
    start = page.index(f'<div class="call" data-call="{call_id}"')
    return page[start : page.index("</details></div>", start)]


def _utterances(block: str) -> list[tuple[str, str, str, str]]:
    """(data-idx or 'event', time, speaker, inner html of the words) of each transcript line."""
    items = re.findall(
        r'<li class="(?:utt spk-\w+" data-idx="(\d+)|event)">'
        r'<span class="when">([^<]*)</span><span class="who">([^<]*)</span>'
        r'<span class="said">(.*?)</span>(?: <span class="flag">[^<]*</span>)?</li>',
        block,
        re.S,  # a highlight's title has a line per finding
    )
    return [(idx or "event", when, who, said) for idx, when, who, said in items]


def _marks(said: str) -> list[tuple[str, str, str]]:
    """(finding ids, title, marked text) of each highlight."""
    return re.findall(
        r'<mark class="sev-\w+" data-findings="([^"]*)" data-categories="[^"]*" '
        r'data-severities="[^"]*" title="([^"]*)">([^<]*)</mark>',
        said,
    )


def test_the_drill_down_shows_every_utterance_in_time_order_by_speaker(drill_page):
    lines = _utterances(_call_block(drill_page, "drill-call"))
    assert [(i, w, s) for i, w, s, _ in lines] == [
        ("0", "0.0–2.5 s", "agent"),
        ("1", "3.0–5.5 s", "customer"),
        ("2", "6.0–8.5 s", "agent"),
        ("event", "8.0–9.5 s", "agent"),  # the conduct finding, at its time
        ("3", "9.0–11.0 s", "customer"),
    ]
    assert "Call record, conduct and full transcript (4 utterances)" in drill_page
    assert "RAW-NOT-SHOWN" not in drill_page  # Whisper's raw text is never in the report


def test_each_finding_is_highlighted_in_its_utterance(drill_page):
    lines = {i: said for i, _, _, said in _utterances(_call_block(drill_page, "drill-call"))}
    threat = _marks(lines["2"])
    # Two findings overlapping on 去你: three pieces, the middle one carries both.
    assert [(ids, text) for ids, _, text in threat] == [
        ("f-violence", "派人"),
        ("f-violence f-visit", "去你"),
        ("f-visit", "单位"),
    ]
    title = threat[1][1]
    assert "CN-THR-VIOLENCE · threat · critical · CIT &lt;§1&gt;" in title
    assert "CN-THR-VISIT · threat · high" in title
    assert re.sub(r"<[^>]+>", "", lines["2"]) == THREAT  # nothing lost around the marks
    card = _marks(lines["1"])  # the customer's side
    assert [(ids, text) for ids, _, text in card] == [("f-card", "****5678")]
    assert "CN-PII-CARD · pii_exposure · medium" in card[0][1]
    assert _marks(lines["0"]) == [] and _marks(lines["3"]) == []
    assert [m[0] for m in _marks(lines["event"])] == ["f-overtalk"]
    whole = re.search(r'<p class="whole">(.*?)</p>', drill_page).group(1)
    assert [m[0] for m in _marks(whole)] == ["f-hours"]


def test_the_call_record_and_conduct_metrics_are_shown(drill_page):
    block = _call_block(drill_page, "drill-call")
    record = dict(re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>", block))
    assert record["agent"] == "A&lt;9&gt;" and record["debtor"] == "D&amp;1"
    assert record["callee number"] == "*******5678"  # the number itself is not shown
    assert record["callee relation (call record)"] == "third_party"
    assert record["callee, as the conversation shows"] == "third_party: customer said 我是他妈妈"
    assert record["start (debtor&#x27;s local time)"] == "2026-03-02 22:30 Asia/Shanghai"
    assert record["direction"] == "outbound" and record["answered"] == "yes"
    assert record["duration"] == "20.0 s"
    assert record["recording"] == "2 channel(s), 8000 Hz, pcm_s16le; channels: agent,customer"
    assert record["audited"] == "2026-03-03 01:00 UTC; model whisper-base; rules cn-test"
    assert record["agent share of talk"] == "59%" and record["interruptions"] == "2"
    assert record["overtalk"] == "1.5 s" and record["conduct policy"] == "conduct-test"


def test_hostile_transcript_text_is_escaped(drill_page):
    assert drill_page.count("<script") == 1 and drill_page.count("</script>") == 1
    assert "</script><b>" not in drill_page and "<img" not in drill_page
    assert "<!--" not in drill_page
    lines = {i: said for i, _, _, said in _utterances(_call_block(drill_page, "drill-call"))}
    assert lines["0"] == html.escape(HOSTILE, quote=True)
    assert html.unescape(re.sub(r"<[^>]+>", "", lines["1"])) == CARD


def test_filters_read_data_attributes_of_calls_and_rows(drill_page):
    call = re.search(r'<div class="call" ([^>]*)>', drill_page).group(1)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', call))
    assert attrs == {
        "data-call": "drill-call",
        "data-agent": "A&lt;9&gt;",
        "data-date": "2026-03-02",  # the debtor's local day
        "data-categories": "|conduct|contact_time|pii_exposure|threat|",
        "data-severities": "|critical|high|low|medium|",
    }
    rows = re.findall(
        r'<tr data-finding="([^"]*)" data-category="([^"]*)" data-severity="([^"]*)">', drill_page
    )
    assert sorted(rows) == [
        ("f-card", "pii_exposure", "medium"),
        ("f-hours", "contact_time", "high"),
        ("f-overtalk", "conduct", "low"),
        ("f-violence", "threat", "critical"),
        ("f-visit", "threat", "high"),
    ]
    form = re.search(r'<form id="filters".*?</form>', drill_page).group(0)
    assert '<option value="A&lt;9&gt;">A&lt;9&gt;</option>' in form
    assert all(f'<option value="{c}">' in form for c in ("threat", "conduct", "pii_exposure"))
    assert 'min="2026-03-02" max="2026-03-02"' in form


def test_calls_beyond_the_top_are_counted_as_left_out(db, tmp_path):
    text = report.render_report(db, tmp_path / "r.html", top=2, clip_budget_bytes=None)
    page = text.read_text(encoding="utf-8")
    assert page.count('<div class="call" data-call=') == 2
    assert "4 more call(s) with findings in this period are not shown" in page
    con = report.open_snapshot(db, transcripts_of_top=2)  # only the shown calls' words
    try:
        held = con.execute("SELECT DISTINCT call_id FROM utterances").fetchall()
        raw = con.execute("SELECT count(*) FROM utterances WHERE raw_text <> ''").fetchone()
    finally:
        con.close()
    assert len(held) == 2 and raw == (0,)


def test_a_database_without_call_metrics_still_has_its_drill_down(drill_db, tmp_path):
    """A file from before conduct checks and the review log (old schema)."""
    old = tmp_path / "old.duckdb"
    shutil.copy(drill_db, old)
    with duckdb.connect(str(old)) as con:
        con.execute("DROP TABLE call_metrics")
        con.execute("DROP TABLE review_log")
        con.execute("ALTER TABLE calls DROP COLUMN channel_roles")
        con.execute("ALTER TABLE calls DROP COLUMN callee_inferred")
        con.execute("ALTER TABLE utterances DROP COLUMN asr_flag")
    page = report.render_report(old, tmp_path / "r.html", clip_budget_bytes=None)
    text = page.read_text(encoding="utf-8")
    assert "conduct: not measured for this call" in text
    assert len(_utterances(_call_block(text, "drill-call"))) == 5


def _chromium_dom(page: Path, fragment: str) -> str:
    """The page's DOM after its script ran in headless Chromium, opened at ``#fragment``."""
    import tempfile

    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [report.find_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--dump-dom",
             page.resolve().as_uri() + "#" + fragment],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(report.find_chromium() is None, reason="chromium not installed")
def test_filters_hide_rows_in_headless_chromium(page):
    everything = _chromium_dom(page, "")
    assert re.search(r'<output id="shown">6 of 6 calls shown</output>', everything)
    dom = _chromium_dom(page, "category=threat")
    rows = re.findall(r'<tr data-finding="[^"]*" data-category="(\w+)"[^>]*?( hidden="")?>', dom)
    shown = {cat for cat, hidden in rows if not hidden}
    assert shown == {"threat"} and any(hidden for _, hidden in rows)
    calls = re.findall(r'<div class="call" data-call="(\w+)"[^>]*?( hidden="")?>', dom)
    visible = {c for c, hidden in calls if not hidden}
    assert "call_03_threat" in visible and "call_08_inducement" not in visible
    assert f'<output id="shown">{len(visible)} of 6 calls shown</output>' in dom
    # Filters combine: an agent and a severity.
    dom = _chromium_dom(page, "agent=A12&severity=critical")
    calls = re.findall(r'<div class="call" data-call="(\w+)"[^>]*?( hidden="")?>', dom)
    assert {c for c, hidden in calls if not hidden} == {"call_03_threat"}
