"""Contact rules (sql/contact/*.sql) with the cn and us policy packs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from audit import contact, store
from audit.manifest import CallRecord
from audit.policy import PolicyError, load_policy
from tests.conftest import SAMPLES
from tests.test_manifest import audit_with_manifest, query

CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> Path:
    """The sample calls audited with the sample manifest (scripted transcriber)."""
    db = tmp_path_factory.mktemp("contact") / "samples.duckdb"
    audit_with_manifest(SAMPLES / "inbox", SAMPLES / "calls.csv", db)
    return db


def contact_findings(db: Path) -> dict[str, list[tuple[str, str]]]:
    rows = query(
        db,
        "SELECT category, call_id, rule_id, text FROM findings WHERE via = 'sql' "
        "ORDER BY category, call_id",
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for category, call_id, rule_id, text in rows:
        out.setdefault(category, []).append((call_id, f"{rule_id}: {text}"))
    return out


def rerun(db: Path, policy: str, **overrides) -> dict[str, int]:
    con = store.connect(db)
    try:
        return contact.run_contact_rules(con, load_policy(policy, **overrides))
    finally:
        con.close()


def test_sample_calls_under_cn_policy(sample_db):
    found = contact_findings(sample_db)
    time_calls = [c for c, _ in found["contact_time"]]
    assert time_calls == ["call_03_threat", "call_04_insult"]
    texts = dict(found["contact_time"])
    assert "22:30 Asia/Shanghai" in texts["call_03_threat"]
    assert "07:15 Asia/Shanghai" in texts["call_04_insult"]
    assert "outside 08:00–22:00" in texts["call_03_threat"]
    assert found["contact_frequency"] == [
        (
            "call_07_false_legal",
            "CN-CF-CONNECTED-PER-DAY: connected call no. 4 with debtor D1007 on 2026-03-04 "
            "(Asia/Shanghai); limit 3 a day",
        )
    ]
    citation = query(sample_db, "SELECT citation FROM findings WHERE call_id = 'call_03_threat' "
                     "AND category = 'contact_time'")[0][0]  # fmt: skip
    assert citation.startswith("CBA-2026")


def test_us_policy_moves_the_window_to_21_00(sample_db, tmp_path):
    db = tmp_path / "us.duckdb"
    db.write_bytes(sample_db.read_bytes())
    counts = rerun(db, "us")
    found = contact_findings(db)
    texts = dict(found["contact_time"])
    assert sorted(texts) == ["call_03_threat", "call_04_insult", "call_08_inducement"]
    assert "21:30 Asia/Shanghai" in texts["call_08_inducement"]
    assert "outside 08:00–21:00" in texts["call_08_inducement"]
    assert counts["US-CT-INCONVENIENT-TIME"] == 3
    # Re-running replaced the cn findings: no CN contact rule is left.
    assert query(db, "SELECT count(*) FROM findings WHERE rule_id LIKE 'CN-C%'") == [(0,)]
    # Later calls to D1007 on the day of a conversation fall in Regulation F's 7 days.
    assert "call_07_false_legal" in {c for c, _ in found["contact_frequency"]}


def test_overrides_change_the_numbers(sample_db, tmp_path):
    db = tmp_path / "o.duckdb"
    db.write_bytes(sample_db.read_bytes())
    rerun(db, "cn", window="08:00-21:00", max_connected_per_day=2)
    found = contact_findings(db)
    assert "call_08_inducement" in {c for c, _ in found["contact_time"]}
    frequency = [c for c, _ in found["contact_frequency"]]
    assert frequency == ["call_07_false_legal", "cdr_0704"]  # the 3rd and 4th connected calls


def test_rerunning_keeps_the_same_finding_ids(sample_db, tmp_path):
    db = tmp_path / "r.duckdb"
    db.write_bytes(sample_db.read_bytes())
    ids = "SELECT finding_id FROM findings WHERE via = 'sql' ORDER BY 1"
    before = query(db, ids)
    rerun(db, "cn")
    rerun(db, "cn")
    assert query(db, ids) == before and len(before) == 3


# ------------------------------------------------------------ synthetic call records


def record(call_id: str, started: datetime, **kw) -> CallRecord:
    fields = dict(
        row=0, recording=None, path=None, agent_id="A1", debtor_id="D1",
        callee_number="13800000001", callee_relation="debtor", timezone="Asia/Shanghai",
        duration_s=0.0, direction="outbound", answered=False,
    )  # fmt: skip
    fields.update(kw)
    return CallRecord(call_id=call_id, started_at=started, **fields)


def run_rules(tmp_path: Path, records: list[CallRecord], policy: str = "cn", **kw) -> set[str]:
    """call_id:rule_id of every contact finding, in a fresh database."""
    db = tmp_path / f"t{len(list(tmp_path.glob('*.duckdb')))}.duckdb"
    con = store.connect(db)
    store.write_call_records(con, records)
    contact.run_contact_rules(con, load_policy(policy, **kw))
    hits = con.execute("SELECT call_id || ':' || rule_id FROM findings").fetchall()
    con.close()
    return {h[0] for h in hits}


def test_local_time_comes_from_the_debtor_zone(tmp_path):
    instant = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    hits = run_rules(
        tmp_path,
        [
            record("shanghai", instant),  # 22:30 there
            record("new_york", instant, timezone="America/New_York"),  # 09:30 there
            record("offset", instant, timezone="UTC-07:00"),  # 07:30 there
            record("inbound", instant, direction="inbound"),  # the debtor called
        ],
    )
    assert hits == {"shanghai:CN-CT-QUIET-HOURS", "offset:CN-CT-QUIET-HOURS"}


def test_window_edges(tmp_path):
    day = datetime(2026, 3, 2, tzinfo=CST)
    times = {"h0759": (7, 59), "h0800": (8, 0), "h2159": (21, 59), "h2200": (22, 0)}
    records = [
        record(k, day + timedelta(hours=h, minutes=m), callee_number=k)
        for k, (h, m) in times.items()
    ]
    hits = run_rules(tmp_path, records)
    assert hits == {"h0759:CN-CT-QUIET-HOURS", "h2200:CN-CT-QUIET-HOURS"}


def test_attempts_per_number_per_day(tmp_path):
    start = datetime(2026, 3, 2, 9, 0, tzinfo=CST)
    records = [record(f"a{i}", start + timedelta(minutes=30 * i)) for i in range(8)]
    records.append(record("other_day", start + timedelta(days=1)))
    assert run_rules(tmp_path, records) == {
        "a6:CN-CF-ATTEMPTS-PER-DAY",
        "a7:CN-CF-ATTEMPTS-PER-DAY",
    }
    assert run_rules(tmp_path, records, max_attempts_per_day=7) == {"a7:CN-CF-ATTEMPTS-PER-DAY"}


def test_connected_calls_count_only_answered_calls_with_the_debtor(tmp_path):
    start = datetime(2026, 3, 2, 9, 0, tzinfo=CST)
    records = [record(f"c{i}", start + timedelta(hours=i), answered=True) for i in range(3)]
    records += [
        record("unanswered", start + timedelta(hours=4)),
        record("mother", start + timedelta(hours=5), answered=True, callee_relation="third_party",
               callee_number="13900000009"),
        record("fourth", start + timedelta(hours=6), answered=True),
    ]  # fmt: skip
    assert run_rules(tmp_path, records) == {"fourth:CN-CF-CONNECTED-PER-DAY"}


def test_us_seven_attempts_in_seven_days(tmp_path):
    day1 = datetime(2026, 3, 2, 10, 0, tzinfo=CST)
    # 7 attempts on days 1-7, then one on day 8: the window (days 2-8) holds 7, allowed.
    records = [record(f"d{i}", day1 + timedelta(days=i)) for i in range(8)]
    assert "d7:US-CF-7-IN-7" not in run_rules(tmp_path, records, "us")
    # A second attempt on day 7 makes 8 within days 1-7, and d7 is then the 8th in days 2-8.
    records.append(record("d6b", day1 + timedelta(days=6, hours=1)))
    hits = run_rules(tmp_path, records, "us")
    assert {h for h in hits if h.endswith("7-IN-7")} == {"d6b:US-CF-7-IN-7", "d7:US-CF-7-IN-7"}


def test_us_calls_within_seven_days_after_a_conversation(tmp_path):
    talk = datetime(2026, 3, 2, 10, 0, tzinfo=CST)
    records = [
        record("talk", talk, answered=True),
        record("same_day", talk + timedelta(hours=3)),
        record("day7", talk + timedelta(days=6)),
        record("day8", talk + timedelta(days=7)),
        record("callback", talk + timedelta(days=2), direction="inbound", answered=True),
    ]
    hits = {h for h in run_rules(tmp_path, records, "us") if "AFTER" in h}
    # The debtor's own call back is itself a conversation, which restarts the 7 days.
    assert hits == {
        "same_day:US-CF-AFTER-CONVERSATION",
        "day7:US-CF-AFTER-CONVERSATION",
        "day8:US-CF-AFTER-CONVERSATION",
    }
    without_callback = [r for r in records if r.call_id != "callback"]
    hits = {h for h in run_rules(tmp_path, without_callback, "us") if "AFTER" in h}
    assert hits == {"same_day:US-CF-AFTER-CONVERSATION", "day7:US-CF-AFTER-CONVERSATION"}


def test_policy_errors_are_clear():
    with pytest.raises(PolicyError, match="unknown policy 'uk'"):
        load_policy("uk")
    with pytest.raises(PolicyError, match="policy us has no connected_per_day rule"):
        load_policy("us", max_connected_per_day=2)
    with pytest.raises(PolicyError, match="start 22:00 must be before end 08:00"):
        load_policy("cn", window="22:00-08:00")
    with pytest.raises(PolicyError, match="expected HH:MM"):
        load_policy("cn", window="8am-9pm")


def test_audit_command_options_become_policy_overrides():
    from audit.cli import parse_args
    from audit.policy import overrides_from_args

    args = parse_args(
        ["audit", "inbox", "--db", "x.duckdb", "--manifest", "calls.csv", "--policy", "us",
         "--window", "08:00-20:00", "--max-attempts-in-7-days", "5"]
    )  # fmt: skip
    overrides = overrides_from_args(args)
    assert args.manifest == "calls.csv" and args.policy == "us"
    policy = load_policy(args.policy, **overrides)
    assert policy.rule_for("attempts_in_days.sql").params["max_attempts"] == 5
    window = policy.rule_for("contact_time.sql").params
    assert (window["window_start"].hour, window["window_end"].hour) == (8, 20)


def test_the_flow_takes_a_manifest_and_a_policy_and_publishes_artifacts(tmp_path, monkeypatch):
    """The Prefect flow itself (temporary Prefect server, ~20 s), with the scripted
    transcriber in place of Whisper."""
    from prefect.artifacts import Artifact
    from prefect.testing.utilities import prefect_test_harness

    import flows.audit_flow as audit_flow
    from audit.pipeline import audit_call
    from tests.test_manifest import scripted

    monkeypatch.setattr(
        audit_flow,
        "audit_call",
        lambda call, options: audit_call(call, options, transcriber=scripted(call.call_id)),
    )
    # The harness runs a Prefect server for this test and stops it before pytest ends.
    with prefect_test_harness():
        summary = audit_flow.audit_inbox(
            inbox=str(SAMPLES / "inbox"),
            db=str(tmp_path / "f.duckdb"),
            manifest=str(SAMPLES / "calls.csv"),
            policy="us",
            policy_overrides={"window": "08:00-20:00"},
        )
        assert summary["manifest"]["accepted"] == 15 and summary["manifest"]["errors"] == []
        assert summary["contact"]["policy"] == "us"
        # 22:30, 07:15, 21:30 and the unanswered 20:47 attempt are outside 08:00-20:00.
        assert summary["contact"]["findings"]["US-CT-INCONVENIENT-TIME"] == 4
        assert summary["findings_by_category"]["contact_time"] == 4
        calls = query(tmp_path / "f.duckdb", "SELECT count(*), count(agent_id) FROM calls")
        assert calls == [(15, 15)]
        markdown = Artifact.get("audit-summary")
        table = Artifact.get("top-findings")
        assert markdown is not None and "contact policy us" in markdown.data
        assert table is not None and "CN-IMP-AUTHORITY" in str(table.data)
        assert not re.search(r"[\u4e00-\u9fff]", str(table.data))  # no transcript text
