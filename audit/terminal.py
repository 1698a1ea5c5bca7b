"""What the command line writes for people: coloured error lines and the closing summary.

Rich decides about colour the usual way: colour on a terminal, none when the stream is a
pipe or a file (tests, cron, logs), none with ``NO_COLOR`` set, colour with
``FORCE_COLOR`` set.  Imported only when there is something to write, so commands that
print nothing of this kind never load Rich.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text


def console(file: TextIO | None = None, stderr: bool = False, **kw) -> Console:
    # soft_wrap: a long message stays one line (Rich would otherwise wrap it at 80
    # columns when the stream is not a terminal); highlight=False: no guessed colours.
    # NO_COLOR: Rich alone drops colours but keeps bold; the user asked for plain text.
    if os.environ.get("NO_COLOR"):
        kw.setdefault("color_system", None)
    return Console(file=file, stderr=stderr, soft_wrap=True, highlight=False, **kw)


def print_error(message: str, prog: str = "callaudit", label: str = "error") -> None:
    """``PROG: error: MESSAGE`` on stderr, one line, ``error`` in red on a terminal."""
    line = Text(f"{prog}: ")
    line.append(f"{label}:", style="bold red")
    line.append(f" {' '.join(message.splitlines())}")
    console(stderr=True).print(line)


def is_terminal(file: TextIO | None = None) -> bool:
    return console(file=file or sys.stdout).is_terminal


def summary_tables(summary: dict) -> list:
    """The closing summary of ``callaudit audit`` as Rich renderables (for a terminal;
    a pipe gets the plain text of ``audit.batch.format_summary``)."""
    from audit.batch import display_name

    run = Table(title="callaudit summary", show_header=False, title_justify="left")
    run.add_column("what", style="bold")
    run.add_column("value")
    failed = summary["failed"]
    run.add_row("recordings found", str(summary["discovered"]))
    run.add_row("audited now", str(summary["audited"]))
    run.add_row("skipped, already audited", str(summary["skipped"]))
    run.add_row("failed", Text(str(failed), style="bold red" if failed else ""))
    run.add_row("audio", f"{summary['audio_minutes']:.1f} min")
    run.add_row("database", str(summary["db"]))
    run.add_row("calls in database", str(summary["db_calls"]))
    run.add_row("findings in db", str(summary["db_findings"]))
    manifest = summary.get("manifest")
    if manifest:
        run.add_row(
            "manifest",
            f"{manifest['file']} ({manifest['encoding']}): "
            f"{manifest['accepted']} of {manifest['rows']} rows accepted",
        )
    contact = summary.get("contact")
    if contact:
        hits = ", ".join(f"{rule} {n}" for rule, n in contact["findings"].items())
        run.add_row("contact policy", f"{contact['policy']} {contact['version']} ({hits})")
    out: list = [run]
    by_cat = summary["findings_by_category"]
    if by_cat:
        cats = Table(title="findings by category", title_justify="left")
        cats.add_column("category")
        cats.add_column("findings", justify="right")
        for cat, n in by_cat.items():
            cats.add_row(cat, str(n))
        out.append(cats)
    problems = [
        (display_name(call_id), display_name(str(error), 300))
        for call_id, error in summary["failures"]
    ]
    if manifest:
        problems += [("MANIFEST", e) for e in manifest["errors"]]
        if manifest.get("ignored_columns"):
            ignored = ", ".join(manifest["ignored_columns"])
            problems.append(("MANIFEST", f"unknown column(s) ignored: {ignored}"))
        problems += [
            ("MANIFEST", f"re-linked {r} (audited before under its file name)")
            for r in manifest.get("relinked", [])
        ]
    if problems:
        table = Table(title="problems", title_justify="left", title_style="bold red")
        table.add_column("call or file")
        table.add_column("what went wrong")
        for who, what in problems:
            table.add_row(who, what)
        out.append(table)
    return out


def print_summary(summary: dict, file: TextIO | None = None) -> None:
    """The closing summary: Rich tables on a terminal, the plain lines otherwise (what
    scripts and tests read: ``audited now      : 8``)."""
    from audit.batch import format_summary
    from audit.contact import format_checks

    out = console(file=file or sys.stdout, markup=False)  # names such as x[/]y.wav are text
    if not out.is_terminal:
        print(format_summary(summary), file=out.file)
        checks = format_checks(summary)
        print(checks, file=out.file)
        return
    out.print()
    for table in summary_tables(summary):
        out.print(table)
