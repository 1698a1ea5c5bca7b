"""``callaudit redact``: copies of the audited recordings with every personal number bleeped.

Auditors and regulators ask for the recordings behind findings; the recordings hold ID,
card and phone numbers read aloud.  Each copy is the recording decoded (16 kHz, 16-bit
PCM WAV, its channels kept apart) with every PII span replaced by a 1 kHz tone on every
channel: the utterances whose stored text holds a masked number (``audit.pii`` masks them
with ``*``) and the spans of ``pii_exposure`` findings.  Only utterance times are stored,
so a whole utterance is bleeped: more than the number, never less.

The originals are never written: a copy goes to the output folder under the call's id,
through a temporary file renamed into place, and a recording whose content no longer
matches the hash stored at audit time is not redacted (its spans would be in the wrong
place) but listed with the reason.  ``redaction.csv`` in the output folder lists every
call: its output file, the spans and seconds bleeped, or why it was not redacted.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from audit.audio import SAMPLE_RATE, AudioError, iter_windows, probe, sha256_file
from audit.clips import bleeped

MANIFEST = "redaction.csv"
_UNSAFE = re.compile(r"[^0-9A-Za-z._-]+")


class RedactError(ValueError):
    """The output folder can't be used; the message says why."""


@dataclass(frozen=True)
class Redacted:
    call_id: str
    source: str | None
    output: str | None  # None: not redacted (see error)
    spans: int
    bleeped_s: float
    error: str | None = None


def pii_spans(con: duckdb.DuckDBPyConnection, call_id: str) -> list[tuple[float, float]]:
    """Where personal numbers were said in a call, every speaker's, in time order."""
    rows = con.execute(
        "SELECT start_s, end_s FROM utterances WHERE call_id = $c "
        "AND regexp_matches(text, '\\*{3,}') AND start_s IS NOT NULL "
        "UNION SELECT start_s, end_s FROM findings WHERE call_id = $c "
        "AND category = 'pii_exposure' AND start_s IS NOT NULL ORDER BY 1, 2",
        {"c": call_id},
    ).fetchall()
    return [(float(a), float(b)) for a, b in rows]


def output_name(call_id: str) -> str:
    """A file name for a call id (ids may hold slashes: inbox sub-folders)."""
    return (_UNSAFE.sub("_", call_id).strip("._") or "call") + ".wav"


def redact_recording(source: Path, spans: Sequence[tuple[float, float]], out: Path) -> float:
    """Write ``source`` with ``spans`` bleeped on every channel to ``out`` (WAV); the
    seconds bleeped.  Decoded window by window: a long call never sits whole in memory."""
    info = probe(source)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(2 if info.channels == 2 else 1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            for offset, channels in iter_windows(source, info):
                pcm = np.stack([bleeped(c, spans, offset) for c in channels], axis=1)
                w.writeframes((np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2").tobytes())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    duration = info.duration_s or float("inf")
    return sum(max(0.0, min(b, duration) - max(a, 0.0)) for a, b in spans)


def redact_calls(
    con: duckdb.DuckDBPyConnection, out_dir: Path, call_ids: Sequence[str] | None = None
) -> list[Redacted]:
    """Redacted copies of the audited calls (all, or ``call_ids``) in ``out_dir``, and
    ``redaction.csv`` listing them.  A call that can't be redacted is listed with its
    reason; the others go on."""
    return write_redacted(plan(con, out_dir, call_ids), out_dir)


@dataclass(frozen=True)
class Planned:
    call_id: str
    source: str | None
    sha256: str | None
    spans: tuple[tuple[float, float], ...]


def plan(
    con: duckdb.DuckDBPyConnection, out_dir: Path, call_ids: Sequence[str] | None = None
) -> list[Planned]:
    """What to redact, read from the database (which the caller may then close: a reader
    holds DuckDB's file lock, and decoding every recording takes long)."""
    calls = _calls(con, call_ids)
    _check_out_dir(con, Path(out_dir), [src for _, src, _ in calls if src])
    return [Planned(c, src, sha, tuple(pii_spans(con, c))) for c, src, sha in calls]


def write_redacted(planned: Sequence[Planned], out_dir: Path) -> list[Redacted]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _output_names([p.call_id for p in planned])
    done = [_redact_one(p, out_dir / names[p.call_id]) for p in planned]
    _write_manifest(out_dir / MANIFEST, done)
    return done


def _check_out_dir(con: duckdb.DuckDBPyConnection, out_dir: Path, sources: Sequence[str]) -> None:
    """OUT must not be, or lie inside, an audited inbox or a recording's folder: the next
    audit would take the copies for new calls (and originals are never written)."""
    out = out_dir.resolve()
    inboxes = [
        r[0]
        for r in con.execute("SELECT DISTINCT inbox FROM runs WHERE inbox IS NOT NULL").fetchall()
    ]
    roots = {Path(p).resolve() for p in inboxes} | {Path(s).resolve().parent for s in sources}
    for root in sorted(roots):
        if out == root or root in out.parents:
            raise RedactError(
                f"{out_dir} is inside {root}, where audited recordings are: give --out a "
                "folder outside every inbox (originals are never written)"
            )


def _calls(
    con: duckdb.DuckDBPyConnection, call_ids: Sequence[str] | None
) -> list[tuple[str, str | None, str | None]]:
    rows = con.execute(
        "SELECT call_id, source_path, sha256 FROM calls WHERE status = 'ok' ORDER BY call_id"
    ).fetchall()
    if call_ids is None:
        return rows
    known = {r[0]: r for r in rows}
    missing = [c for c in call_ids if c not in known]
    if missing:
        raise RedactError(f"no audited call with id {', '.join(missing)}")
    return [known[c] for c in dict.fromkeys(call_ids)]


def _redact_one(p: Planned, out: Path) -> Redacted:
    def skipped(reason: str) -> Redacted:
        out.unlink(missing_ok=True)  # no stale copy beside a row that says "not redacted"
        return Redacted(p.call_id, p.source, None, len(p.spans), 0.0, reason)

    if not p.source:
        return skipped("no recording stored for this call")
    path = Path(p.source)
    try:
        if not path.is_file():
            return skipped(f"recording not found at {path}")
        if p.sha256 and sha256_file(path) != p.sha256:
            return skipped("the recording changed since it was audited (its hash differs)")
        seconds = redact_recording(path, p.spans, out)
    except (AudioError, OSError) as exc:
        return skipped(str(exc))
    return Redacted(p.call_id, p.source, str(out), len(p.spans), round(seconds, 2))


def _output_names(call_ids: Sequence[str]) -> dict[str, str]:
    """A distinct file name per call id: an id that is not a safe file name as it is
    (``a/b``) gets a short hash of itself, so it can't meet ``a_b``."""
    names = {}
    for c in call_ids:
        name = output_name(c)
        if name != f"{c}.wav":
            name = f"{name[:-4]}-{hashlib.sha1(c.encode('utf-8')).hexdigest()[:8]}.wav"
        names[c] = name
    return names


def _write_manifest(path: Path, done: Sequence[Redacted]) -> None:
    """``redaction.csv``: this run's rows, and the earlier rows of calls not redone."""
    columns = ["call_id", "source", "output", "pii_spans", "bleeped_s", "error"]
    rows: dict[str, list] = {}
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rows[row["call_id"]] = [row.get(c, "") for c in columns]
    for r in done:
        rows[r.call_id] = [
            r.call_id,
            r.source or "",
            r.output or "",
            r.spans,
            r.bleeped_s,
            r.error or "",
        ]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows[c] for c in sorted(rows))
    os.replace(tmp, path)
