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


# -- what Whisper base really wrote for the bundled sample calls --------------------------
# Transcribed by the default pipeline (bench/asr_eval.py --transcripts): homophones and all
# (预期 for 逾期, 环款 for 还款, 做劳 for 坐牢, 克服 for 客服).  The end-to-end test checks the
# same categories with real Whisper; this keeps the detector's side of it in the unit tests.
SAMPLE_TRANSCRIPTS: dict[str, list[tuple[str, float, str]]] = {
    "call_01_compliant": [
        ("agent", 0.14, "你好，我是新陈消费金融的克服小王，公号102次请问是张先生本人吗？"),
        ("customer", 6.93, "对，是我，"),
        ("agent", 9.12, "张先生，您的借款已经一七五天了，英环金额是三千二百元。"),
        ("customer", 14.94, "不好意思，最近手头紧，就武发了公司就怀上。"),
        ("agent", 20.08, "好的，我帮您当记一下周五环款，"),
        ("customer", 23.86, "好的，知道了。"),
        ("agent", 25.71, "感谢您的配合，祝您生活愉快，再见！"),
    ],
    "call_02_compliant_lawful": [
        ("agent", 0.14, "您好，我是新陈消费金融的克服小流，高号2048，请问是李尼士吗？"),
        ("customer", 7.06, "是我，什么是，"),
        ("agent", 9.07, "李尼士您的借款已经预期两个月了。"),
        ("customer", 12.31, "你们是不是要找我家人，"),
        ("agent", 15.02, "请您放心，我们不会上门，也不会连续您的家人。"),
        ("agent", 19.57, "不过，如果您持续不还款，我们可能会于法提起诉讼。"),
        ("customer", 24.34, "行，我家个月时候之前还轻。"),
        ("agent", 27.45, "好的，感谢您的配合，再见！"),
    ],
    "call_03_threat": [
        ("agent", 0.14, "为，我是新陈消费金融的推售专员小账，你是王美吧。"),
        ("customer", 5.1, "是我，限款的是我知道，最近真的没钱，"),
        ("agent", 9.25, "没钱，你再不还钱，明天我们就派人去你单位找你。"),
        ("customer", 13.99, "你们不能这样吧，"),
        ("agent", 15.9, "我们知道你住在那里，你小心点，今天下午五点钱把钱打过来。"),
        ("customer", 21.72, "我想想办法"),
    ],
    "call_04_insult": [
        ("agent", 0.14, "为，我是新陈消费金融的克服小孙，刘强是吧，你的借款一气一个多夜冷，"),
        ("customer", 7.18, "我知道这个月时在周转不开"),
        ("agent", 10.5, "周转不开，你这个老赖，真不要脸。"),
        ("customer", 14.48, "你说话客气一点"),
        ("agent", 16.54, "欠钱不环你还是人吗？赶紧想办法完全。"),
        ("customer", 20.5, "我会尽快处理的"),
    ],
    "call_05_third_party": [
        ("agent", 0.14, "你好，请问是张伟的妈妈吗？"),
        ("customer", 3.57, "是啊，你是哪位，"),
        (
            "agent",
            6.03,
            "我是新陈消费金油的克服小礼，女儿自在我们平台见了五万块钱，已经于七三个月了，"
            "预赶紧让她还钱。",
        ),
        ("customer", 14.39, "什么，他见了这么多钱，我都不知道而已。"),
        ("agent", 18.82, "你是她妈妈，你得管管她，让她这个星期之内把钱还善。"),
        ("customer", 24.2, "好吧，我回头问问他。"),
    ],
    "call_06_impersonation": [
        ("agent", 0.14, "喂，是陈明茫，我是是公安局的民警，监睁大队的，"),
        ("customer", 5.55, "公安局，找我有什么事？"),
        ("agent", 8.31, "你在网带平台的借款一直没还，你涉嫌物益欠款，"),
        ("customer", 12.87, "我只是晚了几天，怎么就成了一线款了？"),
        ("agent", 17.2, "你今天借妹把借款结清配合我们的工作，这件事就到此为止"),
        ("customer", 22.74, "好的，好的，我马上去处理。"),
    ],
    "call_07_false_legal": [
        ("agent", 0.14, "你好，我是新陈消费金融的克服小中，请问是教立你事吗？"),
        ("customer", 5.78, "是我，"),
        ("agent", 7.22, "你的借款一七块半年了，法院已经立案了，你再不还款就要做劳。"),
        ("customer", 13.48, "前前也要做老板，"),
        ("agent", 15.52, "当然了，还会影响你孩子上学。"),
        ("customer", 18.64, "那我该怎么办？"),
        ("agent", 20.43, "三天之内把钱全部还清，我们可以帮你测速。"),
    ],
    "call_08_inducement": [
        ("agent", 0.14, "你好，我是新陈小费金融的克服小巫，高号三零一案，请问是分好先生吗？"),
        ("customer", 6.96, "是我，"),
        ("agent", 8.14, "孙先生，您这笔借款一七二十天文，今天能处理一下吗？"),
        ("customer", 13.7, "我现在确实没钱，公司还没发"),
        (
            "agent",
            17.19,
            "您可以去别的品牌借点钱，先把我们这笔还剩，用信用卡套借也行，很方便的！",
        ),
        ("customer", 25.06, "就要不是越借越多吗？"),
    ],
}
# call_05 is to the debtor's mother: the call record (samples/calls.csv) says third_party.
SAMPLE_CALLEE = {"call_05_third_party": "third_party"}


def _sample_labels() -> dict[str, set[str]]:
    import csv

    from tests.conftest import SAMPLES

    with open(SAMPLES / "labels.csv", encoding="utf-8") as f:
        return {
            row["call_id"]: {c for c in row["expected_categories"].split(";") if c}
            for row in csv.DictReader(f)
        }


