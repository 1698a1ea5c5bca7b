"""Reviewers' verdicts on findings: confirmed or false_positive.

Verdicts are keyed by the finding's stable id, so they survive re-audits: re-detection
recreates the same ids, and nothing in the audit ever deletes a review.  ``reviews``
holds each finding's current verdict; ``review_log`` every verdict given, with reviewer,
time and note (the ``review_history`` view).  The views
``rule_stats`` (reviewed precision) and ``call_risk`` (false positives don't count)
read them.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

import duckdb

VERDICTS = ("confirmed", "false_positive")


class ReviewError(ValueError):
    """The review can't be recorded; the message says why."""


@dataclass(frozen=True)
class Review:
    finding_id: str
    verdict: str
    rule_id: str
    call_id: str
    reviewer: str
    note: str | None


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "unknown"


def record_review(
    con: duckdb.DuckDBPyConnection,
    finding_id: str,
    verdict: str,
    note: str | None = None,
    reviewer: str | None = None,
) -> Review:
    """Record the verdict on one finding: it becomes the current one (``reviews``) and
    joins the finding's history (``review_log``, never rewritten)."""
    if verdict not in VERDICTS:
        raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    found = con.execute(
        "SELECT rule_id, call_id FROM findings WHERE finding_id = ?", [finding_id]
    ).fetchone()
    if found is None:
        raise ReviewError(
            f"no finding with id {finding_id!r} in this database "
            "(ids are in the violations view: SELECT finding_id, call_id, rule_id FROM violations)"
        )
    reviewer = reviewer or default_reviewer()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO review_log (finding_id, verdict, note, reviewer, reviewed_at) "
            "VALUES (?, ?, ?, ?, now())",
            [finding_id, verdict, note, reviewer],
        )
        con.execute(
            "INSERT INTO reviews (finding_id, verdict, note, reviewer, reviewed_at) "
            "VALUES (?, ?, ?, ?, now()) ON CONFLICT (finding_id) DO UPDATE SET "
            "verdict = excluded.verdict, note = excluded.note, reviewer = excluded.reviewer, "
            "reviewed_at = now()",
            [finding_id, verdict, note, reviewer],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return Review(finding_id, verdict, found[0], found[1], reviewer, note)


def check_findings(con: duckdb.DuckDBPyConnection, ids: list[str]) -> None:
    """ReviewError naming the ids that are no finding, before any verdict is recorded."""
    unknown = [
        i
        for i in ids
        if con.execute("SELECT 1 FROM findings WHERE finding_id = ?", [i]).fetchone() is None
    ]
    if unknown:
        raise ReviewError(
            f"no finding with id {', '.join(repr(i) for i in unknown)} in this database "
            "(ids are in the violations view: SELECT finding_id, call_id, rule_id FROM violations)"
        )


def findings_of_call(con: duckdb.DuckDBPyConnection, call_id: str) -> list[str]:
    """The finding ids of one call (ReviewError when it has none)."""
    ids = [
        r[0]
        for r in con.execute(
            "SELECT finding_id FROM findings WHERE call_id = ? ORDER BY start_s NULLS FIRST, "
            "finding_id",
            [call_id],
        ).fetchall()
    ]
    if not ids:
        raise ReviewError(f"call {call_id!r} has no findings in this database")
    return ids


def rule_precision(con: duckdb.DuckDBPyConnection, rule_id: str) -> tuple[float | None, int]:
    """(reviewed precision, number reviewed) of a rule, from the rule_stats view."""
    row = con.execute(
        "SELECT reviewed_precision, reviewed FROM rule_stats WHERE rule_id = ?", [rule_id]
    ).fetchone()
    return (row[0], row[1]) if row else (None, 0)
