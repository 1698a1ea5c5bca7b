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
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from audit import batch, store
from audit.audio import sha256_file
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
    relinked: list[tuple[str, str]] = field(default_factory=list)  # (file-name id, call id)

    def summary(self) -> dict:
        return {
            "file": self.path,
            "encoding": self.encoding,
            "ignored_columns": self.ignored_columns,
            "rows": len(self.records) + len(self.errors),
            "accepted": len(self.records),
            "errors": [str(e) for e in self.errors],
            "relinked": [f"{old} -> {new}" for old, new in self.relinked],
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


def load_manifest(
    path: str | Path, inbox: str | Path, default_timezone: str | None = None
) -> Manifest:
    """Parse and check a manifest against the recordings in ``inbox``.

    ``default_timezone`` (an IANA zone) is the zone of ``started_at`` values written
    without a UTC offset, as most dialler exports write them; without it such rows are
    rejected (a guessed zone would misjudge every contact-time rule).
    """
    if default_timezone is not None:
        check_zone(default_timezone, "--default-timezone")
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
            record = parse_row(row_no, header, cells, inbox_root, default_timezone)
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


def parse_row(
    row_no: int,
    header: list[str],
    cells: list[str],
    inbox: Path,
    default_timezone: str | None = None,
) -> CallRecord:
    if len(cells) != len(header):
        raise _RowProblem(f"has {len(cells)} fields, the header has {len(header)}")
    row = {h: c.strip() for h, c in zip(header, cells, strict=True)}
    empty = [c for c in _NON_EMPTY if not row[c]]
    if empty:
        raise _RowProblem(f"missing value for {', '.join(empty)}")
    started = parse_started_at(row["started_at"], default_timezone)
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
        # The default zone is for times written without an offset; an offset is a fact.
        timezone=parse_timezone(
            row.get("timezone", "")
            or (default_timezone if isinstance(started.tzinfo, ZoneInfo) else ""),
            started,
        ),
        duration_s=parse_duration(row["duration_s"]),
        direction=parse_direction(row["direction"]),
        answered=parse_answered(row.get("answered", "")),
    )


def parse_started_at(text: str, default_timezone: str | None = None) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _RowProblem(
            f"started_at {text!r} is not an ISO 8601 time (e.g. 2026-03-02T22:30:00+08:00)"
        ) from None
    if value.tzinfo is None:
        if default_timezone is None:
            raise _RowProblem(
                f"started_at {text!r} has no UTC offset (add +08:00 or the like, "
                "or give --default-timezone Asia/Shanghai)"
            )
        value = value.replace(tzinfo=ZoneInfo(default_timezone))
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


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def check_pattern(pattern: str) -> str:
    """A manifest path for a schedule: only {date} and {today} may be filled in."""
    unknown = [m for m in _PLACEHOLDER.findall(pattern) if m not in ("date", "today")]
    if unknown or pattern.count("{") != pattern.count("}"):
        raise ManifestError(
            f"--manifest {pattern!r}: only {{date}} (the day before the run) and {{today}} "
            "can be filled in"
        )
    return pattern


def dated_path(pattern: str, today: date | None = None) -> str:
    """The manifest a scheduled run reads: ``{date}`` is the day before ``today`` (the
    calls a nightly run audits), ``{today}`` the run's own day."""
    today = today or date.today()
    check_pattern(pattern)
    return pattern.replace("{date}", (today - timedelta(days=1)).isoformat()).replace(
        "{today}", today.isoformat()
    )


def check_zone(name: str, what: str) -> str:
    """``name`` if both Python and DuckDB know it as an IANA zone, else ManifestError."""
    try:
        ZoneInfo(name)
        known = name in duckdb_zones()
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    if not known:
        raise ManifestError(f"{what} {name!r} is not an IANA time zone (e.g. Asia/Shanghai)")
    return name


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
    lines.extend(
        f"    MANIFEST re-linked {r} (audited before under its file name)"
        for r in summary.get("relinked", [])
    )
    return "\n".join(lines)


def plan_inbox(
    con: duckdb.DuckDBPyConnection,
    inbox: Path,
    manifest_path: str | None,
    options: AuditOptions,
    force: bool = False,
    default_timezone: str | None = None,
    without_records: bool = False,
) -> tuple[batch.Plan, Manifest | None]:
    """What to audit, with or without a manifest.

    A manifest that accepts none of its rows stops the audit before any audio (its
    recordings would be audited without their call records and lose the findings that
    depend on them) unless ``without_records``.  A recording audited earlier under its
    file name is moved to the manifest's call id (``relinked``), not audited twice.  A
    recording audited before under another callee relation is audited again: the
    third-party rules depend on the relation.
    """
    if not manifest_path:
        return batch.plan_batch(discover(inbox), con, options, force=force), None
    manifest = load_manifest(manifest_path, inbox, default_timezone)
    require_rows(manifest, without_records)
    inputs = relink_recordings(con, call_inputs(manifest, inbox), manifest)
    stored = dict(con.execute("SELECT call_id, callee_relation FROM calls").fetchall())
    changed = relation_changed(stored, inputs)
    plan = batch.plan_batch([c for c in inputs if c.call_id not in changed], con, options, force)
    redo = batch.plan_batch([c for c in inputs if c.call_id in changed], con, options, True)
    return batch.Plan(plan.todo + redo.todo, plan.skipped + redo.skipped, len(inputs)), manifest


