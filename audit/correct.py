"""Domain correction after ASR: same-sounding mishearings back into collection words.

Whisper base hears 逾期 as 预期/鱼漆/于七, 还款 as 环款, 坐牢 as 做劳.  The sounds are
right, the characters are not.  The corrector rewrites a stretch of text into a domain
word (``audit/data/domain_terms.yaml``: ``correct``) only when

1. **the sounds support it**: every syllable of the stretch can be read (toneless, any
   reading of a polyphone) as the word's syllable, allowing only the confusions of
   telephone Mandarin (zh/z, ch/c, sh/s, n/l, -ng/-n) and at most one such fuzzy
   syllable; a word is never invented where its sounds are not;
2. **the context prefers it**: a character trigram language model of collection
   language (the labelled corpus that ships with the package) scores the sentence with
   the word at least ``margin`` nats higher than as heard; and
3. the stretch is not a protected real word (预期收益, 居留) and not already a term.

It returns the corrected text, one character in for one character out (every term has
as many characters as syllables), so offsets into the corrected text are offsets into
the heard text, and the list of changes as evidence.  Whisper's own text stays in
``raw_text``; the pipeline stores the corrected one in ``text`` and detects on it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from audit.phonetic import char_readings, fuzzy_syllable, term_syllables
from audit.pinyin import Style, lazy_pinyin

TERMS_FILE = Path(__file__).resolve().parent / "data" / "domain_terms.yaml"
_HANZI = re.compile(r"[\u3400-\u9fff]")
BOS, EOS = "\x02", "\x03"
# Above this jieba frequency a word is everyday Mandarin: only an exact homophone of a
# domain word may replace it, not a syllable that is merely close.
COMMON_WORD_FREQ = 1000


@dataclass(frozen=True)
class Change:
    start: int
    end: int
    heard: str
    corrected: str
    gain: float  # how much more likely the corrected sentence is (nats)


@lru_cache(maxsize=1)
def domain_terms(path: Path = TERMS_FILE) -> dict[str, tuple[str, ...]]:
    """The lists of the domain-term file: benchmark, correct, protect."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    keys = ("benchmark", "correct", "protect", "cautious")
    return {k: tuple(str(t) for t in doc.get(k) or ()) for k in keys}


@lru_cache(maxsize=65536)
def _primary(ch: str) -> str:
    """A character's usual toneless reading."""
    return lazy_pinyin(ch, style=Style.NORMAL, errors="default")[0]


@lru_cache(maxsize=1)
def _common_words() -> frozenset[str]:
    """The words of jieba's general dictionary at or above ``COMMON_WORD_FREQ``.

    Read from its dictionary file rather than through ``jieba.dt``: that would load a
    second full dictionary (~65 MB) beside the detector's own tokenizer, for a
    lookup these ~7,000 words answer (a later line of the file overrides an earlier
    one, as in jieba).
    """
    import jieba

    common: set[str] = set()
    with jieba.get_dict_file() as lines:
        for raw in lines:
            word, freq = raw.decode("utf-8").split(" ")[:2]
            if int(freq) >= COMMON_WORD_FREQ:
                common.add(word)
            else:
                common.discard(word)
    return frozenset(common)


def _common_word(word: str) -> bool:
    """A frequent word of general Mandarin (jieba's dictionary): 分析, 接受, 税收."""
    return word in _common_words()


def _near(heard: str, meant: str) -> bool:
    """Same initial and another final, or same final and another initial."""
    hi, mi = _initial(heard), _initial(meant)
    if hi == mi:
        # Two vowel-initial syllables are near only with the same glide (yi/yu, wa/wo).
        return bool(hi) or heard[:1] == meant[:1]
    return heard[len(hi) :] == meant[len(mi) :]


def _initial(syllable: str) -> str:
    """The consonant a syllable starts with ('' for a vowel-initial one)."""
    if syllable[:2] in ("zh", "ch", "sh"):
        return syllable[:2]
    return syllable[0] if syllable and syllable[0] not in "aeiouvyw" else ""


