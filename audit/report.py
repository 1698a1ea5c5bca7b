"""The compliance report: one self-contained HTML file, or the tables behind it as files.

The audit database is opened read-only and the period's calls, findings and reviews are
copied into an in-memory database where the views of ``sql/views/`` are created, so the
report shows exactly what the views compute, for the period, even on a file written by
an older version.  The HTML has inline CSS, inline SVG charts, audio clips as data URIs
and one small inline script (the filters of the per-call drill-down): it opens offline
and can be mailed; its Content-Security-Policy lets it fetch nothing and run no other
script.  All text is HTML-escaped; no report text is ever inside the script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from audit import clips as audio_clips
from audit import store
from audit.audio import AudioError
from audit.categories import CATEGORIES, SEVERITIES, SEVERITY_WEIGHT

EXPORT_TABLES = ("calls", "findings", "reviews", "review_log", "call_metrics")
EXPORT_VIEWS = (
    "violations",
    "reportable_findings",
    "call_risk",
    "findings_by_agent_day",
    "findings_by_category_day",
    "findings_by_category",
    "agent_scorecard",
    "agent_conduct",
    "conduct_by_agent_day",
    "rule_stats",
    "review_history",
)
# The report's audio clips stop at this size (their data URIs), and the page says so.
CLIP_BUDGET_BYTES = 5_000_000
# Fixed colours so a category looks the same in every chart and every report.
CATEGORY_COLORS = dict(
    zip(
        CATEGORIES,
        (
            "#c0392b", "#8e44ad", "#d35400", "#2c7fb8", "#7b3294", "#e6550d",
            "#31a354", "#636363", "#fdae6b", "#1b9e77", "#66a61e", "#b8860b", "#969696",
        ),
        strict=True,
    )
)  # fmt: skip
SEVERITY_COLORS = {"critical": "#7f0000", "high": "#d7301f", "medium": "#fc8d59", "low": "#fdd49e"}
FONT_STACK = (
    '"Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "PingFang SC", '
    '"Microsoft YaHei", "Hiragino Sans GB", sans-serif'
)


@dataclass(frozen=True)
class Period:
    start: date | None = None
    end: date | None = None

    def label(self) -> str:
        if not self.start and not self.end:
            return "all calls"
        return f"{self.start or '…'} to {self.end or '…'}"


def open_snapshot(
    db: str | Path,
    period: Period = Period(),
    encryption_key: str | None = None,
    transcripts_of_top: int = 0,
) -> duckdb.DuckDBPyConnection:
    """An in-memory copy of the period's calls, findings and reviews, with the views;
    with ``transcripts_of_top``, the utterances of that many riskiest calls too.

    The audit file is attached read-only (with its key when encrypted at rest).
    """
    db = Path(db)
    if not db.is_file():
        raise store.StoreError(f"no audit database at {db}")
    ext = store.extension_dir()
    con = duckdb.connect(":memory:", config={"extension_directory": ext} if ext else {})
    con.execute(store.read_sql("schema.sql"))
    con.execute(store.read_sql("macros.sql"))
    options = "READ_ONLY"
    try:
        if encryption_key is not None:
            con.execute("LOAD httpfs")  # DuckDB's encryption needs its OpenSSL
            options += ", ENCRYPTION_KEY '" + encryption_key.replace("'", "''") + "'"
        con.execute(f"ATTACH '{_sql_str(db)}' AS src ({options})")
    except duckdb.Error as exc:
        con.close()
        raise store._open_error(db, exc) from exc
    _copy_period(con, period)
    store.create_views(con)
    if transcripts_of_top > 0:
        _copy_transcripts(con, transcripts_of_top)
    con.execute("DETACH src")
    return con


def _sql_str(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


def _copy_period(con: duckdb.DuckDBPyConnection, period: Period) -> None:
    con.execute(
        "INSERT INTO calls BY NAME SELECT * FROM src.calls "
        "WHERE call_day(started_at, timezone, audited_at) BETWEEN $lo AND $hi",
        {"lo": period.start or date.min, "hi": period.end or date.max},
    )
    con.execute(
        "INSERT INTO findings BY NAME SELECT * FROM src.findings "
        "WHERE call_id IN (SELECT call_id FROM calls)"
    )
    con.execute(
        "INSERT INTO reviews BY NAME SELECT * FROM src.reviews "
        "WHERE finding_id IN (SELECT finding_id FROM findings)"
    )
    # Where personal numbers were said (masked in the text): bleeped in audio clips.
    con.execute(
        "CREATE TABLE pii_spans AS SELECT call_id, speaker, start_s, end_s "
        "FROM src.utterances WHERE call_id IN (SELECT call_id FROM calls) "
        "AND regexp_matches(text, '\\*{3,}')"
    )
    if _src_has(con, "call_metrics"):  # a database from before conduct checks has none
        con.execute(
            "INSERT INTO call_metrics BY NAME SELECT * FROM src.call_metrics "
            "WHERE call_id IN (SELECT call_id FROM calls)"
        )
    if _src_has(con, "review_log"):
        con.execute(
            "INSERT INTO review_log BY NAME SELECT * FROM src.review_log "
            "WHERE finding_id IN (SELECT finding_id FROM findings)"
        )
    else:  # a database from before the log: its current verdicts are the history
        con.execute(
            "INSERT INTO review_log SELECT finding_id, verdict, note, "
            "coalesce(reviewer, 'unknown'), coalesce(reviewed_at, now()) FROM reviews"
        )


# The report's riskiest calls, in its order (call_risk counts what was said once).
_TOP_CALLS = (
    "SELECT r.*, call_day(c.started_at, c.timezone, c.audited_at) AS day "
    "FROM call_risk r JOIN calls c USING (call_id) WHERE r.findings > 0 "
    "ORDER BY r.risk_score DESC, r.findings DESC, r.call_id LIMIT ?"
)


def _copy_transcripts(con: duckdb.DuckDBPyConnection, top: int) -> None:
    """The utterances of the ``top`` riskiest calls, for the per-call drill-down: the
    stored text only (PII masked); Whisper's raw text may hold the numbers and stays
    behind."""
    flag = "asr_flag" if _src_has_column(con, "utterances", "asr_flag") else "NULL"
    con.execute(
        "INSERT INTO utterances (call_id, idx, speaker, start_s, end_s, text, raw_text, asr_flag) "
        f"SELECT call_id, idx, speaker, start_s, end_s, text, '', {flag} FROM src.utterances "
        f"WHERE call_id IN (SELECT call_id FROM ({_TOP_CALLS}))",
        [top],
    )


def _src_has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'src' AND table_name = ?",
            [table],
        ).fetchone()[0]
    )


def _src_has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE database_name = 'src' "
            "AND table_name = ? AND column_name = ?",
            [table, column],
        ).fetchone()[0]
    )


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# ---------------------------------------------------------------- exports


def export(
    db: str | Path,
    out_dir: str | Path,
    fmt: str,
    period: Period = Period(),
    encryption_key: str | None = None,
) -> list[Path]:
    """Write the tables and views of the period as CSV or Parquet files, one per name.

    The files are not encrypted, whatever the database is: they are for sharing.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown export format {fmt!r} (csv or parquet)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = open_snapshot(db, period, encryption_key)
    written = []
    try:
        for name in (*EXPORT_TABLES, *EXPORT_VIEWS):
            path = out / f"{name}.{fmt}"
            options = "FORMAT csv, HEADER" if fmt == "csv" else "FORMAT parquet"
            select = _csv_safe_select(con, name) if fmt == "csv" else f"SELECT * FROM {name}"
            con.execute(f"COPY ({select}) TO '{_sql_str(path)}' ({options})")
            written.append(path)
    finally:
        con.close()
    return written


