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


def test_first_catalogue_covers_the_core_categories():
    categories = {r.category for r in CATALOGUE.rules}
    assert {
        "threat",
        "insult",
        "third_party_disclosure",
        "impersonation",
        "false_legal_claim",
    } <= categories


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
