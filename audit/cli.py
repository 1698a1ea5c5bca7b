"""``callaudit``: the command line (click; Rich for coloured errors and the closing table).

Subcommands import what they need lazily, so ``callaudit detect`` starts in well
under a second and never loads Whisper or Prefect.
"""

from __future__ import annotations

import json
import os
import sys
from argparse import Namespace
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from flows.runner import PrefectApi

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
# Calls audited at once by default: one per core (each decodes with one thread), capped
# so a large server doesn't hold dozens of calls' audio in memory at once.
DEFAULT_WORKERS = max(1, min(os.cpu_count() or 1, 8))
# Decoding in batches of speech windows: chosen from bench/decoding_settings.py (README).
DEFAULT_BATCH_SIZE = 0
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

# The top-level help's epilog; README "Commands" says the same.  (\b: keep the lines.)
EXIT_CODES = """\b
Exit codes, every command:
  0    done
  1    the work could not run: model, database (missing, locked, encrypted
       without its key), damaged rule catalogue or training data on disk,
       --dask-address: no scheduler answers, or its workers cannot reach the
       Prefect API
  2    a mistake in what was given: an option, policy, rule catalogue,
       manifest file or header, a manifest none of whose rows is usable, a
       date; one line, found before Prefect or Whisper start, nothing created
  3    done, but some recordings failed (calls.status = 'failed', with the
       reason) or manifest rows were rejected; check: problems were listed
  130  interrupted (Ctrl-C); the calls stored so far are kept

\b
Colour: error lines and the audit summary are coloured on a terminal only;
NO_COLOR=1 turns colour off, FORCE_COLOR=1 forces it.
"""


class BadValue(ValueError):
    """A value an option cannot take; the message says why (exit 2)."""


def error(message: str, prog: str = "callaudit", label: str = "error") -> None:
    """One line on stderr: ``PROG: error: MESSAGE``, ``error`` red on a terminal."""
    from audit.terminal import print_error

    print_error(message, prog, label)


class Checked(click.ParamType):
    """A click type from one of the checking functions below (text -> value or BadValue)."""

    def __init__(self, check: Callable[[str], object], name: str) -> None:
        self.check = check
        self.name = name

    def convert(self, value, param, ctx):
        try:
            return self.check(value)
        except BadValue as exc:
            self.fail(str(exc), param, ctx)


def _options(*decorators: Callable) -> Callable:
    """Several click options as one decorator, in the order given."""

    def apply(f: Callable) -> Callable:
        for decorate in reversed(decorators):
            f = decorate(f)
        return f

    return apply


def _model_options() -> Callable:
    return _options(
        click.option(
            "--model",
            default=None,
            metavar="DIR|NAME",
            help="local CTranslate2 Whisper folder, or a faster-whisper model name already "
            "in the local cache  [default: the bundled multilingual Whisper base]",
        ),
        click.option(
            "--device", type=click.Choice(("cpu", "cuda")), default="cpu", help="where Whisper runs"
        ),
        click.option(
            "--compute-type",
            type=click.Choice(COMPUTE_TYPES),
            default=None,
            metavar="TYPE",
            help=f"CTranslate2 compute type: {', '.join(COMPUTE_TYPES)}  "
            "[default: int8 on cpu, float16 on cuda]",
        ),
        click.option(
            "--beam-size",
            type=Checked(positive_int, "integer"),
            default=5,
            metavar="N",
            help="Whisper beam size (1 is faster)",
        ),
        click.option(
            "--batch-size",
            type=Checked(non_negative_int, "integer"),
            default=DEFAULT_BATCH_SIZE,
            metavar="N",
            help="speech windows (of both channels) decoded together in one pass; 0 decodes "
            "them one after another, with temperature fallback (the README's decoding "
            "table compares them)",
        ),
    )


def _encryption_option(opens: bool = False) -> Callable:
    return click.option(
        "--encryption-key-env",
        metavar="VAR",
        default=None,
        help="open an encrypted DuckDB file with the key in environment variable VAR  "
        "[default: the file is not encrypted]"
        if opens
        else "encrypt the DuckDB file at rest with the key in environment variable VAR "
        "(the file then can't be opened without it); an existing encrypted file needs it "
        "too  [default: not encrypted]",
    )


def _db_option(help: str, required: bool = True) -> Callable:
    return click.option(
        "--db", required=required, type=Checked(db_file, "file"), metavar="FILE", help=help
    )


def _rules_option() -> Callable:
    return click.option(
        "--rules",
        default="cn",
        metavar="PACK|FILE",
        help="rule catalogue: a bundled pack name (cn) or a rule YAML file",
    )