# A cell starting with one of these is run as a formula by Excel and LibreOffice.
_FORMULA_START = r"^[=+\-@\t\r]"


def _csv_safe_select(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """SELECT of ``name`` whose text cells cannot run as spreadsheet formulas.

    A call id, agent id or transcript starting with = + - @ (or a tab / carriage return)
    would be a formula (CSV injection, OWASP): such a cell gets a leading apostrophe,
    which spreadsheets show as text.
    """
    columns = con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
    parts = []
    for column, kind, *_ in columns:
        quoted = '"' + column.replace('"', '""') + '"'
        if kind == "VARCHAR":
            parts.append(
                f"CASE WHEN regexp_matches({quoted}, '{_FORMULA_START}') "
                f"THEN chr(39) || {quoted} ELSE {quoted} END AS {quoted}"
            )
        else:
            parts.append(quoted)
    return f"SELECT {', '.join(parts)} FROM {name}"


# ---------------------------------------------------------------- Prefect artifacts


def top_findings(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict]:
    """The most severe findings in the riskiest calls, without transcript text.

    Meant for places outside the database (Prefect artifacts): rule, category,
    severity, call and times only, no words of the debtor or agent.
    """
    weight = _severity_case("v.severity")
    return rows(
        con,
        f"SELECT v.rule_id, v.category, v.severity, v.call_id, v.agent_id, "
        f"CAST(v.started_at AS VARCHAR) AS started_at, round(v.start_s, 1) AS start_s, "
        f"round(v.end_s, 1) AS end_s FROM violations v JOIN call_risk USING (call_id) "
        f"WHERE v.review_verdict IS DISTINCT FROM 'false_positive' "
        f"ORDER BY {weight} DESC, risk_score DESC, v.call_id, v.start_s NULLS FIRST LIMIT ?",
        [limit],
    )


def summary_markdown(summary: dict) -> str:
    """The run's summary as Markdown (counts and rule ids; no transcript text)."""
    lines = [
        "# callaudit run",
        "",
        f"- recordings found: {summary['discovered']}, audited now: {summary['audited']}, "
        f"skipped: {summary['skipped']}, failed: {summary['failed']}",
        f"- audio: {summary['audio_minutes']:.1f} min",
        f"- calls in database: {summary['db_calls']}, findings: {summary['db_findings']}",
    ]
    manifest = summary.get("manifest")
    if manifest:
        lines.append(
            f"- manifest: {manifest['accepted']} of {manifest['rows']} rows accepted "
            f"({manifest['encoding']}), {len(manifest['errors'])} rejected"
        )
    contact = summary.get("contact")
    if contact:
        hits = ", ".join(f"{k} {v}" for k, v in contact["findings"].items())
        lines.append(f"- contact policy {contact['policy']} {contact['version']}: {hits}")
    lines += ["", "| category | findings |", "| --- | ---: |"]
    lines += [f"| {c} | {n} |" for c, n in summary["findings_by_category"].items()]
    if summary.get("failures"):
        lines += ["", "Failed recordings:"]
        lines += [f"- {call_id}: {error}" for call_id, error in summary["failures"]]
    return "\n".join(lines)


def _severity_case(column: str) -> str:
    whens = " ".join(f"WHEN '{s}' THEN {w}" for s, w in SEVERITY_WEIGHT.items())
    return f"CASE {column} {whens} ELSE 0 END"


# ---------------------------------------------------------------- HTML


def render_report(
    db: str | Path,
    out: str | Path,
    period: Period = Period(),
    top: int = 10,
    encryption_key: str | None = None,
    clip_budget_bytes: int | None = CLIP_BUDGET_BYTES,
) -> Path:
    """Write the HTML report of ``db`` for ``period`` to ``out``; with a clip budget
    (bytes, None: no clips), each finding of the top calls gets its audio clip."""
    con = open_snapshot(db, period, encryption_key, transcripts_of_top=top)
    try:
        clips = None if clip_budget_bytes is None else Clips(con, clip_budget_bytes)
        page = build_html(con, Path(db).name, period, top, clips)
    finally:
        con.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def build_html(
    con: duckdb.DuckDBPyConnection,
    db_name: str,
    period: Period,
    top: int,
    clips: Clips | None = None,
) -> str:
    risk_calls = _risk_calls(con, top, clips)
    if clips is not None and clips.left_out:
        risk_calls = (
            f'<p class="meta">{esc(clips.left_out)} audio clip(s) left out: '
            f"{esc('; '.join(sorted(set(clips.reasons))))}</p>" + risk_calls
        )
    sections = [
        _totals_section(con),
        _section("Findings per day, by category", _category_day_chart(con)),
        _section("Findings per agent, by severity", _agent_chart(con)),
        _section("Agent scorecard", _scorecard_table(con)),
        _section("How calls were conducted, per agent and day", _conduct_table(con)),
        _section(f"Highest-risk calls (top {top})", risk_calls),
        _section("Rules: hits and reviewed precision", _rule_table(con)),
    ]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _PAGE.format(
        title=esc(f"callaudit compliance report — {period.label()}"),
        css=_CSS.replace("FONTS", FONT_STACK),
        meta=esc(f"database {db_name} · period: {period.label()} · generated {generated}"),
        body="\n".join(sections),
        csp=esc(_csp()),
        script=_SCRIPT,
    )


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _section(title: str, content: str) -> str:
    return f"<section><h2>{esc(title)}</h2>\n{content}\n</section>"


def _totals_section(con: duckdb.DuckDBPyConnection) -> str:
    t = rows(
        con,
        "SELECT count(*) AS calls, count(*) FILTER (WHERE status = 'ok') AS recorded, "
        "count(*) FILTER (WHERE status = 'failed') AS failed, "
        "round(coalesce(sum(duration_s), 0) / 60, 1) AS minutes, "
        "(SELECT count(*) FROM findings) AS findings, "
        "(SELECT count(*) FROM findings WHERE severity = 'critical') AS critical, "
        "(SELECT count(*) FROM reviews) AS reviewed FROM calls",
    )[0]
    cards = [
        ("calls", t["calls"]),
        ("recorded & audited", t["recorded"]),
        ("failed audits", t["failed"]),
        ("call minutes", t["minutes"]),
        ("findings", t["findings"]),
        ("critical", t["critical"]),
        ("reviewed", t["reviewed"]),
    ]
    items = "".join(
        f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in cards
    )
    return f'<section class="cards">{items}</section>'


def _table(
    headers: list[str],
    body: list[list[Any]],
    numeric: set[int] = frozenset(),
    row_attrs: list[str] | None = None,
) -> str:
    """A table of escaped cells; ``row_attrs``: markup already escaped, one per row."""
    if not body:
        return '<p class="empty">nothing in this period</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    trs = []
    for n, r in enumerate(body):
        cells = "".join(
            f'<td class="num">{esc(v)}</td>'
            if i in numeric
            else f"<td>{v if isinstance(v, Html) else esc(v)}</td>"
            for i, v in enumerate(r)
        )
        attrs = f" {row_attrs[n]}" if row_attrs else ""
        trs.append(f"<tr{attrs}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"


def _scorecard_table(con: duckdb.DuckDBPyConnection) -> str:
    data = rows(con, "SELECT * FROM agent_scorecard ORDER BY risk_points DESC, agent_id")
    body = [
        [
            d["agent_id"] or "(no call record)",
            d["calls"],
            d["recorded_calls"],
            d["minutes"],
            d["findings"],
            d["findings_per_100_calls"],
            d["risk_points"],
            d["worst_category"] or "—",
            _maybe(d["avg_talk_ratio"], "{:.0%}"),
            _maybe(d["avg_overtalk_s"], "{:.1f}"),
            _maybe(d["avg_interruptions"], "{:.1f}"),
            _maybe(d["avg_pace_cps"], "{:.1f}"),
        ]
        for d in data
    ]
    headers = ["agent", "calls", "recorded", "minutes", "findings", "per 100 calls",
               "risk points", "worst category", "agent talk share", "overtalk s/call",
               "interruptions/call", "pace (chars/s)"]  # fmt: skip
    return _table(headers, body, numeric={1, 2, 3, 4, 5, 6, 8, 9, 10, 11})


def _maybe(value: Any, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def _conduct_table(con: duckdb.DuckDBPyConnection, limit: int = 60) -> str:
    """Conduct per agent and day, newest first (the conduct_by_agent_day view)."""
    data = rows(
        con, "SELECT * FROM conduct_by_agent_day ORDER BY day DESC, agent_id LIMIT ?", [limit]
    )
    if not data:
        return '<p class="empty">no call measured in this period</p>'
    body = [
        [d["day"], d["agent_id"] or "(no call record)", d["calls_measured"], d["stereo_calls"],
         _maybe(d["avg_talk_ratio"], "{:.0%}"), _maybe(d["avg_overtalk_s"], "{:.1f}"),
         d["interruptions"], _maybe(d["longest_silence_s"], "{:.1f}"),
         _maybe(d["avg_loudness_range_db"], "{:.1f}"), _maybe(d["max_above_median_db"], "{:+.1f}"),
         _maybe(d["avg_pace_cps"], "{:.1f}"), d["conduct_findings"]]
        for d in data
    ]  # fmt: skip
    headers = ["day", "agent", "calls", "stereo", "agent talk share", "overtalk s/call",
               "interruptions", "longest silence s", "loudness range dB",
               "loudest s over median dB", "pace (chars/s)", "conduct findings"]  # fmt: skip
    return _table(headers, body, numeric=set(range(2, 12)))


def _rule_table(con: duckdb.DuckDBPyConnection) -> str:
    data = rows(con, "SELECT * FROM rule_stats ORDER BY findings DESC, rule_id")
    body = [
        [d["rule_id"], d["category"], d["severity"], d["findings"], d["calls"], d["reviewed"],
         d["confirmed"], d["false_positives"],
         "—" if d["reviewed_precision"] is None else f"{d['reviewed_precision']:.0%}"]
        for d in data
    ]  # fmt: skip
    headers = ["rule", "category", "severity", "findings", "calls", "reviewed", "confirmed",
               "false positive", "reviewed precision"]  # fmt: skip
    return _table(headers, body, numeric={3, 4, 5, 6, 7, 8})


# The drill-down shows at most this many utterances of one call (an hours-long recording
# would otherwise swell the page); the page says when it cut one short.
MAX_UTTERANCES = 3000


def _risk_calls(con: duckdb.DuckDBPyConnection, top: int, clips: Clips | None = None) -> str:
    calls = rows(con, _TOP_CALLS, [top])
    if not calls:
        return '<p class="empty">no findings in this period</p>'
    blocks = [_risk_call(con, c, clips) for c in calls]
    with_findings = con.execute("SELECT count(*) FROM call_risk WHERE findings > 0").fetchone()[0]
    left_out = ""
    if with_findings > len(calls):
        left_out = (
            f'<p class="meta">{with_findings - len(calls)} more call(s) with findings in this '
            f"period are not shown: the report drills into the top {top} (--top N).</p>"
        )
    return _filters(con, [c["call_id"] for c in calls]) + left_out + "\n".join(blocks)


def _filters(con: duckdb.DuckDBPyConnection, call_ids: list[str]) -> str:
    """The filter bar over the calls below (the page's one inline script reads it)."""
    present = rows(
        con,
        "SELECT DISTINCT f.category, f.severity, c.agent_id, "
        "call_day(c.started_at, c.timezone, c.audited_at) AS day "
        "FROM findings f JOIN calls c USING (call_id) WHERE list_contains(?, call_id)",
        [call_ids],
    )
    categories = {p["category"] for p in present}
    ordered = [c for c in CATEGORIES if c in categories] + sorted(categories - set(CATEGORIES))
    severities = {p["severity"] for p in present}
    sev_order = [s for s in SEVERITIES if s in severities] + sorted(severities - set(SEVERITIES))
    agents = sorted({_agent_key(p["agent_id"]) for p in present})
    days = sorted(str(p["day"]) for p in present if p["day"] is not None)

    def select(name: str, values: list[str]) -> str:
        options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        return (
            f'<label>{name} <select name="{name}"><option value="">all</option>'
            f"{options}</select></label>"
        )

    bounds = f' min="{days[0]}" max="{days[-1]}"' if days else ""
    return (
        '<form id="filters" class="filters" autocomplete="off">'
        + select("category", ordered)
        + select("severity", sev_order)
        + select("agent", agents)
        + f'<label>from <input type="date" name="from"{bounds}></label>'
        + f'<label>to <input type="date" name="to"{bounds}></label>'
        + '<button type="reset">show all</button> <output id="shown"></output></form>'
        + '<p class="meta">Filters work in the page (no server); the address keeps them '
        "(<code>#category=threat&amp;agent=A07</code>). They apply to the calls below, "
        "not to the charts and tables above. Open a call's transcript for the findings in "
        "place.</p>"
    )


def _agent_key(agent_id: str | None) -> str:
    return agent_id or "(no call record)"


def _bars(values: Any) -> str:
    """``|a|b|``: a list in one data attribute, matched whole by the page's script."""
    return "|" + "|".join(sorted({str(v) for v in values})) + "|"


def _risk_call(con: duckdb.DuckDBPyConnection, call: dict, clips: Clips | None = None) -> str:
    call_id = call["call_id"]
    record = rows(con, "SELECT * FROM calls WHERE call_id = ?", [call_id])[0]
    evidence = rows(
        con,
        "SELECT v.*, f.utterance_idx, f.char_start, f.char_end FROM violations v "
        "JOIN findings f USING (finding_id) WHERE v.call_id = ? "
        "ORDER BY v.start_s NULLS FIRST, v.rule_id",
        [call_id],
    )
    when = con.execute(
        "SELECT coalesce(strftime(local_time(started_at, timezone), '%Y-%m-%d %H:%M ') "
        "|| coalesce(timezone, 'UTC'), 'time unknown') FROM calls WHERE call_id = ?",
        [call_id],
    ).fetchone()[0]
    metrics = rows(con, "SELECT * FROM call_metrics WHERE call_id = ?", [call_id])
    unmeasured = metrics[0]["not_run"] if metrics else None
    head = (
        f'<h3>{esc(call_id)} <span class="score">risk {esc(call["risk_score"])}</span></h3>'
        f'<p class="meta">agent {esc(call["agent_id"] or "—")} · debtor '
        f"{esc(call['debtor_id'] or '—')} · {esc(when)} · {esc(call['status'])}</p>"
    )
    if unmeasured:
        head += f'<p class="meta">conduct checks not run: {esc(unmeasured)}</p>'

    body = [
        [
            e["speaker"] or "—",
            _span(e["start_s"], e["end_s"]),
            e["text"],
            e["match"] or "",
            e["rule_id"],
            e["severity"],
            e["citation"],
            _review_cell(e),
        ]
        + ([clips.cell(call_id, e)] if clips is not None else [])
        for e in evidence
    ]
    row_attrs = [
        f'data-finding="{esc(e["finding_id"])}" data-category="{esc(e["category"])}" '
        f'data-severity="{esc(e["severity"])}"'
        for e in evidence
    ]
    headers = ["speaker", "time", "evidence", "match", "rule", "severity", "citation", "review"]
    headers += ["listen"] if clips is not None else []
    transcript, n_utterances = _transcript(con, call_id, evidence)
    drill = (
        '<details class="drill"><summary>Call record, conduct and full transcript '
        f"({n_utterances} utterances)</summary>"
        f'<div class="record">{_record_table(record, when)}{_metrics_table(metrics)}</div>'
        f"{transcript}</details>"
    )
    attrs = (
        f'data-call="{esc(call_id)}" data-agent="{esc(_agent_key(call["agent_id"]))}" '
        f'data-date="{esc(call["day"] or "")}" '
        f'data-categories="{esc(_bars(e["category"] for e in evidence))}" '
        f'data-severities="{esc(_bars(e["severity"] for e in evidence))}"'
    )
    table = _table(headers, body, row_attrs=row_attrs)
    return f'<div class="call" {attrs}>{head}{table}{drill}</div>'


def _record_table(r: dict, when: str) -> str:
    """The call's record as the calls table holds it (the callee's number masked)."""
    number = r["callee_number"]
    if number:
        number = "*" * max(0, len(number) - 4) + number[-4:]
    answered = {True: "yes", False: "no"}.get(r["answered"])
    recording = None
    if r["channels"]:
        recording = f"{r['channels']} channel(s)"
        if r["sample_rate"]:
            recording += f", {r['sample_rate']} Hz"
        if r["codec"]:
            recording += f", {r['codec']}"
        if r.get("channel_roles"):
            recording += f"; channels: {r['channel_roles']}"
    audited = None
    if r["audited_at"] is not None:
        audited = r["audited_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        audited += "".join(
            f"; {k} {r[c]}" for k, c in (("model", "model"), ("rules", "rules_version")) if r[c]
        )
    fields = [
        ("call", r["call_id"]),
        ("status", r["status"] + (f": {r['error']}" if r["error"] else "")),
        ("agent", r["agent_id"]),
        ("debtor", r["debtor_id"]),
        ("callee number", number),
        ("callee relation (call record)", r["callee_relation"]),
        ("callee, as the conversation shows", r.get("callee_inferred")),
        ("start (debtor's local time)", when),
        ("direction", r["direction"]),
        ("answered", answered),
        ("duration", None if r["duration_s"] is None else f"{r['duration_s']:.1f} s"),
        ("recording", recording),
        ("audited", audited),
    ]
    trs = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v or '—')}</td></tr>" for k, v in fields)
    return f'<table class="kv"><caption>call record</caption>{trs}</table>'


def _metrics_table(metrics: list[dict]) -> str:
    if not metrics:
        return '<p class="meta">conduct: not measured for this call</p>'
    m = metrics[0]
    fields = [
        ("agent talk", _maybe(m["agent_talk_s"], "{:.1f} s")),
        ("customer talk", _maybe(m["customer_talk_s"], "{:.1f} s")),
        ("agent share of talk", _maybe(m["talk_ratio"], "{:.0%}")),
        ("overtalk", _maybe(m["overtalk_s"], "{:.1f} s")),
        ("overtalk events", _maybe(m["overtalk_events"], "{}")),
        ("interruptions", _maybe(m["interruptions"], "{}")),
        ("longest silence", _maybe(m["longest_silence_s"], "{:.1f} s")),
        ("agent median level", _maybe(m["agent_median_dbfs"], "{:.1f} dBFS")),
        ("agent loudness range", _maybe(m["agent_loudness_range_db"], "{:.1f} dB")),
        ("loudest second over median", _maybe(m["agent_max_above_median_db"], "{:+.1f} dB")),
        ("agent peak", _maybe(m["agent_peak_dbfs"], "{:.1f} dBFS")),
        ("pace, mean / fastest", f"{_maybe(m['mean_pace_cps'], '{:.1f}')} / "
         f"{_maybe(m['max_pace_cps'], '{:.1f}')} chars/s"),
    ]  # fmt: skip
    # What could not be measured (a mono call, no speech timeline) is left out; why is said.
    fields = [(k, v) for k, v in fields if v not in ("—", "— / — chars/s")]
    fields += [("checks not run", m["not_run"]), ("conduct policy", m["conduct_version"])]
    trs = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v or '—')}</td></tr>" for k, v in fields)
    return f'<table class="kv"><caption>conduct</caption>{trs}</table>'