def require_rows(manifest: Manifest, without_records: bool = False) -> None:
    """ManifestError when a manifest with rows accepted none of them."""
    if manifest.errors and not manifest.records and not without_records:
        first = "; ".join(str(e) for e in manifest.errors[:2])
        raise ManifestError(
            f"{manifest.path}: none of its {len(manifest.errors)} rows was accepted ({first}"
            f"{'; ...' if len(manifest.errors) > 2 else ''}); nothing audited. Fix the file, "
            "or audit without call records with --without-call-records"
        )


def relink_recordings(
    con: duckdb.DuckDBPyConnection, inputs: list[CallInput], manifest: Manifest
) -> list[CallInput]:
    """Move calls audited under a file-name id (no call record) to the manifest's id of
    the same recording, found by content hash; returns ``inputs`` with hashes filled in."""
    listed = {r.call_id for r in manifest.records}
    audited = {
        r[0] for r in con.execute("SELECT call_id FROM calls WHERE status = 'ok'").fetchall()
    }
    unlinked = dict(
        con.execute(
            "SELECT sha256, call_id FROM calls WHERE sha256 IS NOT NULL AND agent_id IS NULL "
            "AND status = 'ok'"
        ).fetchall()
    )
    out = []
    for call in inputs:
        if call.call_id in listed and not call.problem and unlinked:
            try:
                call = replace(call, sha256=sha256_file(Path(call.path)))
            except OSError:
                pass  # audit_call records the readable error
            old = unlinked.get(call.sha256)
            if old and old != call.call_id and old not in listed and call.call_id not in audited:
                store.relink_call(con, old, call.call_id)
                manifest.relinked.append((old, call.call_id))
                del unlinked[call.sha256]
        out.append(call)
    return out


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


@dataclass
class CheckReport:
    """``callaudit check``: what an audit would do, and every problem, with no audio read."""

    lines: list[str]
    problems: int


def check_inbox(
    inbox: str | Path,
    manifest_path: str | None = None,
    default_timezone: str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> CheckReport:
    """Plan an audit of ``inbox`` (with its manifest, against the database ``con`` when
    given) without decoding audio or writing anything."""
    lines: list[str] = []
    problems = 0
    if manifest_path:
        manifest = load_manifest(manifest_path, inbox, default_timezone)
        lines.append(format_report(manifest.summary()).strip())
        problems += len(manifest.errors)  # unknown columns are listed, as audit does
        try:
            require_rows(manifest)
        except ManifestError as exc:
            lines.append(f"    STOP {exc}")
        inputs = call_inputs(manifest, inbox)
        relations = {r.call_id: r.callee_relation for r in manifest.records}
    else:
        inputs = discover(Path(inbox))
        relations = {}
    audited: dict[str, str] = {}
    unlinked: dict[str, str] = {}
    if con is not None:
        for sha, call_id, has_record in con.execute(
            "SELECT sha256, call_id, agent_id IS NOT NULL FROM calls "
            "WHERE sha256 IS NOT NULL AND status = 'ok'"
        ).fetchall():
            audited[sha] = call_id
            if not has_record:
                unlinked[sha] = call_id
    lines.append(f"  recordings       : {len(inputs)} would be audited under these call ids")
    root = Path(inbox).resolve()
    for call in inputs:
        try:
            shown = Path(call.path).resolve().relative_to(root)
        except ValueError:
            shown = Path(call.path)
        what = relations.get(call.call_id, "no call record")
        if call.problem:
            problems += 1
            what = f"PROBLEM {call.problem}"
        elif con is not None:
            what += _stored_state(call, audited, unlinked, set(relations))
        lines.append(f"    {call.call_id:<24} <- {shown}  ({what})")
    return CheckReport(lines=lines, problems=problems)


def _stored_state(
    call: CallInput, audited: dict[str, str], unlinked: dict[str, str], listed: set[str]
) -> str:
    try:
        sha = sha256_file(Path(call.path))
    except OSError as exc:
        return f"; PROBLEM cannot read: {exc.strerror or exc}"
    before = audited.get(sha)
    if before is None:
        return "; new"
    if before == call.call_id:
        return "; already audited"
    if call.call_id in listed and unlinked.get(sha) == before and before not in listed:
        return f"; audited before as {before}: would be re-linked, not transcribed again"
    return f"; same content as {before}"
