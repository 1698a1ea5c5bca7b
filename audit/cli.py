"""``callaudit``: the command line.

Subcommands import what they need lazily, so ``callaudit detect`` starts in well
under a second and never loads Whisper or Prefect.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_ERROR, EXIT_SOME_FAILED = 0, 1, 3


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="local CTranslate2 Whisper folder or faster-whisper model name already in "
        "the local cache (default: bundled multilingual Whisper base)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument(
        "--compute-type",
        default=None,
        help="CTranslate2 compute type (default int8 on cpu, float16 on cuda)",
    )
    p.add_argument("--beam-size", type=int, default=5, help="beam size (default 5; 1 is faster)")


def cmd_audit(args: argparse.Namespace) -> int:
    from audit.batch import format_summary
    from audit.model import ModelError
    from audit.store import StoreError

    compute_type = args.compute_type or ("float16" if args.device == "cuda" else "int8")
    from flows.audit_flow import audit_inbox  # imports Prefect: only here

    try:
        summary = audit_inbox(
            inbox=args.inbox,
            db=args.db,
            model=args.model,
            device=args.device,
            compute_type=compute_type,
            rules=args.rules,
            pii=args.pii,
            beam_size=args.beam_size,
            channel_roles=args.channels,
            workers=args.workers,
            force=args.force,
        )
    except (ModelError, StoreError, FileNotFoundError) as exc:
        print(f"callaudit: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(format_summary(summary))
    if args.json_summary:
        with open(args.json_summary, "w", encoding="utf-8") as f:
            json.dump(summary, f, ensure_ascii=False, indent=2)
    return EXIT_SOME_FAILED if summary["failed"] else EXIT_OK


def _read_jsonl(path: str | None):
    stream = open(path, encoding="utf-8") if path and path != "-" else sys.stdin
    try:
        for lineno, line in enumerate(stream, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, f"line {lineno}: not valid JSON ({exc.msg})"
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                yield lineno, None, f"line {lineno}: expected an object with a string 'text'"
                continue
            yield lineno, obj, None
    finally:
        if stream is not sys.stdin:
            stream.close()


def cmd_detect(args: argparse.Namespace) -> int:
    from audit.pipeline import get_detector

    detector = get_detector(args.rules)
    status = EXIT_OK
    for _lineno, obj, error in _read_jsonl(args.file):
        if error:
            print(f"callaudit detect: {error}", file=sys.stderr)
            status = EXIT_ERROR
            continue
        speaker = obj.get("speaker") or "unknown"
        callee = obj.get("callee_relation") or "unknown"
        hits = detector.detect(obj["text"], speaker, callee)
        out = {"id": obj.get("id"), "findings": [h.as_contract() for h in hits]}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return status


def cmd_explain(args: argparse.Namespace) -> int:
    from audit.normalize import normalize
    from audit.phonetic import char_readings
    from audit.pipeline import get_detector

    detector = get_detector(args.rules)
    text = normalize(args.text)
    analysis = detector.analyse(text, args.speaker, args.callee)
    print(f"text:       {args.text}")
    print(f"normalised: {text}")
    print(f"tokens:     {' / '.join(w for w, _, _ in analysis.tokens if w.strip())}")
    if any(h.via == "pinyin" for h in analysis.hits):
        print("pinyin:     " + " ".join("/".join(sorted(char_readings(c))) for c in text))
    if not analysis.hits:
        print("no rule matched")
    for h in analysis.hits:
        state = "FINDING   " if h.suppressed is None else "suppressed"
        via = f" via {h.via}" if h.via != "text" else ""
        print(
            f"{state} {h.rule_id} [{h.category}/{h.severity}] '{h.match}' @{h.start}-{h.end}{via}"
        )
        if h.suppressed:
            print(f"           because {h.suppressed}")
        print(f"           rule: {h.title}; cites {h.citation}")
    return EXIT_OK


def cmd_rules(args: argparse.Namespace) -> int:
    from audit.rules import load_catalogue

    cat = load_catalogue(args.rules)
    print(
        f"pack {cat.pack}, version {cat.rules_version}: {len(cat.rules)} utterance rules, "
        f"{len(cat.call_rules)} call rules"
    )
    for r in (*cat.rules, *cat.call_rules):
        print(f"  {r.id:<26} {r.category:<24} {r.severity:<8} {r.title} — {r.citation}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callaudit",
        description="Audit recorded debt-collection calls: transcribe offline with Whisper, "
        "flag what regulators forbid, store evidence in DuckDB.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "audit",
        help="audit a folder of recordings into a DuckDB file",
        description="Transcribe and check every new recording in INBOX (wav, mp3, "
        "flac, m4a, amr...) as a Prefect flow and store calls, "
        "utterances and findings in the DuckDB file. Recordings already "
        "audited with the same model and rules are skipped. Exit code "
        "3 when some recordings failed (they are recorded as failed).",
    )
    p.add_argument("inbox", help="folder of call recordings (searched recursively)")
    p.add_argument("--db", required=True, help="DuckDB file to create or update")
    _add_model_args(p)
    p.add_argument("--rules", default="cn", help="policy pack (cn, us) or a rule YAML file")
    p.add_argument(
        "--channels",
        default="agent,customer",
        help="speaker of stereo channel 0,1 (default agent,customer)",
    )
    p.add_argument(
        "--pii",
        choices=("mask", "keep"),
        default="mask",
        help="mask ID/bank/phone numbers in stored text (default) or keep them",
    )
    p.add_argument("--workers", type=int, default=1, help="calls transcribed at once (threads)")
    p.add_argument("--force", action="store_true", help="re-audit recordings already audited")
    p.add_argument("--json-summary", help="also write the summary as JSON to this file")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "detect",
        help="run the detector on JSON Lines text",
        description='Read JSON Lines {"id", "text", "speaker"?} from FILE or stdin; '
        'print one line {"id", "findings": [{"rule_id", "category", '
        '"severity", "start", "end", "match"}]} per input. start/end '
        "are character offsets into text.",
    )
    p.add_argument("file", nargs="?", help="JSON Lines file (default: stdin)")
    p.add_argument("--rules", default="cn", help="policy pack or rule YAML file")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser(
        "explain",
        help="show how the detector reads one sentence",
        description="Print the normalised text, tokens, pinyin where used, and every "
        "rule that matched or was suppressed, with the reason.",
    )
    p.add_argument("text")
    p.add_argument("--speaker", default="agent", choices=("agent", "customer", "unknown"))
    p.add_argument("--callee", default="unknown", choices=("debtor", "third_party", "unknown"))
    p.add_argument("--rules", default="cn")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("rules", help="list the rule catalogue with citations")
    p.add_argument("--rules", default="cn")
    p.set_defaults(func=cmd_rules)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
