"""The detector: rule catalogue × utterance text → findings, with reasons for what it suppressed.

Matching is term lookup on the canonical text (plus pinyin for terms marked ``~``),
then context checks driven by jieba tokens: negation scope, lawful framing
(``unless``), quotation, questions, the speaker's role and the callee's relation.
Everything the detector decides is kept on the ``Hit`` so ``callaudit explain`` can
show why a match was or wasn't reported.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import jieba

from audit import phonetic, pii
from audit.normalize import canonical_aligned
from audit.rules import CallRule, Catalogue, Pattern, Rule, Term, load_catalogue

jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter is not audit output

_SENTENCE_END = re.compile(r"[。！？!?\n]|\.(?!\d)")
_CLAUSE_END = re.compile(r"[，,、；;：:\s…—]")
_QUOTES = {"“": "”", "「": "」", "『": "』", '"': '"', "‘": "’"}
NEGATION_WINDOW_TOKENS = 6
# A pronoun after these is an object (把你的照片…), not the subject of a new predicate.
_OBJECT_MARKERS = frozenset("把 将 给 对 让 跟 和 向 找 告诉 联系 帮 替 被".split())
_PRONOUNS = frozenset("我 你 他 她 我们 你们 他们 她们 您".split())


@dataclass(frozen=True)
class Occurrence:
    start: int
    end: int
    term: str
    via: str  # text | pinyin


@dataclass(frozen=True)
class Hit:
    rule_id: str
    category: str
    severity: str
    citation: str
    title: str
    start: int
    end: int
    match: str
    via: str = "text"
    suppressed: str | None = None  # reason, when the match is not a finding

    def as_contract(self) -> dict[str, object]:
        """The stable JSON shape of ``callaudit detect``."""
        return {
            "rule_id": self.rule_id,
            "category": self.category,
            "severity": self.severity,
            "start": self.start,
            "end": self.end,
            "match": self.match,
        }


@dataclass
class Analysis:
    text: str
    canonical: str
    tokens: list[tuple[str, int, int]]
    hits: list[Hit] = field(default_factory=list)

    @property
    def findings(self) -> list[Hit]:
        return [h for h in self.hits if h.suppressed is None]

    @property
    def suppressed(self) -> list[Hit]:
        return [h for h in self.hits if h.suppressed is not None]


@dataclass(frozen=True)
class UtteranceIn:
    """What call-level detection needs from an utterance."""

    idx: int
    speaker: str
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class CallHit:
    rule_id: str
    category: str
    severity: str
    citation: str
    title: str
    utterance_idx: int | None
    start_s: float
    end_s: float
    speaker: str
    text: str
    match: str


class _TextIndex:
    """Per-text lookups shared by all rules: windows, tokens, term occurrences."""

    def __init__(self, detector: Detector, text: str):
        self.detector = detector
        self.text = text
        self.canonical = canonical_aligned(text)
        self.clause_id = _segment_ids(self.canonical, clause=True)
        self.sentence_id = _segment_ids(self.canonical, clause=False)
        self.tokens = [
            (w, s, e) for w, s, e in detector.tokenizer.tokenize(self.canonical, HMM=False)
        ]
        self.in_quote = _quote_mask(self.canonical)
        self._occ: dict[Term, list[Occurrence]] = {}
        self._pinyin: tuple[list[frozenset[str]], dict[str, list[int]]] | None = None

    def window_id(self, window: str, pos: int) -> int:
        if window == "utterance":
            return 0
        ids = self.clause_id if window == "clause" else self.sentence_id
        return ids[min(pos, len(ids) - 1)] if ids else 0

    def occurrences(self, term: Term) -> list[Occurrence]:
        cached = self._occ.get(term)
        if cached is not None:
            return cached
        found: list[Occurrence] = []
        t = term.text
        i = self.canonical.find(t)
        while i != -1:
            found.append(Occurrence(i, i + len(t), t, "text"))
            i = self.canonical.find(t, i + 1)
        if term.pinyin and len(t) >= 2:
            if self._pinyin is None:
                self._pinyin = phonetic.index_text(self.canonical)
            exact = {o.start for o in found}
            for start in phonetic.find_homophones(t, *self._pinyin):
                if start not in exact:
                    found.append(Occurrence(start, start + len(t), t, "pinyin"))
            found.sort(key=lambda o: o.start)
        self._occ[term] = found
        return found

    def slot_occurrences(self, slot: Sequence[Term]) -> list[Occurrence]:
        occ: list[Occurrence] = []
        for term in slot:
            occ.extend(self.occurrences(term))
        occ.sort(key=lambda o: (o.start, -(o.end - o.start)))
        return occ

    def sentence_text(self, pos: int) -> str:
        sid = self.window_id("sentence", pos)
        return "".join(
            ch for ch, s in zip(self.canonical, self.sentence_id, strict=True) if s == sid
        )


def _breaks_scope(words: list[str], j: int, breakers: frozenset[str]) -> bool:
    """Does token j start a new predicate, ending a negation's reach?"""
    word = words[j]
    if word not in breakers:
        return False
    if word in _PRONOUNS:
        prev_obj = j > 0 and words[j - 1] in _OBJECT_MARKERS
        possessive = j + 1 < len(words) and words[j + 1] == "的"
        return not (prev_obj or possessive)
    return True


