"""One call, start to finish: decode → transcribe → detect → a ``CallResult``.

``audit_call`` never raises for a bad recording: the error becomes the result's
``status='failed'`` and message, so a batch goes on and the failure is on record.
Results are plain dataclasses, picklable, so any executor (threads, processes, Dask)
can carry them back to the single process that writes the database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit import conduct
from audit.audio import (
    AUDIO_EXTENSIONS,
    LONG_RECORDING_S,
    SAMPLE_RATE,
    WINDOW_S,
    AudioError,
    AudioInfo,
    iter_windows,
    load_channels,
    probe,
    sha256_file,
)
from audit.callee import resolve_callee
from audit.detect import Detector, UtteranceIn, get_detector
from audit.model import ModelError, describe_model
from audit.pii import mask_digits
from audit.policy import Policy, load_policy
from audit.transcribe import TranscribeOptions, Utterance, transcribe_channels

if TYPE_CHECKING:
    from audit.learned import LearnedStage

log = logging.getLogger("callaudit")

# Returns the utterances; a ``Transcript`` (audit.transcribe) also gives each channel's
# VAD speech, which the conduct checks need (a plain list: no conduct checks).
Transcriber = Callable[[list[np.ndarray], TranscribeOptions], list[Utterance]]


@dataclass(frozen=True)
class AuditOptions:
    transcribe: TranscribeOptions = field(default_factory=TranscribeOptions)
    rules: str = "cn"  # policy pack name or YAML path
    pii: str = "mask"  # mask | keep: PII in stored text and evidence
    long_recording_s: float = LONG_RECORDING_S  # longer: transcribe window by window
    window_s: float = WINDOW_S
    learned: bool = True  # the learned stage (audit.learned) beside the rules
    correct: bool = True  # domain correction of Whisper's homophones (audit.correct)
    # The policy pack whose conduct rules judge the audio (None: the bundled "cn").
    policy: Policy | None = None


@dataclass(frozen=True)
class CallInput:
    call_id: str
    path: str
    sha256: str | None = None
    callee_relation: str = "unknown"  # debtor | third_party | unknown
    problem: str | None = None  # found before reading (a link out of the inbox): fails


@dataclass(frozen=True)
class Finding:
    finding_id: str
    call_id: str
    rule_id: str
    category: str
    severity: str
    speaker: str
    utterance_idx: int | None
    start_s: float
    end_s: float
    text: str
    match: str
    char_start: int | None
    char_end: int | None
    via: str
    citation: str
    score: float | None = None  # learned stage: the classifier's score


@dataclass
class CallResult:
    call_id: str
    source_path: str
    sha256: str | None
    status: str  # ok | failed
    error: str | None
    model: str
    rules_version: str
    duration_s: float | None = None
    channels: int | None = None
    sample_rate: int | None = None
    codec: str | None = None
    utterances: list[Utterance] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    audited_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    processing_s: float = 0.0
    callee_inferred: str | None = None  # 'third_party: <evidence>' (audit.callee)
    channel_roles: str | None = None  # speaker of stereo channels 0,1: 'agent,customer'
    metrics: conduct.CallMetrics | None = None  # call_metrics row (audit.conduct)


def finding_id(
    call_id: str, rule_id: str, utterance_idx: int | None, char_start: int | None
) -> str:
    """Stable across re-runs: the same call, rule and position give the same id."""
    key = f"{call_id}|{rule_id}|{utterance_idx}|{char_start}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def discover(inbox: Path) -> list[CallInput]:
    """Recordings under inbox (recursive), call_id = path relative to inbox minus extension.

    Two recordings that differ only by extension (x.wav, x.flac) would share an id and
    overwrite each other: both keep their extension in the id instead (x.wav, x.flac).
    """
    if not inbox.is_dir():
        raise FileNotFoundError(f"inbox is not a folder: {inbox}")
    paths: list[Path] = []
    inside = inbox.resolve()
    for root, dirs, files in os.walk(inbox, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(AUDIO_EXTENSIONS):
                continue
            paths.append(Path(root) / name)
    ids = [_stem_id(p, inbox) for p in paths]
    shared = {i for i, n in Counter(ids).items() if n > 1}
    return [
        CallInput(
            call_id=_rel_id(p, inbox) if call_id in shared else call_id,
            path=str(p),
            problem=_outside(p, inside),
        )
        for p, call_id in zip(paths, ids, strict=True)
    ]


def _outside(path: Path, inbox: Path) -> str | None:
    """A symlink out of the inbox is refused, as the manifest refuses such a path."""
    if not path.is_symlink():
        return None
    target = Path(os.path.realpath(path))  # never raises, even on a loop
    if target == inbox or inbox in target.parents:
        return None
    return "the file is a symbolic link to outside the inbox; copy the recording in instead"


def _rel_id(path: Path, inbox: Path) -> str:
    return str(path.relative_to(inbox)).replace(os.sep, "/")


def _stem_id(path: Path, inbox: Path) -> str:
    return _rel_id(path.with_suffix(""), inbox)


def get_learned(options: AuditOptions) -> LearnedStage | None:
    """The learned stage when the options want it (built once per process)."""
    if not options.learned:
        return None
    from audit.learned import get_learned as build

    return build()


def conduct_policy(options: AuditOptions) -> Policy:
    """The pack whose conduct rules the options use."""
    return options.policy if options.policy is not None else _default_policy()


_DEFAULT_POLICY: list[Policy] = []


def _default_policy() -> Policy:
    if not _DEFAULT_POLICY:
        _DEFAULT_POLICY.append(load_policy("cn"))
    return _DEFAULT_POLICY[0]


def detection_version(options: AuditOptions) -> str:
    """What produced the findings: the catalogue's version, plus the learned model's
    and the corrector's when they are on, and last the conduct thresholds'
    (``+conduct-...``).  A change of any makes calls due again."""
    return f"{text_version(options)}+{conduct_policy(options).conduct_version}"


def text_version(options: AuditOptions) -> str:
    """The part of ``detection_version`` that stored utterances can be judged again by."""
    version = get_detector(options.rules).catalogue.rules_version
    stage = get_learned(options)
    if stage is not None:
        version += f"+{stage.version}"
    if options.correct:
        from audit.correct import get_corrector

        version += f"+{get_corrector().version}"
    return version


def correct_utterances(utterances: list[Utterance]) -> list[Utterance]:
    """Whisper's homophones of domain words rewritten (``raw_text`` keeps what it said)."""
    from audit.correct import get_corrector

    corrector = get_corrector()
    return [replace(u, text=corrector.correct(u.text)[0]) for u in utterances]


