"""``callaudit sql``: a query's answer as a table, CSV or JSON, or an interactive shell.

Compliance officers ask the audit database questions in plain SQL.  A query given on the
command line is run on a read-only connection (it can't change the audit) and printed,
and the file is let go at once.  DuckDB lets one process write or several read, never
both: while a shell is open the nightly audit waits for it (a few seconds) and then
fails, so a shell is for the day, closed before the night.  Without a query, the
interactive shell is the DuckDB CLI installed beside Python (the ``duckdb-cli`` wheel
pinned to the library's version, so it reads the file exactly as the library wrote it);
an encrypted database, whose key must not appear on a command line, gets a small shell
in this process instead.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import duckdb

FORMATS = ("table", "csv", "json")
PROMPT = "callaudit> "
MORE = "        -> "
TABLES = (
    "SELECT table_name, table_type FROM information_schema.tables ORDER BY table_type, table_name"
)


def duckdb_cli() -> Path | None:
    """The DuckDB CLI of this environment (``.venv/bin/duckdb``), if installed."""
    candidate = Path(sys.executable).parent / "duckdb"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def run_query(con: duckdb.DuckDBPyConnection, query: str, fmt: str = "table") -> str:
    """The answer to ``query`` in ``fmt`` (``FORMATS``); a statement without rows says
    so.  duckdb.Error propagates: the caller reports it."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if fmt == "table":
        relation = con.sql(query)
        return "ok (no rows to show)" if relation is None else str(relation).rstrip("\n")
    cur = con.execute(query)
    if cur.description is None:
        return "ok (no rows to show)"
    columns = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    return "\n".join(
        json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False, default=_jsonable)
        for row in rows
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def cli_command(db: Path, writable: bool = False) -> list[str] | None:
    """The DuckDB CLI command line that opens ``db`` (None when the CLI is missing)."""
    cli = duckdb_cli()
    if cli is None:
        return None
    return [str(cli), *([] if writable else ["-readonly"]), str(db)]


def shell(
    con: duckdb.DuckDBPyConnection,
    read: Callable[[str], str] = input,
    out: TextIO | None = None,
) -> int:
    """A minimal SQL shell on ``con``: statements end with ``;``; ``.quit`` or end of
    input leaves.  An error is printed and the shell goes on."""
    out = out or sys.stdout
    print("SQL ends with ';'. .tables lists the tables and views, .quit leaves.", file=out)
    pending: list[str] = []
    while True:
        try:
            line = read(MORE if pending else PROMPT)
        except (EOFError, KeyboardInterrupt):
            print(file=out)
            return 0
        command = line.strip()
        if not pending and command in (".quit", ".exit", "\\q"):
            return 0
        if not pending and command == ".tables":
            query = TABLES
        else:
            if command:
                pending.append(line)
            if not pending or not command.endswith(";"):
                continue
            query, pending = "\n".join(pending), []
        try:
            print(run_query(con, query), file=out)
        except duckdb.Error as exc:
            print(f"error: {' '.join(str(exc).splitlines())}", file=out)
