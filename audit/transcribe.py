"""Transcription with faster-whisper, tuned for 8 kHz Mandarin telephone calls.

* Each stereo channel is transcribed apart (channel 0 = agent, 1 = customer by default).
* Silero VAD at threshold 0.3: the default 0.5 drops much band-limited phone speech.
  It runs here, once per channel, rather than inside faster-whisper, so that its
  speech intervals are kept (``Transcript.speech``) for the conduct checks
  (audit/conduct.py) without a second pass; Whisper hears exactly what it did before.
* Word timestamps split Whisper's long segments at pauses, so one utterance is one
  turn: whole-channel decoding otherwise merges a speaker's turns across the other
  party's talk, and evidence time spans become vague.
* Output is normalised to simplified Chinese; the raw ASR text is kept beside it.
* Segments that look like Whisper inventing text (silence, subtitle phantoms,
  repetition loops) are kept but flagged, and detection skips them.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field

import numpy as np

from audit.audio import SAMPLE_RATE
from audit.features import use_bounded_features
from audit.heap import trim_freed_memory
from audit.model import ModelError, resolve_model
from audit.normalize import normalize
from audit.vad import use_bounded_vad

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Whisper's Chinese training data was full of video subtitles; on silence or noise it
# sometimes "hears" their credits.
PHANTOM_PATTERNS = re.compile(
    r"请不吝|点赞|订阅|转发|打赏|字幕|谢谢观看|感谢观看|谢谢收看|明镜|栏目|"
    r"(?:字幕|翻译|校对).{0,3}由.{0,16}提供|"
    r"Amara|优优独播|本视频|下集预告"
)


@dataclass(frozen=True)
class TranscribeOptions:
    model: str | None = None  # None = bundled Whisper base; or a folder / model name
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 1
    beam_size: int = 5
    language: str = "zh"
    vad_threshold: float = 0.3
    min_silence_ms: int = 500
    channel_roles: tuple[str, ...] = ("agent", "customer")
    hotwords: str | None = None  # words to bias Whisper to, or "catalogue" for the rules' list
    initial_prompt: str | None = None  # text Whisper continues from (bench/asr_telephone.py)
    # Temperature fallback: re-decode hotter when a result looks like a loop or is unsure.
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    # Candidates sampled at each fallback temperature.  faster-whisper's 5 raised a
    # worker's peak by ~90 MB on a call that fell back; 2 heard the same on 30 calls
    # where the fallback triggers (bench/decoding_settings.py, README).
    best_of: int = 2
    vad_speech_pad_ms: int = 400  # audio kept around each VAD speech chunk
    # Off: one bad window must not poison the next (bench/decoding_settings.py measures it).
    condition_on_previous_text: bool = False
    split_gap_s: float = 0.8
    max_no_speech_prob: float = 0.6
    min_avg_logprob: float = -1.0
    max_compression_ratio: float = 2.4
    concurrency: int = 1  # threads that may decode with one model at the same time
    # > 0: decode a call's speech windows (both channels) in batches of this many through
    # one encoder/decoder pass (see transcribe_batched); 0: one window after another.
    batch_size: int = 0


@dataclass(frozen=True)
class Utterance:
    idx: int
    speaker: str
    start_s: float
    end_s: float
    text: str
    raw_text: str
    avg_logprob: float
    no_speech_prob: float
    asr_flag: str | None = None  # why detection ignores it (phantom, no_speech, repetition)


class Transcript(list):
    """The utterances of a call (a list, as ever) and the speech VAD found on each
    channel: ``speech[c]`` lists (start_s, end_s), padded as Whisper heard them.
    ``speech`` is None when the transcriber does not say (scripted test transcribers)."""

    def __init__(
        self,
        utterances: list[Utterance] = (),
        speech: list[list[tuple[float, float]]] | None = None,
    ):
        super().__init__(utterances)
        self.speech = speech


@dataclass
class _Piece:
    start: float
    end: float
    words: list[str] = field(default_factory=list)


_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


def _no_telemetry() -> None:
    """onnxruntime (Silero VAD) keeps a telemetry event queue on some platforms: off."""
    try:
        import onnxruntime

        onnxruntime.disable_telemetry_events()
    except (ImportError, AttributeError):
        pass


def get_model(options: TranscribeOptions):  # -> faster_whisper.WhisperModel
    """One model per process and settings: loading costs seconds and ~300 MB."""
    from faster_whisper import WhisperModel

    _no_telemetry()
    trim_freed_memory()  # before the first call's arrays are allocated
    path = resolve_model(options.model)
    key = (path, options.device, options.compute_type, options.cpu_threads, options.concurrency)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            try:
                model = WhisperModel(
                    path,
                    device=options.device,
                    compute_type=options.compute_type,
                    cpu_threads=options.cpu_threads,
                    num_workers=max(1, options.concurrency),
                    local_files_only=True,
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelError(
                    f"cannot load the Whisper model from {path}: {str(exc).splitlines()[0]}. "
                    "Fix: pass --model with a complete CTranslate2 Whisper folder, or omit "
                    "--model for the bundled one (delete a damaged cache folder under "
                    "~/.cache/callaudit/models to have it rebuilt)"
                ) from exc
            use_bounded_features(model)  # same features, a fraction of the peak
            _MODELS[key] = model
    return model


def asr_flag(
    text: str,
    avg_logprob: float,
    no_speech_prob: float,
    compression_ratio: float,
    options: TranscribeOptions,
) -> str | None:
    if _is_phantom(text, no_speech_prob):
        return "phantom"
    if no_speech_prob > options.max_no_speech_prob and avg_logprob < options.min_avg_logprob:
        return "no_speech"
    if compression_ratio > options.max_compression_ratio:
        return "repetition"
    # 收费金融，收费金融 on a trailing bit of silence; a person repeating a word
    # (老赖老赖) is confident speech and stays.
    if _is_repeated_phrase(text) and no_speech_prob > 0.5:
        return "repetition"
    return None


def _is_phantom(text: str, no_speech_prob: float) -> bool:
    """Subtitle credits that Whisper invents.  A phantom word inside real speech
    (转发到朋友圈, 由我们公司提供) is not enough: the credit must make up most of the
    utterance, or the segment must be likely silence."""
    matches = list(PHANTOM_PATTERNS.finditer(text))
    if not matches:
        return False
    core = len(re.sub(r"[\W_]+", "", text)) or 1
    covered = sum(len(m.group(0)) for m in matches)
    return covered / core >= 0.4 or no_speech_prob > 0.5


def _is_repeated_phrase(text: str) -> bool:
    """收费金融，收费金融: one phrase said twice or more and nothing else (a decoding loop)."""
    core = re.sub(r"[\W_]+", "", text)
    n = len(core)
    for size in range(2, n // 2 + 1):
        if n % size == 0 and core[:size] * (n // size) == core:
            return True
    return False


def _split_on_pauses(segment, gap_s: float) -> list[_Piece]:
    words = segment.words or []
    if not words:
        return [_Piece(segment.start, segment.end, [segment.text])]
    pieces = [_Piece(words[0].start, words[0].end)]
    for w in words:
        if w.start - pieces[-1].end >= gap_s and pieces[-1].words:
            pieces.append(_Piece(w.start, w.end))
        pieces[-1].words.append(w.word)
        pieces[-1].end = max(pieces[-1].end, w.end)
    return pieces


# Batched decoding packs VAD chunks into windows of at most 30 s (Whisper's input); a
# chunk longer than that would be cut, so VAD splits long speech first (at its quietest
# point, as faster-whisper's own batched pipeline does).
WINDOW_S = 30.0


def speech_chunks(audio: np.ndarray, options: TranscribeOptions) -> list[dict]:
    """Silero VAD's speech chunks (sample offsets), with the options' settings."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    use_bounded_vad()
    vad = VadOptions(
        threshold=options.vad_threshold,
        min_silence_duration_ms=options.min_silence_ms,
        speech_pad_ms=options.vad_speech_pad_ms,
        max_speech_duration_s=WINDOW_S - 1.0 if options.batch_size > 0 else float("inf"),
    )
    return get_speech_timestamps(audio, vad)


