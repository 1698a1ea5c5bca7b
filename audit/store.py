"""DuckDB storage: schema and views from ``sql/``, one transaction per call.

DuckDB allows one writing process per file, so exactly one process (the flow's)
opens the database for writing; workers hand it ``CallResult`` objects.  Each call
is replaced as a whole (delete + insert in one transaction), which makes a re-run
idempotent and a crash harmless: a call is either fully stored or not at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from pathlib import Path

import duckdb

from audit.conduct import CallMetrics
from audit.pipeline import CallResult

SQL_DIR = Path(os.environ.get("CALLAUDIT_SQL_DIR", Path(__file__).resolve().parent.parent / "sql"))


class StoreError(RuntimeError):
    """The database can't be opened or written; the message says why."""


def extension_dir() -> str | None:
    """Offline DuckDB extensions shipped as PyPI wheels (duckdb-ext-*)."""
    try:
        import duckdb_ext  # type: ignore[import-not-found]
    except ImportError:
        return None
    base = Path(next(iter(duckdb_ext.__path__))) / "extensions"
    return str(base) if base.is_dir() else None


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def view_files() -> list[Path]:
    return sorted((SQL_DIR / "views").glob("*.sql"))


def key_from_env(var: str | None) -> str | None:
    """The encryption key from an environment variable (never from the command line,
    where it would show in ``ps`` and shell history)."""
    if not var:
        return None
    key = os.environ.get(var)
    if not key:
        raise StoreError(f"--encryption-key-env {var}: the environment variable is not set")
    return key


def _open_error(db: Path, exc: Exception) -> StoreError:
    msg = str(exc).splitlines()[0]
    low = msg.lower()
    if "could not set lock" in low or "conflicting lock" in low:
        return StoreError(f"{db} is in use by another process (DuckDB allows one writer): {msg}")
    if "without a key" in low:
        return StoreError(f"{db} is encrypted: pass --encryption-key-env VAR with its key")
    if "wrong encryption key" in low:
        return StoreError(f"{db}: wrong encryption key")
    return StoreError(f"cannot open {db}: {msg}")


# How long opening a database waits while another process holds it: the review console
# (``callaudit console``) opens the file for a moment per request, and the nightly audit
# must not fail because it started in that moment.
LOCK_WAIT_S = 5.0


