"""What the conduct checks cost next to transcription, per call, measured in one run.

On the bundled sample calls (and, with ``--long``, one call made of all eight end to end),
in one process: Whisper transcription of each call as the pipeline runs it (its VAD
included: it ran inside faster-whisper before and is shared with the conduct checks now),
then the conduct analysis on the same decoded channels and VAD speech (talk spurts,
100 ms loudness, every conduct rule, the call's metrics).  Prints the conduct time as a
share of the transcription time per call.  Target (issue 14): <= 3% per call.

    .venv/bin/python bench/bench_conduct.py [--json] [--long]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import SAMPLES  # noqa: E402


def _calls(long: bool):
    import numpy as np

    from audit.audio import load_channels, probe

    calls = [(p.stem, load_channels(p, probe(p))) for p in sorted(SAMPLES.iterdir())]
    yield from calls
    if long:
        joined = [np.concatenate([c[i] for _, c in calls]) for i in range(2)]
        yield f"all_8_joined_{len(joined[0]) / 16000 / 60:.1f}min", joined


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--long", action="store_true", help="also the 8 calls joined into one")
    args = ap.parse_args(argv)
    from audit.pipeline import AuditOptions, _measure, conduct_findings
    from audit.transcribe import TranscribeOptions, get_model, transcribe_channels

    options = AuditOptions()
    get_model(options.transcribe)
    assert isinstance(options.transcribe, TranscribeOptions)
    rows = []
    for name, channels in _calls(args.long):
        t = time.perf_counter()
        transcript = transcribe_channels(channels, options.transcribe)
        asr_s = time.perf_counter() - t
        t = time.perf_counter()
        timeline = _measure(channels, transcript, options)
        findings, metrics = conduct_findings(name, timeline, list(transcript), options, True)
        conduct_s = time.perf_counter() - t
        rows.append(
            {
                "call": name,
                "audio_s": round(len(channels[0]) / 16000, 1),
                "transcribe_s": round(asr_s, 3),
                "conduct_ms": round(conduct_s * 1000, 2),
                "share_of_transcription": round(conduct_s / asr_s, 5),
                "conduct_findings": len(findings),
                "talk_ratio": metrics.talk_ratio,
                "overtalk_s": metrics.overtalk_s,
                "longest_silence_s": metrics.longest_silence_s,
                "agent_loudness_range_db": metrics.agent_loudness_range_db,
                "agent_max_above_median_db": metrics.agent_max_above_median_db,
                "mean_pace_cps": metrics.mean_pace_cps,
                "max_pace_cps": metrics.max_pace_cps,
            }
        )
    total_asr = sum(r["transcribe_s"] for r in rows)
    total_conduct = sum(r["conduct_ms"] for r in rows) / 1000
    out = {
        "calls": rows,
        "max_share": max(r["share_of_transcription"] for r in rows),
        "total_share": round(total_conduct / total_asr, 5),
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for r in rows:
        print(
            f"{r['call']:<28} {r['audio_s']:6.1f} s audio  transcribe {r['transcribe_s']:7.2f} s  "
            f"conduct {r['conduct_ms']:7.1f} ms  = {r['share_of_transcription']:.3%}  "
            f"({r['conduct_findings']} conduct findings; talk ratio {r['talk_ratio']}, "
            f"overtalk {r['overtalk_s']} s, longest silence {r['longest_silence_s']} s, "
            f"loudest s {r['agent_max_above_median_db']} dB over median, "
            f"pace {r['mean_pace_cps']} mean / {r['max_pace_cps']} max chars/s)"
        )
    print(
        f"conduct / transcription: worst call {out['max_share']:.3%}, "
        f"all calls {out['total_share']:.3%} (target <= 3%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
