"""Conduct checks (audit/conduct.py): overtalk, interruptions, shouting, dead air, pace.

Synthesised stereo calls (tests/synth_conduct.py) with planted events: each must be found
with its span within 0.3 s, and an unchanged call must give no conduct finding.  The
bundled sample calls (real speech, real VAD, no Whisper) must give none either, and the
same events planted in them must be found.  A property test checks measured overtalk
against the truth of random timelines.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from audit import conduct, store
from audit.audio import load_channels, probe
from audit.pipeline import AuditOptions, CallInput, audit_call
from audit.policy import CONDUCT_CHECKS, PolicyError, load_policy
from audit.transcribe import TranscribeOptions, Transcript, Utterance, chunk_seconds, speech_chunks
from tests.conftest import SAMPLES, write_wav
from tests.synth_conduct import (
    RATE,
    Call,
    Turn,
    conversation,
    overlap_truth,
    render,
    vad_like,
)

POLICY = load_policy("cn")
RULES = {r.check: r for r in POLICY.conduct}
TOL = 0.3  # seconds: a planted event's span must be found this close


def judge_synth(call: Call, seed: int = 0, utterances=(), policy=POLICY):
    channels = render(call, seed)
    speech = [vad_like(call.agent, call.duration), vad_like(call.customer, call.duration)]
    timeline = conduct.measure(channels, speech, ["agent", "customer"], RATE)
    return conduct.judge(timeline, list(utterances), policy.conduct, policy.conduct_version)


def of_rule(hits, check: str):
    return [h for h in hits if h.rule_id == RULES[check].id]


def near(hit, start: float, end: float) -> bool:
    return abs(hit.start_s - start) <= TOL and abs(hit.end_s - end) <= TOL


# ---------------------------------------------------------------- unchanged calls


@pytest.mark.parametrize("seed", range(6))
def test_an_ordinary_call_has_no_conduct_finding(seed):
    call = conversation(12, seed=seed)
    hits, m = judge_synth(call, seed)
    assert hits == []
    talk_a = sum(t.end - t.start for t in call.agent)
    talk_c = sum(t.end - t.start for t in call.customer)
    assert m.talk_ratio == pytest.approx(talk_a / (talk_a + talk_c), abs=0.02)
    assert m.overtalk_s == pytest.approx(0.0, abs=0.05)
    assert m.interruptions == 0 and m.not_run is None
    assert m.longest_silence_s == pytest.approx(
        max(b.start - a.end for a, b in zip(*_both_sorted(call), strict=False)), abs=0.05
    )


def _both_sorted(call: Call):
    turns = sorted(call.agent + call.customer, key=lambda t: t.start)
    return turns[:-1], turns[1:]


# ---------------------------------------------------------------- overtalk


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("into", [0.4, 1.0])
def test_agent_speech_moved_onto_a_customer_turn_is_overtalk(seed, into):
    call = conversation(12, seed=seed)
    victim = max(call.customer, key=lambda t: t.end - t.start)
    k = max(range(len(call.agent)), key=lambda i: call.agent[i].end - call.agent[i].start)
    # the agent's longest turn, moved into the customer's longest (cut to fit inside it)
    length = min(call.agent[k].end - call.agent[k].start, victim.end - victim.start - into)
    start = round(victim.start + into, 2)
    call.agent[k] = Turn(start, round(start + length, 2))
    truth = (start, round(start + length, 2))
    assert truth[1] - truth[0] >= RULES["overtalk"].params["min_overlap_s"]  # a real plant
    hits, m = judge_synth(call, seed)
    found = of_rule(hits, "overtalk")
    assert len(found) == 1, hits
    assert near(found[0], *truth), (found[0], truth)
    assert found[0].speaker == "agent" and f"{truth[1] - truth[0]:.1f}" in found[0].match
    assert m.overtalk_s == pytest.approx(truth[1] - truth[0], abs=0.05)
    assert m.interruptions >= 1  # the agent started while the customer talked
    assert of_rule(hits, "interruptions") == []  # one is not a habit


def test_metrics_count_each_event_once_however_many_rules_judge_it(into=1.0):
    """A pack may judge one measure at two severities: the stored counts stay the same."""
    call = conversation(12, seed=2)
    victim = max(call.customer, key=lambda t: t.end - t.start)
    k = max(range(len(call.agent)), key=lambda i: call.agent[i].end - call.agent[i].start)
    length = min(call.agent[k].end - call.agent[k].start, victim.end - victim.start - into)
    call.agent[k] = Turn(round(victim.start + into, 2), round(victim.start + into + length, 2))
    _, one = judge_synth(call, 2)
    doubled = [
        *POLICY.conduct,
        *(
            replace(r, id=r.id + "-HIGH", severity="high")
            for r in POLICY.conduct
            if r.check in ("overtalk", "interruptions")
        ),
    ]
    hits, two = judge_synth(call, 2, policy=replace(POLICY, conduct=tuple(doubled)))
    assert len([h for h in hits if h.rule_id.endswith("-HIGH")]) >= 1  # both rules judged
    assert one.overtalk_events >= 1 and two.overtalk_events == one.overtalk_events
    assert two.interruptions == one.interruptions


def test_a_short_overlap_is_not_overtalk():
    call = conversation(8, seed=1)
    c = call.customer[1]
    a = call.agent[2]
    length = a.end - a.start
    call.agent[2] = Turn(round(c.end - 0.6, 2), round(c.end - 0.6 + length, 2))  # 0.6 s overlap
    hits, m = judge_synth(call, 1)
    assert of_rule(hits, "overtalk") == []
    assert m.overtalk_s == pytest.approx(0.6, abs=0.05)


@pytest.mark.parametrize("times", [3, 4, 5])
def test_interruptions_above_the_limit(times):
    call = conversation(14, seed=5)
    planted = []
    for k in range(times):
        c = call.customer[k]
        # a short agent remark 0.3 s after the customer starts, overlapping 0.8 s
        a = Turn(round(c.start + 0.3, 2), round(c.start + 1.1, 2))
        call.agent.append(a)
        planted.append((a.start, a.end))
    hits, m = judge_synth(call, 5)
    assert m.interruptions == times
    found = of_rule(hits, "interruptions")
    if times > RULES["interruptions"].params["max_per_call"]:
        assert len(found) == 1 and near(found[0], planted[0][0], planted[-1][1])
        assert f"{times} 次" in found[0].text
    else:
        assert found == []


# ---------------------------------------------------------------- shouting


@pytest.mark.parametrize("louder", [12.0, 16.0, 20.0])
@pytest.mark.parametrize("seed", range(3))
def test_one_agent_turn_much_louder_is_shouting(louder, seed):
    call = conversation(12, seed=seed)
    call.agent = [replace(t, level=-36.0) for t in call.agent]  # headroom: 20 dB won't clip
    loud = call.agent[3]
    call.agent[3] = replace(loud, level=loud.level + louder)
    hits, m = judge_synth(call, seed)
    found = of_rule(hits, "shouting")
    assert len(found) == 1, hits
    assert near(found[0], loud.start, loud.end), (found[0], loud)
    measured = float(found[0].match.split()[0])
    assert measured == pytest.approx(louder, abs=2.0)
    assert m.agent_max_above_median_db == pytest.approx(louder, abs=2.5)
    assert [h for h in hits if h.rule_id != RULES["shouting"].id] == []
    assert "削波" not in found[0].text


def test_shouting_into_clipping_is_found_and_named():
    call = conversation(12, seed=6)
    loud = call.agent[2]
    call.agent[2] = replace(loud, level=loud.level + 20)  # -2 dBFS RMS: the peaks clip
    hits, m = judge_synth(call, 6)
    found = of_rule(hits, "shouting")
    assert len(found) == 1 and near(found[0], loud.start, loud.end)
    assert "接近削波" in found[0].text and m.agent_peak_dbfs > -1.0


def test_a_loud_customer_or_a_loud_line_is_not_shouting():
    call = conversation(12, seed=2)
    call.customer[1] = replace(call.customer[1], level=call.customer[1].level + 18)
    call.agent = [replace(t, level=t.level + 14) for t in call.agent]  # a hot microphone
    hits, m = judge_synth(call, 2)
    assert hits == []
    assert abs(m.agent_max_above_median_db) < 3


def test_a_raised_voice_under_the_threshold_or_too_short_is_not_shouting():
    call = conversation(12, seed=4)
    call.agent[2] = replace(call.agent[2], level=call.agent[2].level + 6)
    a = call.agent[3]
    call.agent[3] = Turn(a.start, a.start + 0.6, a.level + 18)  # 0.6 s: not sustained
    hits, _ = judge_synth(call, 4)
    assert of_rule(hits, "shouting") == []


# ---------------------------------------------------------------- dead air


@pytest.mark.parametrize("hold", [16.0, 25.0, 60.0])
def test_a_hold_inside_the_call_is_dead_air(hold):
    call = conversation(10, seed=7)
    at = call.customer[2].end + 0.5
    for turns in (call.agent, call.customer):
        for i, t in enumerate(turns):
            if t.start > at:
                turns[i] = Turn(t.start + hold, t.end + hold, t.level)
    call.duration += hold
    after = min(t.start for t in call.agent + call.customer if t.start > at)
    hits, m = judge_synth(call, 7)
    found = of_rule(hits, "dead_air")
    assert len(found) == 1, hits
    assert near(found[0], call.customer[2].end, after)
    assert m.longest_silence_s == pytest.approx(after - call.customer[2].end, abs=0.05)


def test_silence_before_the_first_and_after_the_last_words_is_not_dead_air():
    call = conversation(8, seed=8, lead_in=30.0)  # 30 s of ringing before anyone talks
    call.duration += 40.0  # and a long tail
    hits, m = judge_synth(call, 8)
    assert hits == [] and m.longest_silence_s < 2.0


# ---------------------------------------------------------------- pace


def utt(speaker, start, end, text, flag=None):
    return SimpleNamespace(speaker=speaker, start_s=start, end_s=end, text=text, asr_flag=flag)


def test_pace_over_a_sentence():
    call = conversation(6, seed=9)
    fast = "您的借款已经逾期九十天请于今日内还清全部欠款否则后果自负"  # 28 characters
    utterances = [
        utt("agent", 1.0, 1.0 + len(fast) / 9.0, fast),  # 9 chars/s
        utt("agent", 10.0, 15.0, fast),  # 5.6 chars/s
        utt("customer", 20.0, 22.0, fast),  # the customer's pace is theirs
        utt("agent", 30.0, 30.4, "好的好的"),  # too short to time
        utt("agent", 40.0, 42.0, fast, flag="repetition"),  # not trusted text
    ]
    hits, m = judge_synth(call, 9, utterances)
    found = of_rule(hits, "pace")
    assert len(found) == 1 and found[0].start_s == 1.0
    assert "9.0" in found[0].match
    assert m.max_pace_cps == pytest.approx(9.0, abs=0.05)
    chars = 2 * len(fast) + 4  # the agent's trusted utterances
    assert m.mean_pace_cps == pytest.approx(chars / (len(fast) / 9.0 + 5.0 + 0.4), abs=0.01)


def test_spoken_chars_counts_syllables_not_punctuation():
    assert conduct.spoken_chars("您好，我是小王。") == 6
    assert conduct.spoken_chars("还款 500 元 OK") == 5


# ---------------------------------------------------------------- policy


def test_thresholds_are_policy_data_and_overridable():
    assert {r.check for r in POLICY.conduct} == set(CONDUCT_CHECKS)
    for rule in POLICY.conduct:
        assert rule.id.startswith("CN-CON-") and rule.citation and rule.rationale
    assert {r.id.split("-")[0] for r in load_policy("us").conduct} == {"US"}
    strict = load_policy("cn", overtalk_s=0.5, shout_db=5, dead_air_s=1)
    assert strict.conduct_version != POLICY.conduct_version
    assert {r.check: r for r in strict.conduct}["overtalk"].params["min_overlap_s"] == 0.5
    call = conversation(8, seed=1)
    c, a = call.customer[1], call.agent[2]
    call.agent[2] = Turn(round(c.end - 0.6, 2), round(c.end - 0.6 + a.end - a.start, 2))
    hits, _ = judge_synth(call, 1, policy=strict)
    assert [h.rule_id for h in hits if h.rule_id == "CN-CON-OVERTALK"] == ["CN-CON-OVERTALK"]
    with pytest.raises(PolicyError):
        load_policy("cn", dead_air_s=-1)


def test_a_policy_file_with_a_bad_conduct_rule_is_refused(tmp_path):
    text = (Path(__file__).parent.parent / "audit/policies/cn.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("max_silence_s: 15", "max_silence_s: soon"), encoding="utf-8")
    with pytest.raises(PolicyError, match="max_silence_s"):
        load_policy(str(bad))
    bad.write_text(text.replace("check: pace", "check: tone"), encoding="utf-8")
    with pytest.raises(PolicyError, match="unknown check"):
        load_policy(str(bad))


# ---------------------------------------------------------------- property


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    turns=st.lists(
        st.tuples(
            st.floats(0.8, 4.0),  # length of the turn
            st.floats(-2.5, 1.2),  # start relative to the other's end (<0: overlap)
        ),
        min_size=4,
        max_size=12,
    ),
)
def test_measured_overtalk_is_within_5_percent_of_the_truth(seed, turns):
    call = Call(0.0)
    t = 1.0
    last_end = {"agent": 0.0, "customer": 0.0}
    for i, (length, offset) in enumerate(turns):
        who = "agent" if i % 2 == 0 else "customer"
        # never before the speaker's own last turn ended (+0.4 s) nor the other's start
        start = max(t + offset, last_end[who] + 0.4, t - length + 0.2, 0.5)
        turn = Turn(round(start, 3), round(start + length, 3))  # off the 10 ms grid
        (call.agent if who == "agent" else call.customer).append(turn)
        last_end[who] = turn.end
        t = max(t, turn.end)
    call.duration = round(t + 1.0, 2)
    truth = overlap_truth(call)
    assume(truth >= 1.0)
    hits, m = judge_synth(call, seed)
    assert m.overtalk_s == pytest.approx(truth, rel=0.05), (truth, m.overtalk_s)


# ---------------------------------------------------------------- real speech


def sample_timeline(path: Path, channels=None):
    channels = channels if channels is not None else load_channels(path, probe(path))
    options = TranscribeOptions()
    speech = [chunk_seconds(speech_chunks(c, options)) for c in channels]
    return channels, conduct.measure(channels, speech, ["agent", "customer"])


SAMPLE_CALLS = sorted((SAMPLES / "inbox").iterdir())


def test_the_sample_calls_have_no_conduct_finding():
    assert len(SAMPLE_CALLS) == 8
    for path in SAMPLE_CALLS:
        _, timeline = sample_timeline(path)
        hits, m = conduct.judge(timeline, [], POLICY.conduct, POLICY.conduct_version)
        assert hits == [], (path.name, hits)
        assert 0.5 < m.talk_ratio < 0.95 and m.overtalk_s < 0.5, (path.name, m)
        assert m.longest_silence_s < 5 and m.agent_loudness_range_db > 5


@pytest.fixture(scope="module")
def call_01():
    path = SAMPLES / "inbox" / "call_01_compliant.wav"
    return sample_timeline(path)


def test_events_planted_in_a_sample_call_are_found(call_01):
    channels, before = call_01
    agent, customer = before.channel("agent"), before.channel("customer")
    # overtalk: the agent's last long stretch copied onto the customer's longest turn
    src = max(agent.spurts, key=lambda s: s[1] - s[0])
    dst = max(customer.spurts, key=lambda s: s[1] - s[0])
    a = [c.copy() for c in channels]
    i, j, k = (int(x * 16000) for x in (src[0], src[1], dst[0]))
    a[0][k : k + j - i] += channels[0][i:j]
    _, timeline = sample_timeline(None, a)
    moved = [(s - src[0] + dst[0], e - src[0] + dst[0]) for s, e in agent.spurts]
    moved = [
        (s, e) for s, e in moved if s >= dst[0] - 0.01 and e <= dst[0] + (j - i) / 16000 + 0.01
    ]
    truth = conduct.intersect(conduct.merge_spans(moved), customer.spurts)
    truth = [t for t in truth if t[1] - t[0] >= RULES["overtalk"].params["min_overlap_s"]]
    assert truth, "the plant overlaps the customer"
    hits, _ = conduct.judge(timeline, [], POLICY.conduct, POLICY.conduct_version)
    found = of_rule(hits, "overtalk")
    assert found and all(any(near(h, *t) for h in found) for t in truth), (found, truth)

    # shouting: one agent stretch 15 dB louder
    b = [c.copy() for c in channels]
    s, e = int(src[0] * 16000), int(src[1] * 16000)
    b[0][s:e] = np.clip(b[0][s:e] * 10 ** (15 / 20), -1, 1)
    _, timeline = sample_timeline(None, b)
    hits, _ = conduct.judge(timeline, [], POLICY.conduct, POLICY.conduct_version)
    found = of_rule(hits, "shouting")
    assert len(found) == 1 and near(found[0], *src), (found, src)

    # hold: 20 s of line noise inserted on both channels after the customer's first turn
    cut = int((customer.spurts[0][1] + 0.2) * 16000)
    noise = [np.random.default_rng(0).normal(0, 1e-4, 20 * 16000).astype(np.float32)] * 2
    c = [np.concatenate([x[:cut], z, x[cut:]]) for x, z in zip(channels, noise, strict=True)]
    _, timeline = sample_timeline(None, c)
    hits, m = conduct.judge(timeline, [], POLICY.conduct, POLICY.conduct_version)
    found = of_rule(hits, "dead_air")
    after = min(x[0] for ch in before.channels for x in ch.spurts if x[0] > cut / 16000)
    assert len(found) == 1 and near(found[0], customer.spurts[0][1], after + 20), found
    assert [h for h in hits if h.rule_id != RULES["dead_air"].id] == []


# ---------------------------------------------------------------- pipeline and store


def scripted(speech_of):
    """A transcriber that hears nothing but hands over VAD speech like the real one."""

    def transcribe(channels, options):
        speech = speech_of(channels)
        utterances = [
            Utterance(0, "agent", 1.0, 4.0, "您好，我是星辰消费金融的客服", "x", -0.2, 0.01)
        ]
        return Transcript(utterances if len(channels) == 2 else [], speech)

    return transcribe


def test_audit_call_stores_conduct_findings_and_metrics_in_one_transaction(tmp_path):
    call = conversation(10, seed=11)
    victim = max(call.customer, key=lambda t: t.end - t.start)
    call.agent[3] = Turn(round(victim.start + 0.3, 2), round(victim.end - 0.2, 2))
    wav = write_wav(tmp_path / "c.wav", render(call, 11), rate=RATE)
    speech = [vad_like(call.agent, call.duration), vad_like(call.customer, call.duration)]
    options = AuditOptions(learned=False, correct=False)
    result = audit_call(CallInput("c", str(wav)), options, transcriber=scripted(lambda _: speech))
    assert result.status == "ok", result.error
    conduct_rows = [f for f in result.findings if f.category == "conduct"]
    assert [f.rule_id for f in conduct_rows] == ["CN-CON-OVERTALK"]
    assert (
        result.metrics.overtalk_s > 1.0 and result.metrics.conduct_version in result.rules_version
    )

    db = tmp_path / "a.duckdb"
    con = store.connect(db)
    store.write_call(con, result)
    row = con.execute(
        "SELECT talk_ratio, overtalk_s, interruptions, not_run FROM call_metrics WHERE call_id='c'"
    ).fetchone()
    assert row[1] == pytest.approx(result.metrics.overtalk_s) and row[3] is None
    stats = dict(con.execute("SELECT rule_id, findings FROM rule_stats").fetchall())
    assert stats["CN-CON-OVERTALK"] == 1
    risk = con.execute("SELECT risk_score, categories FROM call_risk WHERE call_id='c'").fetchone()
    assert risk[0] > 0 and "conduct" in risk[1]
    # metrics that can't be written undo the whole call's write: findings stay as they were
    broken = replace(result, findings=[], metrics=replace(result.metrics, talk_ratio="high"))
    with pytest.raises(Exception):  # noqa: B017 - any error: the point is the rollback
        store.write_call(con, broken)
    assert con.execute("SELECT count(*) FROM findings WHERE call_id = 'c'").fetchone()[0] == len(
        result.findings
    )
    assert con.execute("SELECT talk_ratio FROM call_metrics").fetchone()[0] == pytest.approx(
        result.metrics.talk_ratio
    )
    # a re-audit of the call from a mono copy replaces the row
    mono = write_wav(tmp_path / "m.wav", [render(call, 11)[0]], rate=RATE)
    again = audit_call(
        CallInput("c", str(mono)), options, transcriber=scripted(lambda ch: [speech[0]])
    )
    store.write_call(con, again)
    not_run = con.execute("SELECT not_run FROM call_metrics WHERE call_id = 'c'").fetchone()[0]
    for check in ("overtalk", "interruptions", "shouting", "pace"):
        assert f"{check}: mono recording" in not_run
    assert "dead_air" not in not_run
    con.close()


def test_without_a_vad_timeline_no_conduct_check_runs(tmp_path):
    wav = write_wav(tmp_path / "c.wav", render(conversation(4), 0), rate=RATE)

    def plain(channels, options):
        return [Utterance(0, "agent", 0.0, 1.0, "你这个速度" * 6, "x", -0.2, 0.01)]

    result = audit_call(CallInput("c", str(wav)), AuditOptions(learned=False), transcriber=plain)
    assert [f for f in result.findings if f.category == "conduct"] == []
    assert "no VAD speech timeline" in result.metrics.not_run
    assert "pace" in result.metrics.not_run


def test_a_database_from_before_conduct_checks_is_upgraded(tmp_path):
    db = tmp_path / "old.duckdb"
    con = store.connect(db)
    for view in ("agent_scorecard", "agent_conduct", "conduct_by_agent_day"):
        con.execute(f"DROP VIEW {view}")
    con.execute("DROP TABLE call_metrics")
    con.execute("INSERT INTO calls (call_id, status, agent_id) VALUES ('old', 'ok', 'A1')")
    con.close()
    from audit import report

    snap = report.open_snapshot(db)  # read-only: an old file still makes a report
    assert snap.execute("SELECT agent_id FROM agent_conduct").fetchall() == []
    snap.close()
    con = store.connect(db)
    assert con.execute("SELECT count(*) FROM call_metrics").fetchone()[0] == 0
    assert con.execute("SELECT calls, avg_talk_ratio FROM agent_scorecard").fetchone() == (1, None)
    con.close()


def test_long_recordings_join_their_windows_timelines():
    call = conversation(16, seed=12)
    channels = render(call, 12)
    speech = [vad_like(call.agent, call.duration), vad_like(call.customer, call.duration)]
    whole = conduct.measure(channels, speech, ["agent", "customer"])
    cut = round(call.duration / 2, 1)
    n = int(cut * RATE)
    first = conduct.measure(
        [c[:n] for c in channels],
        [[(a, min(b, cut)) for a, b in s if a < cut] for s in speech],
        ["agent", "customer"],
    )
    second = conduct.measure(
        [c[n:] for c in channels],
        [[(max(a, cut) - cut, b - cut) for a, b in s if b > cut] for s in speech],
        ["agent", "customer"],
    )
    first.extend(second, cut)
    for joined, one in zip(first.channels, whole.channels, strict=True):
        assert len(joined.spurts) == len(one.spurts)
        for (a, b), (c, d) in zip(joined.spurts, one.spurts, strict=True):
            assert abs(a - c) < 0.02 and abs(b - d) < 0.02
        assert len(joined.frame_db) == len(one.frame_db)
    m1 = conduct.judge(first, [], POLICY.conduct, "v")[1]
    m2 = conduct.judge(whole, [], POLICY.conduct, "v")[1]
    assert m1.talk_ratio == pytest.approx(m2.talk_ratio, abs=0.01)


def test_conduct_views_are_queryable(tmp_path):
    db = tmp_path / "v.duckdb"
    con = store.connect(db)
    con.execute(
        "INSERT INTO calls (call_id, status, agent_id, started_at, timezone) VALUES "
        "('x', 'ok', 'A1', TIMESTAMPTZ '2026-03-02 10:00:00+08', 'Asia/Shanghai'), "
        "('y', 'ok', 'A1', TIMESTAMPTZ '2026-03-03 10:00:00+08', 'Asia/Shanghai')"
    )
    for call_id, ratio, over in (("x", 0.6, 2.0), ("y", 0.8, 4.0)):
        store.write_metrics(
            con, call_id, conduct.CallMetrics(talk_ratio=ratio, overtalk_s=over, interruptions=1)
        )
    days = con.execute(
        "SELECT day, avg_talk_ratio, avg_overtalk_s FROM conduct_by_agent_day ORDER BY day"
    ).fetchall()
    assert [(str(d), r, o) for d, r, o in days] == [
        ("2026-03-02", 0.6, 2.0),
        ("2026-03-03", 0.8, 4.0),
    ]
    assert con.execute("SELECT avg_overtalk_s FROM agent_scorecard").fetchone()[0] == 3.0
    con.close()


def test_bleed_of_the_agent_on_the_customer_channel_is_not_overtalk():
    call = conversation(12, seed=13)
    agent, customer = render(call, 13)
    customer = customer + agent * 10 ** (-35 / 20)  # echo 35 dB down
    # the worst case: the customer's VAD fires on the echo too
    speech = [
        vad_like(call.agent, call.duration),
        vad_like(call.agent + call.customer, call.duration),
    ]
    timeline = conduct.measure([agent, customer], speech, ["agent", "customer"])
    hits, m = conduct.judge(timeline, [], POLICY.conduct, POLICY.conduct_version)
    assert hits == [] and m.overtalk_s < 0.1
    talk_c = sum(t.end - t.start for t in call.customer)
    assert m.customer_talk_s == pytest.approx(talk_c, abs=0.1)


def test_a_bad_conduct_override_is_a_usage_error(cli, tmp_path):
    import subprocess

    (tmp_path / "inbox").mkdir()
    args = [*cli, "audit", str(tmp_path / "inbox"), "--db", str(tmp_path / "a.duckdb")]
    proc = subprocess.run([*args, "--shout-db", "-3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--shout-db must not be negative" in proc.stderr
    assert not (tmp_path / "a.duckdb").exists()


# ---------------------------------------------------------------- report, reviews, re-audits


@pytest.fixture
def audited_overtalk(tmp_path):
    """A stereo call with planted overtalk, audited (scripted words, VAD as the turns) and
    stored with a call record."""
    call = conversation(10, seed=11)
    victim = max(call.customer, key=lambda t: t.end - t.start)
    call.agent[3] = Turn(round(victim.start + 0.3, 2), round(victim.end - 0.2, 2))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    wav = write_wav(inbox / "c.wav", render(call, 11), rate=RATE)
    speech = [vad_like(call.agent, call.duration), vad_like(call.customer, call.duration)]
    options = AuditOptions(learned=False)
    result = audit_call(CallInput("c", str(wav)), options, transcriber=scripted(lambda _: speech))
    db = tmp_path / "a.duckdb"
    con = store.connect(db)
    store.write_call(con, result)
    con.execute("UPDATE calls SET agent_id = 'A9' WHERE call_id = 'c'")
    con.close()
    return SimpleNamespace(db=db, inbox=inbox, result=result, options=options, speech=speech)


def test_conduct_findings_in_the_report_with_their_clip_and_reviews(audited_overtalk):
    from audit import report
    from audit.review import record_review, rule_precision

    db = audited_overtalk.db
    fid = next(f.finding_id for f in audited_overtalk.result.findings if f.category == "conduct")
    con = store.connect(db)
    record_review(con, fid, "confirmed", note="heard it", reviewer="qa")
    assert rule_precision(con, "CN-CON-OVERTALK") == (1.0, 1)
    stats = con.execute(
        "SELECT reviewed, confirmed, reviewed_precision FROM rule_stats "
        "WHERE rule_id = 'CN-CON-OVERTALK'"
    ).fetchone()
    assert stats == (1, 1, 1.0)
    card = con.execute(
        "SELECT avg_talk_ratio, avg_overtalk_s, risk_points, worst_category FROM agent_scorecard "
        "WHERE agent_id = 'A9'"
    ).fetchone()
    assert card[1] == pytest.approx(audited_overtalk.result.metrics.overtalk_s, abs=0.01)
    assert card[2] == 3 and card[3] == "conduct"  # medium: 3 risk points
    con.close()
    page = report.render_report(db, db.parent / "r.html").read_text(encoding="utf-8")
    assert "How calls were conducted, per agent and day" in page
    at = page.index("坐席与客户同时说话")
    row = page[page.rindex("<tr", 0, at) : page.index("</tr>", at)]
    assert "CN-CON-OVERTALK" in row and "<audio" in row  # the evidence row plays its clip
    files = report.export(db, db.parent / "csv", "csv")
    names = {p.stem for p in files}
    assert {"call_metrics", "agent_conduct", "conduct_by_agent_day"} <= names


def test_a_change_of_conduct_thresholds_makes_the_call_due_and_reaudit_says_so(
    audited_overtalk,
):
    from audit import batch
    from audit.pipeline import discover
    from audit.reaudit import reaudit

    con = store.connect(audited_overtalk.db)
    same = batch.plan_batch(discover(audited_overtalk.inbox), con, audited_overtalk.options)
    assert same.todo == [] and len(same.skipped) == 1
    stricter = replace(audited_overtalk.options, policy=load_policy("cn", overtalk_s=3.0))
    due = batch.plan_batch(discover(audited_overtalk.inbox), con, stricter)
    assert [c.call_id for c in due.todo] == ["c"]
    conduct_before = con.execute(
        "SELECT finding_id FROM findings WHERE category = 'conduct'"
    ).fetchall()
    summary = reaudit(con, learned=False, policy=load_policy("cn", overtalk_s=3.0))
    assert summary.calls == 0 and summary.conduct_due == 1  # the text was judged alike
    after = con.execute("SELECT finding_id FROM findings WHERE category = 'conduct'").fetchall()
    assert after == conduct_before  # conduct comes from the audio: kept
    version = con.execute("SELECT rules_version FROM calls").fetchone()[0]
    assert version.endswith(audited_overtalk.result.metrics.conduct_version)
    con.close()


def test_a_long_recording_is_measured_window_by_window(tmp_path):
    """Recordings over ``long_recording_s`` are decoded and transcribed in windows: the
    conduct timeline is joined across them, so an overlap across a window edge is one."""
    call = conversation(12, seed=11)
    victim = max(call.customer, key=lambda t: t.end - t.start)
    call.agent[3] = Turn(round(victim.start + 0.3, 2), round(victim.end - 0.2, 2))
    wav = write_wav(tmp_path / "long.wav", render(call, 11), rate=RATE)
    window = round((victim.start + victim.end) / 2, 1)  # a window edge inside the overlap
    truth = [vad_like(call.agent, call.duration), vad_like(call.customer, call.duration)]
    seen = []

    def per_window(channels, options):
        offset, n = len(seen) * window, len(channels[0]) / RATE
        seen.append(offset)
        speech = [
            [(max(a, offset) - offset, min(b, offset + n) - offset) for a, b in s] for s in truth
        ]
        return Transcript([], [[(a, b) for a, b in s if b > a] for s in speech])

    options = AuditOptions(learned=False, long_recording_s=1.0, window_s=window)
    result = audit_call(CallInput("long", str(wav)), options, transcriber=per_window)
    assert result.status == "ok", result.error
    assert len(seen) >= 2
    found = [f for f in result.findings if f.rule_id == "CN-CON-OVERTALK"]
    assert len(found) == 1 and near(found[0], call.agent[3].start, call.agent[3].end), found
    assert result.metrics.not_run is None
    whole, _ = judge_synth(call, 11)
    assert [h.rule_id for h in whole] == ["CN-CON-OVERTALK"]