def connect(
    db: str | Path,
    read_only: bool = False,
    encryption_key: str | None = None,
    lock_wait_s: float = LOCK_WAIT_S,
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the audit database with schema and views applied.

    With ``encryption_key`` the file is encrypted at rest (DuckDB's AES database
    encryption).  Writing encrypted files needs OpenSSL from the httpfs extension,
    which the ``duckdb-ext-httpfs`` wheel provides offline.  While another process
    holds the file, opening is retried for ``lock_wait_s`` seconds.
    """
    db = Path(db)
    config: dict[str, str] = {}
    ext = extension_dir()
    if ext:
        config["extension_directory"] = ext
    if not read_only:
        db.parent.mkdir(parents=True, exist_ok=True)
    new_file = not db.exists()
    not_duckdb = _not_a_duckdb_file(db)
    if not_duckdb:
        raise StoreError(f"{db} is {not_duckdb}: give --db a new file or a callaudit database")
    if new_file and not read_only:
        _create(db, encryption_key, config)
    con = _open_waiting(db, read_only, encryption_key, config, lock_wait_s)
    foreign = _foreign_tables(con)
    if foreign:
        con.close()
        raise StoreError(
            f"{db} is another application's database (tables: {', '.join(foreign[:8])}); "
            "callaudit leaves it untouched: give --db a new file"
        )
    if not read_only:
        try:
            apply_schema(con)
        except duckdb.Error as exc:  # a full disk, most likely: keep the file as it was
            no_checkpoint_at_close(con)
            con.close()
            raise StoreError(f"could not prepare the database {db}: {exc}") from exc
    return con


def is_locked(exc: Exception) -> bool:
    """DuckDB's error when another process holds the file (or ours, made of it)."""
    return "in use by another process" in str(exc) or "Could not set lock" in str(exc)


def _open_waiting(
    db: Path, read_only: bool, encryption_key: str | None, config: dict[str, str], wait_s: float
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            return _open_file(db, read_only, encryption_key, config)
        except StoreError as exc:
            if not is_locked(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _open_file(
    db: Path, read_only: bool, encryption_key: str | None, config: dict[str, str]
) -> duckdb.DuckDBPyConnection:
    old_umask = os.umask(0o077)  # debtors' words: readable by the owner only
    try:
        if encryption_key is None:
            return duckdb.connect(str(db), read_only=read_only, config=config)
        con = duckdb.connect(config=config)
        con.execute("LOAD httpfs")
        key = encryption_key.replace("'", "''")
        mode = "READ_ONLY, " if read_only else ""
        path = str(db).replace("'", "''")
        con.execute(f"ATTACH '{path}' AS audit ({mode}ENCRYPTION_KEY '{key}')")
        con.execute("USE audit")
        return con
    except (duckdb.IOException, duckdb.CatalogException, duckdb.InvalidInputException) as exc:
        raise _open_error(db, exc) from exc
    finally:
        os.umask(old_umask)


def _create(db: Path, encryption_key: str | None, config: dict[str, str]) -> None:
    """A new database is built beside its path and renamed into place once its schema is
    written: a full disk or a kill while creating it leaves no file that can't be
    opened (DuckDB can't read a file whose first pages were cut short)."""
    tmp = db.with_name(f".{db.name}.{os.getpid()}.creating")
    try:
        con = _open_file(tmp, False, encryption_key, config)
        try:
            apply_schema(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, db)  # never over a database another process just created
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links (some SMB/FUSE mounts)
            if not db.exists():
                os.rename(tmp, db)
    except (OSError, duckdb.Error) as exc:
        raise StoreError(f"could not create the database {db}: {exc}") from exc
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


# Every callaudit database, of any version, has these: a file with other tables and
# not these belongs to something else, and adding ours to it would change it.
_OUR_TABLES = frozenset({"calls", "utterances", "findings"})


def _not_a_duckdb_file(db: Path) -> str | None:
    """What an existing file is when it is not a DuckDB database (None if it is one)."""
    try:
        with open(db, "rb") as f:
            head = f.read(16)
    except OSError:
        return None  # missing, a folder or unreadable: DuckDB's own error says why
    if not head:
        return None  # empty: DuckDB makes a database of it
    if head.startswith(b"SQLite format 3"):
        return "a SQLite database, not a DuckDB one"
    if head[8:12] != b"DUCK":
        return "not a DuckDB database file"
    return None


def _foreign_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "ORDER BY table_name"
        ).fetchall()
    ]
    if not tables or _OUR_TABLES <= set(tables):
        return []
    return tables


def apply_schema(con: duckdb.DuckDBPyConnection) -> None:
    # Tables in one transaction: a process killed while creating a database leaves all
    # of them or none, never a file the next open half-knows.  Views are outside it
    # (create_views retries on errors, which would abort a transaction); they hold no
    # data and every open makes them again.
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(read_sql("schema.sql"))
        con.execute(read_sql("macros.sql"))  # local_time(), used by views and contact rules
        con.execute("COMMIT")
    except Exception:
        rollback_quietly(con)
        raise
    create_views(con)


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """One view per file; a view built on another (call_risk on reportable_findings) is
    created once the one it reads exists, whatever the file names' order."""
    pending = view_files()
    while pending:
        waiting = []
        for view in pending:
            try:
                con.execute(view.read_text(encoding="utf-8"))
            except duckdb.CatalogException:
                waiting.append(view)
        if len(waiting) == len(pending):  # nothing could be made: a real error
            con.execute(waiting[0].read_text(encoding="utf-8"))
        pending = waiting


@dataclass(frozen=True)
class PriorAudit:
    call_id: str
    sha256: str
    status: str
    model: str | None
    rules_version: str | None


def prior_audits(con: duckdb.DuckDBPyConnection) -> dict[str, PriorAudit]:
    """Audited recordings by content hash (a renamed copy has the same hash)."""
    rows = con.execute(
        "SELECT call_id, sha256, status, model, rules_version FROM calls WHERE sha256 IS NOT NULL"
    ).fetchall()
    return {r[1]: PriorAudit(*r) for r in rows}


_CALL_COLUMNS = (
    "call_id",
    "source_path",
    "sha256",
    "duration_s",
    "channels",
    "sample_rate",
    "codec",
    "status",
    "error",
    "model",
    "rules_version",
    "audited_at",
    "processing_s",
    "callee_inferred",
    "channel_roles",
)


def write_call(con: duckdb.DuckDBPyConnection, result: CallResult) -> None:
    """Replace everything stored for this call, atomically."""
    values = [getattr(result, c) for c in _CALL_COLUMNS]
    placeholders = ", ".join("?" for _ in _CALL_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _CALL_COLUMNS if c != "call_id")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM findings WHERE call_id = ?", [result.call_id])
        con.execute("DELETE FROM utterances WHERE call_id = ?", [result.call_id])
        con.execute(
            f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) VALUES ({placeholders}) "
            f"ON CONFLICT (call_id) DO UPDATE SET {updates}",
            values,
        )
        if result.utterances:
            con.executemany(
                "INSERT INTO utterances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        result.call_id,
                        u.idx,
                        u.speaker,
                        u.start_s,
                        u.end_s,
                        u.text,
                        u.raw_text,
                        u.avg_logprob,
                        u.no_speech_prob,
                        u.asr_flag,
                    ]
                    for u in result.utterances
                ],
            )
        write_findings(con, result.findings, result.rules_version)
        write_metrics(con, result.call_id, result.metrics)
        con.execute("COMMIT")
    except Exception as exc:
        rollback_quietly(con)
        if isinstance(exc, (duckdb.IOException, duckdb.TransactionException)):
            raise StoreError(
                f"could not store call {result.call_id} (nothing of it was kept): "
                f"{str(exc).splitlines()[0]}"
            ) from exc
        raise


