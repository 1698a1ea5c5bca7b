"""Telephone-Mandarin ASR benchmark: CER and domain-term recall per channel condition.

    bash bench/asr_telephone.sh            # one command: synthesise if needed, then run
    .venv/bin/python bench/asr_telephone.py --synth DIR [--configs default,prompt] [--json F]

Material:
* the synthesised set: at least 300 collection sentences of the detection corpus
  (agent/mono lines holding a domain term), rendered at 8 kHz telephone band by
  ``scripts/synth_utterances.py``; each sentence goes through one of the conditions of
  ``bench/telephone.py`` (five codecs; pink noise at 20/10/5 dB SNR, speed ±15%, -20 dB
  and clipped levels), assigned round-robin in a fixed order;
* the shared real clips (``../shared/asr-samples/``, read in place, never copied), as
  recorded and through a telephone channel (µ-law at 8 kHz);
* silence, a noise floor, pink noise and synthetic music: whatever text survives the
  hallucination guards there is reported (it must be none).

For each decoding configuration (``CONFIGS``) it reports, per condition and pooled
over the clean and the noisy groups: CER, and domain-term recall (occurrences of the
``benchmark`` words of ``audit/data/domain_terms.yaml`` in the reference that come out
as those words), each as Whisper wrote it and after the domain corrector
(``audit/correct.py``); and the corrector's false-correction rate on the reference
texts.  All configurations are measured in the same run, so the figures compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import telephone as tel  # noqa: E402

from audit.corpus import load_examples  # noqa: E402
from audit.correct import Corrector, domain_terms, get_corrector  # noqa: E402
from audit.learned import CORPUS_DIR  # noqa: E402
from audit.transcribe import TranscribeOptions  # noqa: E402

SHARED_CLIPS = ROOT.parent / "shared" / "asr-samples"
# Simplified Chinese in a collection call's own register: it names the words Whisper
# mishears in the context they are said in, and it steers output to simplified script.
DOMAIN_PROMPT = "您好，这里是贷后催收中心。您的借款已经逾期，请尽快还款，还钱，否则会影响征信。"
CONFIGS: dict[str, dict[str, object]] = {
    "default": {},
    "prompt": {"initial_prompt": DOMAIN_PROMPT},
    "hotwords": {"hotwords": " ".join(domain_terms()["benchmark"])},
    "pad600_t0": {"vad_speech_pad_ms": 600, "temperatures": (0.0, 0.4, 0.8)},
}


def load_synth(folders: list[Path], limit: int, exclude: set[str] = frozenset()) -> list[dict]:
    """The benchmark sentences: agent/mono lines with a domain term, in md5 order,
    leaving out ``exclude`` (ids whose transcripts the corrector was tuned on)."""
    terms = domain_terms()["benchmark"]
    rows = []
    for folder in folders:
        for index in sorted(folder.glob("index-*.jsonl")):
            for line in index.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                path = folder / row["file"]
                if row.get("speaker") == "customer" or not path.is_file():
                    continue
                if str(row["id"]) in exclude:
                    continue
                if any(t in tel.cer_text(row["text"]) for t in terms):
                    rows.append({**row, "file": str(path)})
    rows.sort(key=lambda r: tel.seed_of(str(r["id"])))
    return rows[:limit]


def tuning_ids(path: Path | None) -> set[str]:
    """Source ids of an ASR-in-the-loop file (what the corrector was tuned on)."""
    if path is None or not path.is_file():
        return set()
    return {
        str(json.loads(x)["source_id"])
        for x in path.read_text(encoding="utf-8").splitlines()
        if x.strip()
    }


def synthetic_noise_clips(folder: Path) -> dict[str, Path]:
    """Silence, a -55 dBFS noise floor, pink noise and a chord progression (music)."""
    rng = np.random.default_rng(7)
    n = tel.RATE * 12
    t = np.arange(n) / tel.RATE
    music = sum(
        0.08 * np.sin(2 * np.pi * f * t) * (np.sin(2 * np.pi * 0.5 * t + k) > 0)
        for k, f in enumerate((220, 277, 330, 440, 554))
    )
    signals = {
        "silence": np.zeros(n),
        "noise_floor": rng.normal(0, 10 ** (-55 / 20), n),
        "pink_noise": 0.1 * tel.pink_noise(n, rng),
        "music": music,
    }
    return {
        name: tel.encode(x.astype(np.float32), "ulaw", folder, name) for name, x in signals.items()
    }


def held_out_corrector(rows: list[dict]) -> Corrector:
    """The shipped corrector's recipe, its language model trained without the benchmark
    sentences (the shipped one has read them: they are corpus rows)."""
    held = {tel.cer_text(r["text"]) for r in rows}
    texts = [
        e.text
        for p in sorted(CORPUS_DIR.glob("*.jsonl"))
        for e in load_examples(p)
        if tel.cer_text(e.text) not in held and e.source_text is None
    ]
    terms = domain_terms()
    return Corrector(terms["correct"], texts, protect=terms["protect"], cautious=terms["cautious"])


def run_config(name: str, options: TranscribeOptions, rows: list[dict], work: Path) -> dict:
    """Decode every sentence through its condition with ``options``; then score."""
    started = time.perf_counter()
    audio_s = 0.0
    examples = []
    for i, row in enumerate(rows):
        condition = tel.CONDITIONS[i % len(tel.CONDITIONS)]
        x = tel.load_wav(Path(row["file"]))
        audio_s += len(x) / tel.RATE
        path = tel.through_channel(x, condition, str(row["id"]), work)
        hyp, _raw = tel.transcribe_file(path, options)
        path.unlink(missing_ok=True)
        examples.append(
            {"id": row["id"], "condition": condition.name, "ref": row["text"], "hyp": hyp}
        )
    elapsed = time.perf_counter() - started
    result = score_examples(examples, held_out_corrector(rows))
    return {"config": name, "rtf": round(elapsed / max(audio_s, 1e-9), 3), **result}


def score_examples(examples: list[dict], corrector: Corrector) -> dict:
    """CER and domain-term recall per condition and group, as heard and corrected."""
    terms = domain_terms()["benchmark"]
    keys = ("err", "err_c", "chars", "tf", "tf_c", "tn", "n")
    per: dict[str, dict[str, float]] = {}
    for ex in examples:
        fixed, _changes = corrector.correct(ex["hyp"])
        ex["fixed"] = fixed
        ref = tel.cer_text(ex["ref"])
        acc = per.setdefault(ex["condition"], dict.fromkeys(keys, 0))
        acc["err"] += tel.edit_distance(tel.cer_text(ex["hyp"]), ref)
        acc["err_c"] += tel.edit_distance(tel.cer_text(fixed), ref)
        acc["chars"] += len(ref)
        found, expected = tel.term_recall(ex["ref"], ex["hyp"], terms)
        acc["tf"] += found
        acc["tf_c"] += tel.term_recall(ex["ref"], fixed, terms)[0]
        acc["tn"] += expected
        acc["n"] += 1
    table = {}
    for group in ("clean", "noisy", None):
        names = [c.name for c in tel.CONDITIONS if group is None or c.group == group]
        tot = {k: sum(per.get(n, {}).get(k, 0) for n in names) for k in keys}
        table[group or "all"] = _ratios(tot)
    for c in tel.CONDITIONS:
        if c.name in per:
            table[c.name] = _ratios(per[c.name])
    return {"table": table, "examples": examples}


def _ratios(acc: dict[str, float]) -> dict[str, float]:
    return {
        "clips": int(acc["n"]),
        "cer": round(acc["err"] / max(1, acc["chars"]), 4),
        "cer_corrected": round(acc["err_c"] / max(1, acc["chars"]), 4),
        "term_recall": round(acc["tf"] / max(1, acc["tn"]), 4),
        "term_recall_corrected": round(acc["tf_c"] / max(1, acc["tn"]), 4),
        "terms": int(acc["tn"]),
    }


def real_clips(options: TranscribeOptions, work: Path) -> dict[str, float] | None:
    sys.path.insert(0, str(ROOT / "bench"))
    from asr_eval import load_references

    refs = load_references()
    if not refs:
        return None
    err = {"as_recorded": 0, "telephone": 0, "as_recorded_corrected": 0, "telephone_corrected": 0}
    corrector = get_corrector()
    chars = 0
    for name, ref in sorted(refs.items()):
        path = SHARED_CLIPS / name
        if not path.is_file():
            continue
        r = tel.cer_text(ref)
        chars += len(r)
        hyp, _ = tel.transcribe_file(path, options)
        err["as_recorded"] += tel.edit_distance(tel.cer_text(hyp), r)
        err["as_recorded_corrected"] += tel.edit_distance(
            tel.cer_text(corrector.correct(hyp)[0]), r
        )
        # Telephone: 3.4 kHz band by resampling to 8 kHz, then G.711 µ-law.
        from audit.audio import load_channels, probe

        x16 = load_channels(path, probe(path))[0]
        x8 = np.interp(np.arange(0, len(x16), 2), np.arange(len(x16)), x16).astype(np.float32)
        tpath = tel.encode(x8, "ulaw", work, f"real-{tel.seed_of(name)}")
        hyp_t, _ = tel.transcribe_file(tpath, options)
        err["telephone"] += tel.edit_distance(tel.cer_text(hyp_t), r)
        err["telephone_corrected"] += tel.edit_distance(
            tel.cer_text(corrector.correct(hyp_t)[0]), r
        )
    return {k: round(v / max(1, chars), 4) for k, v in err.items()}


def hallucinations(options: TranscribeOptions, work: Path) -> dict[str, str]:
    return {
        name: tel.transcribe_file(p, options)[0] for name, p in synthetic_noise_clips(work).items()
    }


def false_corrections(rows: list[dict]) -> dict[str, float]:
    """On reference texts nothing needs correcting: every change is a false one."""
    import jieba

    corrector = held_out_corrector(rows)
    changed = words = 0
    for row in rows:
        fixed, changes = corrector.correct(row["text"])
        changed += len(changes)
        words += len(jieba.lcut(tel.cer_text(row["text"])))
    return {"changes": changed, "words": words, "rate": round(changed / max(1, words), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--synth",
        type=Path,
        action="append",
        required=True,
        help="folder of synth_utterances.py (repeatable)",
    )
    ap.add_argument(
        "--exclude",
        type=Path,
        help="an asr_corpus.py output: its sentences are left out (the corrector's tuning set)",
    )
    ap.add_argument("--limit", type=int, default=360)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write all figures and transcripts here")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument(
        "--rescore",
        type=Path,
        help="re-score the transcripts saved in this --json file with today's corrector "
        "(no decoding: the same Whisper output, a new correction)",
    )
    args = ap.parse_args(argv)
    if args.rescore:
        return rescore(args.rescore, args.synth, args.limit, args.json)
    rows = load_synth(args.synth, args.limit, tuning_ids(args.exclude))
    if len(rows) < 300:
        print(
            f"note: only {len(rows)} sentences with domain terms in {args.synth}", file=sys.stderr
        )
    work = tel.scratch()
    out: dict[str, object] = {
        "sentences": len(rows),
        "false_corrections": false_corrections(rows),
        "configs": {},
    }
    print(
        f"{len(rows)} sentences; corrector false corrections on references: "
        f"{out['false_corrections']}"
    )
    for name in args.configs.split(","):
        options = replace(TranscribeOptions(cpu_threads=args.threads), **CONFIGS[name])
        result = run_config(name, options, rows, work)
        if not args.skip_real:
            result["real_clips"] = real_clips(options, work)
        result["hallucinations"] = hallucinations(options, work)
        out["configs"][name] = result
        print_config(result)
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


def rescore(saved: Path, synth: list[Path], limit: int, out_path: Path | None) -> int:
    data = json.loads(saved.read_text(encoding="utf-8"))
    ids = {str(ex["id"]) for r in data["configs"].values() for ex in r["examples"]}
    rows = [r for r in load_synth(synth, 10**9) if str(r["id"]) in ids]
    data["false_corrections"] = false_corrections(rows)
    print(f"corrector false corrections on references: {data['false_corrections']}")
    corrector = held_out_corrector(rows)
    for result in data["configs"].values():
        result.update(score_examples(result["examples"], corrector))
        print_config(result)
    if out_path:
        out_path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


def print_config(result: dict) -> None:
    print(f"\n== {result['config']}  (RTF {result['rtf']})")
    print(
        f"{'condition':<14} {'clips':>5} {'CER':>6} {'CER+c':>6} {'terms':>6} "
        f"{'recall':>7} {'rec+c':>6}"
    )
    for name, r in result["table"].items():
        print(
            f"{name:<14} {r['clips']:>5} {r['cer']:>6.3f} {r['cer_corrected']:>6.3f} "
            f"{r['terms']:>6} {r['term_recall']:>7.3f} {r['term_recall_corrected']:>6.3f}"
        )
    if result.get("real_clips"):
        print(f"real clips pooled CER: {result['real_clips']}")
    bad = {k: v for k, v in result["hallucinations"].items() if v}
    print(f"text over silence/noise/music: {bad or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
