"""Whisper's log-Mel features in bounded memory.

faster-whisper 1.2.1 (pinned) computes the features of everything given to
``WhisperModel.transcribe`` in one piece: every 10 ms frame of the channel's speech as
400 samples, its FFT and its power, at once: on a 6-minute call the decoding peak was
~270 MB above the resting process, ~120 MB with the features computed this way.  Each
frame depends only on its own samples, so the frames can be computed a run at a time
and the spectrogram put together; only the last step (the floor 8 below the loudest
value, and the scaling) needs the whole, and it is applied to the whole as before.
``tests/test_vad.py`` compares the two.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

FRAMES_PER_RUN = 3000  # 30 s of audio: one Whisper window's worth


class BoundedFeatureExtractor(FeatureExtractor):
    """faster-whisper's ``FeatureExtractor``, ``frames_per_run`` frames at a time."""

    frames_per_run = FRAMES_PER_RUN

    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length=None):
        if waveform.shape[-1] <= self.frames_per_run * self.hop_length or waveform.ndim != 1:
            return super().__call__(waveform, padding=padding, chunk_length=chunk_length)
        if chunk_length is not None:
            self.n_samples = chunk_length * self.sampling_rate
            self.nb_max_frames = self.n_samples // self.hop_length
        waveform = waveform.astype(np.float32, copy=False)
        if padding:
            waveform = np.pad(waveform, (0, padding))
        window = np.hanning(self.n_fft + 1)[:-1].astype("float32")
        # As the one-piece STFT does (center=True): reflect half a frame at both ends.
        half = self.n_fft // 2
        padded = np.pad(waveform, (half, half), mode="reflect")
        frames = 1 + (padded.shape[0] - self.n_fft) // self.hop_length
        kept = frames - 1  # faster-whisper drops the last frame
        parts = []
        for first in range(0, kept, self.frames_per_run):
            last = min(kept, first + self.frames_per_run)
            samples = padded[first * self.hop_length : (last - 1) * self.hop_length + self.n_fft]
            stft = self.stft(
                samples,
                self.n_fft,
                self.hop_length,
                window=window,
                center=False,
                return_complex=True,
            ).astype("complex64")
            parts.append(self.mel_filters @ (np.abs(stft) ** 2))
        mel_spec = np.concatenate(parts, axis=1)
        del parts
        log_spec = np.log10(np.clip(mel_spec, a_min=1e-10, a_max=None))
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0


def use_bounded_features(model) -> None:
    """Give a ``faster_whisper.WhisperModel`` the bounded feature extractor."""
    if not isinstance(model.feature_extractor, BoundedFeatureExtractor):
        model.feature_extractor = BoundedFeatureExtractor(**model.feat_kwargs)
