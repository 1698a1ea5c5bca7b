"""How it was said: talking over the debtor, shouting, dead air and pace, from the audio.

Two steps, kept apart so the numbers can be judged again without the audio:

* ``measure``: from the decoded channels already in memory and the VAD speech chunks
  transcription already found (``Transcript.speech``), each channel's talk spurts (VAD
  regions narrowed to 10 ms frames that hold speech energy, pauses under
  ``HANGOVER_S`` bridged) and its loudness per 100 ms frame (RMS and peak, dBFS).
* ``judge``: the conduct rules of a policy pack (thresholds as data, beside the contact
  rules) over that timeline and the agent's utterances, giving hits with a time span
  and the measured value, and the call's metrics (talk ratio, overtalk, silence...).

Mono recordings mix both parties: who speaks, and so overtalk, interruptions, the
agent's loudness and pace, can't be told, and the metrics say so (``not_run``); dead
air (silence of everyone) still can.  Nothing here imports the pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from audit.policy import ConductRule

SAMPLE_RATE = 16000
GATE_S = 0.01  # resolution of talk spurts
FRAME_S = 0.1  # loudness frames
HANGOVER_S = 0.3  # pauses shorter than this inside one speaker's talk are bridged
MIN_SPURT_S = 0.1  # shorter bursts of energy are clicks, not talk
GATE_BELOW_PEAK_DB = 30.0  # speech energy: within this of the channel's loud speech ...
GATE_ABOVE_FLOOR_DB = 12.0  # ... and this far above its noise floor
SILENT_DBFS = -100.0  # the level given to digital silence
PACE_MIN_CHARS, PACE_MIN_S = 10, 1.5  # utterances long enough for a rate

Span = tuple[float, float]


@dataclass
class ChannelTimeline:
    speaker: str  # agent | customer | unknown (mono)
    spurts: list[Span]
    frame_db: np.ndarray  # RMS dBFS per 100 ms frame from 0 s
    frame_peak_db: np.ndarray  # peak dBFS per 100 ms frame


@dataclass
class Timeline:
    duration_s: float
    channels: list[ChannelTimeline]
    measure_s: float = 0.0  # seconds measuring took (the call's metrics report it)

    def channel(self, speaker: str) -> ChannelTimeline | None:
        return next((c for c in self.channels if c.speaker == speaker), None)

    def extend(self, later: Timeline, offset_s: float) -> None:
        """Append the timeline of the next window of a long recording."""
        for mine, theirs in zip(self.channels, later.channels, strict=True):
            shifted = [(round(a + offset_s, 3), round(b + offset_s, 3)) for a, b in theirs.spurts]
            mine.spurts = merge_spans(mine.spurts + shifted, HANGOVER_S)
            pad = int(round(offset_s / FRAME_S)) - len(mine.frame_db)
            fill = np.full(max(0, pad), SILENT_DBFS, dtype=np.float32)
            mine.frame_db = np.concatenate([mine.frame_db, fill, theirs.frame_db])
            mine.frame_peak_db = np.concatenate([mine.frame_peak_db, fill, theirs.frame_peak_db])
        self.duration_s = max(self.duration_s, offset_s + later.duration_s)
        self.measure_s += later.measure_s


@dataclass(frozen=True)
class ConductHit:
    rule_id: str
    severity: str
    citation: str
    speaker: str
    start_s: float
    end_s: float
    text: str  # the evidence in words, with the measured value
    match: str  # the measured value against the limit


@dataclass
class CallMetrics:
    """One row of ``call_metrics``: what was measured, whatever the thresholds."""

    agent_talk_s: float | None = None
    customer_talk_s: float | None = None
    talk_ratio: float | None = None  # agent share of all talk
    overtalk_s: float | None = None  # both talking at once, in total
    overtalk_events: int | None = None  # overlaps of at least the overtalk rule's length
    interruptions: int | None = None  # the agent starting over the customer
    longest_silence_s: float | None = None  # neither talking, between first and last talk
    agent_median_dbfs: float | None = None
    agent_loudness_range_db: float | None = None  # 95th - 10th percentile of agent speech
    agent_max_above_median_db: float | None = None  # loudest sustained second vs the median
    agent_peak_dbfs: float | None = None
    mean_pace_cps: float | None = None  # agent characters per second over its utterances
    max_pace_cps: float | None = None
    not_run: str | None = None  # checks that could not run, and why
    conduct_version: str | None = None
    conduct_s: float | None = None  # seconds the measuring and judging took


# ---------------------------------------------------------------- spans


def merge_spans(spans: Iterable[Span], gap_s: float = 0.0) -> list[Span]:
    """Sorted union of spans; spans less than ``gap_s`` apart are joined."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] < gap_s + 1e-9:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def intersect(xs: Sequence[Span], ys: Sequence[Span]) -> list[Span]:
    """Overlaps of two sorted, disjoint span lists."""
    out: list[Span] = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if b > a:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


