"""The trim threshold is set where glibc is the allocator (audit.heap)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_loading_the_model_sets_glibcs_trim_threshold_once():
    # A fresh process: the setting is per process and cached.
    code = (
        "from audit.heap import trim_freed_memory as t; "
        "from audit.transcribe import TranscribeOptions, get_model; "
        "get_model(TranscribeOptions()); "
        "print(t.cache_info().misses, t())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    calls, accepted = out.stdout.split()
    assert calls == "1"  # get_model set it
    assert accepted == "True"  # glibc took the setting
