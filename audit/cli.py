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
from pathlib import Path
from typing import NoReturn

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2, 3
COMPUTE_TYPES = (
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where help is, then exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="local CTranslate2 Whisper folder or faster-whisper model name already in "
        "the local cache (default: bundled multilingual Whisper base)",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="(default cpu)")
    p.add_argument(
        "--compute-type",
        default=None,
        choices=COMPUTE_TYPES,
        help="CTranslate2 compute type (default int8 on cpu, float16 on cuda)",
    )
    p.add_argument(
        "--beam-size", type=positive_int, default=5, help="beam size (default 5; 1 is faster)"
    )


def _add_encryption_arg(p: argparse.ArgumentParser, opens: bool = False) -> None:
    p.add_argument(
        "--encryption-key-env",
        metavar="VAR",
        help="open an encrypted DuckDB file with the key in environment variable VAR"
        if opens
        else "encrypt the DuckDB file at rest with the key in environment variable VAR "
        "(the file then can't be opened without it)",
    )


def _add_detection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rules", default="cn", help="rule catalogue: a bundled pack name (cn) or a rule YAML file"
    )
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
    p.add_argument(
        "--workers", type=positive_int, default=1, help="calls transcribed at once (threads)"
    )


def _add_manifest_args(p: argparse.ArgumentParser, audit: bool = True, dated: bool = False) -> None:
    p.add_argument(
        "--manifest",
        help="call-detail CSV: call_id, recording, agent_id, debtor_id, callee_number, "
        "callee_relation, started_at, duration_s, direction[, answered, timezone]"
        + (
            "; may name the day it covers: cdr/{date}.csv is read as the day before the "
            "run (cdr/2026-03-01.csv for a run on 2026-03-02), {today} as the run's day"
            if dated
            else ""
        ),
    )
    p.add_argument(
        "--default-timezone",
        metavar="ZONE",
        type=iana_zone,
        help="IANA zone (e.g. Asia/Shanghai) of manifest times written without a UTC offset, "
        "as most dialler exports write them; without it such rows are rejected",
    )
    if audit:
        p.add_argument(
            "--without-call-records",
            action="store_true",
            help="audit even when the manifest accepted none of its rows (by default the "
            "audit stops before any audio: its calls would lose the findings that need "
            "call records)",
        )


def _add_learned_arg(p: argparse.ArgumentParser, more: str = "") -> None:
    p.add_argument(
        "--no-learned",
        dest="learned",
        action="store_false",
        help="rules only: leave out the learned stage (a classifier trained on the corpus "
        f"shipped in audit/data/corpus, on by default){more}",
    )


def _add_correct_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-correct",
        dest="correct",
        action="store_false",
        help="store and detect on Whisper's text as it is: leave out the domain corrector "
        "(same-sounding mishearings such as 预期 -> 逾期; on by default)",
    )


def _channels_problem(channels: str) -> str | None:
    roles = [r.strip() for r in channels.split(",")]
    if len(roles) != 2 or not set(roles) <= {"agent", "customer", "unknown"}:
        return f"--channels {channels!r}: give two of agent, customer, unknown"
    return None