def hotwords_for(options: AuditOptions) -> TranscribeOptions:
    """Feed the catalogue's key terms to Whisper when asked (``hotwords="catalogue"``).

    Off by default: measured on the sample calls, Whisper base inserted hotwords that
    were never said (催收, 消费金融), which would put words in an agent's mouth.
    """
    if options.transcribe.hotwords != "catalogue":
        return options.transcribe
    words = " ".join(get_detector(options.rules).catalogue.hotwords)
    return replace(options.transcribe, hotwords=words or None)


def detect_findings(
    call_id: str,
    utterances: Iterable[Utterance],
    detector: Detector,
    callee_relation: str = "unknown",
    learned: LearnedStage | None = None,
) -> list[Finding]:
    """Utterance rules on every usable utterance, then (when given) the learned stage on
    the categories they did not find there, then the whole-call rules."""
    usable = [u for u in utterances if not u.asr_flag and u.text]
    findings: list[Finding] = []
    if learned is None:
        per_utterance = [detector.detect(u.text, u.speaker, callee_relation) for u in usable]
    else:
        extra = learned.hits_batch(
            [u.text for u in usable],
            [u.speaker for u in usable],
            [callee_relation] * len(usable),
        )
        per_utterance = [
            detector.detect_with(u.text, more, u.speaker, callee_relation)
            for u, more in zip(usable, extra, strict=True)
        ]
    for u, hits in zip(usable, per_utterance, strict=True):
        for hit in hits:
            findings.append(
                Finding(
                    finding_id=finding_id(call_id, hit.rule_id, u.idx, hit.start),
                    call_id=call_id,
                    rule_id=hit.rule_id,
                    category=hit.category,
                    severity=hit.severity,
                    speaker=u.speaker,
                    utterance_idx=u.idx,
                    start_s=u.start_s,
                    end_s=u.end_s,
                    text=u.text,
                    match=hit.match,
                    char_start=hit.start,
                    char_end=hit.end,
                    via=hit.via,
                    citation=hit.citation,
                    score=hit.score,
                )
            )
    call_level = [UtteranceIn(u.idx, u.speaker, u.start_s, u.end_s, u.text) for u in usable]
    for hit in detector.detect_call(call_level):
        fid = finding_id(call_id, hit.rule_id, None, None)
        findings.append(_span_finding(fid, call_id, hit, hit.category, hit.utterance_idx, "call"))
    return findings


