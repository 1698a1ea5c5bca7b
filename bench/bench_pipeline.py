"""Pipeline overhead and parallel speed-up, measured in one run.

1. Baseline: a plain faster-whisper loop over the same recordings with the same model
   and settings (each stereo channel apart, VAD 0.3, beam 5, word timestamps).
2. The pipeline: the Prefect flow ``audit_inbox`` (decode, transcribe, normalise,
   detect, write DuckDB), against a running local Prefect server, as in production.
3. The same flow on a local Dask cluster with 2 worker processes, vs 1.

Prints audio seconds per wall second for each, and the ratios.  Run:
    .venv/bin/python bench/bench_pipeline.py [--copies 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import audio_seconds, sample_inbox  # noqa: E402


def plain_loop(inbox: Path) -> float:
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    from audit.model import bundled_model_dir

    model = WhisperModel(
        str(bundled_model_dir()),
        device="cpu",
        compute_type="int8",
        cpu_threads=1,
        local_files_only=True,
    )
    started = time.perf_counter()
    for path in sorted(inbox.iterdir()):
        for channel in decode_audio(str(path), sampling_rate=16000, split_stereo=True):
            segments, _ = model.transcribe(
                channel,
                language="zh",
                beam_size=5,
                vad_filter=True,
                vad_parameters={"threshold": 0.3, "min_silence_duration_ms": 500},
                word_timestamps=True,
                condition_on_previous_text=False,
            )
            list(segments)
    return time.perf_counter() - started


def flow_run(inbox: Path, processes: int) -> float:
    from flows.runner import run_audit

    db = Path(tempfile.mkdtemp()) / "bench.duckdb"
    started = time.perf_counter()
    summary = run_audit(processes=processes, inbox=str(inbox), db=str(db))
    elapsed = time.perf_counter() - started
    assert summary["failed"] == 0 and summary["audited"] > 0, summary
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2, help="copies of the sample calls")
    args = parser.parse_args()

    from flows.env import prepare_prefect_env

    prepare_prefect_env()
    if not os.environ.get("PREFECT_API_URL"):
        from flows.serve import start_local_server, stop_server

        home = Path(os.environ["PREFECT_HOME"])
        server, url = start_local_server(4377, home / "bench-server.log")
        os.environ["PREFECT_API_URL"] = url
    else:
        server = None
    try:
        inbox = sample_inbox(args.copies)
        audio = audio_seconds(inbox)
        n = len(list(inbox.iterdir()))
        print(f"{n} calls, {audio:.0f} s of stereo audio")
        # Baseline measured before and after the pipeline, so drift on a shared machine
        # shows up as a difference between the two instead of as "overhead".
        before = plain_loop(inbox)
        one = flow_run(inbox, processes=0)
        after = plain_loop(inbox)
        # A one-off `callaudit audit` with no server pays for Prefect's temporary server.
        url = os.environ.pop("PREFECT_API_URL")
        one_off = flow_run(inbox, processes=0)
        os.environ["PREFECT_API_URL"] = url
        base = (before + after) / 2
        print(
            f"plain faster-whisper loop : {base:6.1f} s  {audio / base:5.2f} audio s/s "
            f"(runs: {before:.1f} s before, {after:.1f} s after)"
        )
        print(f"pipeline (flow, 1 worker) : {one:6.1f} s  {audio / one:5.2f} audio s/s")
        print(f"  same, temporary server  : {one_off:6.1f} s  {audio / one_off:5.2f} audio s/s")
        two = flow_run(inbox, processes=2)
        print(f"pipeline (Dask, 2 procs)  : {two:6.1f} s  {audio / two:5.2f} audio s/s")
        print(
            f"pipeline overhead vs plain loop: {100 * (one / base - 1):+.1f}% with a server, "
            f"{100 * (one_off / base - 1):+.1f}% one-off with a temporary server"
        )
        print(f"speed-up 2 workers vs 1       : {one / two:.2f}x")
    finally:
        if server is not None:
            stop_server(server)


if __name__ == "__main__":
    main()
