"""Batched decoding (``TranscribeOptions.batch_size``) on real audio: the same call heard
the same way, speakers exact, times inside each channel's own speech, and long speech
not cut at Whisper's 30 s window."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from audit.audio import SAMPLE_RATE, load_channels, probe
from audit.transcribe import TranscribeOptions, transcribe_channels

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from asr_eval import cer_text, edit_distance  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "inbox"
SEQUENTIAL = TranscribeOptions()
BATCHED = replace(SEQUENTIAL, batch_size=8)


def _text(utterances, speaker: str) -> str:
    return cer_text("".join(u.text for u in utterances if u.speaker == speaker))


@pytest.fixture(scope="module")
def call_06():
    path = SAMPLES / "call_06_impersonation.wav"
    channels = load_channels(path, probe(path))
    return (
        channels,
        transcribe_channels(channels, SEQUENTIAL),
        transcribe_channels(channels, BATCHED),
    )


def test_batched_decoding_hears_what_sequential_decoding_hears(call_06):
    _, sequential, batched = call_06
    for speaker in ("agent", "customer"):
        a, b = _text(sequential, speaker), _text(batched, speaker)
        assert len(a) > 10, (speaker, a)
        # The same audio and model: the two decodings differ in a few characters (no
        # temperature fallback, no timestamp tokens), not in what was said.
        assert edit_distance(a, b) / len(a) < 0.25, (speaker, a, b)


def test_batched_utterances_keep_their_speaker_and_lie_in_that_channels_speech(call_06):
    channels, _, batched = call_06
    assert [u.idx for u in batched] == list(range(len(batched)))
    assert [u.start_s for u in batched] == sorted(u.start_s for u in batched)
    assert {u.speaker for u in batched} == {"agent", "customer"}
    for u in batched:
        channel = channels[0 if u.speaker == "agent" else 1]
        other = channels[1 if u.speaker == "agent" else 0]
        lo, hi = int(u.start_s * SAMPLE_RATE), int(u.end_s * SAMPLE_RATE)
        assert 0 <= lo < hi <= len(channel), u
        # The utterance's time span holds its own channel's speech, louder than the
        # other channel there (the samples carry only a noise floor on the silent side).
        rms = float(np.sqrt(np.mean(channel[lo:hi] ** 2)))
        rms_other = float(np.sqrt(np.mean(other[lo:hi] ** 2)))
        assert rms > 4 * rms_other, (u, rms, rms_other)


def test_speech_longer_than_one_window_is_heard_to_its_end():
    """45 s of one speaker without a pause: VAD must split it before the 30 s window, or
    batched decoding would silently drop the last 15 s."""
    path = SAMPLES / "call_03_threat.wav"
    agent = load_channels(path, probe(path))[0]
    speech = transcribe_channels([agent], SEQUENTIAL)
    pieces = [
        agent[int(u.start_s * SAMPLE_RATE) : int(u.end_s * SAMPLE_RATE)]
        for u in speech
        if u.end_s - u.start_s > 1.0
    ]
    assert pieces
    monologue = np.concatenate(pieces * (1 + int(45 * SAMPLE_RATE / sum(map(len, pieces)))))
    monologue = monologue[: 45 * SAMPLE_RATE]
    heard = transcribe_channels([monologue], BATCHED)
    assert heard and heard[-1].end_s > 38.0, [(u.start_s, u.end_s) for u in heard]
    assert all(u.speaker == "unknown" for u in heard)
