"""Reviewers' verdicts on findings: confirmed or false_positive.

Verdicts are keyed by the finding's stable id, so they survive re-audits: re-detection
recreates the same ids, and nothing in the audit ever deletes a review.  The views
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
    """Record (or replace) the verdict on one finding."""
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
    con.execute(
        "INSERT INTO reviews (finding_id, verdict, note, reviewer, reviewed_at) "
        "VALUES (?, ?, ?, ?, now()) ON CONFLICT (finding_id) DO UPDATE SET "
        "verdict = excluded.verdict, note = excluded.note, reviewer = excluded.reviewer, "
        "reviewed_at = now()",
        [finding_id, verdict, note, reviewer],
    )
    return Review(finding_id, verdict, found[0], found[1], reviewer, note)


def rule_precision(con: duckdb.DuckDBPyConnection, rule_id: str) -> tuple[float | None, int]:
    """(reviewed precision, number reviewed) of a rule, from the rule_stats view."""
    row = con.execute(
        "SELECT reviewed_precision, reviewed FROM rule_stats WHERE rule_id = ?", [rule_id]
    ).fetchone()
    return (row[0], row[1]) if row else (None, 0)
