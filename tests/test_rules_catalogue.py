"""Every rule's own examples are tests; the catalogue itself is validated."""

from __future__ import annotations

import pytest

from audit.detect import UtteranceIn
from audit.rules import CatalogueError, load_catalogue, parse_catalogue

CATALOGUE = load_catalogue("cn")


def _callee(rule) -> str:
    return "third_party" if rule.callee == "third_party" else "debtor"


@pytest.mark.parametrize(
    "rule_id,text",
    [(r.id, ex) for r in CATALOGUE.rules for ex in r.positive],
)
def test_positive_example_is_found(detector, rule_id, text):
    rule = CATALOGUE.rule(rule_id)
    found = {h.rule_id for h in detector.detect(text, "agent", _callee(rule))}
    assert rule_id in found, detector.analyse(text, "agent", _callee(rule)).hits


@pytest.mark.parametrize(
    "rule_id,text",
    [(r.id, ex) for r in CATALOGUE.rules for ex in r.negative],
)
def test_negative_example_is_not_found(detector, rule_id, text):
    rule = CATALOGUE.rule(rule_id)
    found = {h.rule_id for h in detector.detect(text, "agent", _callee(rule))}
    assert rule_id not in found


def _call(lines):
    return [UtteranceIn(i, "agent", i * 5.0, i * 5.0 + 4, t) for i, t in enumerate(lines)]


@pytest.mark.parametrize(
    "rule_id,lines",
    [(r.id, ex) for r in CATALOGUE.call_rules for ex in r.positive],
)
def test_call_rule_positive_examples(detector, rule_id, lines):
    assert rule_id in {h.rule_id for h in detector.detect_call(_call(lines))}


@pytest.mark.parametrize(
    "rule_id,lines",
    [(r.id, ex) for r in CATALOGUE.call_rules for ex in r.negative],
)
def test_call_rule_negative_examples(detector, rule_id, lines):
    assert rule_id not in {h.rule_id for h in detector.detect_call(_call(lines))}


def test_every_rule_has_examples_and_a_known_citation():
    for rule in (*CATALOGUE.rules, *CATALOGUE.call_rules):
        assert rule.positive and rule.negative, rule.id
        assert rule.citation.split()[0] in CATALOGUE.sources, rule.id


def test_catalogue_covers_every_category_speech_can_show():
    categories = {r.category for r in (*CATALOGUE.rules, *CATALOGUE.call_rules)}
    assert {
        "threat",
        "insult",
        "harassment",
        "third_party_disclosure",
        "impersonation",
        "false_legal_claim",
        "inducement_to_borrow",
        "pii_exposure",
        "missing_disclosure",
    } <= categories


def test_key_terms_are_also_matched_by_sound():
    pinyin_terms = {
        t.text
        for r in CATALOGUE.rules
        for p in r.patterns
        for slot in p.slots
        for t in slot
        if t.pinyin
    }
    assert {"坐牢", "判刑", "逾期", "还款", "还钱"} <= pinyin_terms


def test_context_lists_and_pattern_options_are_read():
    text = """
pack: t
sources: {CBA-2026: x}
context:
  negation_cues: [不会]
  report_cues: [听说]
  answer_denials: [不会的]
  mention_markers: [这个说法]
rules:
  - id: R1
    category: third_party_disclosure
    severity: high
    citation: CBA-2026 §1
    patterns:
      - {seq: [[您丈夫], [借款]], not_between: [知道], window: sentence, max_gap: 10}
    examples: {positive: [您丈夫借款没还], negative: [您丈夫知道这笔借款吗]}
"""
    cat = parse_catalogue(text)
    assert cat.report_cues == ("听说",) and cat.answer_denials == ("不会的",)
    assert cat.mention_markers == ("这个说法",)
    pattern = cat.rules[0].patterns[0]
    assert pattern.not_between == ("知道",) and pattern.window == "sentence"
    from audit.detect import Detector

    d = Detector(cat)
    assert [h.rule_id for h in d.detect("您丈夫借款没还", "agent")] == ["R1"]
    assert d.detect("您丈夫知道这笔借款吗", "agent") == []


def test_rules_version_changes_when_the_file_changes():
    base = """
pack: t
version: "1"
sources: {CBA-2026: x}
rules:
  - {id: R1, category: threat, severity: high, citation: CBA-2026 §1, patterns: [[上门]]}
"""
    a = parse_catalogue(base)
    b = parse_catalogue(base.replace("上门", "上门|去你家"))
    assert a.rules_version != b.rules_version
    assert a.rules_version.startswith("t-1+")


@pytest.mark.parametrize(
    "bad,message",
    [
        ("category: threats", "unknown category"),
        ("severity: urgent", "unknown severity"),
        ("citation: NOPE §1", "names no known source"),
        ("patterns: [[$nope]]", "unknown lexicon"),
    ],
)
def test_malformed_rules_are_rejected_with_the_rule_named(bad, message):
    fields = {
        "category": "threat",
        "severity": "high",
        "citation": "CBA-2026 §1",
        "patterns": "[[上门]]",
    }
    key, value = bad.split(": ", 1)
    fields[key] = value
    body = ", ".join(f"{k}: {v}" for k, v in fields.items())
    text = f"pack: t\nsources: {{CBA-2026: x}}\nrules:\n  - {{id: R9, {body}}}\n"
    with pytest.raises(CatalogueError, match=message) as err:
        parse_catalogue(text)
    assert "R9" in str(err.value)
