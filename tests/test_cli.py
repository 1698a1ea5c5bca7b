"""The real ``callaudit`` entry point, driven the way tools and evaluations drive it."""

from __future__ import annotations

import json
import re
import subprocess


def run(cli, args, stdin=""):
    return subprocess.run([*cli, *args], input=stdin, capture_output=True, text=True, timeout=120)


def test_detect_follows_the_json_lines_contract(cli, tmp_path):
    lines = [
        {"id": "a", "text": "我们不会上门", "speaker": "agent"},
        {"id": "b", "text": "你这个老賴，明天我们就上门", "speaker": "agent"},
        {"id": 3, "text": "你们是不是要上门？", "speaker": "customer"},
        {"id": "d", "text": "法院已经立案了"},
    ]
    proc = run(cli, ["detect"], "\n".join(json.dumps(x, ensure_ascii=False) for x in lines))
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a", "b", 3, "d"]
    assert out[0]["findings"] == [] and out[2]["findings"] == []
    b = out[1]["findings"]
    assert {f["category"] for f in b} == {"threat", "insult"}
    for f in b:
        assert set(f) == {"rule_id", "category", "severity", "start", "end", "match"}
        assert lines[1]["text"][f["start"] : f["end"]] == f["match"]
    assert out[3]["findings"][0]["category"] == "false_legal_claim"  # speaker defaults unknown


