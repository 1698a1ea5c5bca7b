"""The rule catalogue: data a compliance officer can read, cite and extend.

A policy pack is one YAML file under ``audit/rules/`` (``cn.yaml``, ``us.yaml``...):

* ``sources``: the regulations rules may cite (ids from shared/regulations.md);
* ``lexicons``: named term lists (``$family``, ``$debt``), optionally matched by pinyin
  (``=word`` in a pinyin lexicon: by characters only);
* ``rules``: utterance rules (patterns + context) and ``call_rules`` (whole-call checks);
* each rule carries its citation and positive/negative examples that the tests run.

A pattern is a sequence of *slots*; each slot is a list of alternative terms.  The
slots must occur in order, inside one clause (or one sentence), with at most
``max_gap`` characters between them and none of the ``not_between`` words in a gap
(您丈夫知道这笔借款吗 asks the debtor; 您丈夫欠款 tells a third party).  A term may
be ``$lexicon`` (all its terms) or ``~term`` (also matched by tone-insensitive
pinyin).  ``regex:`` and ``entity:`` patterns cover what terms can't (numbers, PII
with validators, addresses).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from audit.categories import CATEGORIES, SEVERITIES, SPEAKERS
from audit.pii import VALIDATORS

RULES_DIR = Path(__file__).parent / "rules"
WINDOWS = ("clause", "sentence", "utterance")


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the rule and the field."""


@dataclass(frozen=True)
class Term:
    text: str
    pinyin: bool = False


@dataclass(frozen=True)
class Pattern:
    slots: tuple[tuple[Term, ...], ...] = ()
    regex: re.Pattern[str] | None = None
    entity: str | None = None
    # Entity patterns: words that, standing just before a number of the entity's shape,
    # accept it without its checksum (see audit/pii.py).
    context: tuple[str, ...] = ()
    context_window: int = 12
    window: str = "clause"
    max_gap: int = 12
    not_between: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.regex is not None:
            return f"regex:{self.regex.pattern}"
        if self.entity:
            return f"entity:{self.entity}"
        return " … ".join("|".join(t.text for t in slot) for slot in self.slots)


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    severity: str
    citation: str
    title: str
    patterns: tuple[Pattern, ...]
    speakers: frozenset[str] = frozenset({"agent", "unknown"})
    unless: tuple[Term, ...] = ()
    negatable: bool = True
    suppress_in_question: bool = False
    suppress_in_quote: bool = True  # also covers reported speech (听说…, 有人说…)
    callee: str = "any"  # any | third_party: fires only on calls to a third party
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallRule:
    """A whole-call requirement, e.g. the agent identifies themselves early in the call."""

    id: str
    category: str
    severity: str
    citation: str
    title: str
    kind: str  # required_opening
    patterns: tuple[Pattern, ...]
    speakers: frozenset[str]
    within_s: float = 30.0
    within_utterances: int = 3
    positive: tuple[tuple[str, ...], ...] = ()
    negative: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Catalogue:
    pack: str
    version: str
    language: str
    sources: dict[str, str]
    negation_cues: frozenset[str]
    scope_breakers: frozenset[str]
    question_markers: tuple[str, ...]
    rules: tuple[Rule, ...]
    call_rules: tuple[CallRule, ...]
    hotwords: tuple[str, ...]
    report_cues: tuple[str, ...] = ()
    answer_denials: tuple[str, ...] = ()
    mention_markers: tuple[str, ...] = ()
    denied_after: tuple[str, ...] = ()
    disowning: tuple[str, ...] = ()
    digest: str = ""
    all_terms: frozenset[str] = field(default_factory=frozenset)
    # category -> (severity, citation, title) of the learned stage's findings
    learned: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    @property
    def rules_version(self) -> str:
        """Pack version plus content hash: any edit to the file changes it."""
        return f"{self.pack}-{self.version}+{self.digest[:10]}"

    def rule(self, rule_id: str) -> Rule | CallRule:
        for r in (*self.rules, *self.call_rules):
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def _as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        return [value]
    if isinstance(value, list):
        return value
    raise CatalogueError(f"{where}: expected a list, got {type(value).__name__}")


def _expand_terms(raw: Any, lexicons: dict[str, tuple[Term, ...]], where: str) -> tuple[Term, ...]:
    terms: list[Term] = []
    for item in _as_list(raw, where):
        item = str(item)
        for alt in item.split("|"):
            alt = alt.strip()
            if not alt:
                continue
            if alt.startswith("$"):
                name = alt[1:]
                if name not in lexicons:
                    raise CatalogueError(f"{where}: unknown lexicon ${name}")
                terms.extend(lexicons[name])
            elif alt.startswith("~"):
                terms.append(Term(alt[1:], pinyin=True))
            else:
                terms.append(Term(alt))
    if not terms:
        raise CatalogueError(f"{where}: empty slot")
    # Longest first, so 绝对不会 wins over 不会 at the same position.
    return tuple(sorted(dict.fromkeys(terms), key=lambda t: -len(t.text)))