class CharLM:
    """Character trigram model, interpolated with absolute discounting (Kneser-Ney-like
    enough for ranking two versions of one sentence)."""

    def __init__(self, texts: Iterable[str], discount: float = 0.75):
        self.d = discount
        self.uni: Counter[str] = Counter()
        self.bi: Counter[tuple[str, str]] = Counter()
        self.tri: Counter[tuple[str, str, str]] = Counter()
        self.ctx1: Counter[str] = Counter()
        self.ctx2: Counter[tuple[str, str]] = Counter()
        self.types1: Counter[str] = Counter()
        self.types2: Counter[tuple[str, str]] = Counter()
        for text in texts:
            for chunk in _chunks(text):
                s = BOS + BOS + chunk + EOS
                for i in range(2, len(s)):
                    a, b, c = s[i - 2], s[i - 1], s[i]
                    self.uni[c] += 1
                    if self.bi[(b, c)] == 0:
                        self.types1[b] += 1
                    self.bi[(b, c)] += 1
                    self.ctx1[b] += 1
                    if self.tri[(a, b, c)] == 0:
                        self.types2[(a, b)] += 1
                    self.tri[(a, b, c)] += 1
                    self.ctx2[(a, b)] += 1
        self.total = sum(self.uni.values()) or 1
        self.vocab = len(self.uni) + 1

    def prob(self, a: str, b: str, c: str) -> float:
        p = (self.uni[c] + 0.1) / (self.total + 0.1 * self.vocab * 50)
        n1 = self.ctx1[b]
        if n1:
            p = max(self.bi[(b, c)] - self.d, 0) / n1 + self.d * self.types1[b] / n1 * p
        n2 = self.ctx2[(a, b)]
        if n2:
            p = max(self.tri[(a, b, c)] - self.d, 0) / n2 + self.d * self.types2[(a, b)] / n2 * p
        return p

    def logprob(self, text: str) -> float:
        s = BOS + BOS + text + EOS
        return sum(math.log(self.prob(s[i - 2], s[i - 1], s[i])) for i in range(2, len(s)))


def _chunks(text: str) -> list[str]:
    """Runs of Chinese characters (punctuation and Latin text are boundaries)."""
    return [m.group(0) for m in re.finditer(r"[\u3400-\u9fff]+", text)]


@dataclass(frozen=True)
class _Term:
    text: str
    exact: tuple[str, ...]
    fuzzy: tuple[str, ...]


