"""Hostile input and faults: each case audits correctly or fails on record, never crashes.

Decoding and error handling are exercised with a fake transcriber (fast); what needs
Whisper itself (silence, music) is in the e2e section at the bottom.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import wave
from pathlib import Path

import duckdb
import numpy as np
import pytest

from audit import store
from audit.pipeline import AuditOptions, CallInput, CallResult, audit_call, discover
from audit.transcribe import Utterance
from tests.conftest import tone, write_wav
from tests.test_pipeline_store import fake_transcriber


def audit(path: Path, **options) -> CallResult:
    return audit_call(
        CallInput(path.stem, str(path)), AuditOptions(**options), transcriber=fake_transcriber
    )


@pytest.mark.parametrize(
    "channels,speakers",
    [
        (1, {"unknown"}),
        (2, {"agent", "customer"}),
        (6, {"unknown"}),  # no convention says which of six channels is the agent: downmix
    ],
)
def test_channel_layouts(tmp_path, channels, speakers):
    path = write_wav(
        tmp_path / f"ch{channels}.wav", [tone(1.0, freq=200 + 50 * i) for i in range(channels)]
    )
    result = audit(path)
    assert result.status == "ok" and result.channels == channels
    assert {u.speaker for u in result.utterances} == speakers


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_sample_rates_are_resampled_to_16k(tmp_path, rate):
    path = write_wav(tmp_path / f"r{rate}.wav", [tone(1.5, rate), tone(1.5, rate)], rate=rate)
    seen = {}

    def measuring(channels, options):
        seen["lengths"] = [len(c) for c in channels]
        return []

    result = audit_call(CallInput("r", str(path)), AuditOptions(), transcriber=measuring)
    assert result.status == "ok" and result.sample_rate == rate
    assert all(abs(n - 24000) <= 16 for n in seen["lengths"])  # 1.5 s at 16 kHz
    assert result.duration_s == pytest.approx(1.5, abs=0.01)


def test_truncated_wav_data_still_decodes_what_is_there(tmp_path):
    path = write_wav(tmp_path / "cut.wav", [tone(3.0), tone(3.0)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header says 3 s, file holds 1.5 s
    result = audit(path)
    assert result.status == "ok" and result.duration_s == pytest.approx(1.5, abs=0.05)


def test_symlink_loop_fails_with_a_readable_error(tmp_path):
    box = tmp_path / "inbox"
    box.mkdir()
    os.symlink(box / "b.wav", box / "a.wav")
    os.symlink(box / "a.wav", box / "b.wav")
    calls = discover(box)
    assert [c.call_id for c in calls] == ["a", "b"]
    result = audit(Path(calls[0].path))
    assert result.status == "failed" and "symbolic links" in result.error


def _plan_and_audit(box: Path, tmp_path: Path) -> dict[str, CallResult]:
    from audit import batch

    con = store.connect(tmp_path / "plan.duckdb")
    try:
        plan = batch.plan_batch(discover(box), con, AuditOptions())
    finally:
        con.close()
    return {
        c.call_id: audit_call(c, AuditOptions(), transcriber=fake_transcriber) for c in plan.todo
    }


def test_a_fifo_or_a_link_to_a_device_fails_at_once_instead_of_hanging(tmp_path):
    box = tmp_path / "inbox"
    box.mkdir()
    os.mkfifo(box / "pipe.wav")
    os.symlink("/dev/zero", box / "zero.wav")
    write_wav(box / "fine.wav", [tone(1.0)])

    def hung(signum, frame):
        raise TimeoutError("planning or auditing blocked on a FIFO or device")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        results = _plan_and_audit(box, tmp_path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert results["fine"].status == "ok"
    assert results["pipe"].status == "failed" and "named pipe" in results["pipe"].error
    # /dev/zero is also outside the inbox; read directly, it is refused as a device.
    assert results["zero"].status == "failed"
    direct = audit(box / "zero.wav")
    assert direct.status == "failed" and "character device" in direct.error


def test_a_link_out_of_the_inbox_is_refused_like_the_manifest_refuses_it(tmp_path):
    outside = write_wav(tmp_path / "elsewhere.wav", [tone(1.0)])
    box = tmp_path / "inbox"
    (box / ".store").mkdir(parents=True)  # hidden folders are not discovered
    write_wav(box / ".store" / "real.wav", [tone(1.0)])
    os.symlink(outside, box / "escape.wav")
    os.symlink(box / ".store" / "real.wav", box / "inside.wav")  # a link within: fine
    results = _plan_and_audit(box, tmp_path)
    assert results["escape"].status == "failed" and "outside the inbox" in results["escape"].error
    assert results["inside"].status == "ok"


def test_unreadable_file_fails_with_permission_denied(tmp_path):
    path = write_wav(tmp_path / "secret.wav", [tone(1.0)])
    path.chmod(0)
    if os.geteuid() != 0:
        result = audit(path)
        assert result.status == "failed" and "permission denied" in result.error
        return
    # Root reads anything: check in a child that has root's file-permission bypass dropped.
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's read-anything capability")
    code = (
        "from audit.pipeline import AuditOptions, CallInput, audit_call; "
        f"r = audit_call(CallInput('secret', {str(path)!r}), AuditOptions()); "
        "print(r.status, '|', r.error)"
    )
    caps = "-dac_override,-dac_read_search"
    proc = subprocess.run(
        ["setpriv", "--bounding-set", caps, "--inh-caps", caps, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(Path(__file__).parent.parent),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    status, error = proc.stdout.strip().split(" | ")
    assert status == "failed" and "permission denied" in error


def test_long_recordings_are_transcribed_in_windows_with_progress(tmp_path, caplog):
    path = write_wav(tmp_path / "long.wav", [tone(95.0), tone(95.0, freq=300)])
    windows: list[int] = []

    def per_window(channels, options):
        windows.append(len(channels[0]))
        return [Utterance(0, "agent", 1.0, 2.0, "你好", "你好", -0.1, 0.0)]

    with caplog.at_level(logging.INFO, logger="callaudit"):
        result = audit_call(
            CallInput("long", str(path)),
            AuditOptions(long_recording_s=60, window_s=30),
            transcriber=per_window,
        )
    assert result.status == "ok" and result.duration_s == pytest.approx(95.0, abs=0.01)
    assert windows == [480000, 480000, 480000, 80000]  # never more than 30 s in memory
    assert [u.start_s for u in result.utterances] == [1.0, 31.0, 61.0, 91.0]
    assert [u.idx for u in result.utterances] == [0, 1, 2, 3]
    assert "window 4/4" in caplog.text


def test_long_recording_memory_stays_bounded(tmp_path):
    """Peak memory of a 40-minute call decoded in windows vs. in one piece, same run."""
    path = tmp_path / "40min.wav"
    rate, seconds = 8000, 40 * 60
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        block = (np.random.default_rng(0).normal(0, 300, (rate * 60, 2))).astype("<i2")
        for _ in range(seconds // 60):
            w.writeframes(block.tobytes())
    # VmHWM, not ru_maxrss: a child's ru_maxrss includes its parent's size at the fork,
    # and this test's parent (pytest, models loaded) can be larger than either child.
    code = (
        "import sys; from pathlib import Path; "
        "from audit.pipeline import AuditOptions, CallInput, audit_call; "
        "limit = float(sys.argv[1]); "
        "r = audit_call(CallInput('x', sys.argv[2]), AuditOptions(long_recording_s=limit), "
        "transcriber=lambda ch, o: []); "
        "hwm = [x for x in Path('/proc/self/status').read_text().splitlines() "
        "if x.startswith('VmHWM')][0]; "
        "print(r.status, int(hwm.split()[1]) // 1024)"
    )

    def peak_mb(limit_s: float) -> int:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(limit_s), str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=str(Path(__file__).parent.parent),
        )
        status, mb = proc.stdout.split()
        assert status == "ok", proc.stderr[-2000:]
        return int(mb)

    whole, windowed = peak_mb(10**9), peak_mb(20 * 60)
    assert windowed < whole - 150, (windowed, whole)  # whole: 2 x 40 min x 16 kHz float32


def test_locked_database_gives_a_clear_message(tmp_path, cli):
    db = tmp_path / "locked.duckdb"
    store.connect(db).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('ok', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        procs = [
            subprocess.run(
                [*cli, *args, "--db", str(db)], capture_output=True, text=True, timeout=300
            )
            for args in (["reaudit"], ["audit", str(tmp_path)])
        ]
    finally:
        holder.kill()
        holder.wait()
    for proc in procs:
        assert proc.returncode == 1
        assert "in use by another process" in proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr


def _big_result(i: int) -> CallResult:
    utts = [
        Utterance(j, "agent", j, j + 1, f"第{i}通第{j}句" + "还款" * 200, "x" * 300, -0.1, 0)
        for j in range(200)
    ]
    return CallResult(f"c{i}", "x.wav", f"h{i}", "ok", None, "m", "r", utterances=utts)


def test_disk_full_leaves_no_half_stored_call(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        db = mount / "a.duckdb"
        con = store.connect(db)
        stored, error = 0, None
        for i in range(100):
            try:
                store.write_call(con, _big_result(i))
                stored += 1
            except store.StoreError as exc:
                error = str(exc)
                break
        con.close()
        assert error and "nothing of it was kept" in error
        with duckdb.connect(str(db), read_only=True) as ro:
            calls = ro.execute("SELECT count(*) FROM calls").fetchone()[0]
            partial = ro.execute(
                "SELECT count(*) FROM (SELECT call_id FROM utterances GROUP BY 1 "
                "HAVING count(*) <> 200)"
            ).fetchone()[0]
            orphans = ro.execute(
                "SELECT count(*) FROM utterances WHERE call_id NOT IN (SELECT call_id FROM calls)"
            ).fetchone()[0]
        assert calls == stored > 0 and partial == 0 and orphans == 0
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_missing_or_corrupt_model_names_the_fix(tmp_path):
    from audit.model import ModelError, resolve_model
    from audit.transcribe import TranscribeOptions, get_model

    with pytest.raises(ModelError, match="not a CTranslate2 Whisper model folder"):
        resolve_model(str(tmp_path / "nope"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"\0" * 1000)
    (broken / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="Fix: pass --model"):
        get_model(TranscribeOptions(model=str(broken)))


def test_everything_the_cli_writes_is_owner_only(tmp_path, cli):
    """Database, its WAL, reports and exports hold debtors' words: mode 0600/0700."""
    from tests.test_pipeline_store import run_batch

    box = tmp_path / "inbox"
    box.mkdir()
    write_wav(box / "a.wav", [tone(1.0), tone(1.0)])
    db = tmp_path / "a.duckdb"
    run_batch(box, db)
    os.chmod(db, 0o644)  # as if an older tool had made it readable
    env = {**os.environ}
    outputs = {
        "html": [*cli, "report", "--db", str(db), "--out", str(tmp_path / "r.html")],
        "csv": [*cli, "report", "--db", str(db), "--format", "csv", "--out", str(tmp_path / "csv")],
    }
    old = os.umask(0o022)  # a permissive shell
    try:
        for args in outputs.values():
            proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
            assert proc.returncode == 0, proc.stderr[-2000:]
    finally:
        os.umask(old)
    written = [tmp_path / "r.html", *sorted((tmp_path / "csv").iterdir())]
    assert len(written) > 2
    for path in written:
        assert path.stat().st_mode & 0o077 == 0, path


def test_a_call_stored_as_mp4_is_discovered_and_audited(tmp_path):
    import av

    box = tmp_path / "inbox"
    box.mkdir()
    x = (tone(2.0, 16000) * 32767).astype(np.int16)
    with av.open(str(box / "dialler.mp4"), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        for f in resampler.resample(frame):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    [call] = discover(box)
    assert call.call_id == "dialler"
    result = audit(Path(call.path))
    assert result.status == "ok" and result.duration_s == pytest.approx(2.0, abs=0.2)  # AAC priming