def _transcript(
    con: duckdb.DuckDBPyConnection, call_id: str, evidence: list[dict]
) -> tuple[str, int]:
    """Both channels' utterances in time order, each finding highlighted where it was
    said; findings with a time but no utterance (conduct) stand at their time, findings
    of the whole call (contact rules) above."""
    utterances = rows(
        con,
        "SELECT idx, speaker, start_s, end_s, text, asr_flag FROM utterances "
        "WHERE call_id = ? ORDER BY start_s, idx LIMIT ?",
        [call_id, MAX_UTTERANCES + 1],
    )
    cut = len(utterances) > MAX_UTTERANCES
    utterances = utterances[:MAX_UTTERANCES]
    (total,) = con.execute(
        "SELECT count(*) FROM utterances WHERE call_id = ?", [call_id]
    ).fetchone()
    known = {u["idx"] for u in utterances}
    by_utterance: dict[int, list[dict]] = {}
    timed, whole = [], []
    for e in evidence:
        if e["utterance_idx"] in known:
            by_utterance.setdefault(e["utterance_idx"], []).append(e)
        elif e["start_s"] is not None:
            timed.append(e)
        else:
            whole.append(e)
    items: list[tuple[float, int, str]] = []
    for u in utterances:
        said = _highlight(u["text"], by_utterance.get(u["idx"], []))
        flag = (
            f' <span class="flag">(ASR: {esc(u["asr_flag"])}, not checked)</span>'
            if u["asr_flag"]
            else ""
        )
        items.append(
            (
                u["start_s"],
                0,
                f'<li class="utt spk-{esc(u["speaker"])}" data-idx="{esc(u["idx"])}">'
                f'<span class="when">{esc(_span(u["start_s"], u["end_s"]))}</span>'
                f'<span class="who">{esc(u["speaker"])}</span>'
                f'<span class="said">{said}</span>{flag}</li>',
            )
        )
    for e in timed:
        items.append(
            (
                e["start_s"],
                1,
                f'<li class="event"><span class="when">{esc(_span(e["start_s"], e["end_s"]))}'
                f'</span><span class="who">{esc(e["speaker"] or "call")}</span>'
                f'<span class="said">{_mark(e["match"] or e["text"] or e["rule_id"], [e])}'
                "</span></li>",
            )
        )
    items.sort(key=lambda item: (item[0], item[1]))
    parts = ['<p class="legend">Findings are highlighted where they were said, coloured '
             "by severity: "
             + " ".join(f'<mark class="sev-{s}">{s}</mark>' for s in SEVERITIES)
             + "; hover one for its rule, category, severity and citation. "
             "Numbers were masked when the call was stored.</p>"]  # fmt: skip
    if whole:
        parts.append(
            '<p class="whole">Findings of the whole call: '
            + " ".join(_mark(e["rule_id"], [e]) for e in whole)
            + "</p>"
        )
    if not utterances:
        parts.append('<p class="empty">no transcript stored for this call</p>')
    else:
        parts.append('<ol class="transcript">' + "".join(i[2] for i in items) + "</ol>")
    if cut:
        parts.append(
            f'<p class="meta">transcript cut at {MAX_UTTERANCES} of {total} utterances</p>'
        )
    return "".join(parts), total


