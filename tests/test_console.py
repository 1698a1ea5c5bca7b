"""The review console (``callaudit console``): access, the queue, verdicts stored as
``callaudit review`` stores them, a database held by another process, and a real server."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from starlette.testclient import TestClient

from audit import console
from tests.conftest import ROOT, SAMPLES
from tests.test_manifest import audit_with_manifest, dialogues, query

CJK = re.compile(r"[\u4e00-\u9fff]")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def audited_once(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("console") / "c.duckdb"
    audit_with_manifest(SAMPLES / "inbox", SAMPLES / "calls.csv", db)
    return db


@pytest.fixture
def db(audited_once, tmp_path) -> Path:
    """A private copy of the audited sample calls, without reviews."""
    path = tmp_path / "c.duckdb"
    path.write_bytes(audited_once.read_bytes())
    return path


def make_client(db: Path, **kw) -> tuple[TestClient, console.ConsoleConfig]:
    config = console.ConsoleConfig(db=db, reviewer="qa-li", **kw)
    return TestClient(console.create_app(config)), config


def logged_in(db: Path, **kw) -> tuple[TestClient, console.ConsoleConfig, str]:
    client, config = make_client(db, **kw)
    page = client.get(f"/?token={config.token}")
    assert page.status_code == 200, page.text
    return client, config, page.text


def queued(page: str) -> list[str]:
    return re.findall(r'<article class="finding[^"]*" data-finding="([0-9a-f]+)"', page)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def precision_cells(page: str) -> dict[str, tuple[str, str]]:
    """rule -> (reviewed, reviewed precision) from the page's precision table."""
    rows = re.findall(
        r'<tr data-rule="([^"]+)">(?:<td[^>]*>[^<]*</td>){4}<td class="num">(\d+)</td>'
        r'(?:<td[^>]*>[^<]*</td>){2}<td class="num precision">([^<]*)</td>',
        page,
    )
    return {r: (n, p) for r, n, p in rows}


def test_without_the_token_or_its_cookie_nothing_is_shown(db):
    client, config = make_client(db)
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong").status_code == 403
    assert (
        client.post("/verdict", data={"finding_id": "x", "verdict": "confirmed"}).status_code == 401
    )
    first = client.get(f"/?token={config.token}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/").status_code == 200  # the cookie alone, from now on
    other = TestClient(console.create_app(config))
    other.cookies.set(console.COOKIE, "forged")
    assert other.get("/").status_code == 401


def test_the_queue_shows_unreviewed_findings_riskiest_first_with_clip_and_citation(db):
    _, _, page = logged_in(db, page_size=100)
    ids = queued(page)
    expected = query(
        db,
        "SELECT v.finding_id, coalesce(r.risk_score, 0) FROM violations v "
        "LEFT JOIN call_risk r USING (call_id) ORDER BY 2 DESC",
    )
    assert sorted(ids) == sorted(i for i, _ in expected)  # every unreviewed finding
    risk = dict(expected)
    assert [risk[i] for i in ids] == sorted((risk[i] for i in ids), reverse=True)
    top = query(db, "SELECT rule_id, citation FROM findings WHERE finding_id = ?", [ids[0]])[0]
    assert top[0] in page and top[1] in page
    assert page.count("<audio controls") >= 5  # the sample recordings exist
    threat = next(t for s, t in dialogues()["call_03_threat"] if "单位" in t)
    assert threat in page  # the transcript context
    assert "<script" not in page.lower()