def chunk_seconds(chunks: list[dict]) -> list[tuple[float, float]]:
    return [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in chunks]


def transcribe_channel(
    audio: np.ndarray,
    speaker: str,
    options: TranscribeOptions,
    chunks: list[dict] | None = None,
) -> list[Utterance]:
    """One channel.  VAD ``chunks`` (``speech_chunks``) are computed when not given;
    only they are decoded, and times are mapped back to the channel's, exactly as
    faster-whisper's own ``vad_filter=True`` does."""
    from faster_whisper.transcribe import restore_speech_timestamps

    model = get_model(options)
    if chunks is None:
        chunks = speech_chunks(audio, options)
    # The speech, end to end, in one copy (faster-whisper's collect_chunks gives the
    # same array but grows it chunk by chunk).
    heard = np.concatenate([audio[c["start"] : c["end"]] for c in chunks] or [audio[:0]])
    segments, _info = model.transcribe(
        heard,
        language=options.language,
        beam_size=options.beam_size,
        vad_filter=False,
        word_timestamps=True,
        condition_on_previous_text=options.condition_on_previous_text,
        hotwords=options.hotwords,
        initial_prompt=options.initial_prompt,
        temperature=list(options.temperatures),
        best_of=options.best_of,
        compression_ratio_threshold=options.max_compression_ratio,
        no_speech_threshold=options.max_no_speech_prob,
        log_prob_threshold=options.min_avg_logprob,
    )
    if chunks:
        segments = restore_speech_timestamps(segments, chunks, SAMPLE_RATE)
    return _utterances(segments, speaker, options)


