"""Is detection ever the bottleneck?  Detector.detect against jieba tokenisation alone.

Both run on one core in the same process over the same texts (the development set,
``eval/dev.jsonl``), each repeated until about ``--seconds`` have passed, after a
warm-up that loads the dictionaries.  The baseline is what any Chinese text pipeline
pays anyway: a fresh ``jieba.Tokenizer().lcut`` of each text.  Target: detect/tokenise
at most 3.

    .venv/bin/python bench/bench_detect.py [--seconds 2.5] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pin_one_core() -> str:
    """Pin this process to one CPU so the figure is per core, whatever else runs."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "unpinned"


def load_texts(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                rows.append(
                    (
                        obj["text"],
                        obj.get("speaker") or "unknown",
                        obj.get("callee_relation") or "unknown",
                    )
                )
    return rows


def timed(fn: Callable[[], None], n_items: int, seconds: float) -> tuple[float, int]:
    """Run fn (one pass over n_items) until `seconds` elapsed; return (items/s, passes)."""
    passes = 0
    started = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds or passes == 0:
        fn()
        passes += 1
        elapsed = time.perf_counter() - started
    return passes * n_items / elapsed, passes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(ROOT / "audit" / "data" / "corpus" / "legacy_dev.jsonl"))
    ap.add_argument("--rules", default="cn")
    ap.add_argument("--seconds", type=float, default=2.5, help="time per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; median kept")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    core = pin_one_core()
    import jieba

    from audit.detect import Detector
    from audit.rules import load_catalogue

    jieba.setLogLevel(logging.WARNING)
    rows = load_texts(Path(args.file))
    texts = [t for t, _, _ in rows]
    detector = Detector(load_catalogue(args.rules))
    tokenizer = jieba.Tokenizer()
    # Warm-up: dictionary loading is a one-off per process, not per utterance.
    for text, speaker, callee in rows:
        detector.detect(text, speaker, callee)
    tokenizer.lcut(texts[0])

    def run_detect() -> None:
        for text, speaker, callee in rows:
            detector.detect(text, speaker, callee)

    def run_tokenise() -> None:
        for text in texts:
            tokenizer.lcut(text)

    det_rates, tok_rates = [], []
    for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both
        det_rates.append(timed(run_detect, len(rows), args.seconds)[0])
        tok_rates.append(timed(run_tokenise, len(rows), args.seconds)[0])
    det, tok = statistics.median(det_rates), statistics.median(tok_rates)
    mean_chars = sum(len(t) for t in texts) / len(texts)
    result = {
        "utterances": len(rows),
        "mean_chars": round(mean_chars, 1),
        "core": core,
        "detect_utt_per_s": round(det),
        "tokenise_utt_per_s": round(tok),
        "detect_us_per_utt": round(1e6 / det, 1),
        "tokenise_us_per_utt": round(1e6 / tok, 1),
        "ratio_detect_to_tokenise": round(tok / det, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{len(rows)} utterances (mean {mean_chars:.1f} chars), one core ({core}), "
            f"median of {args.rounds} rounds of ~{args.seconds:g} s\n"
            f"  Detector.detect : {det:9.0f} utt/s  ({1e6 / det:6.1f} µs/utt)\n"
            f"  jieba lcut only : {tok:9.0f} utt/s  ({1e6 / tok:6.1f} µs/utt)\n"
            f"  ratio detect/tokenise: {tok / det:.2f}x (target <= 3x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
