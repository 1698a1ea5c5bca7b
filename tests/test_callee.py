"""A third party recognised from the call itself when no call record says who answered."""

from __future__ import annotations

from pathlib import Path

from audit import store
from audit.callee import infer_callee
from audit.pipeline import AuditOptions, CallInput, audit_call
from audit.transcribe import Utterance
from tests.conftest import tone, write_wav


def utt(i: int, speaker: str, text: str) -> Utterance:
    return Utterance(i, speaker, i * 3.0, i * 3.0 + 2.5, text, text, -0.2, 0.01)


MOTHER_ANSWERS = [
    utt(0, "agent", "您好，请问是李明先生吗？"),
    utt(1, "customer", "他不在，我是他妈妈，有什么事吗？"),
    utt(2, "agent", "阿姨您好，他在我们平台的借款已经逾期两个月了，麻烦您让他尽快处理。"),
]


def test_the_callee_saying_who_they_are_makes_a_third_party():
    inferred = infer_callee(MOTHER_ANSWERS)
    assert inferred is not None and inferred.relation == "third_party"
    assert "customer 3.0-5.5 s" in inferred.evidence and "我是他妈妈" in inferred.evidence


def test_two_questions_of_the_agent_are_needed():
    once = [utt(0, "agent", "您是他什么人？"), utt(1, "customer", "你说吧。")]
    assert infer_callee(once) is None
    twice = once + [utt(2, "agent", "那麻烦您转告他，让他回个电话。")]
    assert infer_callee(twice).relation == "third_party"


def test_asking_for_the_debtors_mother_twice_is_enough():
    # The shape of the sample call_05: the callee only says 是啊.
    call = [
        utt(0, "agent", "你好，请问是张伟的妈妈吗？"),
        utt(1, "customer", "是啊，你是哪位？"),
        utt(2, "agent", "你是他妈妈，你得管管他。"),
    ]
    assert infer_callee(call).relation == "third_party"


def test_the_debtor_and_mono_calls_infer_nothing():
    debtor = [utt(0, "agent", "请问是李明先生吗？"), utt(1, "customer", "对，我就是，什么事？")]
    assert infer_callee(debtor) is None
    mono = [utt(0, "unknown", "我是他妈妈，他不在。")]
    assert infer_callee(mono) is None  # no speaker: never guessed
    # The debtor quoting someone else is not a third party speaking.
    flagged = [Utterance(0, "customer", 0, 2, "我是他妈妈", "我是他妈妈", -2.0, 0.9, "no_speech")]
    assert infer_callee(flagged) is None


def test_audit_applies_the_third_party_rules_and_stores_the_evidence(tmp_path: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_wav(inbox / "c.wav", [tone(2.0), tone(2.0, freq=300)])

    def transcriber(channels, options):
        return list(MOTHER_ANSWERS)

    result = audit_call(
        CallInput("c", str(inbox / "c.wav")), AuditOptions(learned=False), transcriber
    )
    assert result.callee_inferred and result.callee_inferred.startswith("third_party: ")
    disclosures = [f for f in result.findings if f.category == "third_party_disclosure"]
    assert disclosures and all(f.utterance_idx == 2 for f in disclosures)
    con = store.connect(tmp_path / "a.duckdb")
    store.write_call(con, result)
    (stored,) = con.execute("SELECT callee_inferred FROM calls WHERE call_id = 'c'").fetchone()
    assert "我是他妈妈" in stored
    # A call record that says the debtor answered is trusted over the conversation.
    as_debtor = audit_call(
        CallInput("c", str(inbox / "c.wav"), callee_relation="debtor"),
        AuditOptions(learned=False),
        transcriber,
    )
    assert as_debtor.callee_inferred is None
