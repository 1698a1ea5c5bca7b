"""Call-detail records (the ``--manifest`` CSV): who called whom, when, and which recording.

A manifest is what the dialler exports, often from Excel: UTF-8 (with or without BOM) or
GBK.  Every bad row is reported with its row number (the header is row 1, as a
spreadsheet shows it) and skipped; the good rows go on.  Only a missing required column
makes the whole file unusable.  Rows without a recording (unanswered attempts, lost
audio) are kept: they count for the contact-frequency rules.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from audit import batch, store
from audit.pipeline import AuditOptions, CallInput, discover

REQUIRED_COLUMNS = (
    "call_id",
    "recording",
    "agent_id",
    "debtor_id",
    "callee_number",
    "callee_relation",
    "started_at",
    "duration_s",
    "direction",
)
OPTIONAL_COLUMNS = ("answered", "timezone")
RELATIONS = ("debtor", "third_party", "unknown")
DIRECTIONS = {"outbound": "outbound", "out": "outbound", "inbound": "inbound", "in": "inbound"}
_TRUE = {"true", "1", "yes", "y", "t", "是"}
_FALSE = {"false", "0", "no", "n", "f", "否"}
# Values a row must have (recording and duration_s may be empty: no audio, not connected).
_NON_EMPTY = ("call_id", "agent_id", "debtor_id", "callee_number", "started_at", "direction")


class ManifestError(ValueError):
    """The manifest as a whole can't be used (unreadable, or a required column is missing)."""


@dataclass(frozen=True)
class CallRecord:
    row: int
    call_id: str
    recording: str | None  # as written in the manifest, relative to the inbox
    path: str | None  # the recording's path, checked to lie inside the inbox
    agent_id: str
    debtor_id: str
    callee_number: str
    callee_relation: str
    started_at: datetime  # aware
    timezone: str  # IANA name from the manifest, else the offset as UTC+08:00
    duration_s: float | None
    direction: str
    answered: bool


@dataclass(frozen=True)
class RowError:
    row: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


@dataclass
class Manifest:
    path: str
    encoding: str
    records: list[CallRecord] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "file": self.path,
            "encoding": self.encoding,
            "ignored_columns": self.ignored_columns,
            "rows": len(self.records) + len(self.errors),
            "accepted": len(self.records),
            "errors": [str(e) for e in self.errors],
        }


class _RowProblem(ValueError):
    """One row's problem; becomes a RowError."""


