"""Property-based tests: normalisation and detection never crash and keep their promises."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.normalize import canonical_aligned, normalize
from audit.pii import mask_digits

# Text like what reaches the detector: Chinese, digits in both forms, ASCII and
# full-width punctuation, quotes, whitespace, plus arbitrary Unicode.
_ALPHABET = (
    "你我他们不会没有是要上门去单位家人老赖骗子法院坐牢立案逾期还款欠钱借网贷黑名单"
    "一二三四五六七八九零幺两0123456789Xx，。？！、“”「」\"' ,.?!:;\n\t\u3000ＡＢ１２"
)
chinese_text = st.text(alphabet=_ALPHABET, max_size=120)
any_text = st.one_of(chinese_text, st.text(max_size=80))
speakers = st.sampled_from(["agent", "customer", "unknown"])
callees = st.sampled_from(["debtor", "third_party", "unknown"])
_settings = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_settings
@given(any_text)
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


@_settings
@given(any_text)
def test_canonical_form_keeps_length(text):
    assert len(canonical_aligned(text)) == len(text)


@_settings
@given(any_text, speakers, callees)
def test_detection_never_crashes_and_spans_stay_inside_the_text(detector, text, speaker, callee):
    analysis = detector.analyse(text, speaker, callee)
    for hit in analysis.hits:
        assert 0 <= hit.start < hit.end <= len(text)
        assert text[hit.start : hit.end] == hit.match
        assert hit.category and hit.severity and hit.citation


@_settings
@given(chinese_text)
def test_customer_speech_never_yields_agent_only_findings(detector, text):
    for hit in detector.detect(text, "customer", "debtor"):
        rule = detector.catalogue.rule(hit.rule_id)
        assert "customer" in rule.speakers


@_settings
@given(any_text)
def test_masking_keeps_length_and_is_idempotent(text):
    masked = mask_digits(text)
    assert len(masked) == len(text)
    assert mask_digits(masked) == masked
