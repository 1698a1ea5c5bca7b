"""Calls audited at once: ``callaudit audit --workers N`` against ``--workers 1``, one run.

Each round audits the sample calls (``--copies`` of them) into a fresh database, once with
one worker and once with N, alternating so that a noisy neighbour hurts both alike.  The
command is run as a user runs it (a one-off run: its temporary Prefect server and model
load included), so the ratio is what ``callaudit audit`` gains from its default.

    .venv/bin/python bench/bench_workers.py [--workers 2] [--rounds 2] [--copies 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import audio_seconds, sample_inbox  # noqa: E402


def audit_once(inbox: Path, db: Path, workers: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "audit.cli", "audit", str(inbox), "--db", str(db),
         "--workers", str(workers)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"audit failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--copies", type=int, default=1, help="copies of the sample calls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inbox = sample_inbox(args.copies)
        audio = audio_seconds(inbox)
        times: dict[int, list[float]] = {1: [], args.workers: []}
        for r in range(args.rounds):
            for w in (1, args.workers):
                times[w].append(audit_once(inbox, Path(tmp) / f"r{r}w{w}.duckdb", w))
                print(f"round {r + 1}, --workers {w}: {times[w][-1]:.1f} s", flush=True)
    one, many = sum(times[1]), sum(times[args.workers])
    print(f"audio per round: {audio:.0f} s")
    print(f"--workers 1: {audio * args.rounds / one:.1f} audio s/s")
    print(f"--workers {args.workers}: {audio * args.rounds / many:.1f} audio s/s")
    print(f"ratio: {one / many:.2f}x (one-off runs, start-up included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
