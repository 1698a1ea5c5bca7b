"""jieba's tokenizer over hashed arrays (audit/tokenizer.py) cuts exactly as jieba does."""

from __future__ import annotations

import io

import jieba
import pytest

from audit.corpus import load_examples
from audit.learned import CORPUS_DIR
from audit.tokenizer import LeanTokenizer, load_frequencies

ADDED = ["逾期", "爆通讯录", "上门催收", "征信黑名单"]  # catalogue-style terms, as detect adds


@pytest.fixture(scope="module")
def tokenizers() -> tuple[jieba.Tokenizer, LeanTokenizer]:
    plain, lean = jieba.Tokenizer(), LeanTokenizer()
    for tok in (plain, lean):
        tok.initialize()
        for word in ADDED:
            tok.add_word(word, freq=2000)
    return plain, lean


def test_every_word_and_prefix_has_jiebas_frequency(tokenizers):
    plain, lean = tokenizers
    assert lean.total == plain.total
    wrong = [k for k, v in plain.FREQ.items() if lean.FREQ.get(k) != v]
    assert wrong == []
    assert len(plain.FREQ) > 400_000  # the whole dictionary was compared


def test_strings_with_the_same_bytes_in_memory_stay_apart(tokenizers):
    # CPython hashes 'BP' (a prefix of BP机) and '偂' (U+5042, a word) alike.
    plain, lean = tokenizers
    assert hash("BP") == hash("偂")
    assert (lean.FREQ["BP"], lean.FREQ["偂"]) == (plain.FREQ["BP"], plain.FREQ["偂"]) == (0, 47)


@pytest.mark.parametrize("fragment", ["债务逾期催", "还款了吗", "xyz", "偂偂"])
def test_a_fragment_that_is_no_word_or_prefix_is_absent(tokenizers, fragment):
    plain, lean = tokenizers
    assert fragment not in plain.FREQ
    assert fragment not in lean.FREQ
    assert lean.FREQ.get(fragment) is None
    with pytest.raises(KeyError):
        lean.FREQ[fragment]


def test_cuts_real_sentences_as_jieba_does(tokenizers):
    plain, lean = tokenizers
    texts = [e.text for e in load_examples(CORPUS_DIR / "live_call.jsonl")]
    texts += ["我们不会去你单位找你", "你是不是想让我们去你老家？", "欠款12,800元，壹万贰仟"]
    for text in texts:
        assert list(lean.tokenize(text, HMM=False)) == list(plain.tokenize(text, HMM=False))
    assert ("爆通讯录", 4, 8) in list(lean.tokenize("再不还就爆通讯录", HMM=False))


def test_load_frequencies_follows_jiebas_rules():
    lines = io.BytesIO("催收 5 n\n催收员 7 n\n催收 9 v\n".encode()).readlines()
    freqs, total = load_frequencies(lines)
    assert total == 5 + 7 + 9  # every line counts, as in jieba
    assert freqs["催收"] == 9  # a word's last line sets its frequency
    assert freqs["催"] == 0  # a prefix that is no word
    assert "收" not in freqs


def test_a_malformed_dictionary_line_is_named():
    with pytest.raises(ValueError, match="line 2"):
        load_frequencies([b"ok 3\n", b"broken\n"])
