"""Give freed memory back to the system, as Dask does for its worker processes.

glibc raises its threshold for serving large blocks from the heap each time a large
block is freed, so the arrays of one call (decoded audio, Whisper's features) come to
live on the heap, and the heap is not shrunk when they are freed: a process that
audited a 6-minute call stayed ~180 MB larger than it needed to be (bench/bench_memory.py).
Fixed thresholds turn that growth off; Dask does the same for the workers it starts
(``MALLOC_TRIM_THRESHOLD_=65536`` in their environment, which also fixes the mmap
threshold at glibc's initial 128 KiB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

# glibc's mallopt parameter numbers, and the values a Dask worker ends up with.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD_BYTES = 64 * 1024
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value


@functools.cache
def trim_freed_memory() -> bool:
    """Set glibc's trim threshold once per process; False where there is no glibc
    (macOS, musl), which keeps its own allocator's behaviour."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        # Set at run time, the trim threshold alone would freeze the mmap threshold
        # wherever the imports had already pushed it (up to 32 MB), so set that too.
        trim = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        mmap = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        return bool(trim and mmap)
    except (OSError, AttributeError):
        return False
