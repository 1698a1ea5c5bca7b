"""The review console: a local web page where a reviewer hears a finding and decides.

``callaudit console --db FILE`` serves one page (Starlette, rendered on the server, no
script) on the loopback interface: the unreviewed findings, riskiest calls first, each
with its audio clip (``report.Clips``: the speaker's channel, PII bleeped), the
utterances around it, rule, severity and citation, and buttons *confirm* / *false
positive* with a note.  A verdict is recorded by ``audit.review.record_review``, exactly
as ``callaudit review`` records it, and the page shows each rule's reviewed precision
(the ``rule_stats`` view) and how many findings are reviewed.

Access: a random token, printed on start in the URL to open; the first request with it
gets an HttpOnly, SameSite=Strict session cookie and is redirected to ``/`` (the token
leaves the address bar).  Every request needs the cookie (or the token); a verdict (a
POST) also needs the session's form token (CSRF).  Finding ids travel in POST bodies;
URLs carry no transcript text, numbers or ids, and nothing is logged but errors' kinds.

The nightly audit writes the same DuckDB file, and DuckDB allows one process to open a
file for writing (a reader is locked out too).  So the console opens the file per
request and closes it at once (the page is built from an in-memory snapshot, as the
report is), retries for a couple of seconds while another process holds it, and then
says on the page that the database is busy and the verdict was *not* saved.  A verdict
is one transaction: saved whole or not at all.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import duckdb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from audit import report, store
from audit.categories import SEVERITY_WEIGHT
from audit.report import esc
from audit.review import VERDICTS, ReviewError, record_review, rule_precision

log = logging.getLogger("audit.console")

COOKIE = "callaudit_console"
RETRY_S = 2.0  # how long a request waits for another process (the audit) to let go
PAGE_SIZE = 20  # findings shown at once
CONTEXT_TURNS = 2  # utterances shown before and after the finding's
MAX_BODY = 16_384  # bytes of a verdict form
MAX_NOTE = 2_000
MAX_SESSIONS = 64
T = TypeVar("T")


class Busy(Exception):
    """Another process (the nightly audit) holds the database file."""


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass
class ConsoleConfig:
    db: Path
    reviewer: str
    encryption_key: str | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    retry_s: float = RETRY_S
    page_size: int = PAGE_SIZE
    clip_budget_bytes: int = report.CLIP_BUDGET_BYTES


# ---------------------------------------------------------------- the database


class Database:
    """The audit file, opened per operation and closed at once, one operation at a time
    in this process (DuckDB must not see one file opened twice by one process)."""

    def __init__(self, config: ConsoleConfig):
        self.config = config
        self._lock = threading.Lock()

    def _retry(self, open_: Callable[[], T]) -> T:
        """``open_()``, again with backoff while another process holds the file; Busy
        after ``retry_s``."""
        deadline = time.monotonic() + self.config.retry_s
        delay = 0.05
        while True:
            try:
                return open_()
            except (store.StoreError, duckdb.IOException) as exc:
                if not store.is_locked(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    raise Busy() from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _exists(self) -> None:
        if not self.config.db.is_file():  # never create one: the audit makes databases
            raise store.StoreError(f"no audit database at {self.config.db}")

    def page(self, render: Callable[[duckdb.DuckDBPyConnection, Any], str]) -> str:
        """``render(snapshot, context)``: the snapshot is an in-memory copy of the calls,
        findings and reviews with the views (``report.open_snapshot``); context reads
        utterances from the file (opened read-only, briefly)."""
        with self._lock:
            self._exists()
            snap = self._retry(
                lambda: report.open_snapshot(
                    self.config.db, report.Period(), self.config.encryption_key
                )
            )
            try:
                return render(snap, self._context)
            finally:
                snap.close()

    def _context(self, wanted: list[dict]) -> dict[str, list[tuple]]:
        """The utterances around each finding (by finding id), PII masked as stored."""
        con = self._retry(
            lambda: store.connect(
                self.config.db,
                read_only=True,
                encryption_key=self.config.encryption_key,
                lock_wait_s=0,
            )
        )
        try:
            return {f["finding_id"]: _utterances_around(con, f) for f in wanted}
        finally:
            con.close()

    def record(self, finding_id: str, verdict: str, note: str | None):
        """Record the verdict as ``callaudit review`` does; (Review, precision, reviewed)."""
        with self._lock:
            self._exists()
            con = self._retry(
                lambda: store.connect(
                    self.config.db, encryption_key=self.config.encryption_key, lock_wait_s=0
                )
            )
            try:
                done = record_review(con, finding_id, verdict, note, self.config.reviewer)
                return (done, *rule_precision(con, done.rule_id))
            finally:
                con.close()


def _utterances_around(con: duckdb.DuckDBPyConnection, f: dict) -> list[tuple]:
    cols = "idx, speaker, start_s, end_s, text"
    if f["utterance_idx"] is not None:
        return con.execute(
            f"SELECT {cols}, idx = $u FROM utterances WHERE call_id = $c "
            "AND idx BETWEEN $u - $n AND $u + $n ORDER BY idx",
            {"c": f["call_id"], "u": f["utterance_idx"], "n": CONTEXT_TURNS},
        ).fetchall()
    if f["start_s"] is not None:  # a conduct finding: the turns its seconds overlap
        return con.execute(
            f"SELECT {cols}, start_s < $e AND end_s > $s FROM utterances WHERE call_id = $c "
            "AND start_s < $e + 3 AND end_s > $s - 3 ORDER BY idx LIMIT 12",
            {"c": f["call_id"], "s": f["start_s"], "e": f["end_s"] or f["start_s"]},
        ).fetchall()
    return []  # a call-level finding (contact rules): no span


# ---------------------------------------------------------------- the page


def _severity_case(column: str) -> str:
    whens = " ".join(f"WHEN '{s}' THEN {w}" for s, w in SEVERITY_WEIGHT.items())
    return f"CASE {column} {whens} ELSE 0 END"


def queue(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict]:
    """Unreviewed findings, the riskiest call's first, the most severe first in a call."""
    return report.rows(
        con,
        "SELECT v.finding_id, v.call_id, v.agent_id, v.category, v.severity, v.rule_id, "
        "v.speaker, v.start_s, v.end_s, v.text, v.match, v.citation, f.utterance_idx, "
        "coalesce(r.risk_score, 0) AS risk_score FROM violations v "
        "JOIN findings f ON f.finding_id = v.finding_id "
        "LEFT JOIN call_risk r ON r.call_id = v.call_id WHERE v.review_verdict IS NULL "
        f"ORDER BY risk_score DESC, v.call_id, {_severity_case('v.severity')} DESC, "
        "v.start_s NULLS FIRST, v.rule_id, v.finding_id LIMIT ?",
        [limit],
    )


