"""A short run of the fault-injection suite (bench/fault_injection.py runs 200 batches):
signals and a full disk at random points never lose or double a call."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_random_faults_never_lose_or_double_a_call():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fault_injection.py"), "--batches", "15",
         "--seed", "7"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert sum(int(x.split()[1]) for x in lines[:5]) == 15
    for fault in ("none", "sigkill", "sigint", "sigterm", "disk_full"):
        [line] = [x for x in lines if x.startswith(fault + " ")]
        assert int(line.split()[1]) >= 1, proc.stdout  # every kind of fault was dealt
