"""Shared fixtures.  Prefect and Hugging Face are pointed at private, offline settings."""

from __future__ import annotations

import os
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

# Before anything imports Prefect: private home, no telemetry, no hub.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="callaudit-prefect-"))
os.environ.setdefault("PREFECT_HOME", str(_PREFECT_HOME))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def detector():
    from audit.pipeline import get_detector

    return get_detector("cn")


@pytest.fixture(scope="session")
def cli() -> list[str]:
    """How to run the installed ``callaudit`` entry point."""
    exe = Path(sys.executable).parent / "callaudit"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "audit.cli"]


def write_wav(path: Path, channels: list[np.ndarray], rate: int = 8000) -> Path:
    """Write float channels (-1..1) as 16-bit PCM WAV."""
    data = np.stack(channels, axis=1) if len(channels) > 1 else channels[0][:, None]
    pcm = (np.clip(data, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def tone(seconds: float, rate: int = 8000, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
