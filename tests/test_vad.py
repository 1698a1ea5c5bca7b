"""Bounded-memory speech detection and features (``audit.vad``, ``audit.features``):
the same speech found and the same features as faster-whisper's own, on real audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import vad as fw_vad

from audit.audio import SAMPLE_RATE, load_channels, probe
from audit.features import BoundedFeatureExtractor
from audit.transcribe import TranscribeOptions, get_model, speech_chunks
from audit.vad import WINDOWS_PER_RUN, BoundedSileroVAD, bounded_vad_model

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "inbox"


def _original_model() -> fw_vad.SileroVADModel:
    return fw_vad.SileroVADModel(os.path.join(fw_vad.get_assets_path(), "silero_vad_v6.onnx"))


@pytest.fixture(scope="module")
def agent_speech() -> np.ndarray:
    """Three sample calls' agent channels one after another, with 2 s gaps (~80 s)."""
    parts = []
    for path in sorted(SAMPLES.glob("call_0[3-5]*.wav")):
        parts += [load_channels(path, probe(path))[0], np.zeros(2 * SAMPLE_RATE, np.float32)]
    return np.concatenate(parts)


def test_bounded_vad_gives_faster_whispers_speech_probabilities(agent_speech):
    audio = agent_speech[: len(agent_speech) // 512 * 512]
    assert len(audio) // 512 > 2 * WINDOWS_PER_RUN  # several runs of the model
    original = _original_model()
    expected = original(audio)
    got = BoundedSileroVAD(original.session)(audio)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert expected.max() > 0.9 and expected.min() < 0.1  # speech and silence both there


def test_speech_chunks_are_the_ones_faster_whisper_finds(agent_speech, monkeypatch):
    options = TranscribeOptions()
    ours = speech_chunks(agent_speech, options)
    assert fw_vad.get_vad_model is bounded_vad_model  # faster-whisper now uses ours
    monkeypatch.setattr(fw_vad, "get_vad_model", _original_model)
    theirs = speech_chunks(agent_speech, options)
    assert len(ours) >= 6
    assert ours == theirs


@pytest.mark.parametrize("frames_per_run", [3000, 777])
def test_bounded_features_are_faster_whispers(agent_speech, frames_per_run):
    from faster_whisper.feature_extractor import FeatureExtractor

    audio = agent_speech[: len(agent_speech) - 1234]  # not a whole number of frames
    bounded = BoundedFeatureExtractor()
    bounded.frames_per_run = frames_per_run
    expected = FeatureExtractor()(audio, chunk_length=30)
    got = bounded(audio, chunk_length=30)
    assert expected.shape[1] > 2 * frames_per_run  # several runs
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert bounded.nb_max_frames == 3000  # chunk_length applied as faster-whisper does


def test_the_model_computes_its_features_in_bounded_runs():
    model = get_model(TranscribeOptions())
    assert isinstance(model.feature_extractor, BoundedFeatureExtractor)
    assert model.feature_extractor.sampling_rate == SAMPLE_RATE


def test_the_options_fallback_candidates_reach_whisper(monkeypatch, agent_speech):
    """``best_of`` (candidates sampled at each fallback temperature) sets the decoding's
    largest memory peak (bench/bench_memory.py); the option must be what Whisper gets."""
    import audit.transcribe as transcribe

    seen: dict = {}

    class Recorder:
        def transcribe(self, audio, **kwargs):
            seen.update(kwargs)
            return iter(()), None

    monkeypatch.setattr(transcribe, "get_model", lambda options: Recorder())
    options = TranscribeOptions(best_of=3)
    transcribe.transcribe_channel(agent_speech, "agent", options)
    assert seen["best_of"] == 3
    assert seen["temperature"] == list(options.temperatures)
    assert TranscribeOptions().best_of == 2  # the default chosen in bench/decoding_settings.py