def _detection_options() -> Callable:
    return _options(
        _rules_option(),
        click.option(
            "--channels",
            default="agent,customer",
            metavar="ROLE,ROLE",
            help="speaker of stereo channels 0 and 1: two of agent, customer, unknown",
        ),
        click.option(
            "--pii",
            type=click.Choice(("mask", "keep")),
            default="mask",
            help="mask ID, bank-card and phone numbers in stored text, or keep them",
        ),
        click.option(
            "--workers",
            type=Checked(positive_int, "integer"),
            default=DEFAULT_WORKERS,
            metavar="N",
            help="calls transcribed at once (threads, one Whisper thread each)  [default: "
            "this machine's cores, at most 8; 2 threads ran the sample calls 1.33x faster "
            "than 1 on 2 cores, bench/bench_workers.py]",
            show_default=False,
        ),
    )


def _manifest_options(audit: bool = True, dated: bool = False) -> Callable:
    options = [
        click.option(
            "--manifest",
            default=None,
            metavar="CSV",
            help="call-detail CSV: call_id, recording, agent_id, debtor_id, callee_number, "
            "callee_relation, started_at, duration_s, direction[, answered, timezone]"
            + (
                "; may name the day it covers: cdr/{date}.csv is read as the day before the "
                "run (cdr/2026-03-01.csv for a run on 2026-03-02), {today} as the run's day"
                if dated
                else ""
            )
            + "  [default: none; recordings are audited under their file names]",
        ),
        click.option(
            "--default-timezone",
            metavar="ZONE",
            type=Checked(iana_zone, "zone"),
            default=None,
            help="IANA zone (e.g. Asia/Shanghai) of manifest times written without a UTC "
            "offset, as most dialler exports write them  [default: none; such rows are "
            "rejected]",
        ),
    ]
    if audit:
        options.append(
            click.option(
                "--without-call-records",
                is_flag=True,
                help="audit even when the manifest accepted none of its rows (by default "
                "the audit stops before any audio: its calls would lose the findings that "
                "need call records)",
            )
        )
    return _options(*options)


def _policy_options() -> Callable:
    """``--policy`` and one override per number (names as ``audit.policy.OVERRIDES``)."""
    number = click.INT
    return _options(
        click.option(
            "--policy",
            default="cn",
            metavar="PACK|FILE",
            help="contact policy pack: cn, us, or a policy YAML file",
        ),
        click.option(
            "--window",
            default=None,
            metavar="HH:MM-HH:MM",
            help="allowed calling hours, debtor's local time  [default: the policy's; "
            "08:00-22:00 in cn]",
        ),
        click.option(
            "--max-connected-per-day",
            type=number,
            default=None,
            metavar="N",
            help="connected calls per debtor per day  [default: the policy's; 3 in cn]",
        ),
        click.option(
            "--max-attempts-per-day",
            type=number,
            default=None,
            metavar="N",
            help="call attempts per number per day  [default: the policy's; 6 in cn]",
        ),
        click.option(
            "--max-attempts-in-7-days",
            type=number,
            default=None,
            metavar="N",
            help="attempts per debtor in 7 days  [default: the policy's; 7 in us]",
        ),
        click.option(
            "--quiet-days-after-conversation",
            type=number,
            default=None,
            metavar="N",
            help="days without calls after a conversation  [default: the policy's; 7 in us]",
        ),
        _conduct_options(),
    )


# One override per conduct threshold: (option, type, metavar, what it sets).
CONDUCT_OPTIONS = (
    ("--overtalk-s", click.FLOAT, "S", "seconds of agent-over-customer talk that count"),
    ("--max-interruptions", click.INT, "N", "interruptions of the customer per call"),
    ("--shout-db", click.FLOAT, "DB", "dB above the agent's own median that is shouting"),
    ("--dead-air-s", click.FLOAT, "S", "longest silence of both parties inside a call"),
    ("--max-pace-cps", click.FLOAT, "CPS", "agent characters per second over a sentence"),
)


def _conduct_options() -> Callable:
    """One option per conduct threshold (names as ``audit.policy.CONDUCT_OVERRIDES``)."""
    default = "  [default: the policy's; see docs/conduct.md]"
    return _options(
        *(
            click.option(
                name, type=kind, default=None, metavar=metavar, help=f"conduct: {what}{default}"
            )
            for name, kind, metavar, what in CONDUCT_OPTIONS
        )
    )


def _learned_option(more: str = "") -> Callable:
    return click.option(
        "--learned/--no-learned",
        default=True,
        help="--no-learned: rules only, leave out the learned stage (a classifier trained on "
        f"the corpus shipped in audit/data/corpus){more}",
    )


def _correct_option() -> Callable:
    return click.option(
        "--correct/--no-correct",
        default=True,
        help="--no-correct: store and detect on Whisper's text as it is, leave out the "
        "domain corrector (same-sounding mishearings such as 预期 -> 逾期)",
    )