METRIC_COLUMNS = tuple(f.name for f in fields(CallMetrics))


def write_metrics(
    con: duckdb.DuckDBPyConnection, call_id: str, metrics: CallMetrics | None
) -> None:
    """The call's ``call_metrics`` row, replaced (inside the caller's transaction)."""
    con.execute("DELETE FROM call_metrics WHERE call_id = ?", [call_id])
    if metrics is None:
        return
    cols = ("call_id", *METRIC_COLUMNS)
    con.execute(
        f"INSERT INTO call_metrics ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [call_id, *astuple(metrics)],
    )


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open (DuckDB aborts it itself on I/O errors),
    and keep the database file as it is until the next clean open."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass
    no_checkpoint_at_close(con)


def no_checkpoint_at_close(con: duckdb.DuckDBPyConnection) -> None:
    """After a failed write, closing must not checkpoint: measured with DuckDB 1.4.4, a
    write-ahead log that hit a full disk, checkpointed at close, left a database file
    that no longer opens ("Corrupt database file: computed checksum ... does not match").
    Left alone, the log's committed part is replayed at the next open."""
    try:
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
    except duckdb.Error:
        pass


def relink_call(con: duckdb.DuckDBPyConnection, old: str, new: str) -> None:
    """Move an audited call from id ``old`` to ``new`` in one transaction: its row,
    utterances and findings (ids recomputed, as they hash the call id) and the reviews
    of those findings.  A call-record placeholder or a failed attempt already under
    ``new`` gives way (the caller never re-links onto an audited call).  Nothing is
    transcribed again."""
    from audit.pipeline import conduct_finding_id, finding_id

    con.execute("BEGIN TRANSACTION")
    try:
        # A call-record placeholder or a failed attempt under the new id gives way.
        con.execute(
            "DELETE FROM calls WHERE call_id = ? AND status IN ('no_recording', 'failed')", [new]
        )
        con.execute(
            "INSERT INTO calls SELECT * REPLACE (? AS call_id) FROM calls WHERE call_id = ?",
            [new, old],
        )
        con.execute(
            "INSERT INTO utterances SELECT * REPLACE (? AS call_id) FROM utterances "
            "WHERE call_id = ?",
            [new, old],
        )
        moved = con.execute(
            "SELECT finding_id, rule_id, utterance_idx, char_start, via, start_s FROM findings "
            "WHERE call_id = ?",
            [old],
        ).fetchall()
        ids = {
            f: conduct_finding_id(new, rule, at)
            if via == "conduct"
            else finding_id(new, rule, idx, start)
            for f, rule, idx, start, via, at in moved
        }
        con.executemany(
            "INSERT INTO findings SELECT * REPLACE (? AS finding_id, ? AS call_id) "
            "FROM findings WHERE finding_id = ?",
            [[to, new, frm] for frm, to in ids.items()],
        )
        con.execute("DELETE FROM call_metrics WHERE call_id = ?", [new])
        con.execute(
            "INSERT INTO call_metrics SELECT * REPLACE (? AS call_id) FROM call_metrics "
            "WHERE call_id = ?",
            [new, old],
        )
        con.execute("DELETE FROM call_metrics WHERE call_id = ?", [old])
        for table in ("reviews", "review_log"):
            con.executemany(
                f"UPDATE {table} SET finding_id = ? WHERE finding_id = ?",
                [[to, frm] for frm, to in ids.items()],
            )
        con.execute("DELETE FROM findings WHERE call_id = ?", [old])
        con.execute("DELETE FROM utterances WHERE call_id = ?", [old])
        con.execute("DELETE FROM calls WHERE call_id = ?", [old])
        con.execute("COMMIT")
    except Exception:
        rollback_quietly(con)
        raise


