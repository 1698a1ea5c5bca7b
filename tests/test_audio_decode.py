"""``decode_channels`` gives exactly the samples faster-whisper's ``decode_audio`` gives
(the decoding Whisper was measured with), in every common codec and channel layout."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from audit.audio import decode_channels, load_channels, probe

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "inbox"


def _encode(path: Path, codec: str, rate: int, channels: int, seconds: float) -> Path:
    """A tone with noise, different on each channel, written with PyAV."""
    rng = np.random.default_rng(7)
    t = np.arange(int(rate * seconds)) / rate
    audio = np.stack(
        [
            0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * rng.standard_normal(t.size)
            for c in range(channels)
        ]
    ).astype(np.float32)
    layout = {1: "mono", 2: "stereo", 3: "3.0"}[channels]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        size = stream.codec_context.frame_size or 1024
        for i in range(0, audio.shape[1], size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, i : i + size]), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


CASES = [
    ("pcm.wav", "pcm_s16le", 8000, 2),
    ("mulaw.wav", "pcm_mulaw", 8000, 2),
    ("mono.wav", "pcm_s16le", 8000, 1),
    ("call.mp3", "libmp3lame", 8000, 2),
    ("call.m4a", "aac", 16000, 2),
    ("call.ogg", "libopus", 48000, 1),
    ("call.flac", "flac", 44100, 2),
    ("three.wav", "pcm_s16le", 8000, 3),  # more than two channels: downmixed to mono
]


@pytest.mark.parametrize(("name", "codec", "rate", "channels"), CASES)
def test_the_samples_are_decode_audios(tmp_path, name, codec, rate, channels):
    path = _encode(tmp_path / name, codec, rate, channels, seconds=37.3)
    ours = load_channels(path, probe(path))
    if channels == 2:
        theirs = list(decode_audio(str(path), sampling_rate=16000, split_stereo=True))
    else:
        theirs = [decode_audio(str(path), sampling_rate=16000)]
    assert len(ours) == len(theirs)
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.dtype == np.float32
        assert mine.size > 16000 * 36
        np.testing.assert_array_equal(mine, reference)


def test_a_sample_call_decodes_as_before():
    path = sorted(SAMPLES.glob("*.wav"))[0]
    left, right = decode_channels(str(path), 2)
    reference = decode_audio(str(path), sampling_rate=16000, split_stereo=True)
    np.testing.assert_array_equal(left, reference[0])
    np.testing.assert_array_equal(right, reference[1])
    # The two sides of a call are different signals, not one copied twice.
    assert not np.array_equal(left, right)