def _is_a_not_a(text: str, cue_start: int) -> bool:
    """会不会 / 是不是 / 有没有: the 不/没 of a yes-no question is not a negation."""
    return (
        0 < cue_start < len(text) - 1
        and text[cue_start] in "不没"
        and text[cue_start - 1] == text[cue_start + 1]
    )


def _segment_ids(text: str, clause: bool) -> list[int]:
    ids, current = [], 0
    for ch in text:
        ids.append(current)
        if _SENTENCE_END.match(ch) or (clause and _CLAUSE_END.match(ch)):
            current += 1
    return ids


def _quote_mask(text: str) -> list[bool]:
    mask = [False] * len(text)
    closing: str | None = None
    opened_at = 0
    for i, ch in enumerate(text):
        if closing is None and ch in _QUOTES:
            closing, opened_at = _QUOTES[ch], i
        elif closing is not None and ch == closing:
            for j in range(opened_at, i + 1):
                mask[j] = True
            closing = None
    return mask


@lru_cache(maxsize=4)
def _tokenizer_for(terms: frozenset[str]) -> jieba.Tokenizer:
    tok = jieba.Tokenizer()
    tok.tmp_dir = tempfile.gettempdir()
    # Catalogue terms become dictionary words so tokens align with what rules look for.
    for term in sorted(terms):
        if len(term) >= 2:
            tok.add_word(term, freq=2000)
    return tok


