"""Decoding settings chosen by data: speed, CER and detection recall side by side.

Each setting transcribes, in one run and one process with one thread:

* a subset of the long-call bench set (``bench/long_calls.py``: 1-6 minute stereo calls
  built from synthesised corpus lines): speed (audio seconds per second, and the ratio
  to the first setting, measured in the same run), CER of each channel against the lines
  it was built from, and detection as the product runs it (corrector, rules, learned
  stage): the share of labelled (line, category) pairs found on an agent utterance that
  overlaps the line, and the findings that overlap only compliant lines;
* the real Mandarin clips of ``../shared/asr-samples`` (CER; speech a person recorded,
  which the synthesised calls are not).

The lines are corpus rows (the learned stage trained on them), so recall here compares
settings with each other; it is not a generalisation figure.

    .venv/bin/python bench/decoding_settings.py --long /tmp/long --calls 6 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asr_eval import asr_cer, cer_text, edit_distance, load_references  # noqa: E402

from audit.transcribe import TranscribeOptions  # noqa: E402

SETTINGS: dict[str, dict] = {
    "beam 5, fallback (before)": {"best_of": 5},
    "beam 1": {"beam_size": 1},
    "beam 5, no fallback": {"temperatures": (0.0,)},
    "fallback best of 2 (default)": {},
    "beam 5, previous text": {"condition_on_previous_text": True},
    "VAD pad 200 ms": {"vad_speech_pad_ms": 200},
    "float32": {"compute_type": "float32"},
    "batched 8, beam 5": {"batch_size": 8},
    "batched 8, beam 1": {"batch_size": 8, "beam_size": 1},
}
SLACK_S = 0.5  # a finding counts for a line when their spans overlap within this


def load_calls(folder: Path, n: int) -> list[dict]:
    rows = [json.loads(x) for x in (folder / "calls.jsonl").read_text("utf-8").splitlines()]
    return rows[:n]


def detection(call: dict, utterances, detector, learned) -> tuple[int, int, int]:
    """(labelled pairs found, labelled pairs, findings overlapping only compliant lines)."""
    from audit.pipeline import correct_utterances, detect_findings

    findings = [
        f
        for f in detect_findings(
            call["call_id"], correct_utterances(list(utterances)), detector, learned=learned
        )
        if f.speaker == "agent" and f.start_s is not None
    ]

    def overlapping(f, line) -> bool:
        return f.start_s < line["end_s"] + SLACK_S and f.end_s > line["start_s"] - SLACK_S

    agent_lines = [x for x in call["lines"] if x["speaker"] == "agent"]
    found = total = 0
    for line in agent_lines:
        for category in line["labels"]:
            total += 1
            found += any(f.category == category and overlapping(f, line) for f in findings)
    wrong = sum(
        1
        for f in findings
        if f.category not in ("missing_disclosure", "conduct")
        and not any(overlapping(f, x) and x["labels"] for x in agent_lines)
    )
    return found, total, wrong


def channel_errors(call: dict, utterances) -> tuple[int, int]:
    err = length = 0
    for speaker in ("agent", "customer"):
        ref = cer_text("".join(x["text"] for x in call["lines"] if x["speaker"] == speaker))
        hyp = cer_text(
            "".join(u.text for u in utterances if u.speaker == speaker and not u.asr_flag)
        )
        err += edit_distance(hyp, ref)
        length += len(ref)
    return err, length


def real_clip_cer(options: TranscribeOptions) -> float | None:
    result = asr_cer(verbose=False, options=options)
    return None if result is None else float(result["pooled_cer"])


def measure(name: str, options: TranscribeOptions, calls, audio, detector, learned) -> dict:
    from audit.transcribe import get_model, transcribe_channels

    get_model(options)  # load outside the clock
    transcribe_channels([audio[0][0][0][: 16000 * 3]], options)  # warm
    started = time.perf_counter()
    transcripts = [transcribe_channels(channels, options) for channels, _ in audio]
    wall = time.perf_counter() - started
    seconds = sum(s for _, s in audio)
    found = total = wrong = err = length = 0
    for call, utterances in zip(calls, transcripts, strict=True):
        f, t, w = detection(call, utterances, detector, learned)
        e, n = channel_errors(call, utterances)
        found, total, wrong, err, length = found + f, total + t, wrong + w, err + e, length + n
    row = {
        "setting": name,
        "audio_s_per_s": round(seconds / wall, 2),
        "cer_calls": round(err / max(1, length), 4),
        "cer_real": real_clip_cer(options),
        "recall": round(found / max(1, total), 4),
        "found": found,
        "labelled": total,
        "false_findings": wrong,
    }
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=Path, required=True, help="bench/long_calls.py output")
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--only", nargs="*", help="settings to run (names as in SETTINGS)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from audit.audio import load_channels, probe
    from audit.detect import get_detector
    from audit.learned import get_learned

    calls = load_calls(args.long, args.calls)
    audio = []
    for call in calls:
        path = args.long / "inbox" / call["file"]
        audio.append((load_channels(path, probe(path)), call["seconds"]))
    detector, learned = get_detector("cn"), get_learned()
    names = args.only or list(SETTINGS)
    print(
        f"{len(calls)} calls, {sum(s for _, s in audio) / 60:.1f} audio minutes; "
        f"{len(load_references())} real clips",
        flush=True,
    )
    rows = [
        measure(
            name, replace(TranscribeOptions(), **SETTINGS[name]), calls, audio, detector, learned
        )
        for name in names
    ]
    base = rows[0]["audio_s_per_s"]
    print(
        "\n| setting | speed (x real time) | vs first | CER, long calls | CER, real clips "
        "| recall (lines) | findings on compliant lines |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        real = "n/a" if r["cer_real"] is None else f"{r['cer_real']:.3f}"
        print(
            f"| {r['setting']} | {r['audio_s_per_s']:.1f} | {r['audio_s_per_s'] / base:.2f}x "
            f"| {r['cer_calls']:.3f} | {real} | {r['recall']:.3f} ({r['found']}/{r['labelled']}) "
            f"| {r['false_findings']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
