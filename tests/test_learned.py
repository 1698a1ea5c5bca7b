"""The learned stage: on by default, agent speech only, catches what the rules cannot
enumerate, holds precision on lawful look-alikes, keeps the detect contract.

The sentences below were written for this test: none is in the shipped corpus (checked).
The fitted model is cached under the user cache, so only the first run on a machine
pays for fitting (well under a minute on 2 cores).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from audit.learned import (
    CATEGORIES,
    LearnedOptions,
    LearnedStage,
    _any_violation_fallback,
    _targets,
    features,
    get_learned,
    sentences,
)

# Violations phrased so that no rule of the catalogue matches (checked below).
UNSEEN_VIOLATIONS = [
    ("你这号人活着纯属浪费空气。", "insult"),
    ("你也不想哪天下班回家发现门口站着几个人吧？", "threat"),
    ("麻烦您跟您女婿说一声，他在我们这儿的账拖了快半年了。", "third_party_disclosure"),
    ("找个网贷平台先借出来把我们这边填上不就完了。", "inducement_to_borrow"),
    ("你再拖着，以后你孩子想当兵都当不成。", "false_legal_claim"),
    ("你手机里存的那些人，我们一个一个都会打过去聊聊。", "harassment"),
]
COMPLIANT = [
    "您好，我是星辰消费金融的客服小李，提醒您本期账单已逾期三天。",
    "如果您暂时有困难，可以申请延期或者分期，我帮您登记一下。",
    "好的，那我们明天下午再跟您确认还款进度，谢谢您的配合。",
    "您放心，我们不会联系您的单位，也不会上门。",
    "如果协商不成，我们可能会依法向法院起诉，这个需要您知悉。",
    "我们不建议您去网贷平台借钱来还，这样负担会更重。",
]


@pytest.fixture(scope="module")
def stage() -> LearnedStage:
    return get_learned()


def test_the_test_sentences_are_not_training_data(stage):
    for text, _ in UNSEEN_VIOLATIONS:
        assert not stage.is_training_text(text)
    for text in COMPLIANT:
        assert not stage.is_training_text(text)


EVAL = Path(__file__).resolve().parent.parent / "eval"
BLIND_SETS = sorted((EVAL / "blind").glob("*.jsonl"))
VALIDATION_SETS = sorted((EVAL / "validation").glob("*.jsonl"))


@pytest.mark.parametrize("blind", BLIND_SETS, ids=lambda p: p.name)
def test_no_blind_set_sentence_is_training_data(stage, blind):
    # Counted, never printed: whoever tunes detection must not read the blind set.
    assert len(BLIND_SETS) >= 2
    texts = [json.loads(line)["text"] for line in blind.read_text("utf-8").splitlines() if line]
    assert len(texts) >= 400
    assert sum(stage.is_training_text(t) for t in texts) == 0


@pytest.mark.parametrize("held_out", VALIDATION_SETS, ids=lambda p: p.name)
def test_no_validation_sentence_is_training_data_or_blind(stage, held_out):
    # Rows kept out of training to choose between changes: a copy in the corpus would
    # make their figures in-sample, a copy in a blind set would leak it.
    assert VALIDATION_SETS
    texts = [json.loads(line)["text"] for line in held_out.read_text("utf-8").splitlines() if line]
    assert len(texts) >= 400
    assert sum(stage.is_training_text(t) for t in texts) == 0
    blind = {
        json.loads(line)["text"]
        for path in BLIND_SETS
        for line in path.read_text("utf-8").splitlines()
        if line
    }
    assert not blind & set(texts)


def test_the_rules_miss_these_violations(detector):
    # Else the test below would no longer show what the stage adds.
    for text, category in UNSEEN_VIOLATIONS:
        assert category not in {h.category for h in detector.detect(text, "agent")}, text


def test_catches_most_unseen_violations_in_their_category(stage):
    hits = stage.hits_batch([t for t, _ in UNSEEN_VIOLATIONS], ["agent"] * len(UNSEEN_VIOLATIONS))
    right = [
        text
        for (text, category), found in zip(UNSEEN_VIOLATIONS, hits, strict=True)
        if category in {h.category for h in found}
    ]
    assert len(right) >= 4, right


def test_does_not_flag_compliant_agent_speech(stage):
    hits = stage.hits_batch(COMPLIANT, ["agent"] * len(COMPLIANT))
    assert hits == [[] for _ in COMPLIANT]


def test_never_flags_customer_speech(stage):
    texts = [t for t, _ in UNSEEN_VIOLATIONS]
    assert stage.hits_batch(texts, ["customer"] * len(texts)) == [[] for _ in texts]


def test_hits_carry_category_span_and_score(stage):
    text = "好的，我知道了。" + UNSEEN_VIOLATIONS[0][0]
    hits = stage.hits_batch([text], ["agent"])[0]
    assert hits
    for h in hits:
        assert h.category in CATEGORIES
        assert 0 <= h.start < h.end <= len(text)
        assert h.threshold <= h.score <= 1.0
    assert any(text[h.start : h.end] == UNSEEN_VIOLATIONS[0][0] for h in hits)
    assert sentences("  你好。 再见！") == [(2, 5), (6, 9)]


def test_the_any_violation_column_is_fitted_with_its_own_threshold(stage):
    # One column per category, then any violation; its threshold was chosen out of fold.
    assert stage.model.W.shape[1] == len(CATEGORIES) + 1
    assert list(stage.thresholds) == [*CATEGORIES, "any"]
    assert 0.0 < stage.thresholds["any"] <= 1.0
    labels = np.zeros((3, len(CATEGORIES)))
    labels[0, 0] = labels[2, [2, 5]] = 1.0
    assert _targets(labels, LearnedOptions())[:, -1].tolist() == [1.0, 0.0, 1.0]
    assert _targets(labels, LearnedOptions(any_fallback_precision=0)).shape == labels.shape


def test_any_violation_fallback_speaks_only_where_no_category_did():
    C = len(CATEGORIES)
    thresholds = np.tile([*([0.6] * C), 0.9], (4, 1))
    scores = np.zeros((4, C + 1))
    units = [(0, 0, 10), (0, 0, 4), (1, 0, 8), (2, 0, 8)]
    # Text 0: no category passes; its second unit is the surer violation, and is nearest
    # to the harassment threshold (0.50 of 0.55 beats 0.45 of 0.6).
    thresholds[:, CATEGORIES.index("harassment")] = 0.55
    scores[0, [CATEGORIES.index("threat"), C]] = [0.58, 0.91]
    scores[1, [CATEGORIES.index("threat"), CATEGORIES.index("harassment"), C]] = [0.45, 0.50, 0.95]
    # Text 1: a category already caught it; text 2: the column is below its threshold.
    scores[2, C] = 0.99
    scores[3, [0, C]] = [0.59, 0.89]
    hits = _any_violation_fallback(units, scores, thresholds, caught={1})
    assert hits == {(0, CATEGORIES.index("harassment")): (0.95, 1, 0.9)}


def test_homophones_share_pinyin_features():
    """逾期 heard as 预期, 坐牢 as 做劳: same fuzzy-pinyin n-grams, so the classifier
    sees what was meant even when the characters are wrong."""
    said = {f for f in features("你已经逾期了，再不还就坐牢") if f.startswith("p")}
    heard = {f for f in features("你已经预期了，再不还就做劳") if f.startswith("p")}
    assert said == heard


def test_third_party_callee_is_a_feature():
    assert "@callee=third_party" in features("他欠我们钱", "third_party")
    assert "@callee=third_party" not in features("他欠我们钱", "debtor")


def test_a_disowned_sentence_is_no_learned_finding(stage, detector):
    """Words the speaker disowns as someone else's are no finding of either stage: the
    learned hit on the same words stands until the sentence disowns them."""
    said = "我们会把你通讯录里的人一个一个打过去聊聊。"
    disowned = "外包那边说会把你通讯录里的人一个一个打过去聊聊，这跟我们没关系。"
    assert not stage.is_training_text(said) and not stage.is_training_text(disowned)
    hits = stage.hits_batch([said, disowned], ["agent", "agent"])
    assert hits[0] and hits[1]  # the classifier alone reads both as harassment
    assert detector.detect_with(said, hits[0], "agent")
    found = detector.detect_with(disowned, hits[1], "agent")
    assert found == [], [(h.rule_id, h.match) for h in found]


def test_training_texts_are_scored_cross_validated(stage):
    """An eval on the corpus must not score the model on rows it memorised: scored by
    the models fitted without their fold, training rows are found less often."""
    rows = [e for e in stage.training.examples if e.labels and e.source_text is None][:400]
    assert all(stage.is_training_text(e.text) for e in rows)

    def found(cross_validated: bool) -> int:
        hits = stage.hits_batch(
            [e.text for e in rows],
            [e.speaker for e in rows],
            [e.callee for e in rows],
            cross_validated=cross_validated,
        )
        pairs = zip(rows, hits, strict=True)
        return sum(bool({h.category for h in hs} & e.labels) for e, hs in pairs)

    assert found(cross_validated=True) < found(cross_validated=False)


def test_pipeline_runs_it_by_default(stage, detector):
    from audit.pipeline import AuditOptions, detect_findings
    from audit.transcribe import Utterance

    assert AuditOptions().learned is True
    text = UNSEEN_VIOLATIONS[0][0]
    utterances = [
        Utterance(0, "agent", 0.0, 3.0, COMPLIANT[0], COMPLIANT[0], -0.2, 0.01),
        Utterance(1, "customer", 3.0, 6.0, text, text, -0.2, 0.01),
        Utterance(2, "agent", 6.0, 9.0, text, text, -0.2, 0.01),
    ]
    plain = detect_findings("c1", utterances, detector)
    with_stage = detect_findings("c1", utterances, detector, learned=stage)
    extra = [f for f in with_stage if f.via == "learned"]
    assert extra and {f.utterance_idx for f in extra} == {2}
    assert [f for f in with_stage if f.via != "learned"] == plain
    f = extra[0]
    assert (f.speaker, f.start_s, f.end_s) == ("agent", 6.0, 9.0)
    assert f.rule_id == "ML-" + f.category.upper().replace("_", "-")
    assert f.citation and f.severity in ("high", "critical") and f.score is not None


def test_detect_cli_keeps_the_contract(cli):
    lines = [
        {"id": 1, "text": UNSEEN_VIOLATIONS[0][0], "speaker": "agent"},
        {"id": "b", "text": "你再不还钱，我们就去你家找你。", "speaker": "agent"},
        {"id": 3, "text": UNSEEN_VIOLATIONS[0][0], "speaker": "customer"},
        {"id": 4, "text": COMPLIANT[0]},
    ]
    stdin = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n"
    out = subprocess.run([*cli, "detect"], input=stdin, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == [1, "b", 3, 4]
    for row, given in zip(rows, lines, strict=True):
        assert set(row) == {"id", "findings"}
        for f in row["findings"]:
            assert set(f) == {"rule_id", "category", "severity", "start", "end", "match"}
            assert given["text"][f["start"] : f["end"]] == f["match"]
    assert any(f["rule_id"].startswith("ML-") for f in rows[0]["findings"])
    assert rows[1]["findings"] and all(f["rule_id"].startswith("CN-") for f in rows[1]["findings"])
    assert rows[2]["findings"] == [] and rows[3]["findings"] == []
    rules_only = subprocess.run(
        [*cli, "detect", "--no-learned"], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert all(
        not f["rule_id"].startswith("ML-")
        for line in rules_only.stdout.splitlines()
        for f in json.loads(line)["findings"]
    )