def _counts(con: duckdb.DuckDBPyConnection) -> dict:
    return report.rows(
        con,
        "SELECT count(*) AS findings, count(review_verdict) AS reviewed, "
        "count(*) FILTER (WHERE review_verdict = 'confirmed') AS confirmed, "
        "count(*) FILTER (WHERE review_verdict = 'false_positive') AS false_positives "
        "FROM violations",
    )[0]


def _precision_table(con: duckdb.DuckDBPyConnection) -> str:
    data = report.rows(
        con,
        "SELECT rule_id, category, severity, findings, reviewed, confirmed, false_positives, "
        "reviewed_precision FROM rule_stats ORDER BY reviewed DESC, findings DESC, rule_id",
    )
    if not data:
        return '<p class="empty">no findings</p>'
    trs = "".join(
        f'<tr data-rule="{esc(d["rule_id"])}"><td>{esc(d["rule_id"])}</td>'
        f"<td>{esc(d['category'])}</td><td>{esc(d['severity'])}</td>"
        f'<td class="num">{d["findings"]}</td><td class="num">{d["reviewed"]}</td>'
        f'<td class="num">{d["confirmed"]}</td><td class="num">{d["false_positives"]}</td>'
        f'<td class="num precision">{_pct(d["reviewed_precision"])}</td></tr>'
        for d in data
    )
    return (
        "<table><thead><tr><th>rule</th><th>category</th><th>severity</th><th>findings</th>"
        "<th>reviewed</th><th>confirmed</th><th>false positive</th>"
        f"<th>reviewed precision</th></tr></thead><tbody>{trs}</tbody></table>"
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _span(start: float | None, end: float | None) -> str:
    if start is None:
        return "whole call"
    return f"{start:.1f}–{end:.1f} s" if end is not None else f"{start:.1f} s"


def _finding_card(f: dict, context: list[tuple], clip: str, csrf: str) -> str:
    if context:
        turns = "".join(
            f'<li class="{"hit" if hit else ""}"><span class="who">{esc(speaker)} '
            f"{start:.1f}–{end:.1f} s</span> {esc(text)}</li>"
            for _, speaker, start, end, text, hit in context
        )
        transcript = f'<ol class="context">{turns}</ol>'
    else:
        transcript = f'<p class="evidence">{esc(f["text"])}</p>'
    if clip == "↑":
        clip = '<span class="meta">same clip as the finding above</span>'
    elif not clip:
        clip = '<span class="meta">no clip: a finding on the whole call</span>'
    elif clip == "—":
        clip = '<span class="meta">no clip: recording not found or over the budget</span>'
    match = f'<p class="meta">matched: {esc(f["match"])}</p>' if f["match"] else ""
    where = " · ".join(
        [
            f"call {f['call_id']}",
            f"risk {f['risk_score']}",
            f"agent {f['agent_id'] or '—'}",
            f["speaker"] or "—",
            _span(f["start_s"], f["end_s"]),
        ]
    )
    fid = esc(f["finding_id"])
    return f"""<article class="finding sev-{esc(f["severity"])}" data-finding="{fid}">
<h3><span class="rule">{esc(f["rule_id"])}</span> <span class="sev">{esc(f["severity"])}</span>
 <span class="cat">{esc(f["category"])}</span></h3>
<p class="meta">{esc(where)}</p>
<p class="citation">{esc(f["citation"])}</p>
<div class="clip">{clip}</div>
{transcript}{match}
<form method="post" action="/verdict">
<input type="hidden" name="csrf" value="{esc(csrf)}">
<input type="hidden" name="finding_id" value="{fid}">
<input type="text" name="note" maxlength="{MAX_NOTE}" placeholder="note (optional)">
<button type="submit" name="verdict" value="confirmed">confirm</button>
<button type="submit" name="verdict" value="false_positive">false positive</button>
</form>
</article>"""


def render_queue(
    snap: duckdb.DuckDBPyConnection,
    context_of: Callable[[list[dict]], dict[str, list[tuple]]],
    config: ConsoleConfig,
    csrf: str,
    flash: str = "",
) -> str:
    findings = queue(snap, config.page_size)
    context = context_of(findings) if findings else {}
    counts = _counts(snap)
    clips = report.Clips(snap, config.clip_budget_bytes)
    cards = "\n".join(
        _finding_card(f, context.get(f["finding_id"], []), clips.cell(f["call_id"], f), csrf)
        for f in findings
    )
    waiting = counts["findings"] - counts["reviewed"]
    if not findings:
        cards = '<p class="empty">every finding is reviewed</p>'
    summary = (
        f'<p class="counts">reviewed <b id="reviewed">{counts["reviewed"]}</b> of '
        f"{counts['findings']} findings ({counts['confirmed']} confirmed, "
        f'{counts["false_positives"]} false positive); <b id="waiting">{waiting}</b> to '
        f"review{f', the first {len(findings)} shown' if waiting > len(findings) else ''}. "
        f"Verdicts are recorded as reviewer <b>{esc(config.reviewer)}</b>.</p>"
    )
    body = (
        f"{flash}{summary}<section><h2>Queue: riskiest calls first</h2>{cards}</section>"
        f"<section><h2>Rules: reviewed precision</h2>{_precision_table(snap)}</section>"
    )
    return _page(body, config.db.name)


def _page(body: str, db_name: str = "") -> str:
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>callaudit review console</title><style>{_CSS}</style></head>
<body><h1>callaudit review console</h1><p class="meta">{esc(db_name)}</p>
{body}
</body></html>
"""


def _message(kind: str, text: str) -> str:
    return f'<p class="msg {kind}">{esc(text)}</p>'


_CSS = (
    """
body { font-family: FONTS; margin: 20px 28px; color: #222; max-width: 1100px; }
h1 { font-size: 20px; margin-bottom: 2px; } h2 { font-size: 16px; margin-top: 24px; }
h3 { font-size: 14px; margin: 0 0 4px; }
.meta { color: #666; font-size: 12px; margin: 2px 0; }
.finding { border: 1px solid #ddd; border-left: 5px solid #fc8d59; border-radius: 4px;
  padding: 8px 12px; margin: 10px 0; }
.sev-critical { border-left-color: #7f0000; } .sev-high { border-left-color: #d7301f; }
.sev-low { border-left-color: #fdd49e; }
.sev { background: #eee; border-radius: 3px; padding: 0 5px; font-weight: normal; }
.cat { color: #555; font-weight: normal; }
.citation { font-size: 12px; color: #444; margin: 2px 0 6px; }
.context { font-size: 14px; padding-left: 18px; margin: 6px 0; }
.context li.hit { background: #fff3cd; }
.who { color: #777; font-size: 12px; }
form { margin-top: 6px; } input[type=text] { width: 50%; }
.msg { padding: 6px 10px; border-radius: 4px; } .ok { background: #e6f4ea; }
.busy, .bad { background: #fdecea; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #e2e2e2; padding: 3px 6px; text-align: left; }
td.num { text-align: right; }
.empty { color: #888; font-style: italic; }
"""
).replace("FONTS", report.FONT_STACK)

# No script, nothing fetched: styles inline, clips as data URIs, forms post to this page.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "media-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


# ---------------------------------------------------------------- the app


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    flash: str = ""


def create_app(config: ConsoleConfig) -> Starlette:
    db = Database(config)
    sessions: OrderedDict[str, Session] = OrderedDict()

    def session_of(request: Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        return sessions.get(sid) if sid else None

    def token_ok(request: Request) -> bool | None:
        given = request.query_params.get("token")
        if given is None:
            return None
        return hmac.compare_digest(given.encode(), config.token.encode())

    def html(body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(body, status_code=status, headers=_HEADERS)

    def refused(status: int) -> HTMLResponse:
        text = (
            "open the address callaudit console printed (with its token)"
            if status == 401
            else "wrong access token: open the address callaudit console printed"
        )
        return html(_page(_message("bad", text)), status)

    def new_session() -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        sessions[sid] = session = Session()
        while len(sessions) > MAX_SESSIONS:
            sessions.popitem(last=False)
        return sid, session

    def index(request: Request) -> Response:
        session = session_of(request)
        ok = token_ok(request)
        if ok is False:
            return refused(403)
        if ok:  # the printed address: a session cookie, and the token leaves the URL
            sid, _ = new_session()
            response = RedirectResponse("/", status_code=303, headers=_HEADERS)
            response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
            return response
        if session is None:
            return refused(401)
        flash, session.flash = session.flash, ""
        try:
            page = db.page(lambda snap, ctx: render_queue(snap, ctx, config, session.csrf, flash))
        except Busy:
            return html(_page(flash + _busy_text("The queue can't be shown now.")), 503)
        except store.StoreError as exc:
            return html(_page(flash + _message("bad", str(exc))), 500)
        return html(page)

    async def verdict(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return refused(401)
        body = await request.body()
        if len(body) > MAX_BODY:
            return html(_page(_message("bad", "form too large; nothing saved")), 413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
            return html(_page(_message("bad", "missing or wrong form token; nothing saved")), 403)
        finding_id = form.get("finding_id", "").strip()
        choice = form.get("verdict", "")
        note = form.get("note", "").strip()[:MAX_NOTE] or None
        if not finding_id or choice not in VERDICTS:
            return html(_page(_message("bad", "no finding or verdict given; nothing saved")), 400)
        try:
            done, precision, reviewed = await _in_thread(db.record, finding_id, choice, note)
        except Busy:
            return html(_page(_busy_text("The verdict was NOT saved.", form, session)), 503)
        except (ReviewError, store.StoreError) as exc:
            session.flash = _message("bad", f"not saved: {exc}")
            return RedirectResponse("/", status_code=303, headers=_HEADERS)
        session.flash = _message(
            "ok",
            f"saved: {done.verdict} on {done.rule_id} (call {done.call_id}) by {done.reviewer}; "
            f"{done.rule_id}: reviewed precision {_pct(precision)} over {reviewed} reviewed",
        )
        return RedirectResponse("/", status_code=303, headers=_HEADERS)

    async def index_async(request: Request) -> Response:
        return await _in_thread(index, request)

    app = Starlette(
        routes=[
            Route("/", _guarded(index_async), methods=["GET"]),
            Route("/verdict", _guarded(verdict), methods=["POST"]),
        ]
    )
    app.state.config = config
    return app


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def _guarded(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """No exception leaves a request: the server would log it with its message, which
    could quote what was stored.  The log gets the error's kind only."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            log.error("console request failed: %s", type(exc).__name__)
            text = f"internal error ({type(exc).__name__}); reload the page to see what was saved"
            return HTMLResponse(_page(_message("bad", text)), status_code=500, headers=_HEADERS)

    return guarded


def _busy_text(what: str, form: dict | None = None, session: Session | None = None) -> str:
    text = _message(
        "busy",
        f"The database is busy: another process (the nightly audit, most likely) is "
        f"writing it. {what} Try again in a minute; the audit's writes are not disturbed.",
    )
    if form and session:  # the same verdict, one click away
        text += (
            '<form method="post" action="/verdict">'
            f'<input type="hidden" name="csrf" value="{esc(session.csrf)}">'
            f'<input type="hidden" name="finding_id" value="{esc(form.get("finding_id"))}">'
            f'<input type="hidden" name="verdict" value="{esc(form.get("verdict"))}">'
            f'<input type="hidden" name="note" value="{esc(form.get("note", ""))}">'
            '<button type="submit">try saving this verdict again</button></form>'
        )
    return text + '<p><a href="/">back to the queue</a></p>'


# ---------------------------------------------------------------- serving


def check_database(config: ConsoleConfig) -> str | None:
    """Why the console can't use the database (None: it can, or it's busy right now)."""
    try:
        Database(config)._exists()
        con = Database(config)._retry(
            lambda: store.connect(
                config.db, read_only=True, encryption_key=config.encryption_key, lock_wait_s=0
            )
        )
        con.close()
    except Busy:
        return None
    except store.StoreError as exc:
        return str(exc)
    return None


def serve(config: ConsoleConfig, host: str, port: int, say: Callable[[str], None] = print) -> None:
    """Serve the console with uvicorn until Ctrl-C / SIGTERM (no access log)."""
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    # Listening before the URL is printed: a browser (or script) that opens it while
    # uvicorn still starts waits in the backlog instead of being refused.
    sock.listen(128)
    bound = sock.getsockname()[1]
    say(f"callaudit console: open http://{url_host(host)}:{bound}/?token={config.token}")
    say(f"  verdicts are recorded as reviewer {config.reviewer}; Ctrl-C stops the console")
    uv_config = uvicorn.Config(
        create_app(config),
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
    )
    uvicorn.Server(uv_config).run(sockets=[sock])