def _input_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, policy, rule catalogue or call records the user
    gave (exit 2), checked before anything is loaded, started or created."""
    from audit.manifest import (
        ManifestError,
        check_zone,
        dated_path,
        load_manifest,
        require_rows,
    )
    from audit.policy import PolicyError, load_policy, overrides_from_args
    from audit.rules import CatalogueError, load_catalogue

    if _channels_problem(args.channels):
        return _channels_problem(args.channels)
    if not os.path.isdir(args.inbox):
        return f"inbox is not a folder: {args.inbox}"
    try:
        load_catalogue(args.rules)
    except CatalogueError as exc:
        return f"error in the rule catalogue: {exc}"
    try:
        load_policy(args.policy, **overrides_from_args(args))
        if args.default_timezone:
            check_zone(args.default_timezone, "--default-timezone")
        if args.manifest:
            path = dated_path(args.manifest)
            manifest = load_manifest(path, args.inbox, args.default_timezone)
            require_rows(manifest, args.without_call_records)
    except (PolicyError, ManifestError) as exc:
        return str(exc)
    return None


def _precheck_audit(args: argparse.Namespace, compute_type: str) -> str | None:
    """Problems of the machine that would stop the whole batch (a missing model, a
    database that can't be opened), found before Prefect starts: a clear message
    instead of a failed flow run with a traceback in its log."""
    from audit import store
    from audit.model import ModelError
    from audit.transcribe import TranscribeOptions, get_model

    _learned_or_none(args)  # missing training data (LearnedError); fits once
    try:
        key = store.key_from_env(args.encryption_key_env)
        store.connect(args.db, encryption_key=key).close()
        # The same settings the flow loads with, so its process reuses this model.
        get_model(
            TranscribeOptions(
                model=args.model,
                device=args.device,
                compute_type=compute_type,
                concurrency=max(1, args.workers),
            )
        )
    except (store.StoreError, ModelError) as exc:
        return str(exc)
    return None


def cmd_audit(args: argparse.Namespace) -> int:
    from audit.batch import format_summary
    from audit.contact import format_checks
    from audit.manifest import ManifestError
    from audit.model import ModelError
    from audit.policy import PolicyError, overrides_from_args
    from audit.store import StoreError

    compute_type = args.compute_type or ("float16" if args.device == "cuda" else "int8")
    problem = _input_problem(args)
    if problem:
        print(f"callaudit: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    problem = _precheck_audit(args, compute_type)
    if problem:
        print(f"callaudit: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    from flows.runner import run_audit  # imports Prefect: only here

    try:
        summary = run_audit(
            processes=args.processes,
            dask_address=args.dask_address,
            inbox=os.path.abspath(args.inbox),  # workers may run elsewhere
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
            manifest=args.manifest,
            policy=args.policy,
            policy_overrides=overrides_from_args(args),
            encryption_key_env=args.encryption_key_env,
            learned=args.learned,
            correct=args.correct,
            default_timezone=args.default_timezone,
            without_call_records=args.without_call_records,
        )
    except (ModelError, StoreError, FileNotFoundError, ManifestError, PolicyError) as exc:
        print(f"callaudit: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(format_summary(summary))
    print(format_checks(summary))
    if args.json_summary:
        with open(args.json_summary, "w", encoding="utf-8") as f:
            json.dump(summary, f, ensure_ascii=False, indent=2)
    rejected_rows = (summary.get("manifest") or {}).get("errors")
    return EXIT_SOME_FAILED if summary["failed"] or rejected_rows else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from audit.manifest import ManifestError, check_inbox, dated_path

    if not os.path.isdir(args.inbox):
        print(f"callaudit: error: inbox is not a folder: {args.inbox}", file=sys.stderr)
        return EXIT_USAGE
    con = None
    if args.db:
        con = _open_db(args, read_only=True)
        if con is None:
            return EXIT_ERROR
    try:
        manifest = dated_path(args.manifest) if args.manifest else None
        result = check_inbox(args.inbox, manifest, args.default_timezone, con)
    except ManifestError as exc:
        print(f"callaudit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if con is not None:
            con.close()
    print("\n".join(result.lines))
    print(f"  problems         : {result.problems}")
    return EXIT_SOME_FAILED if result.problems else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from audit.manifest import ManifestError, check_pattern
    from audit.policy import PolicyError, load_policy, overrides_from_args
    from audit.rules import CatalogueError, load_catalogue

    overrides = {k: v for k, v in overrides_from_args(args).items() if v is not None}
    if _channels_problem(args.channels):
        print(f"callaudit: error: {_channels_problem(args.channels)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        load_catalogue(args.rules)
        load_policy(args.policy, **overrides)
        if args.manifest:
            check_pattern(args.manifest)
    except (CatalogueError, PolicyError, ManifestError) as exc:
        print(f"callaudit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not os.path.isdir(args.inbox):
        print(f"callaudit: error: inbox is not a folder: {args.inbox}", file=sys.stderr)
        return EXIT_USAGE
    from flows.serve import serve  # imports Prefect: only here

    # Every parameter of the flow, so the deployment (and Prefect's UI) shows and can
    # change them all; paths absolute, as runs start in another working directory.
    params = {
        "inbox": os.path.abspath(args.inbox),
        "db": os.path.abspath(args.db),
        "model": args.model,
        "device": args.device,
        "compute_type": args.compute_type or ("float16" if args.device == "cuda" else "int8"),
        "rules": args.rules,
        "pii": args.pii,
        "beam_size": args.beam_size,
        "channel_roles": args.channels,
        "workers": args.workers,
        "force": False,
        "manifest": os.path.abspath(args.manifest) if args.manifest else None,
        "default_timezone": args.default_timezone,
        "without_call_records": args.without_call_records,
        "policy": args.policy,
        "policy_overrides": overrides,
        # The key's variable *name*: the served process must have it set.
        "encryption_key_env": args.encryption_key_env,
        "learned": args.learned,
        "correct": args.correct,
    }
    serve(args.cron, args.timezone, port=args.port, name=args.name, **params)
    return EXIT_OK


def _open_db(args: argparse.Namespace, read_only: bool = False):
    """The database named by --db (and --encryption-key-env), or None after saying why."""
    from audit import store

    if not Path(args.db).is_file():
        # review and reaudit work on an audit that exists: never create an empty one.
        print(f"callaudit: error: no audit database at {args.db}", file=sys.stderr)
        return None
    try:
        key = store.key_from_env(args.encryption_key_env)
        return store.connect(args.db, read_only=read_only, encryption_key=key)
    except store.StoreError as exc:
        print(f"callaudit: error: {exc}", file=sys.stderr)
        return None


def cmd_reaudit(args: argparse.Namespace) -> int:
    from audit.policy import CONDUCT_OVERRIDES, PolicyError, load_policy
    from audit.reaudit import reaudit

    try:
        overrides = {k: getattr(args, k) for k in CONDUCT_OVERRIDES}
        policy = load_policy(args.policy, **overrides)
    except PolicyError as exc:
        print(f"callaudit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    con = _open_db(args)
    if con is None:
        return EXIT_ERROR
    try:
        s = reaudit(con, rules=args.rules, force=args.force, learned=args.learned, policy=policy)
    finally:
        con.close()
    print(
        f"re-audited {s.calls} calls ({s.utterances} utterances) with rules {s.rules_version} "
        f"in {s.seconds:.2f} s; findings {s.findings_before} -> {s.findings_after}"
    )
    if s.conduct_due:
        print(
            f"{s.conduct_due} calls were judged with other conduct thresholds: conduct comes "
            "from the audio, so the next `callaudit audit` of their inbox audits them again"
        )
    return EXIT_OK


# One utterance is a turn of speech: a few hundred characters.  Far longer "lines" are
# documents, and matching time grows faster than their length.
MAX_TEXT_CHARS = 20_000
_ALLOWED = {
    "speaker": ("agent", "customer", "unknown"),
    "callee_relation": ("debtor", "third_party", "unknown"),
}


def db_file(text: str) -> str:
    """--db: a file path (an in-memory database would keep nothing)."""
    if not text.strip() or text.strip().lower() == ":memory:":
        raise argparse.ArgumentTypeError(f"{text!r} keeps nothing: give a file path")
    return text


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return value


def iana_zone(text: str) -> str:
    from audit.manifest import ManifestError, check_zone

    try:
        return check_zone(text, "zone")
    except ManifestError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cron_expression(text: str) -> str:
    from datetime import datetime

    from cronsim import CronSim, CronSimError

    aliases = {
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
        "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    }
    try:
        CronSim(aliases.get(text.strip().lower(), text), datetime(2026, 1, 1))
    except CronSimError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a cron expression ({exc})") from None
    return text


def iso_day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day written YYYY-MM-DD") from None


def _line_problem(obj: dict) -> str | None:
    if len(obj["text"]) > MAX_TEXT_CHARS:
        return f"'text' is {len(obj['text']):,} characters (at most {MAX_TEXT_CHARS:,}): split it"
    for key, allowed in _ALLOWED.items():
        value = obj.get(key)
        if value is not None and value not in allowed:
            return f"{key} must be one of {', '.join(allowed)}, not {json.dumps(value)[:40]}"
    return None


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
            problem = _line_problem(obj)
            if problem:
                yield lineno, None, f"line {lineno}: {problem}"
                continue
            yield lineno, obj, None
    finally:
        if stream is not sys.stdin:
            stream.close()


def cmd_detect(args: argparse.Namespace) -> int:
    from audit.detect import get_detector

    detector = get_detector(args.rules)
    learned = _learned_or_none(args)
    status = EXIT_OK
    for _lineno, obj, error in _read_jsonl(args.file):
        if error:
            print(f"callaudit detect: {error}", file=sys.stderr)
            status = EXIT_ERROR
            continue
        speaker = obj.get("speaker") or "unknown"
        callee = obj.get("callee_relation") or "unknown"
        if learned is None:
            hits = detector.detect(obj["text"], speaker, callee)
        else:
            more = learned.hits_batch([obj["text"]], [speaker], [callee])[0]
            hits = detector.detect_with(obj["text"], more, speaker, callee)
        out = {"id": obj.get("id"), "findings": [h.as_contract() for h in hits]}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return status


def _learned_or_none(args: argparse.Namespace):
    """The learned stage unless ``--no-learned`` was given."""
    if not getattr(args, "learned", True):
        return None
    from audit.learned import get_learned

    return get_learned()


def cmd_explain(args: argparse.Namespace) -> int:
    from audit.detect import get_detector
    from audit.normalize import normalize
    from audit.phonetic import char_readings

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


def cmd_eval(args: argparse.Namespace) -> int:
    from audit.corpus import LabelledFileError
    from audit.evaluate import evaluate_file, format_report

    try:
        report = evaluate_file(args.file, args.rules, learned=args.learned)
    except (LabelledFileError, OSError) as exc:
        print(f"callaudit eval: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        out = report.as_dict()
        if not args.mistakes:
            out.pop("mistakes")
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(format_report(report, show_mistakes=args.mistakes))
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


def cmd_review(args: argparse.Namespace) -> int:
    from audit.review import (
        ReviewError,
        check_findings,
        findings_of_call,
        record_review,
        rule_precision,
    )

    if not args.finding_ids and not args.call:
        print("callaudit review: error: give finding ids or --call CALL_ID", file=sys.stderr)
        return EXIT_USAGE
    con = _open_db(args)
    if con is None:
        return EXIT_ERROR
    try:
        ids = list(args.finding_ids) + (findings_of_call(con, args.call) if args.call else [])
        ids = list(dict.fromkeys(ids))  # one verdict per finding, however often named
        check_findings(con, ids)  # all or none: no half-recorded batch of verdicts
        done = [record_review(con, i, args.verdict, args.note, args.reviewer) for i in ids]
        for r in done:
            print(f"{r.finding_id} ({r.rule_id}, call {r.call_id}): {r.verdict} by {r.reviewer}")
        for rule_id in dict.fromkeys(r.rule_id for r in done):
            precision, reviewed = rule_precision(con, rule_id)
            shown = "-" if precision is None else f"{precision:.0%}"
            print(f"{rule_id}: reviewed precision {shown} over {reviewed} reviewed finding(s)")
    except ReviewError as exc:
        print(f"callaudit review: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        con.close()
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from audit.report import Period, export, render_report
    from audit.store import StoreError, key_from_env

    if args.date_from and args.date_to and args.date_from > args.date_to:
        print(
            f"callaudit report: error: --from {args.date_from} is after --to {args.date_to}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    period = Period(args.date_from, args.date_to)
    try:
        key = key_from_env(args.encryption_key_env)
        if args.format == "html":
            budget = None if args.no_clips else int(args.clip_budget_mb * 1_000_000)
            written = [
                render_report(
                    args.db,
                    args.out,
                    period,
                    top=args.top,
                    encryption_key=key,
                    clip_budget_bytes=budget,
                )
            ]
        else:
            written = export(args.db, args.out, args.format, period, encryption_key=key)
    except StoreError as exc:
        print(f"callaudit report: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for path in written:
        print(path)
    return EXIT_OK


def _add_review_report_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "review",
        help="record a reviewer's verdict on findings",
        description="Mark findings (by id, or every finding of --call) confirmed or "
        "false_positive. The latest verdict counts; every verdict stays in the "
        "review_history view with reviewer, time and note. Verdicts survive re-audits; "
        "rule_stats shows each rule's reviewed precision.",
    )
    p.add_argument(
        "finding_ids", nargs="*", metavar="FINDING_ID", help="finding ids (the violations view)"
    )
    p.add_argument("--call", metavar="CALL_ID", help="every finding of this call")
    p.add_argument("--db", required=True, type=db_file, help="the audit DuckDB file")
    p.add_argument("--verdict", required=True, choices=("confirmed", "false_positive"))
    p.add_argument("--note", help="why (free text; kept in the review history)")
    p.add_argument(
        "--reviewer",
        default=os.environ.get("CALLAUDIT_REVIEWER"),
        help="who reviewed (default: $CALLAUDIT_REVIEWER, else the login name)",
    )
    _add_encryption_arg(p, opens=True)
    p.set_defaults(func=cmd_review)

    p = sub.add_parser(
        "report",
        help="compliance report (HTML) or the tables behind it (CSV/Parquet)",
        description="Read the audit database read-only and write one self-contained HTML "
        "report (charts, agent scorecard, highest-risk calls with evidence and audio "
        "clips), or with --format csv|parquet the tables and views of the period into the "
        "folder --out.",
    )
    p.add_argument("--db", required=True, type=db_file, help="the audit DuckDB file")
    p.add_argument("--out", required=True, help="HTML file, or folder for csv/parquet")
    p.add_argument("--from", dest="date_from", type=iso_day, help="first day (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", type=iso_day, help="last day, inclusive (YYYY-MM-DD)")
    p.add_argument("--format", choices=("html", "csv", "parquet"), default="html")
    p.add_argument(
        "--top", type=positive_int, default=10, help="highest-risk calls shown (default 10)"
    )
    p.add_argument(
        "--clip-budget-mb",
        type=positive_float,
        default=5.0,
        help="size budget of the audio clips in the HTML report (default 5 MB; the page "
        "says how many were left out)",
    )
    p.add_argument(
        "--no-clips",
        action="store_true",
        help="no audio clips in the HTML report (a report to share without voices)",
    )
    _add_encryption_arg(p, opens=True)
    p.set_defaults(func=cmd_report)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callaudit")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from audit.policy import add_conduct_args, add_policy_args  # light: PyYAML only

    parser = Parser(
        prog="callaudit",
        description="Audit recorded debt-collection calls: transcribe offline with Whisper, "
        "flag what regulators forbid, store evidence in DuckDB.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
    p.add_argument("--db", required=True, type=db_file, help="DuckDB file to create or update")
    _add_model_args(p)
    _add_detection_args(p)
    p.add_argument(
        "--processes",
        type=non_negative_int,
        default=0,
        help="run calls on a local Dask cluster of N worker processes",
    )
    p.add_argument(
        "--dask-address",
        default=None,
        help="run calls on an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 "
        "(workers need callaudit installed and PREFECT_API_URL set)",
    )
    p.add_argument("--force", action="store_true", help="re-audit recordings already audited")
    _add_encryption_arg(p)
    p.add_argument("--json-summary", help="also write the summary as JSON to this file")
    _add_manifest_args(p)
    add_policy_args(p)
    _add_learned_arg(p)
    _add_correct_arg(p)
    p.set_defaults(func=cmd_audit)
    _add_review_report_parsers(sub)

    p = sub.add_parser(
        "serve",
        help="run the audit every night on a schedule (Prefect)",
        description="Serve the audit flow as a Prefect deployment with a cron schedule. "
        "Without PREFECT_API_URL a local Prefect server is started on 127.0.0.1 (its UI "
        "address is printed) and stopped with serve. Stop with Ctrl-C or SIGTERM.",
    )
    p.add_argument("--inbox", required=True, help="folder of call recordings")
    p.add_argument("--db", required=True, type=db_file, help="DuckDB file")
    p.add_argument(
        "--cron",
        default="0 2 * * *",
        type=cron_expression,
        help='cron expression (default "0 2 * * *")',
    )
    p.add_argument(
        "--timezone",
        default="Asia/Shanghai",
        type=iana_zone,
        help="IANA time zone of the schedule (default Asia/Shanghai)",
    )
    p.add_argument("--name", default="nightly", help="deployment name (default nightly)")
    p.add_argument(
        "--port", type=port_number, default=4200, help="port of the local Prefect server"
    )
    _add_model_args(p)
    _add_detection_args(p)
    _add_manifest_args(p, dated=True)
    add_policy_args(p)
    _add_learned_arg(p)
    _add_correct_arg(p)
    _add_encryption_arg(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "check",
        help="dry run: what an audit would do with an inbox and its call records",
        description="List every problem of the inbox and manifest and the call id each "
        "recording would be audited under (with --db: new, already audited, or re-linked "
        "from the file-name id it was audited under). Decodes no audio, writes nothing. "
        "Exit code 0 when nothing is wrong, 3 when problems are listed, 2 for bad options.",
    )
    p.add_argument("--inbox", required=True, help="folder of call recordings")
    _add_manifest_args(p, audit=False)
    p.add_argument("--db", type=db_file, help="an existing audit database to compare with")
    _add_encryption_arg(p, opens=True)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "reaudit",
        help="re-run detection on stored utterances (no Whisper)",
        description="After a rule catalogue change: recompute findings from the utterances "
        "already in the database, call by call, keeping reviews. Only calls audited with "
        "another catalogue version are redone unless --force. Conduct findings come from "
        "the audio and are kept; calls judged with other conduct thresholds (--policy and "
        "its overrides) are counted, and the next `callaudit audit` audits them again.",
    )
    p.add_argument("--db", required=True, type=db_file)
    p.add_argument("--rules", default="cn")
    p.add_argument("--force", action="store_true", help="redo every call")
    p.add_argument(
        "--policy", default="cn", help="policy pack whose conduct thresholds are current"
    )
    add_conduct_args(p)
    _add_learned_arg(p)
    _add_encryption_arg(p, opens=True)
    p.set_defaults(func=cmd_reaudit)

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
    _add_learned_arg(p)
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

    p = sub.add_parser(
        "eval",
        help="score the detector on a labelled JSON Lines file",
        description='Read JSON Lines like `detect` input plus "labels" (the categories a '
        "reviewer assigns; [] = compliant) and optional call_id/start_s (turns of one "
        "call, for call-level rules); print precision, recall and F1 per category and "
        'for "any violation" (an utterance with >= 1 label vs >= 1 finding).',
    )
    p.add_argument("file", help="labelled JSON Lines file, e.g. eval/dev.jsonl")
    p.add_argument("--rules", default="cn", help="policy pack or rule YAML file")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument(
        "--mistakes", action="store_true", help="also list utterances whose findings differ"
    )
    _add_learned_arg(p, "; utterances of its training data are scored cross-validated")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("rules", help="list the rule catalogue with citations")
    p.add_argument("--rules", default="cn")
    p.set_defaults(func=cmd_rules)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Everything callaudit writes (the database and its WAL, reports, exports, summaries)
    # holds debtors' words: owner-only, whatever the shell's umask.
    os.umask(0o077)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    from audit.rules import CatalogueError

    try:
        return args.func(args)
    except CatalogueError as exc:
        print(f"callaudit: error in the rule catalogue: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except RuntimeError as exc:
        from audit.learned import LearnedError

        if not isinstance(exc, LearnedError):
            raise
        print(f"callaudit: error in the learned stage: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        if args.command == "audit":
            print(
                "callaudit: interrupted; the calls stored so far are kept, the same "
                "command resumes with the rest",
                file=sys.stderr,
            )
        return 130


if __name__ == "__main__":
    sys.exit(main())
