"""Silero VAD in bounded memory.

faster-whisper 1.2.1 (pinned) runs its Silero model on up to 10,000 windows of 32 ms
at once: on a 6-minute channel that is one run of ~11,000 windows, and its activations
(~150 MB) were a worker's second-largest peak after decoding.  The model's LSTM state
is carried from one run to the next, so running it on fewer windows at a time gives the
same speech probabilities (tests/test_vad.py compares them) for a fraction of the peak.

``use_bounded_vad`` makes faster-whisper's ``get_speech_timestamps`` (and its own
``vad_filter``) use this model; every other VAD step is still faster-whisper's.
"""

from __future__ import annotations

import functools
import os
import threading

import numpy as np

# 1,024 windows of 32 ms: 33 s of audio per run of the model (bench/bench_memory.py).
WINDOWS_PER_RUN = 1024

_INSTALL_LOCK = threading.Lock()


class BoundedSileroVAD:
    """faster-whisper's ``SileroVADModel.__call__``, run ``windows_per_run`` windows at
    a time (the ONNX session is faster-whisper's own)."""

    def __init__(self, session, windows_per_run: int = WINDOWS_PER_RUN) -> None:
        self.session = session
        self.windows_per_run = windows_per_run

    def __call__(
        self, audio: np.ndarray, num_samples: int = 512, context_size_samples: int = 64
    ) -> np.ndarray:
        if audio.ndim != 1 or audio.shape[0] % num_samples:
            raise ValueError("VAD input must be 1-D and a multiple of num_samples long")
        windows = audio.reshape(-1, num_samples)
        h = np.zeros((1, 1, 128), dtype="float32")
        c = np.zeros((1, 1, 128), dtype="float32")
        outputs = []
        for i in range(0, windows.shape[0], self.windows_per_run):
            part = windows[i : i + self.windows_per_run]
            # Each window is preceded by the last samples of the one before it (zeros
            # for the first window of the channel), as in faster-whisper.
            context = np.empty((part.shape[0], context_size_samples), dtype="float32")
            context[1:] = part[:-1, -context_size_samples:]
            context[0] = windows[i - 1, -context_size_samples:] if i else 0.0
            batch = np.concatenate([context, part], axis=1)
            output, h, c = self.session.run(None, {"input": batch, "h": h, "c": c})
            outputs.append(output)
        return np.concatenate(outputs, axis=0)


@functools.cache
def bounded_vad_model() -> BoundedSileroVAD:
    from faster_whisper.vad import SileroVADModel, get_assets_path

    # One session per process (faster-whisper opens a new one for every channel).
    model = SileroVADModel(os.path.join(get_assets_path(), "silero_vad_v6.onnx"))
    return BoundedSileroVAD(model.session)


def use_bounded_vad() -> None:
    """Have faster-whisper's VAD functions use ``bounded_vad_model`` (idempotent)."""
    from faster_whisper import vad

    with _INSTALL_LOCK:
        if vad.get_vad_model is not bounded_vad_model:
            vad.get_vad_model = bounded_vad_model
