"""Decode call recordings (anything PyAV reads) into 16 kHz float32 channels.

Telephone recordings arrive as 8 kHz µ-law WAV, MP3, AMR, FLAC...; Whisper wants 16 kHz
mono float32.  Stereo calls keep their channels apart (agent and customer); passing
a stereo file straight to faster-whisper would downmix and lose who said what.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from faster_whisper.audio import _group_frames, _ignore_invalid_frames, _resample_frames

# Video containers too: some diallers store calls as .mp4/.3gp with one audio track.
AUDIO_EXTENSIONS = (
    ".wav",
    ".mp3",
    ".flac",
    ".m4a",
    ".amr",
    ".ogg",
    ".opus",
    ".aac",
    ".wma",
    ".mp4",
    ".3gp",
    ".webm",
    ".mka",
)
SAMPLE_RATE = 16000


class AudioError(ValueError):
    """A recording can't be decoded; the message is meant for the compliance officer."""


@dataclass(frozen=True)
class AudioInfo:
    channels: int
    sample_rate: int
    duration_s: float
    codec: str


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` can't be read as a recording without blocking, or None.

    stat() never blocks; opening a FIFO or reading /dev/zero through a symlink would
    hang the batch (hashing reads to the end of the file).
    """
    mode = os.stat(path).st_mode  # follows symlinks: what would be read
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"not a regular file: {kind}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    problem = not_a_regular_file(path)
    if problem:
        raise OSError(problem)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def probe(path: Path) -> AudioInfo:
    """Read the container header: channels, rate, duration.  Raises AudioError."""
    problem = not_a_regular_file(path)
    if problem:
        raise AudioError(problem)
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            streams = container.streams.audio
            if not streams:
                raise AudioError("not a readable audio file (it holds no audio stream)")
            stream = streams[0]
            channels = stream.codec_context.channels or stream.channels
            rate = stream.codec_context.sample_rate or stream.rate
            duration = 0.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            return AudioInfo(int(channels), int(rate), duration, stream.codec_context.name)
    except AudioError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise AudioError(f"not a readable audio file ({type(exc).__name__}: {exc})") from exc


def load_channels(path: Path, info: AudioInfo) -> list[np.ndarray]:
    """Decode to one 16 kHz float32 array per channel (stereo), or one array (mono).

    Recordings with more than two channels are downmixed to mono: no dialer convention
    tells which of six channels is the agent.
    """
    try:
        channels = decode_channels(str(path), 2 if info.channels == 2 else 1)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioError(f"audio could not be decoded ({type(exc).__name__}: {exc})") from exc
    if not channels or channels[0].size == 0:
        raise AudioError("the file decodes to no audio samples")
    return channels


def decode_channels(path: str, n_channels: int) -> list[np.ndarray]:
    """The samples faster-whisper's ``decode_audio`` gives (16-bit at 16 kHz, then
    float32), in about half its peak memory.

    ``decode_audio`` collects the 16-bit samples in a growing buffer, converts all of
    them to float32 and divides that into a third copy (on a 6-minute stereo call its
    peak was ~40 MB above this one's, bench/bench_memory.py).  Here the 16-bit blocks
    are written straight into one float32 array per channel.  Dividing by 2**15 is
    exact, so the samples are identical (tests/test_audio_decode.py).
    """
    resampler = av.AudioResampler(
        format="s16", layout="stereo" if n_channels == 2 else "mono", rate=SAMPLE_RATE
    )
    blocks: list[np.ndarray] = []
    with av.open(path, mode="r", metadata_errors="ignore") as container:
        frames = _ignore_invalid_frames(container.decode(audio=0))
        for frame in _resample_frames(_group_frames(frames, 500000), resampler):
            blocks.append(frame.to_ndarray().reshape(-1, n_channels))
    # As in decode_audio: the resampler's objects are freed only by a collection.
    del resampler
    gc.collect()
    total = sum(len(b) for b in blocks)
    channels = [np.empty(total, dtype=np.float32) for _ in range(n_channels)]
    at = 0
    blocks.reverse()
    while blocks:
        block = blocks.pop()  # each 16-bit block is freed once copied
        for c, channel in enumerate(channels):
            channel[at : at + len(block)] = block[:, c]
            channel[at : at + len(block)] /= 32768.0
        at += len(block)
    return channels


# Beyond this, recordings are decoded and transcribed window by window, so memory stays
# bounded (a 3-hour stereo call would be ~1.4 GB as float32 in one piece).
LONG_RECORDING_S = 20 * 60
WINDOW_S = 10 * 60


def iter_windows(
    path: Path, info: AudioInfo, window_s: float = WINDOW_S
) -> Iterator[tuple[float, list[np.ndarray]]]:
    """Stream-decode a long recording: yield (offset seconds, channels) per window."""
    layout = "stereo" if info.channels == 2 else "mono"
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE)
    window = int(window_s * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    pending_n = 0
    offset = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
            frames = (f for packet in container.demux(stream) for f in _decode(packet))
            for frame in itertools.chain(frames, [None]):  # None flushes the resampler
                for out in resampler.resample(frame):
                    block = out.to_ndarray().astype(np.float32, copy=False)
                    pending.append(block)
                    pending_n += block.shape[1]
                    while pending_n >= window:
                        merged = np.concatenate(pending, axis=1)
                        yield offset / SAMPLE_RATE, list(merged[:, :window])
                        offset += window
                        pending, pending_n = [merged[:, window:]], merged.shape[1] - window
    except av.error.FFmpegError as exc:
        raise AudioError(f"audio could not be decoded ({type(exc).__name__}: {exc})") from exc
    if pending_n:
        yield offset / SAMPLE_RATE, list(np.concatenate(pending, axis=1))


def _decode(packet: av.Packet) -> list[av.AudioFrame]:
    try:
        return packet.decode()
    except av.error.InvalidDataError:
        return []  # one corrupt packet in hours of audio: skip it, keep the rest
