"""The detector: rule catalogue × utterance text → findings, with reasons for what it suppressed.

Matching is term lookup on the canonical text (plus pinyin for terms marked ``~``),
then context checks driven by jieba tokens: the speaker's role and the callee's
relation, quotation and reported speech (听说, 所谓, 这个说法), lawful framing
(``unless``), negation scope, a question answered no at once, and questions where a
rule says so.  Everything the detector decides is kept on the ``Hit`` so
``callaudit explain`` can show why a match was or wasn't reported.

Speed: a catalogue is compiled once (first-character and first-syllable indexes, term
-> pattern slots), so a text is scanned once and only patterns with every slot filled
are matched; tokens, windows and quotes are computed only when a match needs them.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from audit import phonetic, pii
from audit.normalize import canonical_aligned
from audit.rules import CallRule, Catalogue, Pattern, Rule, Term, load_catalogue
from audit.tokenizer import LeanTokenizer

if TYPE_CHECKING:
    from audit.learned import LearnedHit


_SENTENCE_END = re.compile(r"[。！？!?\n]|\.(?!\d)")
_CLAUSE_END = re.compile(r"[，,、；;：:\s…—]")
_CLAUSE_OR_SENTENCE_END = re.compile(f"{_SENTENCE_END.pattern}|{_CLAUSE_END.pattern}")
_QUOTES = {"“": "”", "「": "」", "『": "』", '"': '"', "‘": "’"}
NEGATION_WINDOW_TOKENS = 6
MENTION_WINDOW_CHARS = 8  # how far after a word 这个说法 may follow it
# A pronoun after these is an object (把你的照片…), not the subject of a new predicate.
_OBJECT_MARKERS = frozenset("把 将 给 对 让 跟 和 向 找 告诉 联系 帮 替 被".split())
_PRONOUNS = frozenset("我 你 他 她 我们 你们 他们 她们 您".split())
_WARNING_CUES = frozenset("别 不要 千万别 可别 最好别".split())
_CAUSATIVES = frozenset("让 逼 叫 等 害".split())
# Suppression reasons that say what the words mean, not whom a rule applies to.
_MEANING_REASONS = ("quote", "reported", "mention", "lawful framing", "negation", "question")


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
    score: float | None = None  # learned stage: the classifier's score

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


class _Compiled:
    """What a catalogue needs per text, prepared once per detector.

    Looking every term up in every text was most of the detector's cost; instead a
    text is scanned once for the first characters (and first pinyin syllables) of
    terms, and only patterns whose every slot has an occurrence are matched.
    """

    def __init__(self, catalogue: Catalogue):
        texts: set[str] = set()
        pinyin_terms: set[str] = set()
        for rule in (*catalogue.rules, *catalogue.call_rules):
            for pattern in rule.patterns:
                for slot in pattern.slots:
                    for term in slot:
                        texts.add(term.text)
                        if term.pinyin and len(term.text) >= 2:
                            pinyin_terms.add(term.text)
        by_first: dict[str, list[str]] = {}
        for t in sorted(texts):
            if t:
                by_first.setdefault(t[0], []).append(t)
        self.by_first_char = {ch: tuple(ts) for ch, ts in by_first.items()}
        by_syllable: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for t in sorted(pinyin_terms):
            syllables = phonetic.term_syllables(t)
            if len(syllables) == len(t):  # else pinyin alignment would be wrong
                by_syllable.setdefault(syllables[0], []).append((t, syllables))
        self.by_first_syllable = {s: tuple(v) for s, v in by_syllable.items()}
        # Per slot: which literal / pinyin-matched term texts make it non-empty.
        self.slot_keys: dict[int, tuple[tuple[frozenset[str], frozenset[str]], ...]] = {}
        # Inverted: term text -> the (pattern, slot) places it fills, so a text's found
        # terms name the few patterns worth matching (every slot filled), not all of them.
        self.places_literal: dict[str, list[tuple[int, int]]] = {}
        self.places_pinyin: dict[str, list[tuple[int, int]]] = {}
        self.n_slots: dict[int, int] = {}
        self.always: set[int] = set()  # regex and entity patterns: no terms to index
        for rule in (*catalogue.rules, *catalogue.call_rules):
            for pattern in rule.patterns:
                key = id(pattern)
                if not pattern.slots:
                    self.always.add(key)
                    continue
                self.n_slots[key] = len(pattern.slots)
                self.slot_keys[key] = tuple(
                    (
                        frozenset(t.text for t in slot),
                        frozenset(t.text for t in slot if t.pinyin and len(t.text) >= 2),
                    )
                    for slot in pattern.slots
                )
                for i, (literal, by_sound) in enumerate(self.slot_keys[key]):
                    for t in literal:
                        self.places_literal.setdefault(t, []).append((key, i))
                    for t in by_sound:
                        self.places_pinyin.setdefault(t, []).append((key, i))


class _TextIndex:
    """Per-text lookups shared by all rules: windows, tokens, term occurrences.

    Everything but the term scan is computed on first use: most utterances match no
    pattern, and then neither tokens nor windows are needed.
    """

    def __init__(self, detector: Detector, text: str):
        self.detector = detector
        self.text = text
        self.canonical = canonical_aligned(text)
        compiled = detector.compiled
        canonical = self.canonical
        literal: dict[str, list[int]] = {}
        for ch in set(canonical):
            for t in compiled.by_first_char.get(ch, ()):
                i = canonical.find(t)
                if i == -1:
                    continue
                starts = []
                while i != -1:
                    starts.append(i)
                    i = canonical.find(t, i + 1)
                literal[t] = starts
        self.literal = literal
        self.homophone = self._scan_pinyin(compiled) if compiled.by_first_syllable else {}
        self._occ: dict[Term, list[Occurrence]] = {}
        self._slot_occ: dict[int, list[Occurrence]] = {}  # slots live as long as the catalogue
        self._tokens: list[tuple[str, int, int]] | None = None
        self._token_clauses: list[int] | None = None
        self._clause_ends: list[int] | None = None
        self._sentence_ends: list[int] | None = None
        self._in_quote: list[bool] | None = None
        self._digit_runs: list[tuple[int, int, str]] | None = None

    def _scan_pinyin(self, compiled: _Compiled) -> dict[str, list[int]]:
        """Start positions where a pinyin term reads alike but is not literally there."""
        canonical = self.canonical
        readings = [phonetic.char_readings(ch) for ch in canonical]
        n = len(readings)
        found: dict[str, list[int]] = {}
        by_first = compiled.by_first_syllable
        for start, rs in enumerate(readings):
            for r in rs:
                for t, syllables in by_first.get(r, ()):
                    k = len(syllables)
                    if start + k > n or canonical.startswith(t, start):
                        continue
                    if all(syllables[j] in readings[start + j] for j in range(1, k)):
                        found.setdefault(t, []).append(start)
        return found

    # -- lazily built views ------------------------------------------------------------
    @property
    def tokens(self) -> list[tuple[str, int, int]]:
        if self._tokens is None:
            self._tokens = list(self.detector.tokenizer.tokenize(self.canonical, HMM=False))
        return self._tokens

    @property
    def in_quote(self) -> list[bool]:
        if self._in_quote is None:
            self._in_quote = _quote_mask(self.canonical)
        return self._in_quote

    @property
    def digit_runs(self) -> list[tuple[int, int, str]]:
        if self._digit_runs is None:
            self._digit_runs = pii.digit_runs(self.canonical)
        return self._digit_runs

    def _ends(self, window: str) -> list[int]:
        if window == "clause":
            if self._clause_ends is None:
                self._clause_ends = [
                    m.start() for m in _CLAUSE_OR_SENTENCE_END.finditer(self.canonical)
                ]
            return self._clause_ends
        if self._sentence_ends is None:
            self._sentence_ends = [m.start() for m in _SENTENCE_END.finditer(self.canonical)]
        return self._sentence_ends

    def window_id(self, window: str, pos: int) -> int:
        """Number of window ends before pos: equal ids = same clause / sentence."""
        if window == "utterance" or not self.canonical:
            return 0
        return bisect_left(self._ends(window), min(pos, len(self.canonical) - 1))

    def token_clause(self, i: int) -> int:
        if self._token_clauses is None:
            self._token_clauses = [self.window_id("clause", s) for _w, s, _e in self.tokens]
        return self._token_clauses[i]

    # -- term occurrences --------------------------------------------------------------
    def candidate_patterns(self) -> set[int]:
        """Keys of the term patterns whose every slot has an occurrence in this text."""
        compiled = self.detector.compiled
        filled: dict[int, set[int]] = {}
        for t in self.literal:
            for key, slot in compiled.places_literal.get(t, ()):
                filled.setdefault(key, set()).add(slot)
        for t in self.homophone:
            for key, slot in compiled.places_pinyin.get(t, ()):
                filled.setdefault(key, set()).add(slot)
        return {key for key, slots in filled.items() if len(slots) == compiled.n_slots[key]}

    def has_slot(self, keys: tuple[frozenset[str], frozenset[str]]) -> bool:
        literal_keys, pinyin_keys = keys
        return not literal_keys.isdisjoint(self.literal) or (
            bool(pinyin_keys) and not pinyin_keys.isdisjoint(self.homophone)
        )

    def occurrences(self, term: Term) -> list[Occurrence]:
        cached = self._occ.get(term)
        if cached is not None:
            return cached
        t = term.text
        found = [Occurrence(i, i + len(t), t, "text") for i in self.literal.get(t, ())]
        if term.pinyin and len(t) >= 2 and t in self.homophone:
            found += [Occurrence(i, i + len(t), t, "pinyin") for i in self.homophone[t]]
            found.sort(key=lambda o: o.start)
        self._occ[term] = found
        return found

    def slot_occurrences(self, slot: Sequence[Term]) -> list[Occurrence]:
        cached = self._slot_occ.get(id(slot))
        if cached is not None:
            return cached
        literal, homophone = self.literal, self.homophone
        occ: list[Occurrence] = []
        for term in slot:
            # Most of a slot's terms are absent from a given text: skip them cheaply.
            if term.text in literal or (term.pinyin and term.text in homophone):
                occ.extend(self.occurrences(term))
        occ.sort(key=lambda o: (o.start, -(o.end - o.start)))
        self._slot_occ[id(slot)] = occ
        return occ

    def clause_prefix(self, pos: int) -> str:
        """The text of pos's clause up to pos."""
        cid = self.window_id("clause", pos)
        ends = self._ends("clause")
        begin = ends[cid - 1] + 1 if cid > 0 else 0
        return self.canonical[begin:pos]

    def clause_rest(self, pos: int) -> str:
        """The text of the clause that pos ends in (or is inside), from pos on."""
        if not self.canonical or pos >= len(self.canonical):
            return ""
        cid = self.window_id("clause", pos)
        ends = self._ends("clause")
        stop = ends[cid] if cid < len(ends) else len(self.canonical)
        return self.canonical[pos:stop]

    def sentence_bounds(self, pos: int) -> tuple[int, int]:
        """[begin, stop) of pos's sentence, its closing punctuation included."""
        sid = self.window_id("sentence", pos)
        ends = self._ends("sentence")
        begin = ends[sid - 1] + 1 if sid > 0 else 0
        stop = ends[sid] + 1 if sid < len(ends) else len(self.canonical)
        return begin, stop

    def sentence_text(self, pos: int) -> str:
        begin, stop = self.sentence_bounds(pos)
        return self.canonical[begin:stop]


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
def _tokenizer_for(terms: frozenset[str]) -> LeanTokenizer:
    tok = LeanTokenizer()  # jieba's, in an eighth of the memory (audit/tokenizer.py)
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
        vocabulary |= set(self.catalogue.scope_breakers) | set(self.catalogue.report_cues)
        self.tokenizer = _tokenizer_for(frozenset(vocabulary))
        self.compiled = _Compiled(self.catalogue)

    # -- utterance level -------------------------------------------------------------
    def _hits(self, idx: _TextIndex, speaker: str, callee: str) -> list[Hit]:
        hits: list[Hit] = []
        if not idx.text.strip():
            return hits
        live = idx.candidate_patterns() | self.compiled.always
        for rule in self.catalogue.rules:
            patterns = [p for p in rule.patterns if id(p) in live]
            if patterns:
                hits.extend(self._rule_hits(rule, patterns, idx, speaker, callee))
        return hits

    def analyse(self, text: str, speaker: str = "unknown", callee: str = "unknown") -> Analysis:
        """Every match, reported or suppressed (with why), and the tokens: for ``explain``."""
        idx = _TextIndex(self, text)
        hits = self._hits(idx, speaker, callee)
        return Analysis(text=text, canonical=idx.canonical, tokens=idx.tokens, hits=hits)

    def detect(self, text: str, speaker: str = "unknown", callee: str = "unknown") -> list[Hit]:
        """The findings only; tokenises the text only when a match needs its context."""
        idx = _TextIndex(self, text)
        return [h for h in self._hits(idx, speaker, callee) if h.suppressed is None]

    def detect_with(
        self,
        text: str,
        learned: Sequence[LearnedHit],
        speaker: str = "unknown",
        callee: str = "unknown",
    ) -> list[Hit]:
        """The rules' findings plus the learned stage's, for categories the rules did not
        find.  A learned hit is dropped where a rule of its category matched inside its
        span and was suppressed for a reason about meaning (negated, quoted, reported,
        lawful framing, a denied question): 我们不会去你单位 is not a threat whatever a
        classifier of word n-grams thinks.  A learned span that disowns its words as
        someone else's (the catalogue's ``disowning``: 他们说的话不代表我们) is no finding
        either, whatever its category, as no rule's would be."""
        idx = _TextIndex(self, text)
        hits = self._hits(idx, speaker, callee)
        findings = [h for h in hits if h.suppressed is None]
        found = {h.category for h in findings}
        vetoes = [h for h in hits if h.suppressed and h.suppressed.startswith(_MEANING_REASONS)]
        out = list(findings)
        for lh in learned:
            if lh.category in found:
                continue
            if any(v.category == lh.category and lh.start <= v.start < lh.end for v in vetoes):
                continue
            span = idx.canonical[lh.start : lh.end]  # aligned with text, character for character
            if any(marker in span for marker in self.catalogue.disowning):
                continue
            out.append(learned_hit(self.catalogue, lh, text))
        return out

    def _rule_hits(
        self,
        rule: Rule,
        patterns: Sequence[Pattern],
        idx: _TextIndex,
        speaker: str,
        callee: str,
    ) -> list[Hit]:
        spans: list[tuple[int, int, str, list[Occurrence]]] = []
        for pattern in patterns:
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
        if rule.suppress_in_quote:
            if all(idx.in_quote[start:end]):
                return "quote: the words are quoted, not said"
            # Reported or feared, not asserted: 您是担心我们会上门吗, 有人说会坐牢, 所谓黑名单.
            prefix = idx.clause_prefix(start)
            for cue in self.catalogue.report_cues:
                if cue in prefix:
                    return f"reported: {cue}"
            # 黑名单这个说法是不准确的: the word is mentioned, not used.
            begin, stop = idx.sentence_bounds(start)
            after = idx.canonical[end : min(stop, end + MENTION_WINDOW_CHARS)]
            for marker in self.catalogue.mention_markers:
                if marker in after:
                    return f"mention: {marker}"
            # 那不是我们的人, 他们说要去您单位的话不代表我们: someone else's words, disowned.
            sentence = idx.canonical[begin:stop]
            if sentence.rstrip().endswith(("？", "?")) and stop < len(idx.canonical):
                sentence += idx.sentence_text(stop)  # 你说有人说要坐牢？那不是我们的人。
            for marker in self.catalogue.disowning:
                if marker in sentence:
                    return f"reported: disowned ({marker})"
        if rule.unless:
            sentence = idx.sentence_text(start)
            for term in rule.unless:
                if term.text in sentence:
                    return f"lawful framing: {term.text}"
        if rule.negatable:
            cue = self._negation_cue(idx, start, end, parts)
            if cue:
                return f"negation: {cue}"
            # 坐牢是不可能的, 冻结、拘留这些我们都做不了: denied after the words, same clause.
            rest = idx.clause_rest(end)
            for marker in self.catalogue.denied_after:
                if marker in rest:
                    return f"negation: {marker} (after)"
            denial = self._answered_no(idx, start)
            if denial:
                return f"question answered no: {denial}"
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
            for i, t in enumerate(idx.tokens)
            if t[2] <= start and idx.token_clause(i) == clause and t[0].strip()
        ][-NEGATION_WINDOW_TOKENS:]
        words = [w for w, _, _ in before]
        # A match that itself opens with 就/才/否则 (就是犯罪) starts a new predicate:
        # 欠钱不还就是犯罪 negates the repaying, not the claim.
        opens_predicate = any(
            idx.canonical.startswith(b, start) for b in breakers if b not in _PRONOUNS
        )
        for i, (word, s, _e) in enumerate(before):
            if opens_predicate:
                break
            # 别让我们找上门 / 别逼我们…: a warning to the debtor ("or else"), not a denial.
            if word in _WARNING_CUES and i + 1 < len(words) and words[i + 1] in _CAUSATIVES:
                continue
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

    def _answered_no(self, idx: _TextIndex, pos: int) -> str | None:
        """您觉得我们会去您单位吗？不会的。: the speaker asks and at once denies."""
        denials = self.catalogue.answer_denials
        if not denials or not self._is_question(idx, pos):
            return None
        _begin, stop = idx.sentence_bounds(pos)
        following = idx.canonical[stop:].lstrip(" ，,。！？!?…—")
        if not following:
            return None  # the question is the last sentence: no answer follows
        return next((d for d in denials if following.startswith(d)), None)

    def _is_question(self, idx: _TextIndex, pos: int) -> bool:
        sentence = idx.sentence_text(pos)
        last = sentence[-1:] if sentence else ""
        return (last != "" and last in "？?") or any(
            m in sentence for m in self.catalogue.question_markers
        )

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


