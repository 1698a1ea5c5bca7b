"""What the learned stage and the corrector cost next to transcription, per call.

On the bundled sample calls, in one process and one run: Whisper transcription time of
each call (the baseline), then detection on its utterances rules only, and rules +
corrector + learned stage.  Prints detection time as a share of transcription time, and
the process's peak memory (RSS) before and after the learned stage is loaded and used.
Targets (issue 9): detection with the learned stage <= 10% of transcription time per
call; peak memory of an audit grows by <= 300 MB.

    .venv/bin/python bench/bench_learned_cost.py [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import SAMPLES  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from audit.audio import load_channels, probe
    from audit.detect import get_detector
    from audit.pipeline import correct_utterances, detect_findings
    from audit.transcribe import TranscribeOptions, get_model, transcribe_channels

    options = TranscribeOptions()
    get_model(options)
    detector = get_detector("cn")
    calls = []
    for path in sorted(SAMPLES.iterdir()):
        channels = load_channels(path, probe(path))
        t = time.perf_counter()
        utterances = transcribe_channels(channels, options)
        calls.append((path.stem, utterances, time.perf_counter() - t))
    rss_whisper = peak_mb()
    from audit.correct import get_corrector
    from audit.learned import get_learned

    t = time.perf_counter()
    stage, _ = get_learned(), get_corrector()
    load_s = time.perf_counter() - t
    # Once per process: pinyin and jieba dictionaries load on first use (like the model).
    t = time.perf_counter()
    detect_findings("warm-up", correct_utterances(calls[0][1]), detector, learned=stage)
    warm_s = time.perf_counter() - t
    rows = []
    for name, utterances, asr_s in calls:
        t = time.perf_counter()
        detect_findings(name, utterances, detector)
        rules_s = time.perf_counter() - t
        t = time.perf_counter()
        detect_findings(name, correct_utterances(utterances), detector, learned=stage)
        full_s = time.perf_counter() - t
        rows.append(
            {
                "call": name,
                "utterances": len(utterances),
                "transcribe_s": round(asr_s, 3),
                "rules_ms": round(rules_s * 1000, 2),
                "rules_learned_corrected_ms": round(full_s * 1000, 2),
                "share_of_transcription": round(full_s / asr_s, 4),
            }
        )
    out = {
        "calls": rows,
        "max_share": max(r["share_of_transcription"] for r in rows),
        "learned_load_s (cached model)": round(load_s, 2),
        "first_use_warm_up_s": round(warm_s, 2),
        "peak_rss_mb_after_whisper": round(rss_whisper, 1),
        "peak_rss_mb_after_learned": round(peak_mb(), 1),
        "peak_growth_mb": round(peak_mb() - rss_whisper, 1),
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for r in rows:
        print(
            f"{r['call']:<28} {r['utterances']:>3} utt  transcribe {r['transcribe_s']:6.2f} s  "
            f"rules {r['rules_ms']:6.1f} ms  +corrector+learned "
            f"{r['rules_learned_corrected_ms']:6.1f} ms  = {r['share_of_transcription']:.2%}"
        )
    print(
        f"worst share {out['max_share']:.2%}; once per process: learned stage load "
        f"{load_s:.2f} s, dictionaries {warm_s:.2f} s; "
        f"peak RSS {rss_whisper:.0f} MB -> {peak_mb():.0f} MB "
        f"(+{out['peak_growth_mb']:.0f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