def _span_finding(
    fid: str, call_id: str, hit: Any, category: str, utterance_idx: int | None, via: str
) -> Finding:
    """A finding of a whole-call or audio rule: its evidence is the hit's time span and
    text, not a character range of one utterance."""
    return Finding(
        finding_id=fid,
        call_id=call_id,
        rule_id=hit.rule_id,
        category=category,
        severity=hit.severity,
        speaker=hit.speaker,
        utterance_idx=utterance_idx,
        start_s=hit.start_s,
        end_s=hit.end_s,
        text=hit.text,
        match=hit.match,
        char_start=None,
        char_end=None,
        via=via,
        citation=hit.citation,
    )


def conduct_findings(
    call_id: str,
    timeline: conduct.Timeline | None,
    utterances: list[Utterance],
    options: AuditOptions,
    speakers_known: bool,
    why_not: str | None = None,
) -> tuple[list[Finding], conduct.CallMetrics]:
    """The conduct rules of the options' policy over the call's audio timeline."""
    started = time.perf_counter()
    policy = conduct_policy(options)
    hits, metrics = conduct.judge(
        timeline, utterances, policy.conduct, policy.conduct_version, speakers_known, why_not
    )
    findings = [
        _span_finding(
            conduct_finding_id(call_id, h.rule_id, h.start_s),
            call_id,
            h,
            "conduct",
            None,
            "conduct",
        )
        for h in hits
    ]
    measured = timeline.measure_s if timeline is not None else 0.0
    metrics.conduct_s = round(time.perf_counter() - started + measured, 4)
    return findings, metrics


def conduct_finding_id(call_id: str, rule_id: str, start_s: float | None) -> str:
    """Conduct findings have no utterance: the span's start (ms) tells them apart."""
    return finding_id(call_id, rule_id, None, None if start_s is None else round(start_s * 1000))


def _speakers(n_channels: int, options: AuditOptions) -> list[str]:
    if n_channels == 2:
        return list(options.transcribe.channel_roles)[:2]
    return ["unknown"] * n_channels


def _why_not(n_channels: int, speakers: list[str]) -> str | None:
    if n_channels != 2:
        return "mono recording: the speakers are not on separate channels"
    if "agent" not in speakers or "customer" not in speakers:
        return "the channel roles name no agent and customer"
    return None


def _measure(
    channels: list[np.ndarray], transcript: list[Utterance], options: AuditOptions
) -> conduct.Timeline | None:
    """The call's conduct timeline from the audio in memory and the transcriber's VAD;
    None when the transcriber gave no VAD speech (a scripted test transcriber).  The
    seconds it took are kept on the timeline (``measure_s``) for the call's metrics."""
    speech = getattr(transcript, "speech", None)
    if speech is None or len(speech) != len(channels):
        return None
    started = time.perf_counter()
    timeline = conduct.measure(channels, speech, _speakers(len(channels), options), SAMPLE_RATE)
    timeline.measure_s = time.perf_counter() - started
    return timeline


def _new_result(
    call: CallInput, options: AuditOptions, status: str = "ok", error: str | None = None
) -> CallResult:
    return CallResult(
        call_id=call.call_id,
        source_path=call.path,
        sha256=call.sha256,
        status=status,
        error=error,
        model=describe_model(options.transcribe.model),
        rules_version=detection_version(options),
        channel_roles=",".join(options.transcribe.channel_roles),
    )


def failed_result(call: CallInput, options: AuditOptions, error: str) -> CallResult:
    """A call whose worker died (out of memory, lost Dask worker): on record as failed."""
    return _new_result(call, options, "failed", error)


def mask_result(result: CallResult) -> CallResult:
    """Mask ID, bank-card and phone numbers in everything stored; findings stay."""
    result.utterances = [
        replace(u, text=mask_digits(u.text), raw_text=mask_digits(u.raw_text))
        for u in result.utterances
    ]
    result.findings = [
        replace(f, text=mask_digits(f.text), match=mask_digits(f.match)) for f in result.findings
    ]
    if result.callee_inferred:
        result.callee_inferred = mask_digits(result.callee_inferred)
    return result