def _char_span(text: str, finding: dict) -> tuple[int, int]:
    """Where the finding's words are in the utterance: its stored characters, else its
    match found in the text, else the whole utterance."""
    a, b = finding.get("char_start"), finding.get("char_end")
    if isinstance(a, int) and isinstance(b, int) and 0 <= a < b <= len(text):
        return a, b
    match = finding.get("match")
    if match and match in text:
        a = text.index(match)
        return a, a + len(match)
    return 0, len(text)


def _highlight(text: str, findings: list[dict]) -> str:
    """The utterance, escaped, with each finding's span in a <mark>; where spans overlap
    the shared piece is marked once with every finding it belongs to."""
    if not findings:
        return esc(text)
    spans = [(*_char_span(text, f), f) for f in findings]
    cuts = sorted({0, len(text), *(a for a, _, _ in spans), *(b for _, b, _ in spans)})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        cover = [f for s, e, f in spans if s <= a and b <= e]
        out.append(_mark(text[a:b], cover) if cover else esc(text[a:b]))
    return "".join(out)


def _mark(piece: str, findings: list[dict]) -> str:
    worst = max(findings, key=lambda f: SEVERITY_WEIGHT.get(f["severity"], 0))["severity"]
    title = "\n".join(
        f"{f['rule_id']} · {f['category']} · {f['severity']} · {f['citation']}" for f in findings
    )
    ids = " ".join(f["finding_id"] for f in findings)
    return (
        f'<mark class="sev-{esc(worst)}" data-findings="{esc(ids)}" '
        f'data-categories="{esc(_bars(f["category"] for f in findings))}" '
        f'data-severities="{esc(_bars(f["severity"] for f in findings))}" '
        f'title="{esc(title)}">{esc(piece)}</mark>'
    )


