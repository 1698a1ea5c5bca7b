"""Detector behaviour on real Mandarin sentences and their hard cases."""

from __future__ import annotations

import pytest


def rules_found(detector, text, speaker="agent", callee="debtor"):
    return {h.rule_id for h in detector.detect(text, speaker, callee)}


def categories(detector, text, speaker="agent", callee="debtor"):
    return {h.category for h in detector.detect(text, speaker, callee)}


@pytest.mark.parametrize(
    "text",
    [
        "我们不会上门",
        "请您放心，我们绝对不会去你单位",
        "我们从来没有说过要上门",
    ],
)
def test_negated_visit_is_not_a_threat(detector, text):
    assert "threat" not in categories(detector, text)


@pytest.mark.parametrize(
    "text",
    [
        "你不还钱我们就上门",
        "如果你不还钱，我们会上门",
        "你要是不还，我们明天就去你单位",
    ],
)
def test_negation_in_the_condition_does_not_excuse_the_threat(detector, text):
    assert "threat" in categories(detector, text)


def test_a_not_a_question_is_not_negation(detector):
    assert "false_legal_claim" in categories(detector, "你说你会不会坐牢？")


def test_lawful_conditional_litigation_is_allowed(detector):
    assert categories(detector, "如不还款，我们可能依法提起诉讼") == set()
    assert "false_legal_claim" in categories(detector, "法院已经立案了，明天就抓你")


def test_customer_words_are_never_agent_violations(detector):
    text = "你们是不是要找我家人？你们是不是要上门？"
    assert categories(detector, text, speaker="customer") == set()
    hits = detector.analyse(text, "customer").hits
    assert hits and all(h.suppressed and h.suppressed.startswith("speaker") for h in hits)


def test_quoted_words_are_not_said(detector):
    text = "有的公司会说“你再不还就坐牢”，我们不会这样"
    assert "false_legal_claim" not in categories(detector, text)
    reasons = [h.suppressed for h in detector.analyse(text, "agent").hits]
    assert any(r and r.startswith("quote") for r in reasons)


def test_homophones_from_whisper_still_match(detector):
    # 逾期 heard as 于七, 借了 intact, 你儿子 heard as 女儿; 坐牢 heard as 做劳
    hits = detector.detect("女儿在我们平台借了五万，已经于七三个月了", "agent", "debtor")
    assert "third_party_disclosure" in {h.category for h in hits}
    jail = [
        h
        for h in detector.detect("你再不还款就要做劳", "agent")
        if h.category == "false_legal_claim"
    ]
    assert jail and jail[0].via == "pinyin" and jail[0].match == "做劳"


def test_debt_mentions_to_a_third_party_need_the_call_record(detector):
    text = "麻烦转告他，他的账单已经预期了"  # 逾期 -> 预期
    assert "third_party_disclosure" not in categories(detector, text, callee="debtor")
    assert "third_party_disclosure" in categories(detector, text, callee="third_party")


def test_offsets_point_into_the_callers_text(detector):
    text = "ＯＫ，你這個老賴，真不要臉"  # full-width and traditional input
    for h in detector.detect(text, "agent"):
        assert text[h.start : h.end] == h.match
    assert {h.match for h in detector.detect(text, "agent")} == {"老賴", "不要臉"}


def test_pii_read_aloud_in_words_and_digits(detector):
    assert "pii_exposure" in categories(detector, "你的身份证号是11010519491231002X")
    assert "pii_exposure" in categories(detector, "你妈电话幺三八一二三四五六七八")
    assert "pii_exposure" not in categories(detector, "你欠了一万三千八百元")


def test_missing_self_identification_is_a_call_level_finding(detector):
    from audit.detect import UtteranceIn

    silent_agent = [
        UtteranceIn(0, "agent", 0.5, 3.0, "喂，张伟吗？钱什么时候还？"),
        UtteranceIn(1, "customer", 3.5, 5.0, "下周吧"),
    ]
    good = [
        UtteranceIn(0, "agent", 0.5, 3.0, "您好，我是星辰消费金融的客服小王"),
        UtteranceIn(1, "customer", 3.5, 5.0, "哦，你好"),
    ]
    assert [h.category for h in detector.detect_call(silent_agent)] == ["missing_disclosure"]
    assert detector.detect_call(good) == []
    assert detector.detect_call([]) == []  # nobody spoke: nothing to judge


def test_empty_and_odd_text_do_not_crash(detector):
    for text in ["", "   ", "？？？", "“", "a" * 500, "\n\n"]:
        assert detector.detect(text) == []