def _parse_pattern(raw: Any, lexicons: dict[str, tuple[Term, ...]], where: str) -> Pattern:
    if isinstance(raw, dict) and ("regex" in raw or "entity" in raw):
        if "entity" in raw:
            if raw["entity"] not in VALIDATORS:
                raise CatalogueError(f"{where}: unknown entity {raw['entity']!r}")
            return Pattern(
                entity=raw["entity"],
                context=tuple(str(x) for x in _as_list(raw.get("context"), where)),
                context_window=int(raw.get("context_window", 12)),
            )
        try:
            return Pattern(regex=re.compile(raw["regex"]), window=raw.get("window", "sentence"))
        except re.error as exc:
            raise CatalogueError(f"{where}: bad regex: {exc}") from exc
    not_between: tuple[str, ...] = ()
    if isinstance(raw, dict):
        slots_raw = raw.get("seq")
        window = raw.get("window", "clause")
        max_gap = int(raw.get("max_gap", 12))
        not_between = tuple(str(x) for x in _as_list(raw.get("not_between"), where))
    else:
        slots_raw, window, max_gap = raw, "clause", 12
    if window not in WINDOWS:
        raise CatalogueError(f"{where}: window must be one of {WINDOWS}")
    slots = tuple(
        _expand_terms(slot, lexicons, f"{where} slot {i}")
        for i, slot in enumerate(_as_list(slots_raw, where))
    )
    if not slots:
        raise CatalogueError(f"{where}: pattern has no slots")
    return Pattern(slots=slots, window=window, max_gap=max_gap, not_between=not_between)


def _check_common(raw: dict[str, Any], sources: dict[str, str], where: str) -> None:
    for key in ("id", "category", "severity", "citation", "patterns"):
        if key not in raw:
            raise CatalogueError(f"{where}: missing {key!r}")
    if raw["category"] not in CATEGORIES:
        raise CatalogueError(f"{where}: unknown category {raw['category']!r}")
    if raw["severity"] not in SEVERITIES:
        raise CatalogueError(f"{where}: unknown severity {raw['severity']!r}")
    source_id = str(raw["citation"]).split()[0]
    if source_id not in sources:
        raise CatalogueError(f"{where}: citation {raw['citation']!r} names no known source")
    for speaker in raw.get("speakers", []):
        if speaker not in SPEAKERS:
            raise CatalogueError(f"{where}: unknown speaker {speaker!r}")


def _parse_lexicons(raw: dict[str, Any]) -> dict[str, tuple[Term, ...]]:
    lexicons: dict[str, tuple[Term, ...]] = {}
    for name, spec in (raw or {}).items():
        pinyin = False
        terms = spec
        if isinstance(spec, dict):
            pinyin = bool(spec.get("pinyin", False))
            terms = spec.get("terms", [])
        expanded: list[Term] = []
        for t in _as_list(terms, f"lexicon {name}"):
            t = str(t)
            if t.startswith("$"):
                expanded.extend(lexicons[t[1:]])
            else:
                # ~word: match by sound; =word: by characters only, even in a pinyin
                # lexicon (借了 must not match 接了电话).
                literal = t.startswith("=")
                expanded.append(
                    Term(t.lstrip("~="), pinyin=(pinyin and not literal) or t.startswith("~"))
                )
        lexicons[name] = tuple(expanded)
    return lexicons


