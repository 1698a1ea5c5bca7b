"""Telephone channel conditions for synthesised 8 kHz speech, and Whisper on them.

Shared by the ASR benchmark (``bench/asr_telephone.py``) and the ASR-in-the-loop corpus
builder (``scripts/asr_corpus.py``).  A condition takes a clean 8 kHz mono clip through
what a call recording goes through on its way to the inbox: a codec (PCM, G.711 µ-law,
FLAC, 32 kbps MP3, AMR-NB 12.2 kbps), line noise, a speaking rate off the norm, a quiet or
clipped level.  Encoding and decoding use PyAV (the same FFmpeg the pipeline reads with).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from asr_eval import cer_text, edit_distance  # noqa: F401  (one definition of CER)

RATE = 8000


@dataclass(frozen=True)
class Condition:
    name: str
    group: str  # clean | noisy
    codec: str = "pcm"  # pcm | ulaw | flac | mp3 | amr
    snr_db: float | None = None
    speed: float = 1.0
    gain_db: float = 0.0


CONDITIONS: tuple[Condition, ...] = (
    Condition("pcm16", "clean"),
    Condition("ulaw", "clean", "ulaw"),
    Condition("flac", "clean", "flac"),
    Condition("mp3_32k", "clean", "mp3"),
    Condition("amr_nb", "clean", "amr"),
    Condition("noise_20db", "noisy", "ulaw", snr_db=20),
    Condition("noise_10db", "noisy", "ulaw", snr_db=10),
    Condition("noise_5db", "noisy", "ulaw", snr_db=5),
    Condition("speed_0.85", "noisy", "ulaw", speed=0.85),
    Condition("speed_1.15", "noisy", "ulaw", speed=1.15),
    Condition("quiet_-20db", "noisy", "ulaw", gain_db=-20),
    Condition("clipped_+9db", "noisy", "ulaw", gain_db=9),
)
BY_NAME = {c.name: c for c in CONDITIONS}


def seed_of(key: str) -> int:
    return int(hashlib.md5(key.encode("utf-8")).hexdigest()[:8], 16)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by shaping white noise in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum))
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _speech_rms(x: np.ndarray) -> float:
    frame = RATE // 50
    n = len(x) // frame
    if not n:
        return float(np.sqrt(np.mean(x**2)) + 1e-12)
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    active = rms[rms > 0.1 * rms.max()]
    return float(np.sqrt(np.mean(active**2)) + 1e-12)


def degrade(x: np.ndarray, condition: Condition, key: str) -> np.ndarray:
    """The waveform part of a condition (rate, noise, level); the codec comes after."""
    y = x.astype(np.float64)
    if condition.speed != 1.0:
        # Speed perturbation (tempo and pitch together), as ASR augmentation does it.
        n_out = int(len(y) / condition.speed)
        y = np.interp(np.linspace(0, len(y) - 1, n_out), np.arange(len(y)), y)
    if condition.snr_db is not None:
        rng = np.random.default_rng(seed_of(key + condition.name))
        noise = pink_noise(len(y), rng) * _speech_rms(y) / (10 ** (condition.snr_db / 20))
        y = y + noise
    if condition.gain_db:
        y = y * 10 ** (condition.gain_db / 20)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


_CODECS = {
    # codec -> (container format, file suffix, codec name, sample format, bit rate)
    "pcm": ("wav", ".wav", "pcm_s16le", "s16", None),
    "ulaw": ("wav", ".wav", "pcm_mulaw", "s16", None),
    "flac": ("flac", ".flac", "flac", "s16", None),
    "mp3": ("mp3", ".mp3", "libmp3lame", "s16p", 32000),
    "amr": ("amr", ".amr", "libopencore_amrnb", "s16", 12200),
}


def encode(x: np.ndarray, codec: str, folder: Path, name: str) -> Path:
    """Write an 8 kHz mono clip with ``codec``; returns the file."""
    fmt, suffix, codec_name, sample_fmt, bit_rate = _CODECS[codec]
    path = folder / f"{name}{suffix}"
    pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec_name, rate=RATE)
        stream.layout = "mono"
        if bit_rate:
            stream.bit_rate = bit_rate
        frame_size = stream.codec_context.frame_size or 1024
        for i in range(0, len(pcm), frame_size):
            block = pcm[i : i + frame_size]
            if len(block) < frame_size and codec in ("amr",):
                block = np.pad(block, (0, frame_size - len(block)))
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = RATE
            if sample_fmt != "s16":
                frame = av.AudioResampler(format=sample_fmt, layout="mono", rate=RATE).resample(
                    frame
                )[0]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def load_wav(path: Path) -> np.ndarray:
    """An 8 kHz mono WAV as float32 (PyAV, no extra dependency)."""
    with av.open(str(path)) as f:
        frames = [fr.to_ndarray() for fr in f.decode(audio=0)]
    data = np.concatenate(frames, axis=1)[0]
    if data.dtype == np.int16:
        return (data / 32768.0).astype(np.float32)
    return data.astype(np.float32)


def through_channel(x: np.ndarray, condition: Condition, key: str, folder: Path) -> Path:
    """The clip as the inbox would hold it after ``condition``."""
    return encode(degrade(x, condition, key), condition.codec, folder, f"clip-{seed_of(key)}")


def transcribe_file(path: Path, options) -> tuple[str, str]:
    """(text, raw_text) of a mono file through the product's own transcription."""
    from audit.audio import load_channels, probe
    from audit.transcribe import transcribe_channels

    utterances = transcribe_channels(load_channels(path, probe(path)), options)
    kept = [u for u in utterances if not u.asr_flag]
    return "".join(u.text for u in kept), "".join(u.raw_text for u in kept)


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="callaudit-tel-"))


def term_counts(text: str, terms: tuple[str, ...]) -> dict[str, int]:
    t = cer_text(text)
    return {term: t.count(term) for term in terms if term in t}


def term_recall(ref: str, hyp: str, terms: tuple[str, ...]) -> tuple[int, int]:
    """(found, expected): occurrences of domain terms in the reference that the
    hypothesis also has (per term, the smaller count)."""
    r, h = term_counts(ref, terms), term_counts(hyp, terms)
    return sum(min(k, h.get(t, 0)) for t, k in r.items()), sum(r.values())