class Detector:
    """Applies one catalogue.  Build once per process; ``analyse`` is thread-safe."""

    def __init__(self, catalogue: Catalogue | None = None):
        self.catalogue = catalogue or load_catalogue("cn")
        vocabulary = set(self.catalogue.all_terms) | set(self.catalogue.negation_cues)
        vocabulary |= set(self.catalogue.scope_breakers)
        self.tokenizer = _tokenizer_for(frozenset(vocabulary))

    # -- utterance level -------------------------------------------------------------
    def analyse(self, text: str, speaker: str = "unknown", callee: str = "unknown") -> Analysis:
        idx = _TextIndex(self, text)
        analysis = Analysis(text=text, canonical=idx.canonical, tokens=idx.tokens)
        if not text.strip():
            return analysis
        for rule in self.catalogue.rules:
            analysis.hits.extend(self._rule_hits(rule, idx, speaker, callee))
        return analysis

    def detect(self, text: str, speaker: str = "unknown", callee: str = "unknown") -> list[Hit]:
        return self.analyse(text, speaker, callee).findings

    def _rule_hits(self, rule: Rule, idx: _TextIndex, speaker: str, callee: str) -> list[Hit]:
        spans: list[tuple[int, int, str, list[Occurrence]]] = []
        for pattern in rule.patterns:
            spans.extend(_pattern_spans(pattern, idx))
        hits: list[Hit] = []
        taken: list[tuple[int, int]] = []
        for start, end, via, parts in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
            if any(start < e and s < end for s, e in taken):
                continue  # one finding per place per rule
            taken.append((start, end))
            reason = self._suppression(rule, idx, start, end, parts, speaker, callee)
            hits.append(
                Hit(
                    rule_id=rule.id,
                    category=rule.category,
                    severity=rule.severity,
                    citation=rule.citation,
                    title=rule.title,
                    start=start,
                    end=end,
                    match=idx.text[start:end],
                    via=via,
                    suppressed=reason,
                )
            )
        return hits

    def _suppression(
        self,
        rule: Rule,
        idx: _TextIndex,
        start: int,
        end: int,
        parts: list[Occurrence],
        speaker: str,
        callee: str,
    ) -> str | None:
        if speaker not in rule.speakers:
            return f"speaker: rule applies to {'/'.join(sorted(rule.speakers))}, not {speaker}"
        if rule.callee == "third_party" and callee != "third_party":
            return "callee: rule applies only to calls with a third party"
        if rule.suppress_in_quote and all(idx.in_quote[start:end]):
            return "quote: the words are quoted, not said"
        if rule.unless:
            sentence = idx.sentence_text(start)
            for term in rule.unless:
                if term.text in sentence:
                    return f"lawful framing: {term.text}"
        if rule.negatable:
            cue = self._negation_cue(idx, start, end, parts)
            if cue:
                return f"negation: {cue}"
        if rule.suppress_in_question and self._is_question(idx, start):
            return "question: asked, not asserted"
        return None

    def _negation_cue(
        self, idx: _TextIndex, start: int, end: int, parts: list[Occurrence]
    ) -> str | None:
        cues = self.catalogue.negation_cues
        breakers = self.catalogue.scope_breakers
        clause = idx.window_id("clause", start)
        before = [
            t
            for t in idx.tokens
            if t[2] <= start and idx.window_id("clause", t[1]) == clause and t[0].strip()
        ][-NEGATION_WINDOW_TOKENS:]
        words = [w for w, _, _ in before]
        for i, (word, s, _e) in enumerate(before):
            if (
                word in cues
                and not _is_a_not_a(idx.canonical, s)
                and not any(_breaks_scope(words, j, breakers) for j in range(i + 1, len(words)))
            ):
                return word
        # A cue between the parts of a multi-slot match (我们…不会…上门).
        covered = [(o.start, o.end) for o in parts]
        for word, s, e in idx.tokens:
            if start <= s and e <= end and word in cues and not _is_a_not_a(idx.canonical, s):
                if not any(cs <= s and e <= ce for cs, ce in covered):
                    return word
        return None

    def _is_question(self, idx: _TextIndex, pos: int) -> bool:
        sentence = idx.sentence_text(pos)
        sid = idx.window_id("sentence", pos)
        end_positions = [i for i, s in enumerate(idx.sentence_id) if s == sid]
        last = idx.canonical[end_positions[-1]] if end_positions else ""
        return last in "？?" or any(m in sentence for m in self.catalogue.question_markers)

    # -- call level -----------------------------------------------------------------
    def detect_call(self, utterances: Sequence[UtteranceIn]) -> list[CallHit]:
        hits: list[CallHit] = []
        for rule in self.catalogue.call_rules:
            hit = self._call_rule(rule, utterances)
            if hit:
                hits.append(hit)
        return hits

    def _call_rule(self, rule: CallRule, utterances: Sequence[UtteranceIn]) -> CallHit | None:
        if rule.kind != "required_opening":
            raise ValueError(f"unknown call rule kind {rule.kind!r} in {rule.id}")
        opening = [
            u
            for u in sorted(utterances, key=lambda u: u.start_s)
            if u.speaker in rule.speakers and u.text.strip()
        ]
        if not opening:
            return None  # nobody in that role spoke: nothing to judge
        window = [u for u in opening if u.start_s <= rule.within_s][: rule.within_utterances]
        for u in window:
            idx = _TextIndex(self, u.text)
            for pattern in rule.patterns:
                for start, end, _via, parts in _pattern_spans(pattern, idx):
                    if self._negation_cue(idx, start, end, parts) is None:
                        return None
        first = opening[0]
        return CallHit(
            rule_id=rule.id,
            category=rule.category,
            severity=rule.severity,
            citation=rule.citation,
            title=rule.title,
            utterance_idx=first.idx,
            start_s=first.start_s,
            end_s=window[-1].end_s if window else first.end_s,
            speaker=first.speaker,
            text=first.text,
            match="",
        )


def _pattern_spans(
    pattern: Pattern, idx: _TextIndex
) -> Iterable[tuple[int, int, str, list[Occurrence]]]:
    if pattern.regex is not None:
        for m in pattern.regex.finditer(idx.canonical):
            if m.end() > m.start():
                occ = Occurrence(m.start(), m.end(), m.group(0), "regex")
                yield m.start(), m.end(), "regex", [occ]
        return
    if pattern.entity is not None:
        for s, e, _digits in pii.find_entities(idx.canonical, pattern.entity):
            yield s, e, "validator", [Occurrence(s, e, pattern.entity, "validator")]
        return
    slots = [idx.slot_occurrences(slot) for slot in pattern.slots]
    if any(not s for s in slots):
        return
    for first in slots[0]:
        parts = [first]
        window = idx.window_id(pattern.window, first.start)
        ok = True
        for slot in slots[1:]:
            prev_end = parts[-1].end
            nxt = next(
                (
                    o
                    for o in slot
                    if o.start >= prev_end
                    and o.start - prev_end <= pattern.max_gap
                    and idx.window_id(pattern.window, o.start) == window
                ),
                None,
            )
            if nxt is None:
                ok = False
                break
            parts.append(nxt)
        if ok:
            via = "pinyin" if any(p.via == "pinyin" for p in parts) else "text"
            yield parts[0].start, parts[-1].end, via, parts