def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding used: UTF-8 (BOM or not), else GBK (Excel's Chinese default)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gbk"), "gbk"
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 or GBK text (byte {exc.start} is invalid)") from exc


def load_manifest(path: str | Path, inbox: str | Path) -> Manifest:
    """Parse and check a manifest against the recordings in ``inbox``."""
    path = Path(path)
    try:
        text, encoding = decode(path.read_bytes())
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(f"{path}: missing required column(s): {', '.join(missing)}")
    manifest = Manifest(path=str(path), encoding=encoding)
    # Columns we don't know are ignored, but said: a typo (callee_relaton) would otherwise
    # silently turn every call's relation into "unknown".
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    manifest.ignored_columns = [h for h in header if h and h not in known]
    inbox_root = Path(inbox).resolve()
    seen: dict[str, int] = {}  # call ids and recording paths → the row that took them
    for row_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # blank lines (a trailing newline from Excel) are not rows
        try:
            record = parse_row(row_no, header, cells, inbox_root)
            check_unique(record, seen)
        except _RowProblem as exc:
            manifest.errors.append(RowError(row_no, str(exc)))
            continue
        seen[f"id:{record.call_id}"] = row_no
        if record.path:
            seen[f"path:{record.path}"] = row_no
        manifest.records.append(record)
    return manifest


def check_unique(record: CallRecord, seen: dict[str, int]) -> None:
    """One row per call, one call per recording."""
    if f"id:{record.call_id}" in seen:
        first = seen[f"id:{record.call_id}"]
        raise _RowProblem(f"duplicate call_id {record.call_id!r} (first on row {first})")
    if record.path and f"path:{record.path}" in seen:
        first = seen[f"path:{record.path}"]
        raise _RowProblem(f"recording {record.recording!r} is already the call on row {first}")


def parse_row(row_no: int, header: list[str], cells: list[str], inbox: Path) -> CallRecord:
    if len(cells) != len(header):
        raise _RowProblem(f"has {len(cells)} fields, the header has {len(header)}")
    row = {h: c.strip() for h, c in zip(header, cells, strict=True)}
    empty = [c for c in _NON_EMPTY if not row[c]]
    if empty:
        raise _RowProblem(f"missing value for {', '.join(empty)}")
    started = parse_started_at(row["started_at"])
    recording = row["recording"] or None
    return CallRecord(
        row=row_no,
        call_id=row["call_id"],
        recording=recording,
        path=resolve_recording(recording, inbox) if recording else None,
        agent_id=row["agent_id"],
        debtor_id=row["debtor_id"],
        callee_number=row["callee_number"],
        callee_relation=parse_relation(row["callee_relation"]),
        started_at=started,
        timezone=parse_timezone(row.get("timezone", ""), started),
        duration_s=parse_duration(row["duration_s"]),
        direction=parse_direction(row["direction"]),
        answered=parse_answered(row.get("answered", "")),
    )


def parse_started_at(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _RowProblem(
            f"started_at {text!r} is not an ISO 8601 time (e.g. 2026-03-02T22:30:00+08:00)"
        ) from None
    if value.tzinfo is None:
        raise _RowProblem(f"started_at {text!r} has no UTC offset (add +08:00 or the like)")
    return value


def offset_zone(started: datetime) -> str:
    """The fixed zone of an aware time, written UTC+08:00 (what the SQL macro reads)."""
    offset = started.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@lru_cache(maxsize=1)
def duckdb_zones() -> frozenset[str]:
    """The zone names DuckDB's ICU knows: the SQL reads every stored zone with them."""
    with duckdb.connect() as con:
        return frozenset(
            r[0] for r in con.execute("SELECT name FROM pg_timezone_names()").fetchall()
        )


def parse_timezone(text: str, started: datetime) -> str:
    if not text:
        return offset_zone(started)
    try:
        ZoneInfo(text)
        known = text in duckdb_zones()  # Python also accepts localtime, posix/...
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    if not known:
        raise _RowProblem(f"timezone {text!r} is not an IANA zone (e.g. Asia/Shanghai)")
    return text


def parse_relation(text: str) -> str:
    value = (text or "unknown").lower()
    if value not in RELATIONS:
        raise _RowProblem(f"callee_relation {text!r} is not one of {', '.join(RELATIONS)}")
    return value


def parse_direction(text: str) -> str:
    value = DIRECTIONS.get(text.lower())
    if value is None:
        raise _RowProblem(f"direction {text!r} is not outbound or inbound")
    return value


def parse_duration(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _RowProblem(f"duration_s {text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise _RowProblem(f"duration_s {text!r} is not a number of seconds")
    if value < 0:
        raise _RowProblem(f"duration_s {text!r} is negative")
    return value


def parse_answered(text: str) -> bool:
    value = text.lower()
    if not value or value in _TRUE:
        return True  # the column is optional; a listed call is taken as answered
    if value in _FALSE:
        return False
    raise _RowProblem(f"answered {text!r} is not true or false")


def resolve_recording(recording: str, inbox: Path) -> str:
    """The recording's path, which must exist and lie inside the inbox (no ../ escapes)."""
    path = (inbox / recording).resolve()
    if not path.is_relative_to(inbox):
        raise _RowProblem(f"recording {recording!r} points outside the inbox")
    if not path.is_file():
        raise _RowProblem(f"recording {recording!r} not found in the inbox")
    return str(path)


def call_inputs(manifest: Manifest, inbox: str | Path) -> list[CallInput]:
    """What to audit: the manifest's recordings under its call ids, then any other
    recording in the inbox under its file-name id (every recording is audited)."""
    inputs = [
        CallInput(call_id=r.call_id, path=r.path, callee_relation=r.callee_relation)
        for r in manifest.records
        if r.path
    ]
    listed = {Path(i.path).resolve() for i in inputs}
    taken = {i.call_id for i in inputs}
    for found in discover(Path(inbox)):
        if Path(found.path).resolve() in listed:
            continue
        if found.call_id in taken:  # the manifest gave its file name to another recording
            found = replace(found, call_id=f"{found.call_id}.unlisted")
        inputs.append(found)
    return inputs


def relation_changed(stored: dict[str, str | None], inputs: Iterable[CallInput]) -> set[str]:
    """Calls whose callee changed between debtor and third party since they were audited.

    The third-party rules depend on it, so such a call is detected again even though its
    recording was audited.  Only third-party-ness matters to the detector, so a first
    manifest saying "debtor" for calls audited without one re-transcribes nothing.
    """
    return {
        c.call_id
        for c in inputs
        if c.call_id in stored
        and (stored[c.call_id] == "third_party") != (c.callee_relation == "third_party")
    }


def format_report(summary: dict) -> str:
    """Lines for the command's summary: the file, its encoding and every bad row."""
    lines = [
        f"  manifest         : {summary['file']} ({summary['encoding']}): "
        f"{summary['accepted']} of {summary['rows']} rows accepted"
    ]
    if summary.get("ignored_columns"):
        lines.append(
            f"    MANIFEST unknown column(s) ignored: {', '.join(summary['ignored_columns'])}"
        )
    lines.extend(f"    MANIFEST {e}" for e in summary["errors"])
    return "\n".join(lines)


def plan_inbox(
    con: duckdb.DuckDBPyConnection,
    inbox: Path,
    manifest_path: str | None,
    options: AuditOptions,
    force: bool = False,
) -> tuple[batch.Plan, Manifest | None]:
    """What to audit, with or without a manifest.

    A recording audited before under another callee relation is audited again: the
    third-party rules depend on the relation.
    """
    if not manifest_path:
        return batch.plan_batch(discover(inbox), con, options, force=force), None
    manifest = load_manifest(manifest_path, inbox)
    inputs = call_inputs(manifest, inbox)
    stored = dict(con.execute("SELECT call_id, callee_relation FROM calls").fetchall())
    changed = relation_changed(stored, inputs)
    plan = batch.plan_batch([c for c in inputs if c.call_id not in changed], con, options, force)
    redo = batch.plan_batch([c for c in inputs if c.call_id in changed], con, options, True)
    return batch.Plan(plan.todo + redo.todo, plan.skipped + redo.skipped, len(inputs)), manifest


def store_records(con: duckdb.DuckDBPyConnection, manifest: Manifest, plan: batch.Plan) -> int:
    """Write the manifest's rows after the audio; a skipped recording's reason is kept."""
    audited = {
        r[0] for r in con.execute("SELECT call_id FROM calls WHERE sha256 IS NOT NULL").fetchall()
    }
    skipped = dict(plan.skipped)
    notes = {
        r.call_id: f"recording {r.recording} not audited under this id: {skipped[r.call_id]}"
        for r in manifest.records
        if r.path and r.call_id not in audited and r.call_id in skipped
    }
    return store.write_call_records(con, manifest.records, notes)
