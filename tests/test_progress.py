"""Progress a person can read: the batch's counts, a live Rich bar on a terminal, plain
lines on a pipe, and the flow (in process, Whisper replaced) reporting to the sink."""

from __future__ import annotations

import io
import logging
import re
from types import SimpleNamespace

import pytest
from rich.console import Console

from audit import batch, progress
from tests.conftest import SAMPLES

ANSI = re.compile(r"\x1b\[")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fake_batch() -> list[SimpleNamespace]:
    """8 calls of 30 s each; the 3rd and the 6th fail (no audio counted for the 3rd)."""
    calls = []
    for i in range(1, 9):
        failed = i in (3, 6)
        calls.append(
            SimpleNamespace(
                call_id=f"call_{i}",
                status="failed" if failed else "ok",
                error="not a readable audio file" if failed else None,
                duration_s=None if i == 3 else 30.0,
                findings=[] if failed else [object()] * (i % 3),
            )
        )
    return calls


def run(sink: progress.ProgressSink | None, stop_after: int = 8) -> batch.Progress:
    clock = Clock()
    with batch.Progress(total=8, sink=sink, clock=clock) as counts:
        for result in fake_batch()[:stop_after]:
            clock.now += 10.0  # each call takes 10 s of wall time
            counts.update(result)
    return counts


def test_the_progress_counts_calls_failures_and_audio_minutes():
    counts = run(None, stop_after=4)
    assert (counts.done, counts.failed, counts.total) == (4, 1, 8)
    assert counts.audio_s == 90.0  # 3 readable calls of 30 s
    assert counts.findings == 1 + 2 + 1
    assert counts.failures == [("call_3", "not a readable audio file")]
    assert counts.audio_min_per_s() == pytest.approx(1.5 / 40)  # 1.5 min in 40 s
    # 4 left at the pace of the 3 audited (40 s): the quick failure does not count.
    assert counts.eta_s() == pytest.approx(40.0 / 3 * 4)
    done = run(None)
    assert (done.done, done.failed, done.audio_s, done.eta_s()) == (8, 2, 210.0, 0.0)
    assert batch.Progress(total=3).eta_s() is None  # nothing finished yet: no estimate
    only_failed = batch.Progress(total=3)
    only_failed.update(fake_batch()[2])
    assert only_failed.eta_s() is None


def test_plain_lines_on_a_pipe_one_per_call_without_ansi_codes():
    out = io.StringIO()
    run(progress.PlainLines(out))
    lines = out.getvalue().splitlines()
    assert len(lines) == 8 and not ANSI.search(out.getvalue())
    assert lines[0] == (
        "[1/8] call_1: 1 findings (0.5 audio min done; 0.05 audio min/s, ETA 0:01:10, 0 failed)"
    )
    assert lines[2].startswith("[3/8] call_3: FAILED: not a readable audio file (1.0 audio min")
    assert lines[2].endswith("1 failed)")
    assert lines[7].endswith("ETA 0:00:00, 2 failed)")
    # Every 4th call: the 4th and the 8th, and each failure whenever it happens.
    out = io.StringIO()
    run(progress.PlainLines(out, every=4))
    assert [line.split("]")[0] for line in out.getvalue().splitlines()] == [
        "[3/8", "[4/8", "[6/8", "[8/8"
    ]  # fmt: skip


def test_a_terminal_gets_a_live_bar_with_counts_rate_eta_and_failures():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140, color_system="standard")
    run(progress.RichBar(console), stop_after=3)
    text = out.getvalue()
    assert ANSI.search(text)  # drawn for a terminal
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "3/8" in plain and "auditing" in plain
    assert "0.03 audio min/s" in plain and "ETA 0:01:15" in plain and "1 failed" in plain
    assert "[3/8] call_3: FAILED" in plain  # each finished call's line, above the bar


def test_the_stream_decides_bar_or_lines(monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert isinstance(progress.for_stream(io.StringIO()), progress.PlainLines)
    monkeypatch.setenv("FORCE_COLOR", "1")  # as Rich reads it: a terminal
    assert isinstance(progress.for_stream(io.StringIO()), progress.RichBar)
    monkeypatch.setenv("TERM", "dumb")  # a terminal that cannot redraw a line
    assert isinstance(progress.for_stream(io.StringIO()), progress.PlainLines)


def test_the_console_log_leaves_out_what_the_sink_shows():
    """Prefect's console handler skips the per-call records while a sink shows them (its
    API log keeps them), prints through a bar's console, and is restored after."""
    from prefect.logging.handlers import PrefectConsoleHandler

    from flows.runner import _showing

    stream = io.StringIO()
    handler = PrefectConsoleHandler(stream=stream)
    root = logging.getLogger()
    root.addHandler(handler)
    log = logging.getLogger("callaudit.test-progress")
    log.setLevel(logging.INFO)
    original = handler.console
    try:
        with _showing(progress.PlainLines(io.StringIO())):
            assert progress.active() is not None
            log.info("[1/2] a: 0 findings", extra=progress.LOG_EXTRA)
            log.info("worker pid 42")
        bar_out = io.StringIO()
        bar = progress.RichBar(Console(file=bar_out, force_terminal=True, width=100))
        with _showing(bar):
            assert handler.console is bar.console
            log.info("task finished")
        log.info("[2/2] b: 1 findings", extra=progress.LOG_EXTRA)  # no sink: logged
    finally:
        root.removeHandler(handler)
    assert progress.active() is None and handler.console is original and not handler.filters
    assert "[1/2]" not in stream.getvalue() and "worker pid 42" in stream.getvalue()
    assert "task finished" in bar_out.getvalue() and "task finished" not in stream.getvalue()
    assert "[2/2] b: 1 findings" in stream.getvalue()


def test_the_flow_reports_each_call_to_the_sink(tmp_path, monkeypatch):
    """The Prefect flow in process (temporary Prefect server, scripted transcriber in
    place of Whisper): the sink gets a line per call, in the order they finished."""
    from prefect.testing.utilities import prefect_test_harness

    import flows.audit_flow as audit_flow
    from audit.pipeline import audit_call
    from flows.runner import run_audit
    from tests.test_manifest import scripted

    monkeypatch.setattr(
        audit_flow,
        "audit_call",
        lambda call, options: audit_call(call, options, transcriber=scripted(call.call_id)),
    )
    monkeypatch.setattr(audit_flow, "get_model", lambda options: None)
    out = io.StringIO()
    with prefect_test_harness():
        summary = run_audit(
            progress_sink=progress.PlainLines(out),
            inbox=str(SAMPLES / "inbox"),
            db=str(tmp_path / "p.duckdb"),
        )
    lines = out.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == [f"[{i}/8" for i in range(1, 9)]
    assert all(re.search(r"audio min/s, ETA \d:\d\d:\d\d, 0 failed\)$", x) for x in lines)
    assert summary["audited"] == 8 and progress.active() is None