class Html(str):
    """A table cell that is markup already (an audio element), not text to escape."""


class Clips:
    """The report's audio clips, within a size budget: one per finding span of the top
    calls, the speaker's channel with PII bleeped (audit.clips)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, budget_bytes: int):
        self.con = con
        self.budget = budget_bytes
        self.used = 0
        self.left_out = 0
        self.reasons: list[str] = []
        self._recordings: dict[str, Any] = {}
        self._done: set[tuple] = set()

    def cell(self, call_id: str, e: dict) -> Html | str:
        if e["start_s"] is None:
            return ""  # a call-level finding (contact rule, missing disclosure): no span
        key = (call_id, e["speaker"], e["start_s"], e["end_s"])
        if key in self._done:
            return "↑"  # the same span's clip is on a row above
        self._done.add(key)
        recording = self._recording(call_id)
        if isinstance(recording, str):
            return self._leave_out(recording)
        spans = self.con.execute(
            # Every speaker's: a mono clip, a mixed one or a mislabelled channel may
            # carry the other party's voice.
            "SELECT start_s, end_s FROM pii_spans WHERE call_id = $c "
            "UNION SELECT start_s, end_s FROM findings "
            "WHERE call_id = $c AND category = 'pii_exposure' AND start_s IS NOT NULL",
            {"c": call_id},
        ).fetchall()
        try:
            clip = audio_clips.evidence_clip(
                recording, e["speaker"], e["start_s"], e["end_s"], bleep=spans
            )
        except AudioError as exc:
            return self._leave_out(str(exc))
        uri = audio_clips.data_uri(clip)
        if self.used + len(uri) > self.budget:
            return self._leave_out(f"over the {self.budget / 1e6:g} MB budget for clips")
        self.used += len(uri)
        return Html(f'<audio controls preload="none" src="{uri}"></audio>')

    def _recording(self, call_id: str) -> Any:
        if call_id not in self._recordings:
            self._recordings.clear()  # calls come one after another: keep one decoded
            row = self.con.execute(
                "SELECT source_path, channel_roles FROM calls WHERE call_id = ?", [call_id]
            ).fetchone()
            try:
                self._recordings[call_id] = audio_clips.open_recording(row[0], row[1])
            except (AudioError, TypeError):
                self._recordings[call_id] = "recording not found or unreadable"
        return self._recordings[call_id]

    def _leave_out(self, reason: str) -> str:
        self.left_out += 1
        self.reasons.append(reason)
        return "—"


def _review_cell(e: dict) -> str:
    """The current verdict, who gave it and why (escaped by the table)."""
    if not e.get("review_verdict"):
        return ""
    who = f" by {e['reviewer']}" if e.get("reviewer") else ""
    why = f": {e['review_note']}" if e.get("review_note") else ""
    return f"{e['review_verdict']}{who}{why}"


def _span(start: float | None, end: float | None) -> str:
    if start is None:
        return "whole call"
    return f"{start:.1f}–{end:.1f} s" if end is not None else f"{start:.1f} s"


# ---------------------------------------------------------------- SVG charts


def _category_day_chart(con: duckdb.DuckDBPyConnection) -> str:
    data = rows(
        con,
        "SELECT day, category, sum(findings) AS n FROM findings_by_category_day "
        "GROUP BY ALL ORDER BY day",
    )
    days = sorted({d["day"] for d in data})
    stacks = {day: {} for day in days}
    for d in data:
        stacks[d["day"]][d["category"]] = int(d["n"])
    keys = [c for c in CATEGORIES if any(c in s for s in stacks.values())]
    series = [(day.strftime("%m-%d"), stacks[day]) for day in days]
    return column_chart(series, keys, CATEGORY_COLORS)


def _agent_chart(con: duckdb.DuckDBPyConnection) -> str:
    data = rows(
        con,
        "SELECT coalesce(agent_id, '(no call record)') AS agent, sum(critical) AS critical, "
        "sum(high) AS high, sum(medium) AS medium, sum(low) AS low "
        "FROM findings_by_agent_day GROUP BY ALL ORDER BY sum(findings) DESC, agent",
    )
    keys = [s for s in reversed(SEVERITIES)]
    series = [(d["agent"], {k: int(d[k]) for k in keys}) for d in data]
    return bar_chart(series, keys, SEVERITY_COLORS)


def _legend(keys: list[str], colors: dict[str, str], x: int, y: int) -> str:
    parts = []
    for i, k in enumerate(keys):
        lx = x + (i % 4) * 190
        ly = y + (i // 4) * 18
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colors[k]}"/>'
            f'<text x="{lx + 17}" y="{ly + 10}">{esc(k)}</text>'
        )
    return "".join(parts)


def _nice_max(value: int) -> int:
    """The axis top: the first of 5, 10, 20, 50, 100, 200... that holds ``value``."""
    top = 5
    while top < value:
        top = top * 2 if str(top)[0] in "15" else top * 5 // 2
    return top


def column_chart(series: list[tuple[str, dict[str, int]]], keys: list[str],
                 colors: dict[str, str]) -> str:  # fmt: skip
    """Vertical stacked bars, one per label (days), stacked by ``keys``."""
    if not series:
        return '<p class="empty">no findings in this period</p>'
    width, left, top, plot_h = 960, 40, 22, 200
    top_value = _nice_max(max(sum(s.values()) for _, s in series))
    slot = (width - left - 10) / len(series)
    bar_w = min(60.0, slot * 0.7)
    parts = _grid(left, top, width - 10, plot_h, top_value)
    for i, (label, stack) in enumerate(series):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for k in keys:
            h = plot_h * stack.get(k, 0) / top_value
            if h:
                y -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                    f'fill="{colors[k]}"><title>{esc(label)} {esc(k)}: {stack[k]}</title></rect>'
                )
        total = sum(stack.values())
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">{total}</text>'
            f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" '
            f'text-anchor="middle">{esc(label)}</text>'
        )
    legend_y = top + plot_h + 34
    parts.append(_legend(keys, colors, left, legend_y))
    height = legend_y + 18 * ((len(keys) + 3) // 4) + 6
    return _svg(width, height, parts, "findings per day by category")


def bar_chart(series: list[tuple[str, dict[str, int]]], keys: list[str],
              colors: dict[str, str]) -> str:  # fmt: skip
    """Horizontal stacked bars, one per label (agents), stacked by ``keys``."""
    if not series:
        return '<p class="empty">no findings in this period</p>'
    width, left, row_h = 960, 150, 26
    plot_w = width - left - 50
    top_value = max(max(sum(s.values()) for _, s in series), 1)
    parts = []
    for i, (label, stack) in enumerate(series):
        y = 8 + i * row_h
        x = float(left)
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{esc(label)}</text>')
        for k in keys:
            w = plot_w * stack.get(k, 0) / top_value
            if w:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 8}" '
                    f'fill="{colors[k]}"><title>{esc(label)} {esc(k)}: {stack[k]}</title></rect>'
                )
                x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 14}">{sum(stack.values())}</text>')
    legend_y = 14 + len(series) * row_h
    parts.append(_legend(keys, colors, left, legend_y))
    return _svg(width, legend_y + 24, parts, "findings per agent by severity")


def _grid(left: int, top: int, right: int, plot_h: int, top_value: int) -> list[str]:
    parts = []
    for i in range(6):
        value = top_value * i / 5
        y = top + plot_h - plot_h * i / 5
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>'
        )
    return parts


def _svg(width: int, height: int, parts: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{esc(label)}">'
        + "".join(parts)
        + "</svg>"
    )


# The page's one script: the calls section's filters (category, severity, agent, dates),
# kept in the address (#category=threat&agent=A07).  It reads the data-* attributes of the
# calls, their findings' rows and their transcript highlights; it carries no data itself,
# so no report text is ever inside a <script>.  The page's Content-Security-Policy lets
# only this exact script run (its hash) and fetch nothing.
_SCRIPT = """
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form) return;
  var names = ["category", "severity", "agent", "from", "to"];
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };
  var has = function (bars, v) { return !v || (bars || "").indexOf("|" + v + "|") >= 0; };
  function apply() {
    var f = {};
    names.forEach(function (n) { f[n] = form.elements[n].value; });
    var calls = document.querySelectorAll("div.call[data-call]"), shown = 0;
    each(calls, function (call) {
      var d = call.dataset;
      var fits = (!f.agent || d.agent === f.agent) &&
        (!f.from || d.date >= f.from) && (!f.to || d.date <= f.to);
      var any = false;
      each(call.querySelectorAll("tr[data-finding]"), function (tr) {
        var ok = fits && (!f.category || tr.dataset.category === f.category) &&
          (!f.severity || tr.dataset.severity === f.severity);
        tr.hidden = !ok;
        any = any || ok;
      });
      each(call.querySelectorAll("mark[data-findings]"), function (m) {
        var on = has(m.dataset.categories, f.category) && has(m.dataset.severities, f.severity);
        m.classList.toggle("off", !on);
      });
      call.hidden = !any;
      if (any) shown += 1;
    });
    document.getElementById("shown").textContent =
      shown + " of " + calls.length + " calls shown";
    var hash = names.filter(function (n) { return f[n]; })
      .map(function (n) { return n + "=" + encodeURIComponent(f[n]); }).join("&");
    try {
      history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
    } catch (e) { /* a browser that refuses it: the filters still apply */ }
  }
  location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
    var i = kv.indexOf("=");
    if (i < 1 || names.indexOf(kv.slice(0, i)) < 0) return;
    try { form.elements[kv.slice(0, i)].value = decodeURIComponent(kv.slice(i + 1)); }
    catch (e) { /* a malformed address: that filter stays off */ }
  });
  form.addEventListener("change", apply);
  form.addEventListener("input", apply);
  form.addEventListener("reset", function () { setTimeout(apply, 0); });
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  apply();
})();
"""


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; media-src data:; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


_PAGE = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">{meta}</p>
{body}
<script>{script}</script>
</body>
</html>
"""

