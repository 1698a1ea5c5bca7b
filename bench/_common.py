"""Shared helpers for the benchmark scripts (not part of the test run)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "inbox"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def sample_inbox(copies: int = 1) -> Path:
    """A temp inbox with the sample calls; extra copies get one appended byte each so
    their content hash differs (the pipeline would otherwise skip them as duplicates)."""
    inbox = Path(tempfile.mkdtemp(prefix="callaudit-bench-"))
    for i in range(copies):
        for src in sorted(SAMPLES.iterdir()):
            dst = inbox / f"{src.stem}_{i}{src.suffix}"
            shutil.copy(src, dst)
            if i and src.suffix == ".wav":
                with open(dst, "ab") as f:  # trailing byte after the data chunk: same audio
                    f.write(b"\0" * i)
            elif i:
                dst.unlink()  # FLAC/MP3 can't take junk safely; keep the copy count honest
    return inbox


def audio_seconds(inbox: Path) -> float:
    from audit.audio import probe

    return sum(probe(p).duration_s for p in sorted(inbox.iterdir()))
