"""scripts/readme_outputs.py: the README's printed outputs come from a demo database.

Here on the sample calls audited with the sample manifest and scripted transcripts (no
Whisper); the check against the real demo run's database is in tests/test_e2e.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT, SAMPLES
from tests.test_manifest import audit_with_manifest

SCRIPT = ROOT / "scripts" / "readme_outputs.py"


@pytest.fixture(scope="module")
def scripted_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("readme") / "demo.duckdb"
    audit_with_manifest(SAMPLES / "inbox", SAMPLES / "calls.csv", db)
    return db


def outputs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def readme(scripted_db, tmp_path) -> Path:
    """A copy of the README written from the scripted database."""
    path = tmp_path / "README.md"
    path.write_text((ROOT / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    proc = outputs("--write", "--db", str(scripted_db), "--readme", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path


def test_the_readme_marks_every_printed_output_of_the_demo():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    names = re.findall(r"<!-- generated: ([a-z0-9-]+) \(transcripts [0-9a-f]{12}\) -->", text)
    assert names == [
        "demo-summary",
        "facts",
        "category-counts",
        "critical-findings",
        "call-risk",
        "contact-findings",
        "review-output",
        "rule-stats",
        "agent-scorecard",
    ]
    assert text.count("<!-- /generated -->") == len(names)
    # one fingerprint: every block was written from the same demo run
    assert len(set(re.findall(r"\(transcripts ([0-9a-f]{12})\)", text))) == 1


def test_write_then_check_agree_and_the_outputs_are_the_databases(readme, scripted_db):
    proc = outputs("--check", "--db", str(scripted_db), "--readme", str(readme))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "9 blocks match the database" in proc.stdout
    text = readme.read_text(encoding="utf-8")
    with duckdb.connect(str(scripted_db), read_only=True) as con:
        total = con.execute("SELECT count(*) FROM findings").fetchone()[0]
        calls = con.execute("SELECT count(*) FROM calls").fetchone()[0]
        top = con.execute(
            "SELECT call_id, risk_score FROM call_risk ORDER BY risk_score DESC, call_id LIMIT 1"
        ).fetchone()
    assert f"  findings in db   : {total}\n" in text
    assert f"  calls in database: {calls}\n" in text
    assert re.search(rf"│ {top[0]} +│ +{top[1]} │", text), top
    # The review block is what `callaudit review` printed, on a copy: the database is untouched.
    assert "(CN-CT-QUIET-HOURS, call call_03_threat): confirmed by qa-li" in text
    with duckdb.connect(str(scripted_db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM reviews").fetchone()[0] == 0


def test_a_changed_figure_fails_the_check_with_a_diff(readme, scripted_db):
    text = readme.read_text(encoding="utf-8")
    changed = re.sub(r"(  findings in db   : )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 1}", text)
    readme.write_text(changed, encoding="utf-8")
    proc = outputs("--check", "--db", str(scripted_db), "--readme", str(readme))
    assert proc.returncode == 1
    assert re.search(r"^-  findings in db   : \d+$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^\+  findings in db   : \d+$", proc.stdout, re.M), proc.stdout
    assert "run python scripts/readme_outputs.py --write" in proc.stderr


def _as_if_from_another_cpu(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8")
    other = re.sub(r"\(transcripts [0-9a-f]{12}\)", "(transcripts 000000000000)", text)
    # the exact figures of the other machine's run differ; its promises do not
    return re.sub(r"(  findings in db   : )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 3}", other)


def test_other_transcripts_check_only_what_holds_on_any_cpu(readme, scripted_db):
    readme.write_text(_as_if_from_another_cpu(readme), encoding="utf-8")
    proc = outputs("--check", "--db", str(scripted_db), "--readme", str(readme))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exact figures were made from transcripts 000000000000" in proc.stdout
    assert "every labelled category found per call" in proc.stdout


def changed_copy(scripted_db: Path, tmp_path: Path, name: str, sql: str) -> Path:
    """A copy of the scripted database with one statement applied."""
    db = tmp_path / name
    db.write_bytes(scripted_db.read_bytes())
    with duckdb.connect(str(db)) as con:
        con.execute(sql)
    return db


def finding_on(call_id: str, category: str) -> str:
    rule = f"ML-{category.upper().replace('_', '-')}"
    return (
        "INSERT INTO findings (finding_id, call_id, rule_id, category, severity, citation) "
        f"VALUES ('x-{call_id}', '{call_id}', '{rule}', '{category}', 'high', 'test')"
    )


def test_other_transcripts_may_add_a_category_beyond_the_labels(readme, scripted_db, tmp_path):
    # Another CPU's Whisper may hear one more violation in a violating call: a note, not a
    # failure.  Losing a labelled category is a failure (next test).
    readme.write_text(_as_if_from_another_cpu(readme), encoding="utf-8")
    sql = finding_on("call_03_threat", "inducement_to_borrow")
    db = changed_copy(scripted_db, tmp_path, "extra.duckdb", sql)
    proc = outputs("--check", "--db", str(db), "--readme", str(readme))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "beyond the labels: call_03_threat" in proc.stdout
    assert "'inducement_to_borrow'" in proc.stdout


def test_other_transcripts_with_another_category_fail_the_check(readme, scripted_db, tmp_path):
    readme.write_text(_as_if_from_another_cpu(readme), encoding="utf-8")
    text = readme.read_text(encoding="utf-8")
    facts = text.split("<!-- generated: facts")[1].split("<!--\n", 1)[1].split("\n-->")[0]
    found = json.loads(facts)
    assert found["call_01_compliant"] == [] and found["call_03_threat"]
    found["call_03_threat"] = ["insult"]
    readme.write_text(text.replace(facts, json.dumps(found, indent=1)), encoding="utf-8")
    proc = outputs("--check", "--db", str(scripted_db), "--readme", str(readme))
    assert proc.returncode == 1
    assert "call_03_threat: README categories ['insult'] lack ['threat']" in proc.stderr

    # A labelled category the database lacks fails it.
    sql = "DELETE FROM findings WHERE call_id = 'call_03_threat' AND category = 'threat'"
    db = changed_copy(scripted_db, tmp_path, "lost.duckdb", sql)
    readme.write_text(text, encoding="utf-8")
    proc = outputs("--check", "--db", str(db), "--readme", str(readme))
    assert proc.returncode == 1
    assert "call_03_threat: labelled ['threat'], database [" in proc.stderr

    # A compliant call with a finding in the database fails it too.
    sql = finding_on("call_01_compliant", "insult")
    db = changed_copy(scripted_db, tmp_path, "dirty.duckdb", sql)
    proc = outputs("--check", "--db", str(db), "--readme", str(readme))
    assert proc.returncode == 1
    assert "compliant call_01_compliant has findings: ['insult']" in proc.stderr


def test_a_missing_database_says_how_to_make_one(tmp_path):
    proc = outputs("--check", "--db", str(tmp_path / "none.duckdb"))
    assert proc.returncode == 2 and "bash scripts/demo.sh" in proc.stderr
