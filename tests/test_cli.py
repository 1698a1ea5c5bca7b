"""The real ``callaudit`` entry point, driven the way tools and evaluations drive it."""

from __future__ import annotations

import json
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
    ]:
        proc = run(cli, [cmd, "--help"])
        assert proc.returncode == 0 and "usage: callaudit" in proc.stdout


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