def _channels_problem(channels: str) -> str | None:
    roles = [r.strip() for r in channels.split(",")]
    if len(roles) != 2 or not set(roles) <= {"agent", "customer", "unknown"}:
        return f"--channels {channels!r}: give two of agent, customer, unknown"
    return None


def _input_problem(args: Namespace) -> str | None:
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


def _precheck_audit(args: Namespace, compute_type: str) -> str | None:
    """Problems of the machine that would stop the whole batch (a missing model, a
    database that can't be opened), found before Prefect starts: a clear message
    instead of a failed flow run with a traceback in its log."""
    from audit import store
    from audit.model import ModelError
    from audit.transcribe import TranscribeOptions, get_model

    if args.dask_address:
        from flows.cluster import scheduler_problem  # no Prefect: only Dask's client

        # First, and in seconds: Dask's own connect timeout is 30 s, then a traceback.
        problem = scheduler_problem(args.dask_address)
        if problem:
            return problem
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
                # Dask workers decode one call each (flows.audit_flow.calls_in_threads)
                concurrency=1 if args.processes or args.dask_address else max(1, args.workers),
            )
        )
    except (store.StoreError, ModelError) as exc:
        return str(exc)
    return None


def cmd_audit(args: Namespace) -> int:
    compute_type = args.compute_type or ("float16" if args.device == "cuda" else "int8")
    problem = _input_problem(args)
    if problem:
        error(problem)
        return EXIT_USAGE
    from flows.runner import PrefectApi  # imports Prefect: only here

    # A temporary Prefect server (when none is configured or running) comes up in its own
    # process while this one loads the model and opens the database.
    with PrefectApi() as api:
        problem = _precheck_audit(args, compute_type)
        if problem:
            error(problem)
            return EXIT_ERROR
        return _run_audit(args, compute_type, api)


