"""Reviewers' verdicts: precision per rule in the view, and verdicts that outlive re-audits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from audit import store
from audit.review import ReviewError, record_review, rule_precision
from tests.conftest import SAMPLES
from tests.test_manifest import audit_with_manifest, query


@pytest.fixture(scope="module")
def audited_once(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("review") / "r.duckdb"
    audit_with_manifest(SAMPLES / "inbox", SAMPLES / "calls.csv", db)
    return db


@pytest.fixture
def audited(audited_once, tmp_path) -> Path:
    """A private copy of the audited sample calls, so each test starts without reviews."""
    db = tmp_path / "r.duckdb"
    db.write_bytes(audited_once.read_bytes())
    return db


def findings_of(db: Path, rule_id: str) -> list[str]:
    rows = query(db, "SELECT finding_id FROM findings WHERE rule_id = ? ORDER BY 1", [rule_id])
    return [r[0] for r in rows]


def review(db: Path, finding_id: str, verdict: str, note: str | None = None) -> None:
    con = store.connect(db)
    try:
        record_review(con, finding_id, verdict, note=note, reviewer="qa-li")
    finally:
        con.close()


def precision(db: Path, rule_id: str) -> tuple[float | None, int]:
    con = store.connect(db)
    try:
        return rule_precision(con, rule_id)
    finally:
        con.close()


def test_reviews_set_the_rules_precision_and_survive_a_reaudit(audited):
    rule = "CN-CT-QUIET-HOURS"
    time_ids = findings_of(audited, rule)
    assert len(time_ids) == 2 and precision(audited, rule) == (None, 0)
    review(audited, time_ids[0], "confirmed")
    assert precision(audited, rule) == (1.0, 1)
    review(audited, time_ids[1], "false_positive", note="debtor asked to be called then")
    assert precision(audited, rule) == (0.5, 2)

    text_rule = query(audited, "SELECT rule_id FROM findings WHERE via <> 'sql' LIMIT 1")[0][0]
    text_id = findings_of(audited, text_rule)[0]
    review(audited, text_id, "confirmed")

    # Re-audit everything (audio and contact rules): same finding ids, reviews untouched.
    again = audit_with_manifest(SAMPLES / "inbox", SAMPLES / "calls.csv", audited, force=True)
    assert len(again["todo"]) == 8
    assert findings_of(audited, rule) == time_ids
    assert precision(audited, rule) == (0.5, 2)
    assert precision(audited, text_rule) == (1.0, 1)
    assert query(audited, "SELECT count(*) FROM reviews") == [(3,)]


def test_a_false_positive_leaves_the_risk_score(audited):
    call = "call_03_threat"
    score = "SELECT risk_score FROM call_risk WHERE call_id = ?"
    before = query(audited, score, [call])[0][0]
    fid, severity = query(
        audited,
        "SELECT finding_id, severity FROM findings WHERE call_id = ? AND via = 'sql'",
        [call],
    )[0]
    review(audited, fid, "false_positive")
    assert query(audited, score, [call])[0][0] == before - {"high": 6, "medium": 3}[severity]


def test_a_second_verdict_replaces_the_first(audited):
    fid = findings_of(audited, "CN-CF-CONNECTED-PER-DAY")[0]
    review(audited, fid, "false_positive")
    review(audited, fid, "confirmed", note="checked the dialler log")
    assert query(audited, "SELECT verdict, note, reviewer FROM reviews") == [
        ("confirmed", "checked the dialler log", "qa-li")
    ]


def test_unknown_findings_and_verdicts_are_refused(audited):
    fid = findings_of(audited, "CN-CT-QUIET-HOURS")[0]
    con = store.connect(audited)
    try:
        with pytest.raises(ReviewError, match="no finding with id 'deadbeef'"):
            record_review(con, "deadbeef", "confirmed")
        with pytest.raises(ReviewError, match="verdict must be one of"):
            record_review(con, fid, "maybe")
    finally:
        con.close()
    assert query(audited, "SELECT count(*) FROM reviews") == [(0,)]


def test_review_command(audited, cli):
    fid = findings_of(audited, "CN-CT-QUIET-HOURS")[0]
    ok = subprocess.run(
        [*cli, "review", fid, "--db", str(audited), "--verdict", "confirmed", "--note", "听过录音"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "reviewed precision 100%" in ok.stdout
    bad = subprocess.run(
        [*cli, "review", "nope", "--db", str(audited), "--verdict", "confirmed"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1 and "no finding with id 'nope'" in bad.stderr
    assert query(audited, "SELECT note FROM reviews") == [("听过录音",)]


def test_one_thing_said_is_one_finding_and_one_verdict_clears_it(audited):
    # Several rules of one category on one utterance are one reportable finding.
    dupes = query(
        audited,
        "SELECT count(*) FROM (SELECT call_id, utterance_idx, category FROM reportable_findings "
        "WHERE utterance_idx IS NOT NULL GROUP BY ALL HAVING count(*) > 1)",
    )
    assert dupes == [(0,)]
    group_id, call, rules, weight = query(
        audited,
        "SELECT group_id, call_id, rule_ids, weight FROM reportable_findings "
        "WHERE rule_findings > 1 AND verdict IS NULL ORDER BY weight DESC, group_id LIMIT 1",
    )[0]
    assert ", " in rules  # more than one rule matched what was said
    risk = "SELECT risk_score FROM call_risk WHERE call_id = ?"
    summed = "SELECT sum(weight) FROM reportable_findings WHERE call_id = ?"
    before = query(audited, risk, [call])[0][0]
    assert before == query(audited, summed, [call])[0][0]
    members = [
        r[0]
        for r in query(
            audited,
            "SELECT finding_id FROM findings f JOIN reportable_findings g "
            "ON g.group_id = ? AND f.call_id = g.call_id "
            "AND f.utterance_idx = g.utterance_idx AND f.category = g.category "
            "ORDER BY finding_id DESC",
            [group_id],
        )
    ]
    assert len(members) >= 2
    review(audited, members[0], "false_positive")  # one rule's finding of the group
    assert query(audited, risk, [call])[0][0] == before - weight
    verdict = "SELECT verdict FROM reportable_findings WHERE group_id = ?"
    assert query(audited, verdict, [group_id]) == [("false_positive",)]


def test_every_verdict_is_kept_with_reviewer_time_and_note(audited):
    fid = findings_of(audited, "CN-CF-CONNECTED-PER-DAY")[0]
    con = store.connect(audited)
    try:
        record_review(con, fid, "false_positive", note="looked like a callback", reviewer="qa-li")
        record_review(con, fid, "confirmed", note="dialler log shows 4 calls", reviewer="qa-wang")
    finally:
        con.close()
    history = query(
        audited,
        "SELECT verdict, reviewer, note, is_current FROM review_history "
        "WHERE finding_id = ? ORDER BY reviewed_at",
        [fid],
    )
    assert history == [
        ("false_positive", "qa-li", "looked like a callback", False),
        ("confirmed", "qa-wang", "dialler log shows 4 calls", True),
    ]
    current = query(
        audited, "SELECT review_verdict, reviewer FROM violations WHERE finding_id = ?", [fid]
    )
    assert current == [("confirmed", "qa-wang")]


def test_review_takes_several_ids_or_a_call_and_checks_them_all_first(audited, cli):
    ids = findings_of(audited, "CN-CT-QUIET-HOURS")
    bad = subprocess.run(
        [*cli, "review", ids[0], "nope", "--db", str(audited), "--verdict", "confirmed"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1 and "'nope'" in bad.stderr
    assert query(audited, "SELECT count(*) FROM review_log") == [(0,)]  # all or none
    ok = subprocess.run(
        [*cli, "review", *ids, "--db", str(audited), "--verdict", "confirmed"],
        capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "CALLAUDIT_REVIEWER": "qa-zhao"},
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert query(audited, "SELECT DISTINCT reviewer FROM reviews") == [("qa-zhao",)]
    call = "call_05_third_party"
    of_call = query(audited, "SELECT count(*) FROM findings WHERE call_id = ?", [call])[0][0]
    assert of_call >= 2
    ok = subprocess.run(
        [*cli, "review", "--call", call, "--db", str(audited), "--verdict", "false_positive",
         "--note", "被叫方是本人", "--reviewer", "qa-li"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert len([x for x in ok.stdout.splitlines() if ": false_positive by qa-li" in x]) == of_call
    none = subprocess.run(
        [*cli, "review", "--db", str(audited), "--verdict", "confirmed"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert none.returncode == 2 and "--call" in none.stderr


def test_the_report_shows_who_reviewed_and_why(audited, tmp_path):
    from audit.report import Period, render_report

    fid = findings_of(audited, "CN-CT-QUIET-HOURS")[0]
    review(audited, fid, "false_positive", note="客户约定<晚上>回电")
    out = tmp_path / "r.html"
    render_report(audited, out, Period(), top=20)
    html = out.read_text(encoding="utf-8")
    assert "false_positive by qa-li: 客户约定&lt;晚上&gt;回电" in html
