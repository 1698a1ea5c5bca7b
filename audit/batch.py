"""A batch over an inbox: what to audit, progress, and the closing summary.

Orchestrators (the Prefect flow, a plain loop in tests) share this logic so that
incremental skipping and the summary mean the same thing everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from audit import store
from audit.audio import sha256_file
from audit.model import describe_model
from audit.pii import display_name
from audit.pipeline import AuditOptions, CallInput, CallResult, detection_version

if TYPE_CHECKING:
    from audit.progress import ProgressSink


@dataclass
class Plan:
    todo: list[CallInput]
    skipped: list[tuple[str, str]]  # (call_id, reason)
    discovered: int


def plan_batch(
    calls: list[CallInput],
    con: duckdb.DuckDBPyConnection,
    options: AuditOptions,
    force: bool = False,
) -> Plan:
    """Skip recordings whose content was already audited with this model and catalogue.

    A recording is known by its content hash, so a renamed copy is skipped too; a
    change of model or rule catalogue version makes every call due again.
    """
    model = describe_model(options.transcribe.model)
    rules_version = detection_version(options)
    prior = store.prior_audits(con)
    todo: list[CallInput] = []
    skipped: list[tuple[str, str]] = []
    seen_in_batch: dict[str, str] = {}
    for call in calls:
        if call.problem:
            todo.append(call)  # audit_call records why it can't be read
            continue
        try:
            digest = call.sha256 or sha256_file(Path(call.path))
        except OSError:
            todo.append(call)  # audit_call records the readable error
            continue
        call = replace(call, sha256=digest)
        if digest in seen_in_batch and not force:
            skipped.append((call.call_id, f"same content as {seen_in_batch[digest]}"))
            continue
        seen_in_batch[digest] = call.call_id
        before = prior.get(digest)
        if (
            not force
            and before is not None
            and before.status == "ok"
            and before.model == model
            and before.rules_version == rules_version
        ):
            reason = (
                "already audited"
                if before.call_id == call.call_id
                else (f"same content as {before.call_id}")
            )
            skipped.append((call.call_id, reason))
            continue
        todo.append(call)
    return Plan(todo=todo, skipped=skipped, discovered=len(calls))


@dataclass
class Progress:
    """The batch's counts as calls finish; with a sink (``audit.progress``) it also shows
    them: ``with Progress(total, sink) as progress: ... progress.update(result)``."""

    total: int
    sink: ProgressSink | None = None
    done: int = 0
    failed: int = 0
    audio_s: float = 0.0
    findings: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    started: float | None = None

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def __enter__(self) -> Progress:
        if self.sink is not None:
            self.sink.start(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sink is not None:
            self.sink.close()

    def update(self, result: CallResult) -> str:
        """Count a finished call; its progress line (also shown by the sink)."""
        self.done += 1
        self.audio_s += result.duration_s or 0.0
        self.findings += len(result.findings)
        failed = result.status != "ok"
        if failed:
            self.failed += 1
            self.failures.append((result.call_id, result.error or "unknown error"))
            what = f"FAILED: {display_name(str(result.error), 300)}"
        else:
            what = f"{len(result.findings)} findings"
        from audit.progress import format_eta

        line = (
            f"[{self.done}/{self.total}] {display_name(result.call_id)}: {what} "
            f"({self.audio_s / 60:.1f} audio min done; {self.audio_min_per_s():.2f} audio "
            f"min/s, ETA {format_eta(self.eta_s())}, {self.failed} failed)"
        )
        if self.sink is not None:
            self.sink.advance(self, line, failed)
        return line

    def elapsed_s(self) -> float:
        return max(self.clock() - self.started, 1e-6)

    def audio_min_per_s(self) -> float:
        """Audio minutes audited per second of the batch so far (its throughput)."""
        return self.audio_s / 60 / self.elapsed_s()

    def eta_s(self) -> float | None:
        """Seconds left at the pace of the calls audited so far (None before the first):
        a recording that fails to open costs next to nothing and would make it 0."""
        audited = self.done - self.failed
        if self.done >= self.total:
            return 0.0
        if not audited:
            return None
        return self.elapsed_s() / audited * (self.total - self.done)


@dataclass
class Summary:
    db: str
    discovered: int
    audited: int
    skipped: int
    failed: int
    audio_minutes: float
    db_calls: int
    db_findings: int
    findings_by_category: dict[str, int]
    failures: list[tuple[str, str]]

    def as_dict(self) -> dict:
        return {
            "db": self.db,
            "discovered": self.discovered,
            "audited": self.audited,
            "skipped": self.skipped,
            "failed": self.failed,
            "audio_minutes": round(self.audio_minutes, 2),
            "db_calls": self.db_calls,
            "db_findings": self.db_findings,
            "findings_by_category": self.findings_by_category,
            "failures": [list(f) for f in self.failures],
        }


def summarize(con: duckdb.DuckDBPyConnection, db: str, plan: Plan, progress: Progress) -> Summary:
    counts = store.table_counts(con)
    return Summary(
        db=str(Path(db).resolve()),
        discovered=plan.discovered,
        audited=progress.done - progress.failed,
        skipped=len(plan.skipped),
        failed=progress.failed,
        audio_minutes=progress.audio_s / 60,
        db_calls=counts["calls"],
        db_findings=counts["findings"],
        findings_by_category=store.findings_by_category(con),
        failures=progress.failures,
    )


def format_summary(summary: dict) -> str:
    lines = [
        "",
        "callaudit summary",
        f"  recordings found : {summary['discovered']}",
        f"  audited now      : {summary['audited']}  (skipped, already audited: "
        f"{summary['skipped']}; failed: {summary['failed']})",
        f"  audio            : {summary['audio_minutes']:.1f} min",
        f"  database         : {summary['db']}",
        f"  calls in database: {summary['db_calls']}",
        f"  findings in db   : {summary['db_findings']}",
    ]
    by_cat = summary["findings_by_category"]
    if by_cat:
        lines.append("  findings by category:")
        lines.extend(f"    {cat:<24} {n}" for cat, n in by_cat.items())
    for call_id, error in summary["failures"]:
        lines.append(f"  FAILED {display_name(call_id)}: {display_name(str(error), 300)}")
    return "\n".join(lines)