def write_findings(con: duckdb.DuckDBPyConnection, findings: Iterable, rules_version: str) -> None:
    rows = [
        [
            f.finding_id,
            f.call_id,
            f.rule_id,
            f.category,
            f.severity,
            f.speaker,
            f.utterance_idx,
            f.start_s,
            f.end_s,
            f.text,
            f.match,
            f.char_start,
            f.char_end,
            f.via,
            f.citation,
            rules_version,
            getattr(f, "score", None),
        ]
        for f in findings
    ]
    if rows:
        con.executemany(
            "INSERT INTO findings (finding_id, call_id, rule_id, category, severity, speaker, "
            "utterance_idx, start_s, end_s, text, match, char_start, char_end, via, citation, "
            "rules_version, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (finding_id) DO NOTHING",
            rows,
        )


_RECORD_COLUMNS = (
    "agent_id",
    "debtor_id",
    "callee_number",
    "callee_relation",
    "started_at",
    "timezone",
    "direction",
    "answered",
)


def write_call_records(
    con: duckdb.DuckDBPyConnection, records: Iterable, notes: dict[str, str] | None = None
) -> int:
    """Store call-detail records (``audit.manifest.CallRecord``) in one transaction.

    An audited call gets its record fields; audio columns and status stay as audited.
    A record without an audited recording becomes a call with status 'no_recording'
    (it still counts for the contact rules); ``notes`` say why, per call id.
    """
    notes = notes or {}
    cols = ("call_id", "source_path", "duration_s", "status", "error", *_RECORD_COLUMNS)
    rows = [
        [r.call_id, r.path, r.duration_s, "no_recording", notes.get(r.call_id)]
        + [getattr(r, c) for c in _RECORD_COLUMNS]
        for r in records
    ]
    keep_audio = ("source_path", "duration_s", "error")
    updates = [f"{c} = excluded.{c}" for c in _RECORD_COLUMNS] + [
        f"{c} = CASE WHEN calls.status = 'no_recording' THEN excluded.{c} ELSE calls.{c} END"
        for c in keep_audio
    ]
    if not rows:
        return 0
    con.execute("BEGIN TRANSACTION")
    try:
        con.executemany(
            f"INSERT INTO calls ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
            f"ON CONFLICT (call_id) DO UPDATE SET {', '.join(updates)}",
            rows,
        )
        con.execute("COMMIT")
    except Exception:
        rollback_quietly(con)
        raise
    return len(rows)


def record_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    started_at: datetime,
    inbox: str,
    summary: dict,
    model: str,
    rules_version: str,
) -> None:
    """One row per batch: what ran when, with which model and catalogue (audit trail)."""
    con.execute(
        "INSERT OR REPLACE INTO runs VALUES (?, ?, now(), ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            started_at,
            inbox,
            summary["audited"],
            summary["skipped"],
            summary["failed"],
            model,
            rules_version,
        ],
    )


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("calls", "utterances", "findings", "reviews")
    }


def findings_by_category(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute(
        "SELECT category, count(*) FROM findings GROUP BY category ORDER BY count(*) DESC, category"
    ).fetchall()
    return dict(rows)
