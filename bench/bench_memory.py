"""Peak memory of a worker process, beside a bare faster-whisper process, in one run.

1. Baseline: a fresh process that loads Whisper base and transcribes every recording of
   ``--inbox`` as ``bench_pipeline.plain_loop`` does (faster-whisper's own audio
   decoding and VAD, one thread); its peak resident set (VmHWM).
2. The product: the Prefect flow on a local Dask cluster of ``--processes`` worker
   processes (one thread each), learned stage and corrector on as by default; the
   largest resident set any worker reached (sampled every 50 ms).
3. ``--stages FILE``: where the memory goes, in one fresh process auditing one recording:
   resident set after each stage and the peak within it.

    .venv/bin/python bench/bench_memory.py --inbox /tmp/long/inbox [--stages LONG.flac]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, audio_seconds, sample_inbox  # noqa: E402


def status_mb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(key)


def bare_peak(inbox: Path) -> int:
    """VmHWM of a fresh process running the bare faster-whisper loop over ``inbox``."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); "
        "from bench.bench_pipeline import plain_loop; "
        "from bench.bench_memory import status_mb; "
        "plain_loop(Path(sys.argv[1]), 1, 5); print(status_mb('VmHWM'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(inbox), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def worker_peak(inbox: Path, processes: int) -> int:
    from bench.bench_pipeline import PeakWorkerMemory, flow_run

    db = Path(tempfile.mkdtemp(prefix="callaudit-mem-")) / "audit.duckdb"
    with PeakWorkerMemory(every_s=0.05) as memory:
        flow_run(inbox, db, processes=processes)
    return round(memory.peak_mb)


def stages(path: Path) -> list[tuple[str, int, int]]:
    """(stage, resident MB after it, peak MB within it), in this process."""
    out: list[tuple[str, int, int]] = []

    def mark(label: str) -> None:
        out.append((label, status_mb("VmRSS"), status_mb("VmHWM")))
        Path("/proc/self/clear_refs").write_text("5")  # the next stage's peak starts here

    import dask.distributed  # noqa: F401 - a worker has these loaded
    import prefect  # noqa: F401

    mark("Prefect and Dask imported")
    from audit import pipeline, transcribe
    from audit.audio import load_channels, probe

    mark("callaudit imported")
    options = pipeline.AuditOptions()
    transcribe.get_model(options.transcribe)
    mark("Whisper base loaded")
    pipeline.get_detector(options.rules)
    pipeline.get_learned(options)
    mark("rules and learned stage loaded")
    utterance = transcribe.Utterance(0, "agent", 0.0, 1.0, "您好", "您好", -0.1, 0.0)
    pipeline.correct_utterances([utterance])
    mark("corrector loaded")
    info = probe(path)
    channels = load_channels(path, info)
    mark(f"audio decoded ({info.duration_s / 60:.1f} min, {info.channels} ch)")
    chunks = [transcribe.speech_chunks(c, options.transcribe) for c in channels]
    mark("VAD")
    del chunks
    transcript = transcribe.transcribe_channels(channels, options.transcribe)
    mark("VAD again and decoding")
    pipeline._measure(channels, transcript, options)
    mark("conduct measured")
    del channels
    pipeline.audit_call(pipeline.CallInput("x", str(path)), options)
    mark("the whole audit again (audio freed first)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inbox", type=Path, help="recordings [default: the sample calls]")
    parser.add_argument("--processes", type=int, default=1, help="Dask worker processes")
    parser.add_argument("--stages", type=Path, help="one recording: memory per stage")
    parser.add_argument("--stages-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.stages_only:
        print(json.dumps(stages(args.stages)))
        return
    inbox = args.inbox or sample_inbox(1)
    n = len(list(inbox.iterdir()))
    print(f"{n} recordings, {audio_seconds(inbox) / 60:.1f} min of audio", flush=True)
    bare = bare_peak(inbox)
    print(f"bare faster-whisper process: peak {bare} MB", flush=True)
    worker = worker_peak(inbox, args.processes)
    print(
        f"flow worker process ({args.processes} of them, learned stage on): peak {worker} MB"
        f" = {worker / bare:.2f}x the bare process (goal: 700 MB)"
    )
    if args.stages:
        # A fresh process, so that nothing above is counted in it.
        done = subprocess.run(
            [sys.executable, __file__, "--stages", str(args.stages), "--stages-only"],
            check=True,
            capture_output=True,
            text=True,
        )
        print(f"\nwhere one process's memory goes, auditing {args.stages.name}:")
        print(f"{'stage':44s} {'after':>7s} {'peak':>7s}")
        for label, rss, peak in json.loads(done.stdout.strip().splitlines()[-1]):
            print(f"{label:44s} {rss:5d} MB {peak:5d} MB")


if __name__ == "__main__":
    main()
