"""Stereo calls made of speech-like bursts, with known turns, for the conduct checks.

A burst is voiced, like a vowel run: a fundamental of 110-230 Hz with harmonics up to the
telephone band, its pitch drifting, its loudness rising and falling at a syllable rate
(about 4-5 per second).  Each channel carries a faint noise floor, as a phone line does.
Turns are (start_s, end_s, level_dbfs); ``call`` renders them on two channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RATE = 16000
SPEECH_DBFS = -22.0
NOISE_DBFS = -62.0
VAD_PAD_S = 0.4  # what Whisper's VAD adds around speech (TranscribeOptions.vad_speech_pad_ms)


@dataclass
class Turn:
    start: float
    end: float
    level: float = SPEECH_DBFS


@dataclass
class Call:
    duration: float
    agent: list[Turn] = field(default_factory=list)
    customer: list[Turn] = field(default_factory=list)


def burst(seconds: float, level_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    n = int(round(seconds * RATE))
    t = np.arange(n) / RATE
    f0 = rng.uniform(110, 230) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    harmonics = int(3400 // 230)
    x = sum(np.sin(k * phase + rng.uniform(0, 6.3)) / k for k in range(1, harmonics + 1))
    rate = rng.uniform(4.0, 5.0)
    envelope = 0.35 + 0.65 * np.sin(np.pi * rate * t + rng.uniform(0, 3.1)) ** 2
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms on and off
    x = x * envelope * ramp
    rms = np.sqrt(np.mean(x**2)) or 1.0
    return (x / rms * 10 ** (level_dbfs / 20)).astype(np.float32)


def render(call: Call, seed: int = 0) -> list[np.ndarray]:
    """The call's two channels (agent, customer) as 16 kHz float32."""
    rng = np.random.default_rng(seed)
    n = int(round(call.duration * RATE))
    channels = []
    for turns in (call.agent, call.customer):
        x = (rng.standard_normal(n) * 10 ** (NOISE_DBFS / 20)).astype(np.float32)
        for turn in turns:
            b = burst(turn.end - turn.start, turn.level, rng)
            i = int(round(turn.start * RATE))
            x[i : i + len(b)] += b[: n - i]
        channels.append(np.clip(x, -1.0, 1.0))
    return channels


def vad_like(
    turns: list[Turn], duration: float, pad: float = VAD_PAD_S
) -> list[tuple[float, float]]:
    """What Whisper's VAD hands over: the turns padded on each side, touching ones merged."""
    spans: list[list[float]] = []
    for t in sorted(turns, key=lambda t: t.start):
        a, b = max(0.0, t.start - pad), min(duration, t.end + pad)
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return [(a, b) for a, b in spans]


def conversation(
    turns: int = 10, seed: int = 0, lead_in: float = 1.0, gap: tuple[float, float] = (0.5, 1.5)
) -> Call:
    """An ordinary call: agent and customer take turns, never both at once."""
    rng = np.random.default_rng(seed)
    t = lead_in
    call = Call(0.0)
    for i in range(turns):
        length = float(rng.uniform(1.5, 4.0))
        who = call.agent if i % 2 == 0 else call.customer
        who.append(Turn(round(t, 2), round(t + length, 2)))
        t += length + float(rng.uniform(*gap))
    call.duration = round(t + 1.0, 2)
    return call


def overlap_truth(call: Call) -> float:
    total = 0.0
    for a in call.agent:
        for c in call.customer:
            total += max(0.0, min(a.end, c.end) - max(a.start, c.start))
    return total