class Corrector:
    def __init__(
        self,
        terms: Sequence[str],
        lm_texts: Iterable[str],
        protect: Sequence[str] = (),
        margin: float = 2.0,
        context: int = 4,
        near_margin: float = 2.0,
        cautious: Sequence[str] = (),
        cautious_margin: float = 2.0,
    ):
        self.margin = margin
        self.near_margin = near_margin
        # Words that make a finding on their own (坐牢, 上门): writing one that was not
        # said accuses an agent, so the context must want it more.
        self.cautious = frozenset(cautious)
        self.cautious_margin = cautious_margin
        self.context = context
        self.protect = tuple(protect)
        lm_texts = list(lm_texts)
        self.lm = CharLM(lm_texts)
        digest = hashlib.sha256(
            json.dumps(
                [
                    sorted(terms),
                    sorted(protect),
                    margin,
                    near_margin,
                    context,
                    sorted(cautious),
                    cautious_margin,
                    lm_texts,
                ]
            ).encode()
        ).hexdigest()[:10]
        self.version = f"corr-{digest}"
        self.terms: list[_Term] = []
        for t in terms:
            syllables = term_syllables(t)
            if len(t) < 2 or len(syllables) != len(t) or not all(_HANZI.match(c) for c in t):
                continue
            self.terms.append(_Term(t, syllables, tuple(fuzzy_syllable(s) for s in syllables)))
        self.term_texts = frozenset(t.text for t in self.terms)

    def _closeness(self, window: str, term: _Term) -> int | None:
        """How far ``window`` sounds from ``term``: 0 the same syllables (toneless, any
        reading of a polyphone), 1 one telephone confusion (zh/z, ch/c, sh/s, n/l, -ng/-n),
        2 one syllable that keeps its initial or its final (一期 for 逾期, 限款 for 欠款,
        起复 for 起诉); None when further (two or more syllables off, or one further off)."""
        off = 0
        rare = False  # a syllable matched only by a polyphone's rare reading (体 as ben)
        for ch, exact, fuzzy in zip(window, term.exact, term.fuzzy, strict=True):
            readings = char_readings(ch)
            if exact in readings:
                rare = rare or _primary(ch) != exact
                continue
            if off:
                return None
            if fuzzy in {fuzzy_syllable(r) for r in readings}:
                off = 1
            elif _near(_primary(ch), exact):  # a polyphone's rare reading is no evidence
                off = 2
            else:
                return None
        if off == 2 and (rare or _common_word(window)):
            return None  # 分析 is a word people say, not a mishearing of 分期
        return off

    def _protected(self, text: str, start: int, end: int) -> bool:
        for word in self.protect:
            i = text.find(word, max(0, start - len(word) + 1))
            while i != -1 and i < end:
                if i < end and i + len(word) > start:
                    return True
                i = text.find(word, i + 1)
        # Part of a term already there (e.g. the 款 of 还款): not a mishearing.
        for term in self.term_texts:
            i = text.find(term, max(0, start - len(term) + 1))
            if i != -1 and i < end and i + len(term) > start:
                return True
        return False

    def candidates(self, text: str) -> list[tuple[int, _Term, int]]:
        out = []
        for i, ch in enumerate(text):
            if not _HANZI.match(ch):
                continue
            for term in self.terms:
                window = text[i : i + len(term.text)]
                if (
                    len(window) == len(term.text)
                    and window != term.text
                    and all(_HANZI.match(c) for c in window)
                ):
                    off = self._closeness(window, term)
                    if off is not None:
                        out.append((i, term, off))
        return out

    def correct(self, text: str) -> tuple[str, list[Change]]:
        changes: list[Change] = []
        current = text
        # Longer words first: 最低还款 before 还款; one change per stretch.
        for i, term, off in sorted(
            self.candidates(text), key=lambda c: (-len(c[1].text), c[2], c[0])
        ):
            end = i + len(term.text)
            if any(c.start < end and i < c.end for c in changes):
                continue
            if self._protected(current, i, end):
                continue
            lo, hi = max(0, i - self.context), min(len(current), end + self.context)
            before = current[lo:hi]
            after = current[lo:i] + term.text + current[end:hi]
            gain = self.lm.logprob(after) - self.lm.logprob(before)
            # The further the sound, the more the context must want the word.
            needed = self.margin + (self.near_margin if off == 2 else 0.0)
            if term.text in self.cautious:
                needed += self.cautious_margin
            if gain >= needed:
                changes.append(Change(i, end, current[i:end], term.text, round(gain, 2)))
                current = current[:i] + term.text + current[end:]
        return current, sorted(changes, key=lambda c: c.start)


@lru_cache(maxsize=1)
def get_corrector() -> Corrector:
    """The corrector over the shipped term list and corpus (built once per process)."""
    from audit.corpus import load_examples
    from audit.learned import CORPUS_DIR

    terms = domain_terms()
    # Written text only: Whisper's transcripts in the corpus would teach it the mishearings.
    texts = [
        e.text
        for p in sorted(CORPUS_DIR.glob("*.jsonl"))
        for e in load_examples(p)
        if e.source_text is None
    ]
    return Corrector(terms["correct"], texts, protect=terms["protect"], cautious=terms["cautious"])
