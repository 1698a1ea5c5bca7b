"""Re-audit: a catalogue change recomputes findings from stored utterances, never Whisper."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import pipeline, store, transcribe
from audit.reaudit import reaudit
from audit.rules import RULES_DIR
from tests.test_pipeline_store import inbox, run_batch  # noqa: F401 - fixture reuse


def _catalogue_with_extra_rule(tmp_path: Path) -> Path:
    text = (RULES_DIR / "cn.yaml").read_text(encoding="utf-8")
    extra = """
  - id: CN-TEST-TOMORROW
    category: other
    severity: low
    citation: CBA-2026 §test
    title: test rule added after the first audit
    patterns:
      - [明天]
    examples:
      positive: [明天见]
      negative: [今天见]
"""
    text = text.replace("\ncall_rules:", extra + "\ncall_rules:", 1)
    path = tmp_path / "cn_v2.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_reaudit_updates_findings_keeps_reviews_and_never_transcribes(
    inbox,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    db = tmp_path / "a.duckdb"
    run_batch(inbox, db)
    con = store.connect(db)
    threat_id = con.execute(
        "SELECT finding_id FROM findings WHERE call_id = 'call_a' AND category = 'threat'"
    ).fetchone()[0]
    con.execute("INSERT INTO reviews (finding_id, verdict) VALUES (?, 'confirmed')", [threat_id])
    pii_before = con.execute("SELECT count(*) FROM findings WHERE via = 'validator'").fetchone()[0]

    def no_whisper(*args, **kwargs):
        raise AssertionError("reaudit must not transcribe")

    # Every transcription path goes through get_model; the fake transcriber of the first
    # batch never did, so any call now would be reaudit reaching for Whisper.
    monkeypatch.setattr(transcribe, "get_model", no_whisper)
    monkeypatch.setattr(pipeline, "transcribe_channels", no_whisper)
    new_rules = _catalogue_with_extra_rule(tmp_path)
    summary = reaudit(con, rules=str(new_rules))
    assert summary.calls == 2 and summary.findings_after > summary.findings_before
    rows = con.execute(
        "SELECT call_id, rules_version FROM calls WHERE status = 'ok' ORDER BY 1"
    ).fetchall()
    assert {v for _, v in rows} == {summary.rules_version}
    assert (
        con.execute("SELECT count(*) FROM findings WHERE rule_id = 'CN-TEST-TOMORROW'").fetchone()[
            0
        ]
        == 2
    )  # both ok calls said 明天
    # the reviewed finding still exists under the same id, with its review
    assert (
        con.execute(
            "SELECT count(*) FROM findings f JOIN reviews r USING (finding_id) "
            "WHERE f.finding_id = ?",
            [threat_id],
        ).fetchone()[0]
        == 1
    )
    # PII findings were made on unmasked text at transcription time and are kept
    pii_after = con.execute("SELECT count(*) FROM findings WHERE via = 'validator'").fetchone()[0]
    assert pii_after == pii_before > 0
    # a second reaudit with the same catalogue has nothing to do
    assert reaudit(con, rules=str(new_rules)).calls == 0
    con.close()


@pytest.mark.parametrize("force", [False, True])
def test_reaudit_cli(inbox, tmp_path, cli, force):  # noqa: F811
    import subprocess

    db = tmp_path / "a.duckdb"
    run_batch(inbox, db)
    args = [*cli, "reaudit", "--db", str(db)] + (["--force"] if force else [])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = "re-audited 2 calls" if force else "re-audited 0 calls"
    assert expected in proc.stdout
