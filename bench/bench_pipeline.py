"""Throughput, pipeline overhead and scale-out, measured in one run.

1. Baseline: a plain faster-whisper loop over the same recordings, same model and
   decoding settings as the product's defaults (each stereo channel apart, VAD 0.3,
   beam 5, word timestamps) and the same parallelism (``--workers`` threads sharing one
   model, one Whisper thread each); run before and after the pipeline so drift on a
   shared machine shows as a difference, not as overhead.
2. The pipeline: the Prefect flow ``audit_inbox`` with its defaults (decode, transcribe,
   conduct, detect, write DuckDB) against a running local Prefect server, as a nightly
   ``serve`` runs it; then as a one-off ``callaudit audit`` runs it, with the temporary
   server it starts.  Models are loaded before the clock starts, in both.
3. Scale-out (``--scale``): the flow on a local Dask cluster, 2 worker processes with one
   thread each vs 1, on the calls of ``--scale-inbox`` (at least 30), and the peak memory
   of a worker process (learned stage loaded).

With ``--labels`` (``bench/long_calls.py``'s calls.jsonl) it also prints detection recall
through ASR of the flow's findings on the labelled lines.  Run:

    .venv/bin/python bench/long_calls.py --utterances SYNTH... --out /tmp/long --calls 20
    .venv/bin/python bench/bench_pipeline.py --inbox /tmp/long/inbox \\
        --labels /tmp/long/calls.jsonl [--scale --scale-inbox DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import audit  # noqa: E402,F401  (before faster-whisper: the same OpenMP team as the product)
from bench._common import SAMPLES, audio_seconds, sample_inbox  # noqa: E402


def plain_loop(inbox: Path, workers: int, beam_size: int) -> float:
    """Seconds for a bare faster-whisper loop over ``inbox`` (model loaded before)."""
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    from audit.model import bundled_model_dir
    from audit.transcribe import TranscribeOptions

    o = TranscribeOptions()
    model = WhisperModel(
        str(bundled_model_dir()),
        device="cpu",
        compute_type=o.compute_type,
        cpu_threads=o.cpu_threads,
        num_workers=workers,
        local_files_only=True,
    )

    def one(path: Path) -> None:
        for channel in decode_audio(str(path), sampling_rate=16000, split_stereo=True):
            segments, _ = model.transcribe(
                channel,
                language=o.language,
                beam_size=beam_size,
                vad_filter=True,
                vad_parameters={
                    "threshold": o.vad_threshold,
                    "min_silence_duration_ms": o.min_silence_ms,
                    "speech_pad_ms": o.vad_speech_pad_ms,
                },
                word_timestamps=True,
                condition_on_previous_text=o.condition_on_previous_text,
                temperature=list(o.temperatures),
                best_of=o.best_of,
            )
            list(segments)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, sorted(inbox.iterdir())))
    return time.perf_counter() - started


def flow_run(inbox: Path, db: Path, **params) -> tuple[float, dict]:
    from flows.runner import run_audit

    started = time.perf_counter()
    summary = run_audit(inbox=str(inbox), db=str(db), **params)
    elapsed = time.perf_counter() - started
    assert summary["failed"] == 0 and summary["audited"] > 0, summary
    return elapsed, summary


def line_recall(db: Path, labels: Path) -> tuple[int, int]:
    """Labelled (agent line, category) pairs with a finding of that category overlapping
    the line, as stored by the flow."""
    from audit import store

    calls = {
        c["file"].rsplit(".", 1)[0]: c
        for c in map(json.loads, labels.read_text(encoding="utf-8").splitlines())
    }
    con = store.connect(str(db))
    try:
        rows = con.execute(
            "SELECT c.source_path, f.category, f.start_s, f.end_s FROM findings f "
            "JOIN calls c USING (call_id) WHERE f.speaker = 'agent' AND f.start_s IS NOT NULL"
        ).fetchall()
    finally:
        con.close()
    found_by_call: dict[str, list] = {}
    for recording, category, start, end in rows:
        found_by_call.setdefault(Path(recording).stem, []).append((category, start, end))
    found = total = 0
    for stem, call in calls.items():
        findings = found_by_call.get(stem, [])
        for line in call["lines"]:
            if line["speaker"] != "agent":
                continue
            for category in line["labels"]:
                total += 1
                found += any(
                    c == category and s < line["end_s"] + 0.5 and e > line["start_s"] - 0.5
                    for c, s, e in findings
                )
    return found, total


class PeakWorkerMemory:
    """The largest resident set of any Dask worker process of this run, sampled."""

    def __init__(self, every_s: float = 0.2):
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(every_s,), daemon=True)

    def _watch(self, every_s: float) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(every_s):
            for child in me.children(recursive=True):
                try:
                    if "uvicorn" in " ".join(child.cmdline()):
                        continue  # the Prefect server, not a worker
                    self.peak_mb = max(self.peak_mb, child.memory_info().rss / 2**20)
                except psutil.Error:
                    pass

    def __enter__(self) -> PeakWorkerMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def warm_up() -> None:
    """Load the Whisper model, the learned stage and Prefect in this process."""
    one = Path(tempfile.mkdtemp(prefix="callaudit-warm-"))
    src = sorted((SAMPLES).iterdir())[0]
    (one / src.name).write_bytes(src.read_bytes())
    flow_run(one, one.parent / f"{one.name}.duckdb")


def main() -> None:
    from audit.cli import DEFAULT_WORKERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inbox", type=Path, help="recordings [default: the sample calls]")
    parser.add_argument("--copies", type=int, default=2, help="sample copies without --inbox")
    parser.add_argument("--labels", type=Path, help="long_calls.py's calls.jsonl")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--beam-size", type=int, default=5, help="the flow's default: 5")
    parser.add_argument("--scale", action="store_true", help="also 2 Dask processes vs 1")
    parser.add_argument("--scale-inbox", type=Path, help="[default: 4 copies of the samples]")
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
    tmp = Path(tempfile.mkdtemp(prefix="callaudit-bench-db-"))
    try:
        inbox = args.inbox or sample_inbox(args.copies)
        audio = audio_seconds(inbox)
        n = len(list(inbox.iterdir()))
        print(f"{n} calls, {audio / 60:.1f} min of stereo audio, {args.workers} workers")
        warm_up()
        before = plain_loop(inbox, args.workers, args.beam_size)
        print(f"plain loop (before): {before:.1f} s", flush=True)
        one, _ = flow_run(
            inbox, tmp / "served.duckdb", workers=args.workers, beam_size=args.beam_size
        )
        print(f"flow, running server: {one:.1f} s", flush=True)
        after = plain_loop(inbox, args.workers, args.beam_size)
        print(f"plain loop (after): {after:.1f} s", flush=True)
        url = os.environ.pop("PREFECT_API_URL")
        one_off, _ = flow_run(
            inbox, tmp / "one-off.duckdb", workers=args.workers, beam_size=args.beam_size
        )
        os.environ["PREFECT_API_URL"] = url
        base = (before + after) / 2
        print(f"plain faster-whisper loop : {base:6.1f} s  {audio / base:5.2f}x real time")
        print(f"pipeline, running server  : {one:6.1f} s  {audio / one:5.2f}x real time")
        print(f"pipeline, one-off run     : {one_off:6.1f} s  {audio / one_off:5.2f}x real time")
        print(
            f"pipeline overhead vs plain loop: {100 * (one / base - 1):+.1f}% with a running "
            f"server, {100 * (one_off / base - 1):+.1f}% one-off with a temporary server"
        )
        if args.labels:
            found, total = line_recall(tmp / "served.duckdb", args.labels)
            print(f"detection recall through ASR: {found}/{total} = {found / max(1, total):.3f}")
        if args.scale:
            scale_inbox = args.scale_inbox or sample_inbox(4)
            scale_audio = audio_seconds(scale_inbox)
            calls = len(list(scale_inbox.iterdir()))
            t1, _ = flow_run(scale_inbox, tmp / "p1.duckdb", processes=1)
            print(f"Dask, 1 process : {t1:.1f} s", flush=True)
            with PeakWorkerMemory() as memory:
                t2, _ = flow_run(scale_inbox, tmp / "p2.duckdb", processes=2)
            print(f"Dask, 2 processes: {t2:.1f} s", flush=True)
            peak = memory.peak_mb
            print(
                f"scale-out on {calls} calls ({scale_audio / 60:.1f} min): 2 processes vs 1 = "
                f"{t1 / t2:.2f}x ({scale_audio / t1:.1f}x and {scale_audio / t2:.1f}x real "
                f"time); peak memory of a worker process {peak:.0f} MB"
            )
    finally:
        if server is not None:
            stop_server(server)


if __name__ == "__main__":
    main()