def test_detect_reads_a_file_and_reports_bad_lines(cli, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": 1, "text": "你就是个骗子"}\nnot json\n{"id": 2}\n', encoding="utf-8")
    proc = run(cli, ["detect", str(f)])
    assert proc.returncode == 1
    assert len(proc.stdout.splitlines()) == 1
    assert "line 2" in proc.stderr and "line 3" in proc.stderr


def test_detect_refuses_a_missing_file_in_one_line(cli, tmp_path):
    proc = run(cli, ["detect", str(tmp_path / "nope.jsonl")])
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == f"callaudit detect: error: no such file: {tmp_path}/nope.jsonl"


def test_detect_reports_malformed_fields_and_huge_lines_and_goes_on(cli, tmp_path):
    f = tmp_path / "in.jsonl"
    rows = [
        {"id": 1, "text": "你就是个骗子", "speaker": ["agent"]},
        {"id": 2, "text": "你就是个骗子", "callee_relation": {"x": 1}},
        {"id": 3, "text": "再不还钱" * 10_000},
        {"id": 4, "text": "你就是个骗子", "speaker": "agent"},
    ]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    proc = run(cli, ["detect", "--no-learned", str(f)])
    assert proc.returncode == 1
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == [4]
    assert "line 1: speaker must be one of" in proc.stderr
    assert "line 2: callee_relation must be one of" in proc.stderr
    assert "line 3: 'text' is 40,000 characters" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_explain_shows_a_suppressed_match_and_its_reason(cli):
    proc = run(cli, ["explain", "请放心，我们不会上门"])
    assert proc.returncode == 0
    assert "suppressed CN-THR-VISIT" in proc.stdout
    assert "because negation: 不会" in proc.stdout
    assert "tokens:" in proc.stdout


def test_every_command_has_help(cli):
    for cmd in [
        "audit",
        "detect",
        "explain",
        "rules",
        "eval",
        "serve",
        "reaudit",
        "report",
        "review",
        "console",
    ]:
        proc = run(cli, [cmd, "--help"])
        assert proc.returncode == 0 and f"usage: callaudit {cmd}" in proc.stdout.lower()


def test_audit_refuses_bad_options_before_starting(cli, tmp_path):
    bad_rules = tmp_path / "rules.yaml"
    bad_rules.write_text("rules:\n  - {id: X, category: nonsense}\n", encoding="utf-8")
    cases = [
        (["--channels", "Agent,customer"], "--channels"),
        (["--rules", str(bad_rules)], "error in the rule catalogue"),
    ]
    for extra, message in cases:
        proc = run(cli, ["audit", str(tmp_path), "--db", str(tmp_path / "x.duckdb"), *extra])
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    missing = run(cli, ["audit", str(tmp_path / "nope"), "--db", str(tmp_path / "x.duckdb")])
    assert missing.returncode == 2 and "inbox is not a folder" in missing.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_options_that_cannot_work_are_refused_with_exit_2(cli, tmp_path):
    db = tmp_path / "x.duckdb"
    cases = [
        (["report", "--db", ":memory:", "--out", str(tmp_path / "r.html")], "keeps nothing"),
        (
            ["report", "--db", str(db), "--out", str(tmp_path / "r.html"), "--top", "-1"],
            "1 or more",
        ),
        (
            ["report", "--db", str(db), "--out", str(tmp_path / "r.html"), "--from", "03/01/2026"],
            "YYYY-MM-DD",
        ),
        (
            ["report", "--db", str(db), "--out", str(tmp_path / "r.html")]
            + ["--from", "2026-03-09", "--to", "2026-03-01"],
            "is after --to",
        ),
    ]
    for args, message in cases:
        proc = run(cli, args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not db.exists() and not (tmp_path / "r.html").exists()


def test_review_and_reaudit_never_create_a_database(cli, tmp_path):
    db = tmp_path / "typo.duckdb"
    for args in (
        ["review", "F1", "--db", str(db), "--verdict", "confirmed"],
        ["reaudit", "--db", str(db)],
    ):
        proc = run(cli, args)
        assert proc.returncode == 1 and "no audit database at" in proc.stderr
    assert not db.exists()


def test_prefect_yaml_carries_every_flow_parameter():
    import inspect

    import yaml

    from flows.audit_flow import audit_inbox
    from tests.conftest import ROOT

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    [deployment] = config["deployments"]
    expected = set(inspect.signature(audit_inbox.fn).parameters)
    assert set(deployment["parameters"]) == expected


def test_version_is_the_installed_package_version(cli):
    from importlib.metadata import version

    proc = run(cli, ["--version"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"callaudit {version('callaudit')}"


def test_help_shows_defaults_and_exit_codes(cli):
    def help_of(*cmd: str) -> str:
        proc = run(cli, [*cmd, "--help"])
        assert proc.returncode == 0, proc.stderr
        return " ".join(proc.stdout.split())  # the same text however the lines were wrapped

    top = help_of()
    assert "Exit codes" in top and "--version" in top
    for code in ("0 done", "1 the work could not run", "2 a mistake in what was given"):
        assert code in top, code
    assert "3 done, but some recordings failed" in top and "130 interrupted" in top
    audit = help_of("audit")
    for option, default in [
        ("--beam-size N Whisper beam size (1 is faster)", "5"),
        ("--device [cpu|cuda] where Whisper runs", "cpu"),
        ("--channels ROLE,ROLE", "agent,customer"),
        ("--policy PACK|FILE", "cn"),
        ("--processes N", "0"),
    ]:
        assert option in audit, option
        after = audit[audit.index(option) :]
        assert after.split("[default: ", 1)[1].startswith(default + "]"), (option, after[:200])
    assert "[default: the policy's; 08:00-22:00 in cn]" in audit  # --window: the pack's
    serve = help_of("serve")
    assert "[default: 0 2 * * *]" in serve and "[default: Asia/Shanghai]" in serve
    assert "[default: 4200]" in serve and "[default: nightly]" in serve
    report = help_of("report")
    assert "highest-risk calls shown [default: 10]" in report and "[default: 5.0]" in report
    assert "[env var: CALLAUDIT_REVIEWER]" in help_of("review")


def test_every_option_of_every_command_is_explained():
    import click

    from audit.cli import cli as group

    for name, command in group.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and len(param.help) > 8, (name, param.name)


def _on_a_terminal(args: list[str], **env: str) -> tuple[int, str]:
    """Run the entry point with stderr on a pseudo-terminal; (exit code, what it showed)."""
    import os
    import pty
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**clean, "TERM": "xterm-256color", **env},
    )
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(timeout=60), shown.decode("utf-8", "replace")


BAD = ["report", "--db", "x.duckdb", "--out", "r.html", "--top", "0"]


def test_an_error_is_one_red_line_on_a_terminal(tmp_path):
    code, shown = _on_a_terminal([*BAD[:2], str(tmp_path / "x.duckdb"), *BAD[3:]])
    assert code == 2
    lines = shown.strip().splitlines()
    assert len(lines) == 1, shown
    assert "\x1b[" in shown and "\x1b[1;31merror:" in shown  # bold red
    assert "callaudit report: " in shown and "'0' must be 1 or more" in shown
    assert not (tmp_path / "x.duckdb").exists()


def test_no_colour_when_piped_or_with_no_color(cli, tmp_path):
    args = [*BAD[:2], str(tmp_path / "x.duckdb"), *BAD[3:]]
    piped = run(cli, args)
    assert piped.returncode == 2 and "\x1b" not in piped.stderr
    assert piped.stderr.startswith("callaudit report: error: Invalid value for '--top'")
    code, shown = _on_a_terminal(args, NO_COLOR="1")
    assert code == 2 and "\x1b" not in shown and "callaudit report: error:" in shown


SUMMARY = {
    "db": "/srv/audit/callaudit.duckdb",
    "discovered": 9,
    "audited": 8,
    "skipped": 0,
    "failed": 1,
    "audio_minutes": 3.52,
    "db_calls": 16,
    "db_findings": 23,
    "findings_by_category": {"threat": 5, "third_party_disclosure": 4, "insult": 3},
    "failures": [["corrupt_upload", "not a readable audio file"]],
    "manifest": {
        "file": "samples/calls.csv",
        "encoding": "utf-8",
        "rows": 16,
        "accepted": 15,
        "errors": ["row 17: recording 'nope.wav' not found in the inbox"],
    },
    "contact": {
        "policy": "cn",
        "version": "2026.11.1",
        "findings": {"CN-CT-QUIET-HOURS": 2, "CN-CF-CONNECTED-PER-DAY": 1},
    },
}


def test_the_summary_is_a_table_on_a_terminal(monkeypatch):
    import io

    from audit.terminal import print_summary

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")  # what a terminal gets
    monkeypatch.setenv("COLUMNS", "120")
    out = io.StringIO()
    print_summary(SUMMARY, file=out)
    text = out.getvalue()
    assert "\x1b[" in text  # styled for the terminal
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "callaudit summary" in plain and "│" in plain and "─" in plain  # drawn as tables
    rows = {" ".join(c.strip() for c in ln.split("│") if c.strip()) for ln in plain.splitlines()}
    for row in [
        "recordings found 9",
        "audited now 8",
        "skipped, already audited 0",
        "failed 1",
        "audio 3.5 min",
        "database /srv/audit/callaudit.duckdb",
        "calls in database 16",
        "findings in db 23",
        "manifest samples/calls.csv (utf-8): 15 of 16 rows accepted",
        "contact policy cn 2026.11.1 (CN-CT-QUIET-HOURS 2, CN-CF-CONNECTED-PER-DAY 1)",
        "threat 5",
        "third_party_disclosure 4",
        "insult 3",
        "corrupt_upload not a readable audio file",
        "MANIFEST row 17: recording 'nope.wav' not found in the inbox",
    ]:
        assert row in rows, (row, plain)


def test_a_recording_name_that_looks_like_markup_is_printed_as_it_is(monkeypatch):
    """x[/]y.wav would be Rich markup (an error after the whole batch) if not text."""
    import io

    from audit.terminal import print_summary

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    summary = {
        **SUMMARY,
        "failures": [
            ("x[/]y.wav", "not a readable audio file"),
            ("[red]a.wav", "empty file (0 bytes)"),
        ],
    }
    out = io.StringIO()
    print_summary(summary, file=out)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert "x[/]y.wav" in plain and "[red]a.wav" in plain


def test_the_summary_is_plain_lines_when_piped(monkeypatch):
    import io

    from audit.batch import format_summary
    from audit.contact import format_checks
    from audit.terminal import print_summary

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = io.StringIO()
    print_summary(SUMMARY, file=out)
    assert out.getvalue() == format_summary(SUMMARY) + "\n" + format_checks(SUMMARY) + "\n"
    assert "\x1b" not in out.getvalue()
    assert "  audited now      : 8  (skipped, already audited: 0; failed: 1)" in out.getvalue()
    assert "    threat                   5" in out.getvalue()
    assert "  FAILED corrupt_upload: not a readable audio file" in out.getvalue()