def test_verdicts_are_stored_as_review_stores_them(db):
    client, config, page = logged_in(db, page_size=100)
    ids = queued(page)
    rules = dict(query(db, "SELECT finding_id, rule_id FROM findings"))
    before = precision_cells(page)
    confirm, reject, by_cli = ids[0], ids[1], ids[2]
    csrf = csrf_of(page)
    for fid, verdict, note in (
        (confirm, "confirmed", ""),
        (reject, "false_positive", "客户约定回电"),
    ):
        done = client.post(
            "/verdict", data={"csrf": csrf, "finding_id": fid, "verdict": verdict, "note": note}
        )
        assert done.status_code == 200 and "saved: " + verdict in done.text
        page = done.text
    cli_run = subprocess.run(
        [sys.executable, "-m", "audit.cli", "review", by_cli, "--db", str(db),
         "--verdict", "false_positive", "--note", "客户约定回电", "--reviewer", "qa-li"],
        capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip
    assert cli_run.returncode == 0, cli_run.stderr
    shape = "SELECT verdict, note, reviewer, typeof(reviewed_at), reviewed_at IS NOT NULL FROM {t} "
    for table in ("reviews", "review_log"):
        rows = {
            r[0]: r[1:]
            for r in query(db, "SELECT finding_id, * EXCLUDE (finding_id) FROM " + table)
        }
        assert set(rows) == {confirm, reject, by_cli}
        got = dict(
            (fid, query(db, shape.format(t=table) + "WHERE finding_id = ?", [fid])[0])
            for fid in (confirm, reject, by_cli)
        )
        assert got[reject] == got[by_cli]  # the console's row is the command's
        assert got[confirm] == ("confirmed", None, "qa-li", *got[by_cli][3:])
    assert not {confirm, reject} & set(queued(client.get("/").text))  # out of the queue
    after = precision_cells(client.get("/").text)
    changed = {rules[confirm], rules[reject], rules[by_cli]}
    assert all(after[r] != before[r] for r in changed)
    assert all(after[r] == before[r] for r in before if r not in changed)
    assert after[rules[confirm]][0] != "0"


def test_a_verdict_without_its_form_token_is_refused_and_nothing_is_written(db):
    client, _, page = logged_in(db)
    fid = queued(page)[0]
    for data in (
        {"finding_id": fid, "verdict": "confirmed"},
        {"finding_id": fid, "verdict": "confirmed", "csrf": "guessed"},
    ):
        assert client.post("/verdict", data=data).status_code == 403
    other, _, _ = logged_in(db)  # another session's form token is not this one's
    stolen = {"finding_id": fid, "verdict": "confirmed", "csrf": csrf_of(page)}
    assert other.post("/verdict", data=stolen).status_code == 403
    bad = client.post("/verdict", data={"csrf": csrf_of(page), "finding_id": "nope",
                                        "verdict": "confirmed"})  # fmt: skip
    assert "not saved: no finding with id" in bad.text
    assert query(db, "SELECT count(*) FROM review_log") == [(0,)]
    assert query(db, "SELECT count(*) FROM reviews") == [(0,)]


HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("BEGIN TRANSACTION")
con.execute("UPDATE calls SET processing_s = processing_s")
print("holding", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
con.close()
"""


def test_a_database_held_by_another_process_is_busy_and_nothing_is_half_written(db):
    client, config, page = logged_in(db, retry_s=0.4)
    fid, csrf = queued(page)[0], csrf_of(page)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        form = {"csrf": csrf, "finding_id": fid, "verdict": "confirmed", "note": "听过"}
        started = time.monotonic()
        held = client.post("/verdict", data=form)
        assert time.monotonic() - started < 5
        assert held.status_code == 503
        assert "database is busy" in held.text and "NOT saved" in held.text
        assert "try saving this verdict again" in held.text
        shown = client.get("/")
        assert shown.status_code == 503 and "database is busy" in shown.text
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    assert query(db, "SELECT count(*) FROM review_log") == [(0,)]
    assert query(db, "SELECT count(*) FROM reviews") == [(0,)]
    saved = client.post("/verdict", data=form)
    assert saved.status_code == 200 and "saved: confirmed" in saved.text
    assert query(db, "SELECT verdict, note FROM reviews") == [("confirmed", "听过")]
    assert query(db, "SELECT count(*) FROM review_log") == [(1,)]


def test_an_audit_that_lets_go_within_the_retry_does_not_cost_the_verdict(db):
    client, _, page = logged_in(db, retry_s=6)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.replace("sys.stdin.readline()", "import time; time.sleep(1)"),
         str(db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "holding"
    form = {"csrf": csrf_of(page), "finding_id": queued(page)[0], "verdict": "false_positive"}
    done = client.post("/verdict", data=form)
    holder.wait(timeout=30)
    assert done.status_code == 200 and "saved: false_positive" in done.text
    assert query(db, "SELECT count(*) FROM reviews") == [(1,)]


def test_no_transcript_text_in_urls_or_logs(db, caplog):
    caplog.set_level(logging.DEBUG)
    client, _, page = logged_in(db, page_size=100)
    client.post("/verdict", data={"csrf": csrf_of(page), "finding_id": queued(page)[0],
                                  "verdict": "confirmed", "note": "13800138000 说了"})  # fmt: skip
    page = client.get("/").text
    urls = re.findall(r'(?:href|src|action)="([^"]*)"', page)
    assert urls and all(u in ("/", "/verdict") or u.startswith("data:audio/webm;base64,")
                        for u in urls), urls  # fmt: skip
    texts = [t for (t,) in query(db, "SELECT text FROM utterances")]
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert not CJK.search(logged) and "13800138000" not in logged
    assert not any(t in logged for t in texts)


def test_encrypted_database_with_its_key(db, tmp_path):
    from audit import store

    enc = tmp_path / "enc.duckdb"
    con = duckdb.connect(config={"extension_directory": store.extension_dir() or ""})
    con.execute("LOAD httpfs")
    con.execute(f"ATTACH '{db}' AS plain (READ_ONLY)")
    con.execute(f"ATTACH '{enc}' AS enc (ENCRYPTION_KEY 'k-123')")
    con.execute("COPY FROM DATABASE plain TO enc")
    con.close()
    client, _, page = logged_in(enc, encryption_key="k-123")
    form = {"csrf": csrf_of(page), "finding_id": queued(page)[0], "verdict": "confirmed"}
    assert "saved: confirmed" in client.post("/verdict", data=form).text
    locked, config = make_client(enc)  # without the key: the page says so, nothing crashes
    shown = locked.get(f"/?token={config.token}")
    assert shown.status_code == 500 and "is encrypted" in shown.text


def run_cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "audit.cli", "console", *args],
        capture_output=True, text=True, timeout=60, env={**ENV, "CALLAUDIT_REVIEWER": "qa"},
        **kw,
    )  # fmt: skip


def test_a_host_other_machines_reach_needs_allow_remote(db):
    proc = run_cli(["--db", str(db), "--host", "0.0.0.0"])
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "--allow-remote" in proc.stderr


def test_a_missing_database_is_not_created(tmp_path):
    missing = tmp_path / "missing.duckdb"
    proc = run_cli(["--db", str(missing)])
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"callaudit console: error: no audit database at {missing}"
    ]
    assert list(tmp_path.iterdir()) == []


def test_the_command_serves_the_console(db):
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit.cli", "console", "--db", str(db), "--port", "0",
         "--reviewer", "qa-li"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)
        assert url, line + proc.stderr.read() if proc.poll() is not None else line
        with httpx.Client(follow_redirects=True, timeout=60) as http:
            page = http.get(url.group(0))
            assert page.status_code == 200 and "callaudit review console" in page.text
            assert http.get(url.group(0).split("?")[0]).status_code == 200  # the cookie
        with httpx.Client(timeout=60) as stranger:
            assert stranger.get(url.group(0).split("?")[0]).status_code == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    texts = [t for (t,) in query(db, "SELECT text FROM utterances")]
    assert not any(t in out + err for t in texts) and not CJK.search(out + err)


def test_the_audit_waits_for_a_console_request_instead_of_failing(db):
    """store.connect (the audit's open) waits while another process holds the file for a
    moment, as the console does per request; with no wait it fails at once."""
    from audit import store

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.replace("sys.stdin.readline()", "import time; time.sleep(1)"),
         str(db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(store.StoreError, match="in use by another process"):
            store.connect(db, lock_wait_s=0)
        started = time.monotonic()
        store.connect(db).close()  # the default wait
        assert 0.2 < time.monotonic() - started < store.LOCK_WAIT_S
    finally:
        holder.wait(timeout=30)