def _utterances(segments, speaker: str, options: TranscribeOptions) -> list[Utterance]:
    """Whisper's segments (channel times) as utterances, split at pauses."""
    out: list[Utterance] = []
    for seg in segments:
        for piece in _split_on_pauses(seg, options.split_gap_s):
            raw = "".join(piece.words).strip()
            if not raw:
                continue
            out.append(
                Utterance(
                    idx=-1,
                    speaker=speaker,
                    start_s=round(float(piece.start), 3),
                    end_s=round(float(piece.end), 3),
                    text=normalize(raw),
                    raw_text=raw,
                    avg_logprob=float(seg.avg_logprob),
                    no_speech_prob=float(seg.no_speech_prob),
                    asr_flag=asr_flag(
                        raw, seg.avg_logprob, seg.no_speech_prob, seg.compression_ratio, options
                    ),
                )
            )
    return out


def transcribe_batched(
    channels: list[np.ndarray], chunks: list[list[dict]], options: TranscribeOptions
) -> list[list]:
    """Each channel's Whisper segments (channel times, with words), decoded in batches.

    A channel's VAD chunks are packed into windows of at most 30 s, as faster-whisper's
    ``BatchedInferencePipeline`` packs them; the windows of all channels then go through
    its ``forward`` ``batch_size`` at a time, so the two sides of a short call fill one
    batch.  Each window decodes once at the first temperature (no fallback: the
    repetition and no-speech flags still mark a bad result) and carries its channel, so
    speakers stay exact.  This uses faster-whisper 1.2.1's pipeline internals (pinned in
    pyproject.toml); tests/test_transcribe_batched.py checks them on real audio.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import (
        BatchedInferencePipeline,
        Segment,
        Word,
        restore_speech_timestamps,
    )
    from faster_whisper.vad import collect_chunks

    model = get_model(options)
    pipeline = BatchedInferencePipeline(model)  # cheap: it holds the shared model
    windows: list[tuple[int, np.ndarray, dict]] = []
    for c, (audio, found) in enumerate(zip(channels, chunks, strict=True)):
        if not found:
            continue
        pieces, metadata = collect_chunks(audio, found, SAMPLE_RATE, max_duration=WINDOW_S)
        for piece, meta in zip(pieces, metadata, strict=True):
            features = model.feature_extractor(piece)[..., :-1]
            windows.append((c, pad_or_trim(features), meta))
    tokenizer = Tokenizer(
        model.hf_tokenizer,
        model.model.is_multilingual,
        task="transcribe",
        language=options.language,
    )
    decoding = _batched_options(tokenizer, options)
    segments: list[list] = [[] for _ in channels]
    for i in range(0, len(windows), options.batch_size):
        batch = windows[i : i + options.batch_size]
        pipeline.last_speech_timestamp = 0.0
        results = pipeline.forward(
            np.stack([w[1] for w in batch]), tokenizer, [w[2] for w in batch], decoding
        )
        for (c, _, _), result in zip(batch, results, strict=True):
            for seg in result:
                segments[c].append(
                    Segment(
                        id=len(segments[c]),
                        seek=seg["seek"],
                        start=seg["start"],
                        end=seg["end"],
                        text=seg["text"],
                        tokens=seg["tokens"],
                        avg_logprob=seg["avg_logprob"],
                        compression_ratio=seg["compression_ratio"],
                        no_speech_prob=seg["no_speech_prob"],
                        words=[Word(**w) for w in seg.get("words", [])],
                        temperature=decoding.temperatures[0],
                    )
                )
    return [
        list(restore_speech_timestamps(segs, found, SAMPLE_RATE)) if found else []
        for segs, found in zip(segments, chunks, strict=True)
    ]


def _batched_options(tokenizer, options: TranscribeOptions):
    """faster-whisper's TranscriptionOptions for batched decoding, with its own defaults
    (read from ``BatchedInferencePipeline.transcribe``) for what callaudit does not set."""
    from inspect import signature

    from faster_whisper.transcribe import (
        BatchedInferencePipeline,
        TranscriptionOptions,
        get_suppressed_tokens,
    )

    default = {
        name: p.default
        for name, p in signature(BatchedInferencePipeline.transcribe).parameters.items()
    }
    return TranscriptionOptions(
        beam_size=options.beam_size,
        best_of=default["best_of"],
        patience=default["patience"],
        length_penalty=default["length_penalty"],
        repetition_penalty=default["repetition_penalty"],
        no_repeat_ngram_size=default["no_repeat_ngram_size"],
        log_prob_threshold=options.min_avg_logprob,
        no_speech_threshold=options.max_no_speech_prob,
        compression_ratio_threshold=options.max_compression_ratio,
        condition_on_previous_text=False,
        prompt_reset_on_temperature=0.5,
        temperatures=[options.temperatures[0]],
        initial_prompt=options.initial_prompt,
        prefix=None,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        without_timestamps=True,
        max_initial_timestamp=0.0,
        word_timestamps=True,
        prepend_punctuations=default["prepend_punctuations"],
        append_punctuations=default["append_punctuations"],
        multilingual=False,
        max_new_tokens=None,
        clip_timestamps="0",
        hallucination_silence_threshold=None,
        hotwords=options.hotwords,
    )


def transcribe_channels(channels: list[np.ndarray], options: TranscribeOptions) -> Transcript:
    """All channels of a call, merged in time order and numbered, with each channel's
    VAD speech intervals."""
    if len(channels) == 2:
        roles = list(options.channel_roles) + ["unknown"] * 2
        speakers = roles[:2]
    else:
        speakers = ["unknown"] * len(channels)
    chunks = [speech_chunks(audio, options) for audio in channels]
    speech = [chunk_seconds(c) for c in chunks]
    merged: list[Utterance] = []
    if options.batch_size > 0:
        for segments, speaker in zip(
            transcribe_batched(channels, chunks, options), speakers, strict=True
        ):
            merged.extend(_utterances(segments, speaker, options))
    else:
        for audio, speaker, found in zip(channels, speakers, chunks, strict=True):
            merged.extend(transcribe_channel(audio, speaker, options, found))
    merged.sort(key=lambda u: (u.start_s, u.speaker))
    numbered = [
        Utterance(
            i,
            u.speaker,
            u.start_s,
            u.end_s,
            u.text,
            u.raw_text,
            u.avg_logprob,
            u.no_speech_prob,
            u.asr_flag,
        )
        for i, u in enumerate(merged)
    ]
    return Transcript(numbered, speech)
