#!/usr/bin/env python3
"""ASR in the loop: Whisper's text of the labelled corpus, as a corpus of its own.

Each utterance synthesised by ``scripts/synth_utterances.py`` goes through one telephone
condition of ``bench/telephone.py`` (chosen by a hash of its id, so reruns agree) and the
product's own transcription (default settings, or ``--config`` from the ASR benchmark).
Whisper's text, normalised but *not* corrected, becomes a row with the source row's
labels, ``register: asr_whisper``, and ``source_text`` / ``source_register`` naming the
sentence it was heard from (cross-validation keeps the two in one fold).

    .venv/bin/python scripts/asr_corpus.py --synth DIR --corpus audit/data/corpus \\
        --out audit/data/corpus/asr_whisper.jsonl [--shard 0/2]

Resumable: ids already in ``--out`` are skipped.  A maintenance tool, not part of the
test run (about 0.3 s of CPU per utterance).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import telephone as tel  # noqa: E402
from asr_telephone import CONFIGS  # noqa: E402

from audit.transcribe import TranscribeOptions  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", type=Path, action="append", required=True)
    ap.add_argument("--corpus", type=Path, default=ROOT / "audit" / "data" / "corpus")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", default="default")
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    k, n = (int(x) for x in args.shard.split("/"))
    source = {}
    for path in sorted(args.corpus.glob("*.jsonl")):
        if path.resolve() == args.out.resolve():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                source[str(row["id"])] = row
    done = set()
    if args.out.is_file():
        done = {
            json.loads(x)["source_id"]
            for x in args.out.read_text(encoding="utf-8").splitlines()
            if x.strip()
        }
    clips = []
    for folder in args.synth:
        for index in sorted(folder.glob("index-*.jsonl")):
            for line in index.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                clips.append((folder, row))
    options = replace(TranscribeOptions(cpu_threads=args.threads), **CONFIGS[args.config])
    work = tel.scratch()
    written = 0
    with args.out.open("a", encoding="utf-8") as out:
        for folder, clip in clips:
            uid = str(clip["id"])
            if uid in done or uid not in source or tel.seed_of(uid) % n != k:
                continue
            row = source[uid]
            if row["text"] != clip["text"]:
                continue  # the corpus row was edited after synthesis: re-synthesise it
            condition = tel.CONDITIONS[tel.seed_of(uid + "#condition") % len(tel.CONDITIONS)]
            path = tel.through_channel(tel.load_wav(folder / clip["file"]), condition, uid, work)
            text, _raw = tel.transcribe_file(path, options)
            path.unlink(missing_ok=True)
            if not text:
                continue
            asr_row = {
                "id": f"asr-{uid}",
                "text": text,
                "speaker": row.get("speaker", "unknown"),
                "labels": row.get("labels", []),
                "register": "asr_whisper",
                "source_id": uid,
                "source_text": row["text"],
                "source_register": row.get("register", ""),
                "condition": condition.name,
            }
            if row.get("callee_relation"):
                asr_row["callee_relation"] = row["callee_relation"]
            out.write(json.dumps(asr_row, ensure_ascii=False) + "\n")
            out.flush()
            done.add(uid)
            written += 1
    print(f"wrote {written} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