def _blocked(gap: str, words: tuple[str, ...]) -> bool:
    return bool(words) and any(w in gap for w in words)


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
        validator = pii.VALIDATORS[pattern.entity]
        shape = pii.SHAPES[pattern.entity]
        for s, e, digits in idx.digit_runs:
            before = idx.canonical[max(0, s - pattern.context_window) : s]
            if validator(digits) or (
                shape(digits) and any(word in before for word in pattern.context)
            ):
                yield s, e, "validator", [Occurrence(s, e, pattern.entity, "validator")]
        return
    keys = idx.detector.compiled.slot_keys.get(id(pattern))
    if keys is not None and not all(idx.has_slot(k) for k in keys):
        return  # some slot has no occurrence at all: the pattern cannot match
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
                    and not _blocked(idx.canonical[prev_end : o.start], pattern.not_between)
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


@lru_cache(maxsize=4)
def get_detector(rules: str) -> Detector:
    """One detector per catalogue per process (compiling it costs milliseconds)."""
    return Detector(load_catalogue(rules))


def learned_hit(catalogue: Catalogue, hit: LearnedHit, text: str) -> Hit:
    """A learned-stage hit as a finding-shaped ``Hit``: rule id ``ML-<CATEGORY>``,
    severity and citation from the catalogue's ``learned`` section."""
    severity, citation, title = catalogue.learned.get(
        hit.category, ("high", "CBA-2026 §prohibited-8", hit.category)
    )
    return Hit(
        rule_id=f"ML-{hit.category.upper().replace('_', '-')}",
        category=hit.category,
        severity=severity,
        citation=citation,
        title=title,
        start=hit.start,
        end=hit.end,
        match=text[hit.start : hit.end],
        via="learned",
        score=round(hit.score, 4),
    )
