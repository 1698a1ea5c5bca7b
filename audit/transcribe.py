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
from audit.model import ModelError, resolve_model
from audit.normalize import normalize

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
    vad_speech_pad_ms: int = 400  # audio kept around each VAD speech chunk
    split_gap_s: float = 0.8
    max_no_speech_prob: float = 0.6
    min_avg_logprob: float = -1.0
    max_compression_ratio: float = 2.4
    concurrency: int = 1  # threads that may decode with one model at the same time


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


def speech_chunks(audio: np.ndarray, options: TranscribeOptions) -> list[dict]:
    """Silero VAD's speech chunks (sample offsets), with the options' settings."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    vad = VadOptions(
        threshold=options.vad_threshold,
        min_silence_duration_ms=options.min_silence_ms,
        speech_pad_ms=options.vad_speech_pad_ms,
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
    from faster_whisper.vad import collect_chunks

    model = get_model(options)
    if chunks is None:
        chunks = speech_chunks(audio, options)
    heard = np.concatenate(collect_chunks(audio, chunks)[0], axis=0)
    segments, _info = model.transcribe(
        heard,
        language=options.language,
        beam_size=options.beam_size,
        vad_filter=False,
        word_timestamps=True,
        condition_on_previous_text=False,  # one bad segment must not poison the next
        hotwords=options.hotwords,
        initial_prompt=options.initial_prompt,
        temperature=list(options.temperatures),
        compression_ratio_threshold=options.max_compression_ratio,
        no_speech_threshold=options.max_no_speech_prob,
        log_prob_threshold=options.min_avg_logprob,
    )
    if chunks:
        segments = restore_speech_timestamps(segments, chunks, SAMPLE_RATE)
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


def transcribe_channels(channels: list[np.ndarray], options: TranscribeOptions) -> Transcript:
    """All channels of a call, merged in time order and numbered, with each channel's
    VAD speech intervals."""
    if len(channels) == 2:
        roles = list(options.channel_roles) + ["unknown"] * 2
        speakers = roles[:2]
    else:
        speakers = ["unknown"] * len(channels)
    merged: list[Utterance] = []
    speech: list[list[tuple[float, float]]] = []
    for audio, speaker in zip(channels, speakers, strict=True):
        chunks = speech_chunks(audio, options)
        speech.append(chunk_seconds(chunks))
        merged.extend(transcribe_channel(audio, speaker, options, chunks))
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