def _run_audit(args: Namespace, compute_type: str, api: PrefectApi) -> int:
    from audit.manifest import ManifestError
    from audit.model import ModelError
    from audit.policy import PolicyError, overrides_from_args
    from audit.progress import for_stream
    from audit.store import StoreError
    from audit.terminal import print_summary
    from flows.cluster import ClusterError
    from flows.runner import run_audit

    try:
        summary = run_audit(
            api=api,
            progress_sink=for_stream(sys.stderr),  # a live bar on a terminal, else lines
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
            batch_size=args.batch_size,
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
    except (
        ModelError,
        StoreError,
        FileNotFoundError,
        ManifestError,
        PolicyError,
        ClusterError,
    ) as exc:
        error(str(exc))
        return EXIT_ERROR
    print_summary(summary)
    if args.json_summary:
        with open(args.json_summary, "w", encoding="utf-8") as f:
            json.dump(summary, f, ensure_ascii=False, indent=2)
    rejected_rows = (summary.get("manifest") or {}).get("errors")
    return EXIT_SOME_FAILED if summary["failed"] or rejected_rows else EXIT_OK


def cmd_check(args: Namespace) -> int:
    from audit.manifest import ManifestError, check_inbox, dated_path

    if not os.path.isdir(args.inbox):
        error(f"inbox is not a folder: {args.inbox}")
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
        error(str(exc))
        return EXIT_USAGE
    finally:
        if con is not None:
            con.close()
    print("\n".join(result.lines))
    print(f"  problems         : {result.problems}")
    return EXIT_SOME_FAILED if result.problems else EXIT_OK


def cmd_serve(args: Namespace) -> int:
    from audit.manifest import ManifestError, check_pattern
    from audit.policy import PolicyError, load_policy, overrides_from_args
    from audit.rules import CatalogueError, load_catalogue

    overrides = {k: v for k, v in overrides_from_args(args).items() if v is not None}
    if _channels_problem(args.channels):
        error(_channels_problem(args.channels))
        return EXIT_USAGE
    try:
        load_catalogue(args.rules)
        load_policy(args.policy, **overrides)
        if args.manifest:
            check_pattern(args.manifest)
    except (CatalogueError, PolicyError, ManifestError) as exc:
        error(str(exc))
        return EXIT_USAGE
    if not os.path.isdir(args.inbox):
        error(f"inbox is not a folder: {args.inbox}")
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
        "batch_size": args.batch_size,
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


def _open_db(args: Namespace, read_only: bool = False):
    """The database named by --db (and --encryption-key-env), or None after saying why."""
    from audit import store

    if not Path(args.db).is_file():
        # review and reaudit work on an audit that exists: never create an empty one.
        error(f"no audit database at {args.db}")
        return None
    try:
        key = store.key_from_env(args.encryption_key_env)
        return store.connect(args.db, read_only=read_only, encryption_key=key)
    except store.StoreError as exc:
        error(str(exc))
        return None


def cmd_reaudit(args: Namespace) -> int:
    from audit.policy import CONDUCT_OVERRIDES, PolicyError, load_policy
    from audit.reaudit import reaudit

    try:
        overrides = {k: getattr(args, k) for k in CONDUCT_OVERRIDES}
        policy = load_policy(args.policy, **overrides)
    except PolicyError as exc:
        error(str(exc))
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
        raise BadValue(f"{text!r} keeps nothing: give a file path")
    return text


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadValue(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise BadValue(f"{text!r} must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise BadValue(f"{text!r} must be a positive number")
    return value


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def dask_address(text: str) -> str:
    """A Dask scheduler address as Dask reads it (tcp://HOST:PORT, tls://...); whether
    one answers there is checked later, with the machine (``_precheck_audit``)."""
    from distributed.comm.addressing import get_address_host_port  # only with the option

    try:
        get_address_host_port(text)
    except ValueError as exc:
        raise BadValue(
            f"{text!r} is not a Dask scheduler address like tcp://HOST:8786 ({exc})"
        ) from None
    return text


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise BadValue(f"{text!r} is not a TCP port (1-65535)")
    return value


def console_port(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise BadValue(f"{text!r} is not a TCP port (0-65535)")
    return value


def iana_zone(text: str) -> str:
    from audit.manifest import ManifestError, check_zone

    try:
        return check_zone(text, "zone")
    except ManifestError as exc:
        raise BadValue(str(exc)) from None


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
        raise BadValue(f"{text!r} is not a cron expression ({exc})") from None
    return text


def iso_day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadValue(f"{text!r} is not a day written YYYY-MM-DD") from None


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


def cmd_detect(args: Namespace) -> int:
    from audit.detect import get_detector

    if args.file not in (None, "-") and not os.path.isfile(args.file):
        error(f"no such file: {args.file}", "callaudit detect")
        return EXIT_USAGE
    detector = get_detector(args.rules)
    learned = _learned_or_none(args)
    status = EXIT_OK
    for _lineno, obj, problem in _read_jsonl(args.file):
        if problem:
            print(f"callaudit detect: {problem}", file=sys.stderr)
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


def _learned_or_none(args: Namespace):
    """The learned stage unless ``--no-learned`` was given."""
    if not getattr(args, "learned", True):
        return None
    from audit.learned import get_learned

    return get_learned()


def cmd_explain(args: Namespace) -> int:
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


def cmd_eval(args: Namespace) -> int:
    from audit.corpus import LabelledFileError
    from audit.evaluate import evaluate_file, format_report

    try:
        report = evaluate_file(args.file, args.rules, learned=args.learned)
    except (LabelledFileError, OSError) as exc:
        error(str(exc), "callaudit eval")
        return EXIT_ERROR
    if args.json:
        out = report.as_dict()
        if not args.mistakes:
            out.pop("mistakes")
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(format_report(report, show_mistakes=args.mistakes))
    return EXIT_OK


def cmd_sql(args: Namespace) -> int:
    import duckdb

    from audit import sqlshell

    if args.query is None and args.encryption_key_env is None and sys.stdin.isatty():
        if not Path(args.db).is_file():
            error(f"no audit database at {args.db}", "callaudit sql")
            return EXIT_ERROR
        command = sqlshell.cli_command(Path(args.db), writable=args.write)
        if command is not None:  # the DuckDB CLI, in this process's place
            os.execv(command[0], command)
    con = _open_db(args, read_only=not args.write)
    if con is None:
        return EXIT_ERROR
    try:
        if args.query is None:
            return sqlshell.shell(con)
        print(sqlshell.run_query(con, args.query, args.format))
        return EXIT_OK
    except duckdb.Error as exc:
        error(str(exc), "callaudit sql")
        return EXIT_USAGE
    finally:
        con.close()


def cmd_redact(args: Namespace) -> int:
    from audit.redact import RedactError, plan, write_redacted

    con = _open_db(args, read_only=True)
    if con is None:
        return EXIT_ERROR
    try:
        planned = plan(con, Path(args.out), args.call or None)
    except RedactError as exc:
        error(str(exc), "callaudit redact")
        return EXIT_USAGE
    finally:
        con.close()  # a reader holds the file lock: free it before hours of audio work
    try:
        done = write_redacted(planned, Path(args.out))
    except OSError as exc:
        error(f"cannot write into {args.out}: {exc}", "callaudit redact")
        return EXIT_ERROR
    for r in done:
        if r.output:
            print(f"{r.call_id}: {r.spans} PII span(s), {r.bleeped_s:.1f} s bleeped -> {r.output}")
        else:
            print(f"{r.call_id}: not redacted: {r.error}")
    failed = sum(1 for r in done if not r.output)
    print(
        f"{len(done) - failed} of {len(done)} recordings redacted into {args.out} "
        f"(list: {Path(args.out) / 'redaction.csv'}); originals untouched"
    )
    return EXIT_SOME_FAILED if failed else EXIT_OK


def cmd_rules(args: Namespace) -> int:
    from audit.rules import load_catalogue

    cat = load_catalogue(args.rules)
    print(
        f"pack {cat.pack}, version {cat.rules_version}: {len(cat.rules)} utterance rules, "
        f"{len(cat.call_rules)} call rules"
    )
    for r in (*cat.rules, *cat.call_rules):
        print(f"  {r.id:<26} {r.category:<24} {r.severity:<8} {r.title} — {r.citation}")
    return EXIT_OK


def cmd_review(args: Namespace) -> int:
    from audit.review import (
        ReviewError,
        check_findings,
        findings_of_call,
        record_review,
        rule_precision,
    )

    if not args.finding_ids and not args.call:
        error("give finding ids or --call CALL_ID", "callaudit review")
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
        error(str(exc), "callaudit review")
        return EXIT_ERROR
    finally:
        con.close()
    return EXIT_OK


def cmd_console(args: Namespace) -> int:
    from audit import store
    from audit.review import default_reviewer

    prog = "callaudit console"
    if not _is_loopback(args.host) and not args.allow_remote:
        error(
            f"--host {args.host} is not a loopback address: the console would show debtors' "
            "words and voices to the network; add --allow-remote to do so anyway",
            prog,
        )
        return EXIT_USAGE
    if not Path(args.db).is_file():
        error(f"no audit database at {args.db}", prog)  # never create an empty one
        return EXIT_ERROR
    reviewer = (args.reviewer or default_reviewer()).strip()
    if not reviewer or reviewer == "unknown":
        error("no reviewer: pass --reviewer NAME or set CALLAUDIT_REVIEWER", prog)
        return EXIT_USAGE
    from audit.console import ConsoleConfig, check_database, serve  # Starlette: only here

    try:
        key = store.key_from_env(args.encryption_key_env)
    except store.StoreError as exc:
        error(str(exc), prog)
        return EXIT_ERROR
    config = ConsoleConfig(db=Path(args.db), reviewer=reviewer, encryption_key=key)
    problem = check_database(config)
    if problem:
        error(problem, prog)
        return EXIT_ERROR
    if not _is_loopback(args.host):
        error(
            f"serving on {args.host}: anyone who can reach it and has the token sees the "
            "findings; use a trusted network",
            prog,
            label="warning",
        )
    try:
        serve(config, args.host, args.port, say=lambda line: print(line, flush=True))
    except OSError as exc:  # the port is taken, the address is not this machine's
        error(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}", prog)
        return EXIT_ERROR
    return EXIT_OK


def _is_loopback(host: str) -> bool:
    from audit.console import is_loopback

    return is_loopback(host)


def cmd_report(args: Namespace) -> int:
    from audit.report import Period, export, render_report
    from audit.store import StoreError, key_from_env

    if args.date_from and args.date_to and args.date_from > args.date_to:
        error(f"--from {args.date_from} is after --to {args.date_to}", "callaudit report")
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
        error(str(exc), "callaudit report")
        return EXIT_ERROR
    for path in written:
        print(path)
    return EXIT_OK


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callaudit")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"callaudit {_version()}")
        ctx.exit(EXIT_OK)


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they are defined, audit first


CONTEXT = {"show_default": True, "help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    cls=_Group,
    context_settings=CONTEXT,
    epilog=EXIT_CODES,
    help="Audit recorded debt-collection calls: transcribe offline with Whisper, flag what "
    "regulators forbid, store evidence in DuckDB.",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="print callaudit's version and exit",
)
def cli() -> None:
    pass


def _run(command: str, func: Callable[[Namespace], int], params: dict) -> int:
    """Run one command with the parsed options; the errors every command may meet become
    one line and an exit code."""
    from audit.rules import CatalogueError

    args = Namespace(command=command, **params)
    try:
        return func(args)
    except CatalogueError as exc:
        error(str(exc), label="error in the rule catalogue")
        return EXIT_ERROR
    except RuntimeError as exc:
        from audit.learned import LearnedError

        if not isinstance(exc, LearnedError):
            raise
        error(str(exc), label="error in the learned stage")
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        if command == "audit":
            print(
                "callaudit: interrupted; the calls stored so far are kept, the same "
                "command resumes with the rest",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED


def _command(name: str, func: Callable[[Namespace], int], **kw) -> Callable:
    """A subcommand of ``callaudit`` whose options go to ``func`` as a Namespace."""

    def register(options: Callable) -> click.Command:
        def callback(**params) -> int:
            return _run(name, func, params)

        return cli.command(name, context_settings=CONTEXT, **kw)(options(callback))

    return register


@_command(
    "audit",
    cmd_audit,
    short_help="audit a folder of recordings into a DuckDB file",
    help="Transcribe and check every new recording in INBOX (a folder of call recordings: "
    "wav, mp3, flac, m4a, amr..., searched recursively) as a Prefect flow and store calls, "
    "utterances and findings in the DuckDB file. Recordings already audited with the same "
    "model and rules are skipped. Exit code 3 when some recordings failed (they are "
    "recorded as failed) or manifest rows were rejected.",
)
def _audit(f):
    return _options(
        click.argument("inbox"),
        _db_option("DuckDB file to create or update"),
        _model_options(),
        _detection_options(),
        click.option(
            "--processes",
            type=Checked(non_negative_int, "integer"),
            default=0,
            metavar="N",
            help="run calls on a local Dask cluster of N worker processes (0: in this process)",
        ),
        click.option(
            "--dask-address",
            type=Checked(dask_address, "address"),
            default=None,
            metavar="URL",
            help="run calls on an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (workers "
            "need callaudit installed; they report to this command's Prefect API, so with "
            "workers on other machines set PREFECT_API_URL to a server they can reach)  "
            "[default: none]",
        ),
        click.option("--force", is_flag=True, help="re-audit recordings already audited"),
        _encryption_option(),
        click.option(
            "--json-summary",
            default=None,
            metavar="FILE",
            help="also write the summary as JSON to this file  [default: none]",
        ),
        _manifest_options(),
        _policy_options(),
        _learned_option(),
        _correct_option(),
    )(f)


@_command(
    "review",
    cmd_review,
    short_help="record a reviewer's verdict on findings",
    help="Mark findings (FINDING_ID..., from the violations view, or every finding of "
    "--call) confirmed or false_positive. The latest verdict counts; every verdict stays in "
    "the review_history view with reviewer, time and note. Verdicts survive re-audits; "
    "rule_stats shows each rule's reviewed precision.",
)
def _review(f):
    return _options(
        click.argument("finding_ids", nargs=-1, metavar="[FINDING_ID]..."),
        click.option(
            "--call",
            default=None,
            metavar="CALL_ID",
            help="every finding of this call  [default: none]",
        ),
        _db_option("the audit DuckDB file"),
        click.option(
            "--verdict",
            required=True,
            type=click.Choice(("confirmed", "false_positive")),
            help="the reviewer's verdict",
        ),
        click.option(
            "--note",
            default=None,
            help="why (free text; kept in the review history)  [default: none]",
        ),
        click.option(
            "--reviewer",
            envvar="CALLAUDIT_REVIEWER",
            show_envvar=True,
            default=None,
            help="who reviewed  [default: $CALLAUDIT_REVIEWER, else the login name]",
        ),
        _encryption_option(opens=True),
    )(f)


@_command(
    "console",
    cmd_console,
    short_help="review findings in the browser: hear the clip, confirm or reject",
    help="Serve the review console on this machine (loopback only unless --allow-remote): "
    "unreviewed findings, riskiest calls first, each with its audio clip (PII bleeped), the "
    "utterances around it, rule and citation, and confirm / false positive buttons. Verdicts "
    "are stored as `callaudit review` stores them. Open the printed address: it holds a "
    "random access token. The database is opened per request, so the nightly audit can "
    "write it; while the audit holds it the page says so and saves nothing.",
)
def _console(f):
    return _options(
        _db_option("the audit DuckDB file"),
        click.option(
            "--host",
            default="127.0.0.1",
            metavar="ADDR",
            help="address to listen on (a loopback one unless --allow-remote)",
        ),
        click.option(
            "--port",
            type=Checked(console_port, "port"),
            default=0,
            metavar="N",
            help="TCP port (0: a free one, printed on start)",
        ),
        click.option(
            "--allow-remote",
            is_flag=True,
            help="allow a --host that other machines can reach (the token still applies)",
        ),
        click.option(
            "--reviewer",
            envvar="CALLAUDIT_REVIEWER",
            show_envvar=True,
            default=None,
            help="who reviews  [default: $CALLAUDIT_REVIEWER, else the login name]",
        ),
        _encryption_option(opens=True),
    )(f)


@_command(
    "report",
    cmd_report,
    short_help="compliance report (HTML) or the tables behind it (CSV/Parquet)",
    help="Read the audit database read-only and write one self-contained HTML report "
    "(charts, agent scorecard, highest-risk calls with evidence and audio clips), or with "
    "--format csv|parquet the tables and views of the period into the folder --out.",
)
def _report(f):
    return _options(
        _db_option("the audit DuckDB file"),
        click.option(
            "--out", required=True, metavar="PATH", help="HTML file, or folder for csv/parquet"
        ),
        click.option(
            "--from",
            "date_from",
            type=Checked(iso_day, "day"),
            default=None,
            metavar="YYYY-MM-DD",
            help="first day  [default: the first audited day]",
        ),
        click.option(
            "--to",
            "date_to",
            type=Checked(iso_day, "day"),
            default=None,
            metavar="YYYY-MM-DD",
            help="last day, inclusive  [default: the last audited day]",
        ),
        click.option(
            "--format",
            type=click.Choice(("html", "csv", "parquet")),
            default="html",
            help="an HTML report, or the period's tables and views as files",
        ),
        click.option(
            "--top",
            type=Checked(positive_int, "integer"),
            default=10,
            metavar="N",
            help="highest-risk calls shown",
        ),
        click.option(
            "--clip-budget-mb",
            type=Checked(positive_float, "number"),
            default=5.0,
            metavar="MB",
            help="size budget of the audio clips in the HTML report (the page says how many "
            "were left out)",
        ),
        click.option(
            "--no-clips",
            is_flag=True,
            help="no audio clips in the HTML report (a report to share without voices)",
        ),
        _encryption_option(opens=True),
    )(f)


@_command(
    "serve",
    cmd_serve,
    short_help="run the audit every night on a schedule (Prefect)",
    help="Serve the audit flow as a Prefect deployment with a cron schedule. Without "
    "PREFECT_API_URL a local Prefect server is started on 127.0.0.1 (its UI address is "
    "printed) and stopped with serve. Stop with Ctrl-C or SIGTERM.",
)
def _serve(f):
    return _options(
        click.option("--inbox", required=True, metavar="DIR", help="folder of call recordings"),
        _db_option("DuckDB file to create or update"),
        click.option(
            "--cron",
            default="0 2 * * *",
            type=Checked(cron_expression, "cron"),
            metavar="EXPR",
            help="cron expression of the schedule (or @daily, @hourly...)",
        ),
        click.option(
            "--timezone",
            default="Asia/Shanghai",
            type=Checked(iana_zone, "zone"),
            metavar="ZONE",
            help="IANA time zone of the schedule",
        ),
        click.option("--name", default="nightly", help="deployment name"),
        click.option(
            "--port",
            type=Checked(port_number, "port"),
            default=4200,
            help="port of the local Prefect server (when PREFECT_API_URL is not set)",
        ),
        _model_options(),
        _detection_options(),
        _manifest_options(dated=True),
        _policy_options(),
        _learned_option(),
        _correct_option(),
        _encryption_option(),
    )(f)


@_command(
    "check",
    cmd_check,
    short_help="dry run: what an audit would do with an inbox and its call records",
    help="List every problem of the inbox and manifest and the call id each recording "
    "would be audited under (with --db: new, already audited, or re-linked from the "
    "file-name id it was audited under). Decodes no audio, writes nothing. Exit code 0 "
    "when nothing is wrong, 3 when problems are listed, 2 for bad options.",
)
def _check(f):
    return _options(
        click.option("--inbox", required=True, metavar="DIR", help="folder of call recordings"),
        _manifest_options(audit=False),
        _db_option("an existing audit database to compare with  [default: none]", False),
        _encryption_option(opens=True),
    )(f)


@_command(
    "reaudit",
    cmd_reaudit,
    short_help="re-run detection on stored utterances (no Whisper)",
    help="After a rule catalogue change: recompute findings from the utterances already in "
    "the database, call by call, keeping reviews. Only calls audited with another "
    "catalogue version are redone unless --force. Conduct findings come from the audio and "
    "are kept; calls judged with other conduct thresholds (--policy and its overrides) are "
    "counted, and the next `callaudit audit` audits them again.",
)
def _reaudit(f):
    return _options(
        _db_option("the audit DuckDB file"),
        _rules_option(),
        click.option("--force", is_flag=True, help="redo every call"),
        click.option(
            "--policy",
            default="cn",
            metavar="PACK|FILE",
            help="policy pack whose conduct thresholds are current",
        ),
        _conduct_options(),
        _learned_option(),
        _encryption_option(opens=True),
    )(f)


@_command(
    "detect",
    cmd_detect,
    short_help="run the detector on JSON Lines text",
    help='Read JSON Lines {"id", "text", "speaker"?} from FILE (default: stdin); print '
    'one line {"id", "findings": [{"rule_id", "category", "severity", "start", "end", '
    '"match"}]} per input. start/end are character offsets into text.',
)
def _detect(f):
    return _options(
        click.argument("file", required=False),
        _rules_option(),
        _learned_option(),
    )(f)


@_command(
    "explain",
    cmd_explain,
    short_help="show how the detector reads one sentence",
    help="Print how the detector reads TEXT: the normalised text, tokens, pinyin where "
    "used, and every rule that matched or was suppressed, with the reason.",
)
def _explain(f):
    return _options(
        click.argument("text"),
        click.option(
            "--speaker",
            default="agent",
            type=click.Choice(("agent", "customer", "unknown")),
            help="who says it",
        ),
        click.option(
            "--callee",
            default="unknown",
            type=click.Choice(("debtor", "third_party", "unknown")),
            help="who the call is to (third_party: any mention of the debt is a finding)",
        ),
        _rules_option(),
    )(f)


@_command(
    "eval",
    cmd_eval,
    short_help="score the detector on a labelled JSON Lines file",
    help='Read FILE, JSON Lines like `detect` input plus "labels" (the categories a '
    "reviewer assigns; [] = compliant) and optional call_id/start_s (turns of one call, "
    "for call-level rules), e.g. eval/dev.jsonl; print precision, recall and F1 per "
    'category and for "any violation" (an utterance with >= 1 label vs >= 1 finding).',
)
def _eval(f):
    return _options(
        click.argument("file"),
        _rules_option(),
        click.option("--json", is_flag=True, help="print the scores as one JSON object"),
        click.option("--mistakes", is_flag=True, help="also list utterances whose findings differ"),
        _learned_option("; utterances of its training data are scored cross-validated"),
    )(f)


@_command(
    "rules",
    cmd_rules,
    short_help="list the rule catalogue with citations",
    help="List every rule of the catalogue: id, category, severity, title and citation.",
)
def _rules(f):
    return _rules_option()(f)


@_command(
    "sql",
    cmd_sql,
    short_help="query the audit database in SQL, or open a SQL shell",
    help="Run QUERY on the audit database (read-only) and print the answer; without QUERY "
    "open a shell: the DuckDB CLI installed with callaudit (same version as the library), "
    "or, for an encrypted database, a small shell in this process (the key stays out of "
    "command lines).",
)
def _sql(f):
    return _options(
        _db_option("the audit DuckDB file"),
        click.argument("query", required=False),
        click.option(
            "--format",
            type=click.Choice(("table", "csv", "json")),
            default="table",
            help="how a QUERY's answer is printed (json: one object a line)",
        ),
        click.option(
            "--write",
            is_flag=True,
            help="open for writing (by default read-only: a query can't change the audit); "
            "while a shell is open, DuckDB's file lock keeps the nightly audit out, so close "
            "it when done",
        ),
        _encryption_option(opens=True),
    )(f)


@_command(
    "redact",
    cmd_redact,
    short_help="copies of the recordings with every PII span bleeped",
    help="Write a copy of each audited recording (or of --call CALL_ID ...) into OUT as "
    "WAV, with every span where a personal number was said bleeped on every channel, and "
    "OUT/redaction.csv listing them. The originals are never written; a recording changed "
    "since its audit is listed, not redacted.",
)
def _redact(f):
    return _options(
        _db_option("the audit DuckDB file"),
        click.option(
            "--out",
            required=True,
            type=click.Path(file_okay=False),
            metavar="DIR",
            help="folder for the redacted copies (not the inbox)",
        ),
        click.option(
            "--call", multiple=True, metavar="CALL_ID", help="only this call (repeatable)"
        ),
        _encryption_option(opens=True),
    )(f)


def parse_args(argv: Sequence[str]) -> Namespace:
    """The options of one command line as ``main`` passes them to its command (for tests
    and tools); a usage mistake raises ``click.UsageError``."""
    name, *rest = argv
    command = cli.commands[name]
    with command.make_context(f"callaudit {name}", list(rest)) as ctx:
        return Namespace(command=name, **ctx.params)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Everything callaudit writes (the database and its WAL, reports, exports, summaries)
    # holds debtors' words: owner-only, whatever the shell's umask.
    os.umask(0o077)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return cli.main(args=args, prog_name="callaudit", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "callaudit --help", err=True)
        return EXIT_USAGE
    except click.UsageError as exc:  # includes bad values (BadParameter): exit 2
        prog = exc.ctx.command_path if exc.ctx else "callaudit"
        error(f"{exc.format_message()} (see {prog} --help)", prog)
        return EXIT_USAGE
    except click.ClickException as exc:
        error(exc.format_message())
        return exc.exit_code
    except click.Abort:  # Ctrl-C while click itself was reading or parsing
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
