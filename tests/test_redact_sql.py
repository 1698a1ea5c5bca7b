"""`callaudit redact` (copies with PII bleeped, originals untouched) and `callaudit sql`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import duckdb
import numpy as np
import pytest

from audit import store
from audit.cli import main
from audit.pipeline import AuditOptions, CallInput, audit_call
from audit.redact import output_name, redact_calls
from audit.sqlshell import run_query, shell
from audit.transcribe import Utterance
from tests.conftest import tone, write_wav

AGENT_HZ, CUSTOMER_HZ = 300.0, 500.0


def _audit(tmp_path: Path, lines, name: str = "pii-call") -> tuple[Path, Path]:
    """A stereo call (agent 300 Hz, customer 500 Hz) audited with what ``lines`` says."""
    (tmp_path / "inbox").mkdir(exist_ok=True)
    wav = write_wav(
        tmp_path / "inbox" / f"{name}.wav",
        [tone(10.0, freq=AGENT_HZ), tone(10.0, freq=CUSTOMER_HZ, amp=0.05)],
    )

    def heard(channels, options):
        return [Utterance(i, spk, a, b, t, t, -0.2, 0.01) for i, (spk, a, b, t) in enumerate(lines)]

    db = tmp_path / "audit.duckdb"
    result = audit_call(CallInput(name, str(wav)), AuditOptions(), transcriber=heard)
    with store.connect(db) as con:
        store.write_call(con, result)
    return db, wav


PII_CALL = [
    ("agent", 0.0, 2.5, "您的手机号是13812345678对吧"),
    ("customer", 3.0, 5.0, "对，我的身份证号是110101199003071234"),
    ("agent", 6.0, 8.0, "好的，请您月底前还款"),
]


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return frames.reshape(-1, w.getnchannels()).astype(np.float32) / 32767, w.getframerate()


def _peak_hz(piece: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(piece * np.hanning(len(piece))))
    return float(np.fft.rfftfreq(len(piece), 1 / rate)[int(np.argmax(spectrum))])


def test_every_pii_span_is_bleeped_on_both_channels_and_the_rest_kept(tmp_path):
    db, wav = _audit(tmp_path, PII_CALL)
    original = wav.read_bytes()
    with store.connect(db, read_only=True) as con:
        done = redact_calls(con, tmp_path / "out")
    assert [d.call_id for d in done] == ["pii-call"] and done[0].error is None
    assert done[0].spans == 2 and done[0].bleeped_s == pytest.approx(4.5)
    samples, rate = _read_wav(Path(done[0].output))
    assert samples.shape[1] == 2 and abs(len(samples) / rate - 10.0) < 0.05

    def at(a: float, b: float, channel: int) -> float:
        return _peak_hz(samples[int(a * rate) : int(b * rate), channel], rate)

    for channel in (0, 1):  # the agent's number and the customer's ID: both channels
        assert abs(at(0.3, 2.2, channel) - 1000) < 30
        assert abs(at(3.3, 4.7, channel) - 1000) < 30
    assert abs(at(6.2, 7.8, 0) - AGENT_HZ) < 30  # no number said: untouched
    assert abs(at(6.2, 7.8, 1) - CUSTOMER_HZ) < 30
    assert wav.read_bytes() == original
    with open(tmp_path / "out" / "redaction.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {
            "call_id": "pii-call",
            "source": str(wav),
            "output": done[0].output,
            "pii_spans": "2",
            "bleeped_s": "4.5",
            "error": "",
        }
    ]


def test_a_changed_or_missing_recording_is_listed_not_redacted(tmp_path):
    db, wav = _audit(tmp_path, PII_CALL)
    write_wav(wav, [tone(10.0, freq=440), tone(10.0, freq=440)])  # replaced since the audit
    with store.connect(db, read_only=True) as con:
        done = redact_calls(con, tmp_path / "out")
    assert done[0].output is None and "changed since it was audited" in done[0].error
    assert not (tmp_path / "out" / output_name("pii-call")).exists()
    wav.unlink()
    with store.connect(db, read_only=True) as con:
        done = redact_calls(con, tmp_path / "out")
    assert "recording not found" in done[0].error


def test_the_cli_refuses_the_inbox_as_output_and_exits_3_when_one_call_fails(tmp_path, capsys):
    db, wav = _audit(tmp_path, PII_CALL)
    inbox = wav.parent
    before = sorted(p.name for p in inbox.iterdir())
    assert main(["redact", "--db", str(db), "--out", str(inbox)]) == 2
    assert "outside every inbox" in capsys.readouterr().err
    assert sorted(p.name for p in inbox.iterdir()) == before  # nothing written there
    out = tmp_path / "shared"
    assert main(["redact", "--db", str(db), "--out", str(out)]) == 0
    assert "1 of 1 recordings redacted" in capsys.readouterr().out
    wav.unlink()
    assert main(["redact", "--db", str(db), "--out", str(out), "--call", "pii-call"]) == 3
    assert "not redacted: recording not found" in capsys.readouterr().out
    assert main(["redact", "--db", str(db), "--out", str(out), "--call", "nope"]) == 2
    assert main(["redact", "--db", str(tmp_path / "none.duckdb"), "--out", str(out)]) == 1
    assert not (tmp_path / "none.duckdb").exists()


def test_out_inside_an_audited_inbox_is_refused(tmp_path, capsys):
    """The next audit walks the inbox's sub-folders: copies there would be new calls."""
    db, wav = _audit(tmp_path, PII_CALL)
    with store.connect(db) as con:
        con.execute("INSERT INTO runs (run_id, inbox) VALUES ('r1', ?)", [str(tmp_path)])
    for out in (tmp_path / "redacted", tmp_path / "2026" / "03"):  # beside, not in, inbox/
        assert main(["redact", "--db", str(db), "--out", str(out)]) == 2
        assert "outside every inbox" in capsys.readouterr().err
        assert not out.exists()


