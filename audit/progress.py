"""How a batch's progress shows to a person: a live bar on a terminal, plain lines else.

The batch loop (the Prefect flow) counts finished calls in an ``audit.batch.Progress``;
when a sink is showing (the command line installs one with ``showing``), the progress
hands it each finished call:

* ``RichBar``, on a terminal: calls done of total (``3/8``), audio minutes per second,
  ETA and failures so far, with the finished calls' lines printed above the bar;
* ``PlainLines``, when the output is a pipe, a file or a dumb terminal: one plain line
  per call (or per ``every`` calls; failures and the last call always), no ANSI codes.

Without a sink (a run started by Prefect's own worker or ``serve``) the flow's log lines
are the progress, as before.  Nothing here imports Prefect; the flow looks the sink up
with ``active()``, so no object travels as a flow parameter.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from audit.batch import Progress

# Set on the flow's per-call log records, so that the command line's console handlers can
# leave out what its own sink already shows (Prefect's API log keeps every line).
LOG_EXTRA = {"callaudit_progress": True}


class ProgressSink:
    """Where a batch's progress goes: ``start`` once, ``advance`` per finished call,
    ``close`` at the end (also after an error or Ctrl-C)."""

    #: The console a live display draws on (other output should print through it), or None.
    console: Console | None = None

    def start(self, progress: Progress) -> None:  # noqa: B027 - optional hook
        pass

    def advance(self, progress: Progress, line: str, failed: bool = False) -> None:
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class PlainLines(ProgressSink):
    """A plain line per finished call (or per ``every`` calls; a failure and the last call
    always get theirs), flushed at once: what logs, pipes and CI read."""

    def __init__(self, file: TextIO | None = None, every: int = 1):
        self.file = file
        self.every = max(1, every)

    def advance(self, progress: Progress, line: str, failed: bool = False) -> None:
        if failed or progress.done % self.every == 0 or progress.done >= progress.total:
            out = self.file or sys.stderr
            print(line, file=out, flush=True)


class RichBar(ProgressSink):
    """A live Rich progress bar; each finished call's line is printed above it."""

    def __init__(self, console: Console):
        self.console = console
        self._bar = None
        self._task = None

    def start(self, progress: Progress) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("[bold]auditing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("calls · {task.fields[rate]} audio min/s · ETA {task.fields[eta]}"),
            TextColumn("· {task.fields[failed]}"),
            TimeElapsedColumn(),
            console=self.console,
            refresh_per_second=4,
        )
        self._bar.start()
        self._task = self._bar.add_task("audit", total=progress.total, **_fields(progress))

    def advance(self, progress: Progress, line: str, failed: bool = False) -> None:
        from rich.text import Text

        if self._bar is None:
            self.start(progress)
        self._bar.update(self._task, completed=progress.done, **_fields(progress))
        self.console.print(Text(line, style="red" if failed else ""))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _fields(progress: Progress) -> dict:
    failed = f"{progress.failed} failed"
    return {
        "rate": f"{progress.audio_min_per_s():.2f}",
        "eta": format_eta(progress.eta_s()),
        "failed": f"[bold red]{failed}[/]" if progress.failed else failed,
    }


def format_eta(seconds: float | None) -> str:
    """``0:01:05``; ``?`` before the first call has finished."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def for_stream(file: TextIO | None = None, every: int = 1) -> ProgressSink:
    """A live bar when ``file`` (default stderr) is a terminal Rich can animate, plain
    lines otherwise (a pipe, a file, ``TERM=dumb``)."""
    from audit.terminal import console

    # markup=False: Prefect's log lines print through this console while the bar shows,
    # and a file name such as "[red]x.wav" is text, not a style.
    out = console(file=file or sys.stderr, markup=False)
    if out.is_terminal and not out.is_dumb_terminal:
        return RichBar(out)
    return PlainLines(file or sys.stderr, every)


_active: ProgressSink | None = None


@contextmanager
def showing(sink: ProgressSink | None) -> Iterator[ProgressSink | None]:
    """Make ``sink`` the one batches in this process report to, for the block."""
    global _active
    before, _active = _active, sink
    try:
        yield sink
    finally:
        _active = before


def active() -> ProgressSink | None:
    return _active
