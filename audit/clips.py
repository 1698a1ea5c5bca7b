"""Audio evidence: a short clip of a finding's span, for the report's play buttons.

A reviewer decides by hearing what was said.  Each clip is the speaker's own channel
(stereo) or the whole recording (mono) from ``pad_s`` before the span to ``pad_s`` after
it, at most ``max_s`` long, encoded as Opus in WebM at 16 kbit/s (about 2 KB a second),
so it fits in a self-contained, offline HTML file as a data URI.

Personal numbers are bleeped in the clip as they are masked in the text: every utterance
whose stored text holds a masked number (``*`` runs from ``audit.pii``) or that carries a
``pii_exposure`` finding is replaced, on its channel, by a 1 kHz tone.  Utterance times
are all that is stored, so the whole utterance is bleeped: more than the number, never
less.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from audit.audio import SAMPLE_RATE, AudioError, load_channels, probe

BLEEP_HZ = 1000.0


@dataclass(frozen=True)
class ClipOptions:
    pad_s: float = 2.0
    max_s: float = 20.0
    bit_rate: int = 16_000


@dataclass(frozen=True)
class Recording:
    """One call's decoded channels (16 kHz) and who speaks on which."""

    channels: list[np.ndarray]
    roles: tuple[str, ...]

    def channel_of(self, speaker: str | None) -> np.ndarray:
        """The speaker's channel; the mix when mono or the speaker is not a channel's."""
        if len(self.channels) == 2 and speaker in self.roles[:2]:
            return self.channels[self.roles.index(speaker)]
        if len(self.channels) == 1:
            return self.channels[0]
        return np.mean(np.stack(self.channels), axis=0).astype(np.float32)


def open_recording(path: str | Path, channel_roles: str | None) -> Recording:
    """Decode a stored call's recording (AudioError if it is gone or unreadable)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"recording not found at {path}")
    channels = load_channels(path, probe(path))
    roles = tuple((channel_roles or "agent,customer").split(","))
    return Recording(channels, roles)


def bleeped(
    samples: np.ndarray, spans: Sequence[tuple[float, float]], offset_s: float
) -> np.ndarray:
    """``samples`` (starting at ``offset_s`` in the call) with ``spans`` replaced by a
    tone at the level of ordinary speech."""
    out = samples.copy()
    for start, end in spans:
        a = max(0, int((start - offset_s) * SAMPLE_RATE))
        b = min(len(out), int((end - offset_s) * SAMPLE_RATE))
        if b > a:
            t = np.arange(a, b) / SAMPLE_RATE
            out[a:b] = 0.2 * np.sin(2 * np.pi * BLEEP_HZ * t)
    return out


def evidence_clip(
    recording: Recording,
    speaker: str | None,
    start_s: float,
    end_s: float,
    bleep: Sequence[tuple[float, float]] = (),
    options: ClipOptions = ClipOptions(),
) -> bytes:
    """The span with context, PII spans bleeped, as WebM/Opus bytes."""
    channel = recording.channel_of(speaker)
    lo = max(0.0, start_s - options.pad_s)
    hi = min(len(channel) / SAMPLE_RATE, end_s + options.pad_s, lo + options.max_s)
    if hi <= lo:
        raise AudioError(f"the span {start_s:.1f}-{end_s:.1f} s is outside the recording")
    piece = channel[int(lo * SAMPLE_RATE) : int(hi * SAMPLE_RATE)]
    return encode_opus(bleeped(piece, bleep, lo), options.bit_rate)


def encode_opus(samples: np.ndarray, bit_rate: int = 16_000) -> bytes:
    """Mono float samples at 16 kHz as Opus in a WebM container."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = bit_rate
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def data_uri(clip: bytes) -> str:
    return "data:audio/webm;base64," + base64.b64encode(clip).decode("ascii")
