"""``callaudit eval``: scoring maths on tiny hand-made data, targets on eval/dev.jsonl."""

from __future__ import annotations

import json
import subprocess

import pytest

from audit.corpus import LabelledFileError, parse_examples
from audit.evaluate import ANY, evaluate, format_report, score
from tests.conftest import ROOT

DEV_SET = ROOT / "audit" / "data" / "corpus" / "legacy_dev.jsonl"


def test_scores_count_per_category_and_any_violation():
    gold = [{"threat"}, {"threat", "insult"}, set(), set(), {"insult"}]
    pred = [{"threat"}, {"threat"}, {"threat"}, set(), set()]
    per_category, any_score = score(gold, pred)
    threat, insult = per_category["threat"], per_category["insult"]
    assert (threat.tp, threat.fp, threat.fn) == (2, 1, 0)
    assert threat.precision == pytest.approx(2 / 3)
    assert threat.recall == 1.0
    assert threat.f1 == pytest.approx(0.8)  # 2PR/(P+R) = 2*(2/3)/(5/3)
    assert (insult.tp, insult.fp, insult.fn) == (0, 0, 2)
    assert insult.precision is None  # nothing predicted: undefined, not 0 or 1
    assert insult.recall == 0.0 and insult.f1 == 0.0
    # Any violation: rows 1-2 caught, row 3 a false alarm, row 5 missed.
    assert (any_score.tp, any_score.fp, any_score.fn) == (2, 1, 1)
    assert any_score.name == ANY
    assert any_score.precision == pytest.approx(2 / 3) and any_score.recall == pytest.approx(2 / 3)


def test_a_category_never_labelled_nor_found_has_no_scores():
    per_category, any_score = score([set()], [set()], categories=["harassment"])
    h = per_category["harassment"]
    assert (h.precision, h.recall, h.f1) == (None, None, None)
    assert (any_score.tp, any_score.fp, any_score.fn) == (0, 0, 0)


def test_any_violation_counts_the_utterance_not_the_category():
    # Wrong category but a finding all the same: the reviewer still gets the utterance.
    per_category, any_score = score([{"threat"}], [{"insult"}])
    assert (any_score.tp, any_score.fp, any_score.fn) == (1, 0, 0)
    assert per_category["threat"].fn == 1 and per_category["insult"].fp == 1


def test_labelled_lines_are_validated_with_the_line_named():
    with pytest.raises(LabelledFileError, match="line 2"):
        parse_examples(['{"text": "a", "labels": []}', '{"text": "b", "labels": ["threats"]}'])
    with pytest.raises(LabelledFileError, match="labels"):
        parse_examples(['{"text": "a"}'])
    with pytest.raises(LabelledFileError, match="not valid JSON"):
        parse_examples(["{nope"])


def test_evaluate_a_tiny_file_with_a_call(detector):
    lines = [
        {"id": 1, "text": "你这个老赖，真不要脸", "speaker": "agent", "labels": ["insult"]},
        {"id": 2, "text": "请您放心，我们不会上门", "speaker": "agent", "labels": []},
        {"id": 3, "text": "你们是不是要上门？", "speaker": "customer", "labels": []},
        # One call, no self-identification: the finding lands on the agent's first turn.
        {
            "id": 4,
            "text": "喂，张伟吗？钱什么时候还？",
            "speaker": "agent",
            "call_id": "c1",
            "labels": ["missing_disclosure"],
        },
        {"id": 5, "text": "下周吧", "speaker": "customer", "call_id": "c1", "labels": []},
    ]
    examples = parse_examples([json.dumps(x, ensure_ascii=False) for x in lines])
    report = evaluate(detector, examples)
    assert report.examples == 5 and report.compliant == 3
    assert (report.any.tp, report.any.fp, report.any.fn) == (2, 0, 0)
    assert report.categories["missing_disclosure"].tp == 1
    assert report.mistakes == []
    table = format_report(report)
    assert "missing_disclosure" in table and "any violation" in table


@pytest.fixture(scope="module")
def dev_scores(cli) -> dict:
    proc = subprocess.run(
        [*cli, "eval", str(DEV_SET), "--json"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_dev_set_is_big_and_balanced_enough(dev_scores):
    assert dev_scores["examples"] >= 300
    assert dev_scores["compliant"] / dev_scores["examples"] >= 0.40
    for name, s in dev_scores["categories"].items():
        if name in {"contact_time", "contact_frequency", "other"}:
            continue
        assert s["support"] >= 15, name


def test_dev_set_meets_the_any_violation_targets(dev_scores):
    any_violation = dev_scores["any_violation"]
    assert any_violation["precision"] >= 0.95, any_violation
    assert any_violation["recall"] >= 0.90, any_violation


def test_eval_prints_every_categorys_f1(capsys):
    from audit.cli import main

    assert main(["eval", str(DEV_SET)]) == 0
    out = capsys.readouterr().out
    for name in [
        "threat",
        "insult",
        "harassment",
        "third_party_disclosure",
        "impersonation",
        "false_legal_claim",
        "inducement_to_borrow",
        "pii_exposure",
        "missing_disclosure",
        "any violation",
    ]:
        line = next(x for x in out.splitlines() if x.startswith(name))
        assert len(line.split()) >= 4, line  # precision, recall and F1 printed
    assert "F1" in out


def test_eval_reports_a_bad_file(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "你好", "labels": ["nope"]}\n', encoding="utf-8")
    proc = subprocess.run([*cli, "eval", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "unknown categories" in proc.stderr
