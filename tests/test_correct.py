"""The domain corrector: Whisper's same-sounding mishearings back into collection words,
only where the sounds and the context support it, never changing a correct word."""

from __future__ import annotations

import pytest

from audit.corpus import load_examples
from audit.correct import Corrector, domain_terms, get_corrector
from audit.learned import CORPUS_DIR


@pytest.fixture(scope="module")
def corrector() -> Corrector:
    return get_corrector()


@pytest.mark.parametrize(
    ("heard", "meant"),
    [
        ("你这笔欠款已经于七三个月了", "逾期"),  # Whisper's own 于七 (issue 10)
        ("你已经预期九十多天了，今天必须处理", "逾期"),
        ("请你今天之内把钱环上，不要再拖了", "还上"),
    ],
)
def test_restores_the_domain_word(corrector, heard, meant):
    fixed, changes = corrector.correct(heard)
    assert meant in fixed
    assert len(fixed) == len(heard)  # one character for one: offsets stay valid
    assert changes and all(c.corrected in domain_terms()["correct"] for c in changes)
    for c in changes:
        assert heard[c.start : c.end] == c.heard and fixed[c.start : c.end] == c.corrected


@pytest.mark.parametrize(
    "text",
    [
        "这个季度的收入符合预期。",  # a protected real word
        "他在国外居留了两年。",
        "您好，请问是王先生吗？",  # nothing that sounds like a term
        "我们不会去您单位，也不会联系您的家人。",  # terms already right, negated
        "他说“你再不还钱就去坐牢”，这是谣言。",  # quoted: left as said
    ],
)
def test_leaves_correct_text_alone(corrector, text):
    assert corrector.correct(text) == (text, [])


def test_never_invents_a_word_the_sounds_do_not_support(corrector):
    # 见了 (jian le) for 借了 (jie le): a different syllable, so no change even though
    # 借了 would fit the context better.  Detection must cope by other means.
    text = "你女儿在我们平台见了五万块钱"
    fixed, _ = corrector.correct(text)
    assert "借了" not in fixed


def test_false_correction_rate_on_reference_text_is_low(corrector):
    """Every change on human-written text is a false one (its words are right)."""
    import jieba

    rows = [e.text for e in load_examples(CORPUS_DIR / "legacy_holdout.jsonl")]
    changes = sum(len(corrector.correct(t)[1]) for t in rows)
    words = sum(len(jieba.lcut(t)) for t in rows)
    assert changes / words <= 0.01, (changes, words)


def test_the_pipeline_stores_raw_and_corrected_text():
    from audit.pipeline import correct_utterances
    from audit.transcribe import Utterance

    u = Utterance(0, "agent", 0.0, 2.0, "你已经于七三个月了", "你已經於七三個月了", -0.3, 0.01)
    (fixed,) = correct_utterances([u])
    assert fixed.text == "你已经逾期三个月了"
    assert fixed.raw_text == u.raw_text  # what Whisper said stays as evidence


def test_common_words_are_jiebas_frequent_words():
    # The corrector reads them from jieba's file instead of loading a second dictionary.
    import jieba

    from audit.correct import COMMON_WORD_FREQ, _common_words

    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    expected = {w for w, f in tokenizer.FREQ.items() if f >= COMMON_WORD_FREQ}
    assert len(expected) > 5000
    assert _common_words() == expected
