"""OpenMP's team size is pinned before Whisper loads (audit/__init__.py), as Dask pins it
for its workers: on some CPUs Whisper's output depends on it, and a call must be heard
the same in one process and on a cluster (tests/test_nightly.py compares the findings)."""

from __future__ import annotations

import os
import subprocess
import sys

# In a fresh process: import the product, load Whisper's runtime, and ask the OpenMP
# library that ctranslate2 loaded (its own bundled libgomp) for its team size.
PROBE = """
import glob, ctypes, os, sys
import audit.transcribe  # imports faster-whisper, which loads ctranslate2 and libgomp
import ctranslate2
site = os.path.dirname(os.path.dirname(ctranslate2.__file__))
libs = glob.glob(os.path.join(site, "ctranslate2.libs", "libgomp*"))
gomp = ctypes.CDLL(libs[0]) if libs else ctypes.CDLL("libgomp.so.1")
print(os.environ["OMP_NUM_THREADS"], gomp.omp_get_max_threads())
"""


def probe(env_value: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if env_value is not None:
        env["OMP_NUM_THREADS"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_whispers_openmp_team_is_one_thread_unless_the_user_says_otherwise():
    assert probe(None) == ["1", "1"]
    assert probe("3") == ["3", "3"]  # a value the user set is kept, and it is what loads