def parse_catalogue(text: str, origin: str = "<string>") -> Catalogue:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise CatalogueError(f"{origin}: expected a mapping at top level")
    sources = {str(k): str(v) for k, v in (doc.get("sources") or {}).items()}
    lexicons = _parse_lexicons(doc.get("lexicons") or {})
    ctx = doc.get("context") or {}
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.get("rules") or []):
        where = f"{origin} rule #{i + 1} ({raw.get('id', '?')})"
        _check_common(raw, sources, where)
        if raw["id"] in seen:
            raise CatalogueError(f"{where}: duplicate id")
        seen.add(raw["id"])
        examples = raw.get("examples") or {}
        rules.append(
            Rule(
                id=raw["id"],
                category=raw["category"],
                severity=raw["severity"],
                citation=str(raw["citation"]),
                title=str(raw.get("title", raw["id"])),
                patterns=tuple(
                    _parse_pattern(p, lexicons, f"{where} pattern {j}")
                    for j, p in enumerate(_as_list(raw["patterns"], where))
                ),
                speakers=frozenset(raw.get("speakers", ["agent", "unknown"])),
                unless=_expand_terms(raw["unless"], lexicons, where) if raw.get("unless") else (),
                negatable=bool(raw.get("negatable", True)),
                suppress_in_question=bool(raw.get("suppress_in_question", False)),
                suppress_in_quote=bool(raw.get("suppress_in_quote", True)),
                callee=str(raw.get("callee", "any")),
                positive=tuple(examples.get("positive", [])),
                negative=tuple(examples.get("negative", [])),
            )
        )
    call_rules: list[CallRule] = []
    for i, raw in enumerate(doc.get("call_rules") or []):
        where = f"{origin} call rule #{i + 1} ({raw.get('id', '?')})"
        _check_common(raw, sources, where)
        if raw["id"] in seen:
            raise CatalogueError(f"{where}: duplicate id")
        seen.add(raw["id"])
        examples = raw.get("examples") or {}
        call_rules.append(
            CallRule(
                id=raw["id"],
                category=raw["category"],
                severity=raw["severity"],
                citation=str(raw["citation"]),
                title=str(raw.get("title", raw["id"])),
                kind=str(raw.get("kind", "required_opening")),
                patterns=tuple(
                    _parse_pattern(p, lexicons, f"{where} pattern {j}")
                    for j, p in enumerate(_as_list(raw["patterns"], where))
                ),
                speakers=frozenset(raw.get("speakers", ["agent", "unknown"])),
                within_s=float(raw.get("within_s", 30)),
                within_utterances=int(raw.get("within_utterances", 3)),
                positive=tuple(tuple(c) for c in examples.get("positive", [])),
                negative=tuple(tuple(c) for c in examples.get("negative", [])),
            )
        )
    all_terms = frozenset(
        t.text for r in (*rules, *call_rules) for p in r.patterns for slot in p.slots for t in slot
    )
    return Catalogue(
        pack=str(doc.get("pack", Path(origin).stem)),
        version=str(doc.get("version", "0")),
        language=str(doc.get("language", "zh")),
        sources=sources,
        negation_cues=frozenset(ctx.get("negation_cues", [])),
        scope_breakers=frozenset(ctx.get("scope_breakers", [])),
        question_markers=tuple(ctx.get("question_markers", [])),
        rules=tuple(rules),
        call_rules=tuple(call_rules),
        hotwords=tuple(doc.get("asr_hotwords", [])),
        report_cues=tuple(ctx.get("report_cues", [])),
        answer_denials=tuple(ctx.get("answer_denials", [])),
        mention_markers=tuple(ctx.get("mention_markers", [])),
        denied_after=tuple(ctx.get("denied_after", [])),
        disowning=tuple(ctx.get("disowning", [])),
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        all_terms=all_terms,
        learned=_parse_learned(doc.get("learned") or {}, origin),
    )


def _parse_learned(raw: Any, origin: str) -> dict[str, tuple[str, str, str]]:
    """The ``learned`` section: severity, citation and title per category."""
    if not isinstance(raw, dict):
        raise CatalogueError(f"{origin}: 'learned' must map categories to settings")
    out = {}
    for category, spec in raw.items():
        where = f"{origin} learned.{category}"
        if category not in CATEGORIES or not isinstance(spec, dict):
            raise CatalogueError(f"{where}: unknown category or not a mapping")
        severity = str(spec.get("severity", "high"))
        if severity not in SEVERITIES:
            raise CatalogueError(f"{where}: severity {severity!r} is not one of {SEVERITIES}")
        if not spec.get("citation"):
            raise CatalogueError(f"{where}: a citation is required")
        out[str(category)] = (severity, str(spec["citation"]), str(spec.get("title", category)))
    return out


def load_catalogue(pack_or_path: str | Path = "cn") -> Catalogue:
    """Load a bundled pack by name (``cn``, ``us``) or a YAML file by path."""
    path = Path(pack_or_path)
    if not path.suffix:
        path = RULES_DIR / f"{pack_or_path}.yaml"
    return _load_cached(str(path.resolve()))


@lru_cache(maxsize=8)
def _load_cached(path: str) -> Catalogue:
    p = Path(path)
    if not p.is_file():
        raise CatalogueError(f"rule catalogue not found: {p}")
    return parse_catalogue(p.read_text(encoding="utf-8"), origin=p.name)