_CSS = """
body { font-family: FONTS; margin: 24px 32px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 28px; }
h3 { font-size: 15px; margin: 16px 0 2px; }
.meta { color: #666; font-size: 12px; margin: 2px 0 8px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 90px; }
.card b { display: block; font-size: 20px; }
.card span { color: #666; font-size: 12px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border: 1px solid #e2e2e2; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.score { background: #c0392b; color: #fff; border-radius: 4px; padding: 1px 6px; font-size: 12px; }
.call td:nth-child(2), .call td:nth-child(4), .call td:nth-child(5) { white-space: nowrap; }
.empty { color: #888; font-style: italic; }
svg text { font-family: FONTS; font-size: 12px; fill: #333; }
svg .grid { stroke: #eee; }
[hidden] { display: none !important; }
.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; font-size: 13px;
  background: #f7f7f7; border: 1px solid #e2e2e2; border-radius: 6px; padding: 6px 10px; }
.filters output { color: #666; }
details.drill { margin: 6px 0 14px; }
details.drill > summary { cursor: pointer; color: #2c5f8a; font-size: 13px; }
.record { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px;
  align-items: start; margin: 6px 0; }
table.kv { width: 100%; }
.call table.kv td { overflow-wrap: anywhere; white-space: normal; }
table.kv caption { text-align: left; font-weight: bold; font-size: 13px; padding: 2px 0; }
table.kv th { font-weight: normal; color: #555; white-space: nowrap; }
ol.transcript { list-style: none; padding: 0; margin: 6px 0; font-size: 14px; }
ol.transcript li { display: flex; gap: 8px; padding: 3px 6px; border-bottom: 1px solid #f0f0f0; }
ol.transcript .when { color: #888; font-size: 12px; min-width: 92px; white-space: nowrap;
  font-variant-numeric: tabular-nums; }
ol.transcript .who { font-size: 12px; min-width: 64px; font-weight: bold; }
li.spk-agent .who { color: #2c5f8a; }
li.spk-customer { background: #fafaf5; }
li.spk-customer .who { color: #7a5c00; }
li.event { background: #f4f0fa; }
.flag { color: #999; font-size: 12px; }
mark { border-radius: 3px; padding: 0 1px; cursor: help; }
mark.sev-critical { background: #f4a6a6; outline: 1px solid #7f0000; }
mark.sev-high { background: #f9c0b0; }
mark.sev-medium { background: #fde0c5; }
mark.sev-low { background: #fff1c9; }
mark.off { background: none; outline: none; }
.legend, .whole { font-size: 12px; color: #555; margin: 6px 0; }
"""


# ---------------------------------------------------------------- screenshots


def find_chromium() -> str | None:
    """Debian's ``chromium`` (or a Chrome on PATH), for rendering the report headless."""
    return next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )


def chromium_screenshot(
    page: str | Path, png: str | Path, width: int = 1280, height: int = 2000, timeout: int = 120
) -> Path:
    """Render ``page`` in headless Chromium and save a PNG screenshot.

    The flags keep Chromium offline and stateless (no sync, updates or first-run
    screens), which is also what proves the report needs no network.
    """
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (Debian: apt-get install chromium)")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="callaudit-chromium-") as profile:
        cmd = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--screenshot={png}", f"--window-size={width},{height}",
            Path(page).resolve().as_uri(),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.is_file():
        raise RuntimeError(
            f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-800:]}"
        )
    return png
