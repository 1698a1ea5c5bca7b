"""ASR in the loop: how much Whisper's errors cost the audit.

(a) Character error rate of the default transcription on the public Mandarin clips in
    ``../shared/asr-samples/`` (references in its ``refs.tsv``; the clip without a
    reference and the zh/en mixed one are left out), after normalising both sides
    (simplified characters, no punctuation or spaces).
(b) The bundled sample calls (``samples/inbox``) through ``audit.pipeline.audit_call``:
    call-level precision and recall of the categories found against
    ``samples/labels.csv``, and the CER of each channel against the script the audio
    was synthesised from (``samples/dialogues.yaml``; TTS speech at 8 kHz).

Not part of pytest: it loads Whisper and takes about a minute on 2 cores.

    .venv/bin/python bench/asr_eval.py [--json] [--transcripts]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.normalize import normalize  # noqa: E402

SHARED = ROOT.parent / "shared"
ASR_SAMPLES = SHARED / "asr-samples"
SAMPLES = ROOT / "samples"
# Punctuation, symbols and spaces carry no characters a reference can be checked against.
_NOT_SCORED = re.compile(r"[\W_]+", re.UNICODE)


def cer_text(text: str) -> str:
    """The form both hypothesis and reference are compared in."""
    return _NOT_SCORED.sub("", normalize(text)).lower()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance over characters (two-row dynamic programme)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def load_references() -> dict[str, str]:
    """file -> reference, from refs.tsv; rows with no reference or mixed language skipped."""
    refs: dict[str, str] = {}
    tsv = ASR_SAMPLES / "refs.tsv"
    if not tsv.is_file():
        return refs
    with open(tsv, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            ref = (row.get("reference") or "").strip()
            kind = (row.get("ref_kind") or "").lower()
            name = row.get("file") or ""
            if not ref or "mixed" in name or "mixed" in kind:
                continue
            refs[name] = ref
    return refs


def asr_cer(verbose: bool, options=None) -> dict[str, object] | None:
    """CER on the real clips, at ``options`` (default: the product's TranscribeOptions)."""
    from audit.audio import load_channels, probe
    from audit.transcribe import TranscribeOptions, transcribe_channels

    refs = load_references()
    if not refs:
        print(f"skipped CER: no references under {ASR_SAMPLES}", file=sys.stderr)
        return None
    options = options or TranscribeOptions()
    rows = []
    total_err = total_len = 0
    for name, ref in sorted(refs.items()):
        path = ASR_SAMPLES / name
        if not path.is_file():
            continue
        # Mono clips: one channel, speaker "unknown"; stereo ones would be split.
        channels = load_channels(path, probe(path))
        utterances = transcribe_channels(channels, options)
        hyp = "".join(u.text for u in utterances if not u.asr_flag)
        h, r = cer_text(hyp), cer_text(ref)
        err = edit_distance(h, r)
        total_err += err
        total_len += len(r)
        rows.append({"file": name, "cer": round(err / max(1, len(r)), 4), "hyp": h, "ref": r})
        if verbose:
            print(f"  {name}: CER {err / max(1, len(r)):.3f}\n    hyp {h}\n    ref {r}")
    mean = sum(float(x["cer"]) for x in rows) / max(1, len(rows))
    return {
        "clips": len(rows),
        "mean_cer": round(mean, 4),
        "pooled_cer": round(total_err / max(1, total_len), 4),
        "per_clip": rows,
    }


def call_labels() -> dict[str, tuple[str, set[str]]]:
    with open(SAMPLES / "labels.csv", encoding="utf-8") as f:
        return {
            row["call_id"]: (
                row["file"],
                {c for c in row["expected_categories"].split(";") if c},
            )
            for row in csv.DictReader(f)
        }


def call_scripts() -> dict[str, dict[str, str]]:
    """call_id -> speaker -> everything that speaker says in the script, in order."""
    import yaml

    path = SAMPLES / "dialogues.yaml"
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    scripts: dict[str, dict[str, str]] = {}
    for call in doc.get("calls", []):
        by_speaker: dict[str, str] = {}
        for turn in call.get("turns", []):
            by_speaker[turn["speaker"]] = by_speaker.get(turn["speaker"], "") + turn["text"]
        scripts[call["call_id"]] = by_speaker
    return scripts


def sample_calls(verbose: bool) -> dict[str, object]:
    from audit.pipeline import AuditOptions, CallInput, audit_call

    options = AuditOptions(pii="keep")
    scripts = call_scripts()
    tp = fp = fn = 0
    exact = 0
    cer_err = cer_len = 0
    per_call = []
    for call_id, (file, expected) in sorted(call_labels().items()):
        result = audit_call(CallInput(call_id=call_id, path=str(SAMPLES / file)), options)
        found = {f.category for f in result.findings}
        tp += len(found & expected)
        fp += len(found - expected)
        fn += len(expected - found)
        exact += found == expected
        for speaker, ref in scripts.get(call_id, {}).items():
            hyp = "".join(u.text for u in result.utterances if u.speaker == speaker)
            r = cer_text(ref)
            cer_err += edit_distance(cer_text(hyp), r)
            cer_len += len(r)
        per_call.append(
            {
                "call_id": call_id,
                "status": result.status,
                "expected": sorted(expected),
                "found": sorted(found),
                "utterances": [
                    {"speaker": u.speaker, "start_s": u.start_s, "text": u.text, "flag": u.asr_flag}
                    for u in result.utterances
                ],
            }
        )
        if verbose:
            print(f"  {call_id}: expected {sorted(expected)} found {sorted(found)}")
            for u in result.utterances:
                flag = f" [{u.asr_flag}]" if u.asr_flag else ""
                print(f"      {u.speaker:<8} {u.start_s:6.1f}  {u.text}{flag}")
    return {
        "calls": len(per_call),
        "exact_calls": exact,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "script_cer": round(cer_err / cer_len, 4) if cer_len else None,
        "per_call": per_call,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--transcripts", action="store_true", help="print every transcript")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    out: dict[str, object] = {}
    if ASR_SAMPLES.is_dir():
        out["asr_samples"] = asr_cer(args.transcripts and not args.json)
    else:
        print(f"skipped CER: {ASR_SAMPLES} not found", file=sys.stderr)
        out["asr_samples"] = None
    out["sample_calls"] = sample_calls(args.transcripts and not args.json)
    out["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    cer = out["asr_samples"]
    if cer:
        print(
            f"ASR CER on {cer['clips']} reference clips: mean {cer['mean_cer']:.3f}, "
            f"pooled {cer['pooled_cer']:.3f}"
        )
    calls = out["sample_calls"]
    print(
        f"sample calls: {calls['exact_calls']}/{calls['calls']} with exactly the labelled "
        f"categories; call-level precision {calls['precision']:.3f}, "
        f"recall {calls['recall']:.3f}"
    )
    if calls["script_cer"] is not None:
        print(f"sample calls CER against their script (TTS, 8 kHz): {calls['script_cer']:.3f}")
    print(f"({out['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