def total(spans: Iterable[Span]) -> float:
    return float(sum(b - a for a, b in spans))


def gaps(spans: Sequence[Span]) -> list[Span]:
    """The silences between sorted, disjoint spans (before the first and after the last
    span are not inside the conversation)."""
    return [(spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)]


# ---------------------------------------------------------------- measure


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10 * np.log10(np.maximum(power, 1e-12)), SILENT_DBFS).astype(np.float32)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of the True runs of a boolean array."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def fine_power(audio: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mean power of each 10 ms frame, the audio padded with silence to whole 100 ms."""
    hop = int(rate * GATE_S)
    per_frame = int(round(FRAME_S / GATE_S))
    n = -(-len(audio) // (hop * per_frame)) * per_frame
    x = np.zeros(n * hop, dtype=np.float32)
    x[: len(audio)] = audio
    x *= x
    return x.reshape(n, hop).mean(axis=1)


def talk_spurts(
    audio: np.ndarray,
    vad: Sequence[Span],
    rate: int = SAMPLE_RATE,
    power: np.ndarray | None = None,
) -> list[Span]:
    """VAD's speech regions (padded for Whisper) narrowed to where speech energy is.

    A 10 ms frame is talk when it lies in a VAD region and its level is within
    ``GATE_BELOW_PEAK_DB`` of the channel's loud speech and ``GATE_ABOVE_FLOOR_DB``
    above its noise floor; pauses shorter than ``HANGOVER_S`` are bridged.
    """
    level = _db(fine_power(audio, rate) if power is None else power)
    n = min(len(level), int(round(len(audio) / (rate * GATE_S))))
    level = level[:n]
    if n == 0 or not vad:
        return []
    in_vad = np.zeros(n, dtype=bool)
    for a, b in vad:
        in_vad[max(0, int(a / GATE_S)) : min(n, int(np.ceil(b / GATE_S)))] = True
    if not in_vad.any():
        return []
    loud = float(np.percentile(level[in_vad], 95))
    floor = float(np.percentile(level, 10))
    threshold = max(loud - GATE_BELOW_PEAK_DB, min(floor + GATE_ABOVE_FLOOR_DB, (loud + floor) / 2))
    spans = [(s * GATE_S, e * GATE_S) for s, e in _runs(in_vad & (level >= threshold))]
    return [
        (round(a, 3), round(b, 3))
        for a, b in merge_spans(spans, HANGOVER_S)
        if b - a >= MIN_SPURT_S
    ]


def frame_levels(
    audio: np.ndarray, rate: int = SAMPLE_RATE, power: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """RMS and peak level, dBFS, of each 100 ms frame (the last one may be short)."""
    power = fine_power(audio, rate) if power is None else power
    per_frame = int(round(FRAME_S / GATE_S))
    rms = power.reshape(-1, per_frame).mean(axis=1)
    hop = int(rate * FRAME_S)
    n = len(rms)
    whole = len(audio) // hop
    peak = np.zeros(n, dtype=np.float32)
    if whole:
        peak[:whole] = np.abs(audio[: whole * hop]).reshape(whole, hop).max(axis=1)
    if n > whole:
        peak[whole] = np.abs(audio[whole * hop :]).max()
    return _db(rms), _db(peak * peak)


def measure(
    channels: Sequence[np.ndarray],
    speech: Sequence[Sequence[Span]],
    speakers: Sequence[str],
    rate: int = SAMPLE_RATE,
) -> Timeline:
    """Each channel's talk spurts and 100 ms loudness (no decoding, no VAD here)."""
    out = []
    for audio, vad, speaker in zip(channels, speech, speakers, strict=True):
        power = fine_power(audio, rate)
        rms, peak = frame_levels(audio, rate, power)
        spurts = talk_spurts(audio, vad, rate, power)
        out.append(ChannelTimeline(speaker, spurts, rms, peak))
    duration = max((len(a) for a in channels), default=0) / rate
    return Timeline(round(duration, 3), out)


# ---------------------------------------------------------------- judge


def _num(x: float) -> str:
    return f"{x:.1f}"


def _speech_frames(ch: ChannelTimeline) -> np.ndarray:
    """Indices of the 100 ms frames at least half inside the channel's talk."""
    n = len(ch.frame_db)
    covered = np.zeros(n, dtype=np.float32)
    for a, b in ch.spurts:
        i, j = int(a / FRAME_S), min(n, int(np.ceil(b / FRAME_S)))
        for k in range(i, j):
            covered[k] += min(b, (k + 1) * FRAME_S) - max(a, k * FRAME_S)
    return np.flatnonzero(covered >= FRAME_S / 2)


def _power_mean_db(db: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(10 ** (db / 10))))


def loud_stretches(
    ch: ChannelTimeline, above_db: float, min_s: float
) -> tuple[list[tuple[float, float, float, float]], dict]:
    """Stretches of the channel's talk at least ``above_db`` louder than its own median
    for ``min_s`` or longer: (start, end, level above median, peak dBFS), and stats."""
    frames = _speech_frames(ch)
    if len(frames) == 0:
        return [], {}
    levels = ch.frame_db[frames]
    median = float(np.median(levels))
    stats = {
        "median": median,
        "range": float(np.percentile(levels, 95) - np.percentile(levels, 10)),
        "peak": float(np.max(ch.frame_peak_db[frames])),
    }
    loud = np.zeros(len(ch.frame_db), dtype=bool)
    loud[frames[levels - median >= above_db]] = True
    spans = merge_spans([(s * FRAME_S, e * FRAME_S) for s, e in _runs(loud)], HANGOVER_S)
    out = []
    best = None
    # the loudest sustained stretch of talk (power mean over min_s), whatever the threshold
    speech = np.full(len(ch.frame_db), np.nan, dtype=np.float64)
    speech[frames] = levels - median
    width = max(1, int(round(min_s / FRAME_S)))
    if len(speech) >= width:
        windows = np.lib.stride_tricks.sliding_window_view(speech, width)
        full = ~np.isnan(windows).any(axis=1)
        if full.any():
            best = float(10 * np.log10(np.mean(10 ** (windows[full] / 10), axis=1)).max())
    stats["max_above_median"] = best
    for a, b in spans:
        i, j = int(round(a / FRAME_S)), int(round(b / FRAME_S))
        inside = [k for k in range(i, j) if not np.isnan(speech[k])]
        if b - a < min_s - 1e-9 or not inside:
            continue
        level = _power_mean_db(ch.frame_db[inside]) - median
        peak = float(np.max(ch.frame_peak_db[i:j]))
        out.append((round(a, 2), round(b, 2), level, peak))
    return out, stats


_NOT_SPOKEN = re.compile(r"[\W_\d]+|[A-Za-z]+")


def spoken_chars(text: str) -> int:
    """Syllables said, roughly: Chinese characters, plus one per Latin word or number."""
    words = len(re.findall(r"[A-Za-z]+|\d+", text))
    return len(_NOT_SPOKEN.sub("", text)) + words


def judge(
    timeline: Timeline | None,
    utterances: Iterable,
    rules: Sequence[ConductRule],
    version: str,
    speakers_known: bool = True,
    why_not: str | None = None,
) -> tuple[list[ConductHit], CallMetrics]:
    """The conduct rules over a measured call.  ``utterances`` need ``speaker``,
    ``start_s``, ``end_s``, ``text`` and ``asr_flag`` (audit.transcribe.Utterance).
    Without a timeline (``why_not`` says why) only pace can run, and only when the
    utterances' speakers are known (``speakers_known``: a stereo call's channels)."""
    metrics = CallMetrics(conduct_version=version)
    hits: list[ConductHit] = []
    not_run: dict[str, str] = {}
    by_check: dict[str, list[ConductRule]] = {}
    for rule in rules:
        by_check.setdefault(rule.check, []).append(rule)

    agent = timeline.channel("agent") if timeline else None
    customer = timeline.channel("customer") if timeline else None
    if timeline is None:
        reason = why_not or "no speech timeline"
        for check in ("overtalk", "interruptions", "shouting", "dead_air"):
            not_run[check] = reason
    elif agent is None or customer is None:
        reason = why_not or "speakers not on separate channels"
        for check in ("overtalk", "interruptions", "shouting"):
            not_run[check] = reason

    if timeline is not None:
        everyone = merge_spans([s for c in timeline.channels for s in c.spurts])
        silences = gaps(everyone)
        metrics.longest_silence_s = round(max((b - a for a, b in silences), default=0.0), 2)
        for rule in by_check.get("dead_air", []):
            limit = float(rule.params["max_silence_s"])
            for a, b in silences:
                if b - a > limit:
                    hits.append(
                        _hit(
                            rule,
                            "agent",
                            a,
                            b,
                            f"无人说话 {_num(b - a)} 秒",
                            f"silence {_num(b - a)} s > {_num(limit)} s",
                        )
                    )

    if agent is not None and customer is not None:
        _judge_two_parties(agent, customer, by_check, hits, metrics)

    if speakers_known:
        _judge_pace(utterances, by_check.get("pace", []), hits, metrics)
    else:
        not_run["pace"] = why_not or "speakers not on separate channels"
    if not_run:
        metrics.not_run = "; ".join(f"{c}: {r}" for c, r in sorted(not_run.items()))
    hits.sort(key=lambda h: (h.start_s, h.rule_id))
    return hits, metrics


def _hit(rule: ConductRule, speaker: str, a: float, b: float, text: str, match: str) -> ConductHit:
    return ConductHit(
        rule.id, rule.severity, rule.citation, speaker, round(a, 2), round(b, 2),
        f"{rule.title}: {text}（{a:.1f}–{b:.1f} 秒）", match,
    )  # fmt: skip


def _judge_two_parties(
    agent: ChannelTimeline,
    customer: ChannelTimeline,
    by_check: dict[str, list[ConductRule]],
    hits: list[ConductHit],
    metrics: CallMetrics,
) -> None:
    a_talk, c_talk = total(agent.spurts), total(customer.spurts)
    metrics.agent_talk_s, metrics.customer_talk_s = round(a_talk, 2), round(c_talk, 2)
    if a_talk + c_talk > 0:
        metrics.talk_ratio = round(a_talk / (a_talk + c_talk), 3)
    overlaps = intersect(agent.spurts, customer.spurts)
    metrics.overtalk_s = round(total(overlaps), 2)
    overtalk_limits = []
    for rule in by_check.get("overtalk", []):
        limit = float(rule.params["min_overlap_s"])
        overtalk_limits.append(limit)
        for a, b in overlaps:
            if b - a >= limit:
                hits.append(
                    _hit(
                        rule,
                        "agent",
                        a,
                        b,
                        f"坐席与客户同时说话 {_num(b - a)} 秒",
                        f"overlap {_num(b - a)} s >= {_num(limit)} s",
                    )
                )
    # Metrics count once, at the pack's lowest threshold, however many rules (severities)
    # judge the same measure.
    if overtalk_limits:
        lowest = min(overtalk_limits)
        metrics.overtalk_events = sum(1 for a, b in overlaps if b - a >= lowest)
    interruption_counts: list[tuple[float, int]] = []
    # An interruption: the agent starts talking while the customer is talking.
    for rule in by_check.get("interruptions", []):
        min_s = float(rule.params["min_overlap_s"])
        limit = int(rule.params["max_per_call"])
        found = []
        for a, b in agent.spurts:
            inside = next((c for c in customer.spurts if c[0] < a < c[1]), None)
            if inside and min(b, inside[1]) - a >= min_s:
                found.append((a, min(b, inside[1])))
        interruption_counts.append((min_s, len(found)))
        if len(found) > limit:
            times = ", ".join(f"{a:.1f}" for a, _ in found)
            hits.append(
                _hit(
                    rule,
                    "agent",
                    found[0][0],
                    found[-1][1],
                    f"坐席打断客户 {len(found)} 次（{times} 秒）",
                    f"interruptions {len(found)} > {limit}",
                )
            )
    if interruption_counts:
        metrics.interruptions = min(interruption_counts)[1]
    shout_rules = by_check.get("shouting", [])
    above = min((float(r.params["above_median_db"]) for r in shout_rules), default=10.0)
    min_s = min((float(r.params["min_s"]) for r in shout_rules), default=1.0)
    stretches, stats = loud_stretches(agent, above, min_s)
    if stats:
        metrics.agent_median_dbfs = round(stats["median"], 1)
        metrics.agent_loudness_range_db = round(stats["range"], 1)
        metrics.agent_peak_dbfs = round(stats["peak"], 1)
        best = stats.get("max_above_median")
        metrics.agent_max_above_median_db = None if best is None else round(best, 1)
    for rule in shout_rules:
        rule_above, rule_min = float(rule.params["above_median_db"]), float(rule.params["min_s"])
        for a, b, level, peak in stretches:
            if level < rule_above or b - a < rule_min - 1e-9:
                continue
            near_clip = peak >= float(rule.params.get("near_clipping_dbfs", 0.0))
            clip = "，接近削波" if near_clip else ""
            hits.append(
                _hit(
                    rule,
                    "agent",
                    a,
                    b,
                    f"坐席音量高于本通电话中位数 {_num(level)} dB{clip}",
                    f"+{_num(level)} dB >= {_num(rule_above)} dB, peak {_num(peak)} dBFS",
                )
            )


def _judge_pace(
    utterances: Iterable,
    rules: Sequence[ConductRule],
    hits: list[ConductHit],
    metrics: CallMetrics,
) -> None:
    """Agent characters per second over each utterance (a stretch of talk without a
    pause of ``TranscribeOptions.split_gap_s``), timed by Whisper's word timestamps."""
    said = [
        (u, spoken_chars(u.text), u.end_s - u.start_s)
        for u in utterances
        if u.speaker == "agent" and not u.asr_flag and u.end_s > u.start_s
    ]
    said = [(u, n, s) for u, n, s in said if n > 0]
    if not said:
        return
    chars, seconds = sum(n for _, n, _ in said), sum(s for _, _, s in said)
    metrics.mean_pace_cps = round(chars / seconds, 2)
    # Short utterances have no measurable rate (one word's timestamps are loose).
    min_chars = min((int(r.params["min_chars"]) for r in rules), default=PACE_MIN_CHARS)
    min_s = min((float(r.params["min_s"]) for r in rules), default=PACE_MIN_S)
    rates = [n / s for _, n, s in said if n >= min_chars and s >= min_s]
    metrics.max_pace_cps = round(max(rates), 2) if rates else None
    for rule in rules:
        limit = float(rule.params["max_chars_per_s"])
        need_chars, need_s = int(rule.params["min_chars"]), float(rule.params["min_s"])
        for u, n, s in said:
            if n >= need_chars and s >= need_s and n / s > limit:
                hits.append(
                    _hit(
                        rule,
                        "agent",
                        u.start_s,
                        u.end_s,
                        f"语速 {n / s:.1f} 字/秒（{n} 字 {s:.1f} 秒）",
                        f"{n / s:.1f} chars/s > {_num(limit)}",
                    )
                )