def _transcribe_in_windows(
    call: CallInput,
    path: Path,
    info: AudioInfo,
    options: AuditOptions,
    transcriber: Transcriber,
) -> tuple[list[Utterance], int, conduct.Timeline | None, int]:
    """Long recordings: bounded memory, progress per window, times shifted back.
    The conduct timeline is measured window by window and joined."""
    utterances: list[Utterance] = []
    samples = 0
    timeline: conduct.Timeline | None = None
    measured = True
    n_channels = 0
    total = max(1, round(info.duration_s / options.window_s + 0.499))
    for n, (offset, channels) in enumerate(iter_windows(path, info, options.window_s), 1):
        samples = int(offset * SAMPLE_RATE) + max(len(c) for c in channels)
        n_channels = len(channels)
        heard = transcriber(channels, hotwords_for(options))
        part = _measure(channels, heard, options) if measured else None
        if part is None:
            measured, timeline = False, None
        elif timeline is None:
            timeline = part
        else:
            timeline.extend(part, offset)
        for u in heard:
            utterances.append(
                replace(u, start_s=round(u.start_s + offset, 3), end_s=round(u.end_s + offset, 3))
            )
        minutes = samples / SAMPLE_RATE / 60
        log.info("%s: window %d/%d transcribed (%.0f min)", call.call_id, n, total, minutes)
    utterances.sort(key=lambda u: (u.start_s, u.speaker))
    numbered = [replace(u, idx=i) for i, u in enumerate(utterances)]
    return numbered, samples, timeline, n_channels


def audit_call(
    call: CallInput,
    options: AuditOptions,
    transcriber: Transcriber = transcribe_channels,
) -> CallResult:
    """Audit one recording.  Bad input yields a failed result, never an exception."""
    started = time.perf_counter()
    detector = get_detector(options.rules)
    result = _new_result(call, options)
    path = Path(call.path)
    try:
        if call.problem:
            raise AudioError(call.problem)
        if result.sha256 is None:
            result.sha256 = sha256_file(path)
        info = probe(path)
        result.channels, result.sample_rate = info.channels, info.sample_rate
        result.duration_s, result.codec = info.duration_s, info.codec
        if info.duration_s > options.long_recording_s:
            result.utterances, samples, timeline, n_channels = _transcribe_in_windows(
                call, path, info, options, transcriber
            )
        else:
            channels = load_channels(path, info)
            samples, n_channels = max(len(c) for c in channels), len(channels)
            transcript = transcriber(channels, hotwords_for(options))
            timeline = _measure(channels, transcript, options)
            result.utterances = list(transcript)
            del channels
        result.duration_s = round(samples / SAMPLE_RATE, 3)
        if options.correct:
            result.utterances = correct_utterances(result.utterances)
        callee, inferred = resolve_callee(call.callee_relation, result.utterances)
        result.callee_inferred = inferred.note if inferred else None
        result.findings = detect_findings(
            call.call_id, result.utterances, detector, callee, get_learned(options)
        )
        speakers = _speakers(n_channels, options)
        why_not = _why_not(n_channels, speakers)
        if timeline is None:
            why_not = "the transcriber gave no VAD speech timeline: conduct not measured"
        found, result.metrics = conduct_findings(
            call.call_id, timeline, result.utterances, options, why_not is None, why_not
        )
        result.findings += found
    except (AudioError, ModelError) as exc:
        result.status, result.error = "failed", str(exc)
    except PermissionError as exc:
        result.status, result.error = "failed", f"permission denied: {exc.filename}"
    except FileNotFoundError as exc:
        result.status, result.error = "failed", f"file not found: {exc.filename}"
    except OSError as exc:
        result.status, result.error = "failed", f"cannot read the file: {exc}"
    except Exception as exc:  # noqa: BLE001 - one odd recording must not stop the batch
        log.exception("unexpected error auditing %s", call.call_id)
        result.status, result.error = "failed", f"unexpected error ({type(exc).__name__}: {exc})"
    if result.status == "failed":
        result.utterances, result.findings, result.metrics = [], [], None
    if options.pii == "mask":
        mask_result(result)
    result.processing_s = round(time.perf_counter() - started, 3)
    return result