def test_ids_that_read_alike_get_distinct_copies_and_the_list_keeps_earlier_rows(tmp_path):
    from audit.redact import _output_names

    names = _output_names(["a/b", "a_b", "x"])
    assert names["a_b"] == "a_b.wav" and names["x"] == "x.wav"
    assert names["a/b"].startswith("a_b-") and len(set(names.values())) == 3
    db, wav = _audit(tmp_path, PII_CALL)
    out = tmp_path / "out"
    with store.connect(db, read_only=True) as con:
        redact_calls(con, out)
        redact_calls(con, out, ["pii-call"])  # one call again: the list still has it once
    with open(out / "redaction.csv", encoding="utf-8") as f:
        assert [r["call_id"] for r in csv.DictReader(f)] == ["pii-call"]
    wav.unlink()  # gone since: its earlier copy must not stay beside "not redacted"
    with store.connect(db, read_only=True) as con:
        done = redact_calls(con, out)
    assert done[0].output is None and not (out / "pii-call.wav").exists()


def test_sql_prints_a_query_as_table_csv_and_json(tmp_path, capsys):
    db, _ = _audit(tmp_path, PII_CALL)
    query = "SELECT speaker, count(*) AS n FROM utterances GROUP BY 1 ORDER BY 1"
    assert main(["sql", "--db", str(db), query]) == 0
    table = capsys.readouterr().out
    assert "│ agent" in table and "│ customer" in table and "speaker" in table
    assert main(["sql", "--db", str(db), "--format", "csv", query]) == 0
    assert capsys.readouterr().out.splitlines() == ["speaker,n", "agent,2", "customer,1"]
    assert main(["sql", "--db", str(db), "--format", "json", query]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(x) for x in lines] == [
        {"speaker": "agent", "n": 2},
        {"speaker": "customer", "n": 1},
    ]
    # Stored text is masked: the shell shows what the database holds, no more.
    assert main(["sql", "--db", str(db), "--format", "csv", "SELECT text FROM utterances"]) == 0
    assert "13812345678" not in capsys.readouterr().out


def test_sql_is_read_only_unless_asked_and_a_bad_query_is_one_line(tmp_path, capsys):
    db, _ = _audit(tmp_path, PII_CALL)
    assert main(["sql", "--db", str(db), "DELETE FROM findings"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "read-only" in err
    assert main(["sql", "--db", str(db), "SELEC 1"]) == 2
    assert main(["sql", "--db", str(tmp_path / "none.duckdb"), "SELECT 1"]) == 1
    assert not (tmp_path / "none.duckdb").exists()
    assert main(["sql", "--db", str(db), "--write", "DELETE FROM reviews"]) == 0


def test_sql_works_on_an_encrypted_database(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CA_KEY", "correct horse battery staple")
    db = tmp_path / "enc.duckdb"
    with store.connect(db, encryption_key="correct horse battery staple") as con:
        con.execute("INSERT INTO calls (call_id, status) VALUES ('c1', 'ok')")
    args = ["sql", "--db", str(db), "--format", "csv", "SELECT call_id FROM calls"]
    assert main([*args, "--encryption-key-env", "CA_KEY"]) == 0
    assert capsys.readouterr().out.split() == ["call_id", "c1"]
    assert main(args) == 1  # without its key: a clear error, not a crash


def test_the_shell_runs_statements_across_lines_and_goes_on_after_an_error(tmp_path):
    import io

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 42 AS answer")
    lines = iter(["SELECT answer", "FROM t;", "SELEC 1;", ".tables", "SELECT 'after' AS x;"])

    def read(_prompt: str) -> str:
        line = next(lines, None)
        if line is None:
            raise EOFError  # as input() at the end of a piped stdin
        return line

    out = io.StringIO()
    assert shell(con, read=read, out=out) == 0
    text = out.getvalue()
    assert "42" in text and "error:" in text and "after" in text and "│ t " in text
    assert run_query(con, "CREATE TABLE u (x INT)") == "ok (no rows to show)"


def test_sql_without_a_query_on_a_terminal_opens_the_duckdb_cli(tmp_path):
    """On a terminal, the pinned duckdb-cli opens the file read-only: the shell the
    README points to works after the set-up."""
    import pty
    import select
    import time

    db, _ = _audit(tmp_path, PII_CALL)
    if not (Path(sys.executable).parent / "duckdb").exists():
        pytest.skip("duckdb-cli is not installed in this environment")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit.cli", "sql", "--db", str(db)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=Path(__file__).resolve().parent.parent,
    )
    os.close(slave)
    lines = [
        b"SELECT count(*) AS utterances_n FROM utterances;",
        b"DELETE FROM findings;",
        b".quit",
    ]
    seen, answered, prompts = b"", 0, 0
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
            # The CLI asks the terminal where its cursor is (ESC [6n): answer as one would,
            # and type the next line at each new prompt ("D ").
            while seen.count(b"\x1b[6n") > answered:
                os.write(master, b"\x1b[1;1R")
                answered += 1
            if seen.count(b"fD ") > prompts and lines:
                prompts = seen.count(b"fD ")
                os.write(master, lines.pop(0) + b"\r")
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert "utterances_n" in text and "3" in text, text
    assert "read-only" in text.lower(), text  # -readonly: the shell can't change the audit
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM findings").fetchone()[0] > 0
