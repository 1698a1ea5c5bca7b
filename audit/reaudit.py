"""Re-run detection on stored utterances when the rule catalogue changes.

Transcription is the expensive step (seconds per call); detection is microseconds per
utterance.  A catalogue change therefore never re-transcribes: findings are recomputed
from the utterances already in the database and replaced call by call, each in one
transaction.  Reviews are keyed by stable finding ids, so they stay attached.

Three kinds of findings are not recomputed from text: PII findings (the stored text is
masked, so the number can no longer be validated; the finding made at transcription
time is kept), contact findings computed in SQL from call records, and conduct findings
(audit/conduct.py), measured from the audio.  A call keeps the conduct part of its
rules version (``+conduct-...``) as it was: when the conduct thresholds changed, the
next ``callaudit audit`` finds those calls due and audits them again from the audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from audit import store
from audit.callee import resolve_callee
from audit.detect import get_detector
from audit.pipeline import (
    AuditOptions,
    conduct_policy,
    detect_findings,
    detection_version,
    get_learned,
    text_version,
)
from audit.policy import Policy
from audit.transcribe import Utterance

# Findings that re-detection can't redo: PII (the stored text is masked) and contact
# findings (SQL over call records).
KEEP_VIA = ("validator", "sql", "conduct")
_CONDUCT = "+conduct-"


@dataclass
class ReauditSummary:
    calls: int
    utterances: int
    findings_before: int
    findings_after: int
    rules_version: str
    seconds: float
    conduct_due: int = 0  # calls judged with other conduct thresholds: due for `audit`


def _utterances(con: duckdb.DuckDBPyConnection, call_id: str) -> list[Utterance]:
    rows = con.execute(
        "SELECT idx, speaker, start_s, end_s, text, raw_text, avg_logprob, no_speech_prob, "
        "asr_flag FROM utterances WHERE call_id = ? ORDER BY idx",
        [call_id],
    ).fetchall()
    return [Utterance(*r) for r in rows]


def _recorrected(utterances: list[Utterance]) -> list[Utterance]:
    """The stored text again from Whisper's words with the current corrector.

    Masked digits are the same in ``text`` and ``raw_text``, so nothing unmasks."""
    from dataclasses import replace

    from audit.correct import get_corrector
    from audit.normalize import normalize

    corrector = get_corrector()
    return [replace(u, text=corrector.correct(normalize(u.raw_text))[0]) for u in utterances]


def reaudit(
    con: duckdb.DuckDBPyConnection,
    rules: str = "cn",
    force: bool = False,
    learned: bool = True,
    policy: Policy | None = None,
) -> ReauditSummary:
    """Recompute text findings for calls audited with another catalogue, learned model
    or corrector version.  The corrector runs again on what Whisper wrote (``raw_text``)."""
    import time

    started = time.perf_counter()
    options = AuditOptions(rules=rules, learned=learned, policy=policy)
    detector = get_detector(rules)
    stage = get_learned(options)
    version = text_version(options)
    # The text part of a call's version is what this command renews; the conduct part
    # (after '+conduct-') stays what the audio was judged with.
    stored_text = f"split_part(coalesce(rules_version, ''), '{_CONDUCT}', 1)"
    where = "status = 'ok'" + ("" if force else f" AND {stored_text} <> ?")
    params = [] if force else [version]
    calls = con.execute(
        f"SELECT call_id, coalesce(callee_relation, 'unknown'), "
        f"nullif(split_part(coalesce(rules_version, ''), '{_CONDUCT}', 2), '') "
        f"FROM calls WHERE {where} ORDER BY call_id",
        params,
    ).fetchall()
    before = con.execute("SELECT count(*) FROM findings").fetchone()[0]
    n_utt = 0
    keep = ", ".join(f"'{v}'" for v in KEEP_VIA)
    for call_id, callee, conduct_part in calls:
        call_version = version + (f"{_CONDUCT}{conduct_part}" if conduct_part else "")
        utterances = _recorrected(_utterances(con, call_id))
        n_utt += len(utterances)
        callee, inferred = resolve_callee(callee, utterances)
        findings = [
            f
            for f in detect_findings(call_id, utterances, detector, callee, stage)
            if f.via not in KEEP_VIA
        ]
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                f"DELETE FROM findings WHERE call_id = ? AND coalesce(via, '') NOT IN ({keep})",
                [call_id],
            )
            store.write_findings(con, findings, call_version)
            if utterances:
                con.executemany(
                    "UPDATE utterances SET text = ? WHERE call_id = ? AND idx = ?",
                    [[u.text, call_id, u.idx] for u in utterances],
                )
            con.execute(
                "UPDATE calls SET rules_version = ?, callee_inferred = ? WHERE call_id = ?",
                [call_version, inferred.note if inferred else None, call_id],
            )
            con.execute("COMMIT")
        except Exception:
            store.rollback_quietly(con)
            raise
    after = con.execute("SELECT count(*) FROM findings").fetchone()[0]
    conduct_due = con.execute(
        "SELECT count(*) FROM calls WHERE status = 'ok' AND coalesce(rules_version, '') <> ?",
        [detection_version(options)],
    ).fetchone()[0]
    return ReauditSummary(
        calls=len(calls),
        utterances=n_utt,
        findings_before=before,
        findings_after=after,
        rules_version=f"{version}+{conduct_policy(options).conduct_version}",
        seconds=round(time.perf_counter() - started, 3),
        conduct_due=conduct_due,
    )
