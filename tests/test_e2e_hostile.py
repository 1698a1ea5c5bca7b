"""Real-model checks for input only Whisper can get wrong, and encryption at rest."""

from __future__ import annotations

import os
import shutil
import subprocess

import duckdb
import numpy as np
import pytest

from audit import store
from tests.conftest import SAMPLES, write_wav

pytestmark = pytest.mark.e2e


def music(seconds: float, rate: int = 8000) -> np.ndarray:
    """A few bars of chords: tonal, rhythmic, no speech."""
    t = np.arange(int(seconds * rate)) / rate
    notes = [261.6, 329.6, 392.0, 523.3, 440.0, 349.2]
    out = np.zeros_like(t)
    for i, start in enumerate(np.arange(0, seconds, 0.5)):
        seg = (t >= start) & (t < start + 0.45)
        f = notes[i % len(notes)]
        out[seg] += sum(np.sin(2 * np.pi * f * k * t[seg]) / k for k in (1, 2, 3))
    return (0.2 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory, cli):
    work = tmp_path_factory.mktemp("hostile")
    inbox = work / "inbox"
    inbox.mkdir()
    rng = np.random.default_rng(1)
    hiss = (rng.normal(0, 0.0005, 8000 * 20)).astype(np.float32)
    write_wav(inbox / "silent_call.wav", [hiss, hiss.copy()])
    write_wav(inbox / "music_only.wav", [music(15.0), music(15.0)])
    shutil.copy(SAMPLES / "inbox" / "call_04_insult.wav", inbox / "通话 04 insult.wav")
    db = work / "enc.duckdb"
    env = {**os.environ, "CALLAUDIT_TEST_KEY": "correct horse battery staple"}
    proc = subprocess.run(
        [*cli, "audit", str(inbox), "--db", str(db), "--encryption-key-env", "CALLAUDIT_TEST_KEY"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    return {"db": db, "proc": proc, "key": env["CALLAUDIT_TEST_KEY"], "env": env}


def _rows(enc, sql):
    con = store.connect(enc["db"], read_only=True, encryption_key=enc["key"])
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_silence_and_music_yield_no_findings_and_no_invented_text(encrypted):
    assert encrypted["proc"].returncode == 0, encrypted["proc"].stderr[-3000:]
    status = dict(_rows(encrypted, "SELECT call_id, status FROM calls"))
    assert status == {"silent_call": "ok", "music_only": "ok", "通话 04 insult": "ok"}
    findings = dict(_rows(encrypted, "SELECT call_id, count(*) FROM findings GROUP BY 1"))
    assert "silent_call" not in findings and "music_only" not in findings
    assert findings["通话 04 insult"] >= 1
    # any text Whisper produced on silence or music is flagged and kept out of detection
    unflagged = _rows(
        encrypted,
        "SELECT call_id, text FROM utterances WHERE asr_flag IS NULL "
        "AND call_id IN ('silent_call', 'music_only')",
    )
    assert unflagged == []


def test_encrypted_database_needs_its_key(encrypted, cli):
    raw = encrypted["db"].read_bytes()
    assert "老赖".encode() not in raw and b"insult" not in raw
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect(str(encrypted["db"]), read_only=True)
    with pytest.raises(store.StoreError, match="wrong encryption key"):
        store.connect(encrypted["db"], read_only=True, encryption_key="guess")
    no_key = subprocess.run(
        [*cli, "reaudit", "--db", str(encrypted["db"])], capture_output=True, text=True, timeout=120
    )
    assert no_key.returncode == 1 and "is encrypted" in no_key.stderr
    with_key = subprocess.run(
        [
            *cli,
            "reaudit",
            "--db",
            str(encrypted["db"]),
            "--encryption-key-env",
            "CALLAUDIT_TEST_KEY",
            "--force",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=encrypted["env"],
    )
    assert with_key.returncode == 0 and "re-audited 3 calls" in with_key.stdout
    assert encrypted["db"].stat().st_mode & 0o077 == 0


def test_logs_carry_no_transcript_text(encrypted):
    texts = [t for (t,) in _rows(encrypted, "SELECT text FROM utterances") if len(t) >= 4]
    assert texts
    logs = encrypted["proc"].stdout + encrypted["proc"].stderr
    leaked = [t for t in texts if t in logs]
    assert leaked == []