@pytest.mark.parametrize("call_id", sorted(SAMPLE_TRANSCRIPTS))
@pytest.mark.parametrize("record", ["unknown", "call record"])
def test_sample_call_transcripts_yield_exactly_their_labels(detector, call_id, record):
    from audit.detect import UtteranceIn

    callee = SAMPLE_CALLEE.get(call_id, "debtor") if record == "call record" else "unknown"
    turns = SAMPLE_TRANSCRIPTS[call_id]
    found: set[str] = set()
    for speaker, _start, text in turns:
        found |= {h.category for h in detector.detect(text, speaker, callee)}
    utterances = [
        UtteranceIn(i, speaker, start, start + 3.0, text)
        for i, (speaker, start, text) in enumerate(turns)
    ]
    found |= {h.category for h in detector.detect_call(utterances)}
    assert found == _sample_labels()[call_id]


def test_asr_homophones_of_key_terms_still_yield_the_finding(detector):
    # 逾期 heard as 预期 and 还款 as 环款, said to the debtor's contact: still a disclosure.
    text = "麻烦您转告他，他的借款已经预期了，让他尽快环款"
    hits = [
        h
        for h in detector.detect(text, "agent", "third_party")
        if h.category == "third_party_disclosure"
    ]
    assert {h.match for h in hits if h.via == "pinyin"} >= {"预期", "环款"}
    # The same words said to the debtor are a plain reminder.
    assert categories(detector, "您的借款已经预期了，请尽快环款", callee="debtor") == set()
    # 坐牢 heard as 做劳 after 环款: the jail threat is still found, by sound.
    jail = [
        h
        for h in detector.detect("你再不环款就要做劳", "agent")
        if h.category == "false_legal_claim"
    ]
    assert jail and jail[0].via == "pinyin"


@pytest.mark.parametrize(
    "text",
    [
        "你们是不是要找我家人？",
        "上次那个催收说要去我单位闹，是真的吗？",
        "我朋友说欠钱会坐牢，是真的吗？",
        "你这个骗子，天天打电话！",
        "我去别的平台借点钱先还你们行吗？",
        "我的手机号是13912345678，你们记一下。",
    ],
)
def test_customer_lines_that_mention_violations_are_not_agent_findings(detector, text):
    assert detector.detect(text, "customer", "debtor") == []
    # The same words from an agent (or an unknown speaker) would be judged.
    assert any(h.suppressed.startswith("speaker") for h in detector.analyse(text, "customer").hits)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("您是担心我们会上门吗？请放心，不会的。", "reported"),
        ("您觉得我们会去您单位吗？不会的。", "question answered no"),
        ("黑名单这个说法是不准确的。", "mention"),
        ("网上有人说逾期会坐牢，这个是假的。", "reported"),
        ("这件事不会影响您孩子上学，您不用担心。", "negation"),
        ("依据法律规定，法院判决后仍不履行的，可能会被列为失信被执行人。", "lawful framing"),
        # Denied after the words, in their clause.
        ("逾期了就要坐牢是不可能的，您别慌。", "negation"),
        ("冻结您的工资卡这种事我们做不到。", "negation"),
        # Someone else's words, disowned in the sentence (or in the answer to a question).
        ("发短信说要冻结您银行卡的不是我们公司的，您别理。", "reported"),
        ("有人说要派人去您家？那不是我们的人，您可以报警。", "reported"),
    ],
)
def test_context_suppresses_with_a_reason(detector, text, reason):
    analysis = detector.analyse(text, "agent", "debtor")
    assert analysis.findings == []
    assert any(h.suppressed and h.suppressed.startswith(reason) for h in analysis.hits)


@pytest.mark.parametrize(
    "text,category",
    [
        ("欠钱不还会被拘留的，你知道吗？", "false_legal_claim"),  # 不 negates 还, not 拘留
        ("欠钱不还就是犯罪。", "false_legal_claim"),  # the claim opens its own predicate
        ("你最好祈祷别让我们找上门。", "threat"),  # 别让我们…: a warning, not a denial
        ("你是想让我们去你孩子学校聊聊吗？", "threat"),  # a threat asked as a question
        ("你要吃牢饭的你知道吗？", "false_legal_claim"),
        # A denial in another clause is about something else.
        ("再拖下去就等着坐牢，想赖账是不可能的。", "false_legal_claim"),
        # Only an answer to a question can disown what the question said.
        ("明天派人去你家。跟我们没关系的事少管。", "threat"),
    ],
)
def test_negation_and_questions_do_not_excuse_a_violation(detector, text, category):
    assert category in categories(detector, text)


def test_words_between_the_slots_change_who_is_told(detector):
    # To a debtor about their spouse: no disclosure; telling a third party their spouse owes: is.
    assert categories(detector, "您丈夫知道这笔借款吗？可以和他一起商量还款计划") == set()
    assert "third_party_disclosure" in categories(detector, "您丈夫在我们这里有一笔贷款逾期未还")


def test_addresses_read_aloud_are_personal_data(detector):
    assert "pii_exposure" in categories(detector, "你家住在朝阳区幸福路18号3单元502，对吧？")
    assert "pii_exposure" not in categories(detector, "您的还款日是每月十五号")


def test_detect_agrees_with_analyse_on_the_dev_set(detector):
    """detect() skips tokenising when nothing matches; it must not change a finding."""
    import json

    from tests.conftest import ROOT

    with open(ROOT / "audit" / "data" / "corpus" / "legacy_dev.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for r in rows:
        args = (r["text"], r["speaker"], r.get("callee_relation", "unknown"))
        assert detector.detect(*args) == detector.analyse(*args).findings, r["id"]
