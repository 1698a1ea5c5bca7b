"""Mistakes are caught in a second: each bad option, policy, manifest or date exits 2 with
one line, before Prefect or Whisper are even imported, and creates no file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLES

# Runs the real entry point, then says whether anything heavy was started.
PROBE = """
import sys
from audit.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = ["prefect"] if "prefect" in sys.modules else []
transcribe = sys.modules.get("audit.transcribe")
if transcribe is not None and transcribe._MODELS:
    heavy.append("a Whisper model")
print("HEAVY:" + ",".join(heavy))
sys.exit(code)
"""

NAIVE = (SAMPLES / "calls.csv").read_text(encoding="utf-8").replace("+08:00", "")
MISSING_COLUMN = "call_id,recording,agent_id\nc1,call_01_compliant.wav,A1\n"

# (name, command line; {inbox}, {db}, {csv} are filled in)
CASES = [
    ("window without minutes", "audit {inbox} --db {db} --window 8-22"),
    ("window backwards", "audit {inbox} --db {db} --window 22:00-08:00"),
    ("unknown policy pack", "audit {inbox} --db {db} --policy uk"),
    ("negative policy number", "audit {inbox} --db {db} --max-attempts-per-day -1"),
    ("manifest file missing", "audit {inbox} --db {db} --manifest {tmp}/nope.csv"),
    ("manifest column missing", "audit {inbox} --db {db} --manifest {missing}"),
    ("no manifest row accepted", "audit {inbox} --db {db} --manifest {naive}"),
    ("unknown default zone", "audit {inbox} --db {db} --default-timezone localtime"),
    ("unknown rule catalogue", "audit {inbox} --db {db} --rules uk"),
    ("inbox is not a folder", "audit {tmp}/nowhere --db {db}"),
    ("channels not two roles", "audit {inbox} --db {db} --channels agent"),
    ("in-memory database", "audit {inbox} --db :memory:"),
    ("zero workers", "audit {inbox} --db {db} --workers 0"),
    ("negative processes", "audit {inbox} --db {db} --processes -1"),
    ("dask address without port", "audit {inbox} --db {db} --dask-address tcp://10.0.0.5"),
    ("beam size zero", "audit {inbox} --db {db} --beam-size 0"),
    ("unknown device", "audit {inbox} --db {db} --device tpu"),
    ("unknown compute type", "audit {inbox} --db {db} --compute-type int4"),
    ("pii option misspelt", "audit {inbox} --db {db} --pii redact"),
    ("report day not ISO", "report --db {db} --out {tmp}/r.html --from 03/01/2026"),
    ("report days backwards", "report --db {db} --out {tmp}/r --from 2026-03-02 --to 2026-03-01"),
    ("report top zero", "report --db {db} --out {tmp}/r.html --top 0"),
    ("report clip budget zero", "report --db {db} --out {tmp}/r.html --clip-budget-mb 0"),
    ("serve cron invalid", "serve --inbox {inbox} --db {db} --cron '0 25 * * *'"),
    ("serve channels not two roles", "serve --inbox {inbox} --db {db} --channels agent"),
    ("serve zone invalid", "serve --inbox {inbox} --db {db} --timezone Mars/Olympus"),
    ("serve port out of range", "serve --inbox {inbox} --db {db} --port 70000"),
    ("serve policy override invalid", "serve --inbox {inbox} --db {db} --window 9-5"),
    ("serve manifest pattern", "serve --inbox {inbox} --db {db} --manifest cdr/{{day}}.csv"),
    ("check zone invalid", "check --inbox {inbox} --default-timezone posix/Asia/Shanghai"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("bad-options")
    inbox = tmp / "inbox"
    inbox.mkdir()
    (inbox / "call_01_compliant.wav").write_bytes(
        (SAMPLES / "inbox" / "call_01_compliant.wav").read_bytes()
    )
    (tmp / "naive.csv").write_text(NAIVE, encoding="utf-8")
    (tmp / "missing.csv").write_text(MISSING_COLUMN, encoding="utf-8")
    return {
        "tmp": str(tmp),
        "inbox": str(inbox),
        "db": str(tmp / "audit.duckdb"),
        "naive": str(tmp / "naive.csv"),
        "missing": str(tmp / "missing.csv"),
    }


def files_under(root: str) -> set[Path]:
    return {p for p in Path(root).rglob("*")}


@pytest.mark.parametrize("name,command", CASES, ids=[c[0] for c in CASES])
def test_a_bad_option_exits_2_with_one_line_and_creates_nothing(work, name, command):
    import shlex

    args = shlex.split(command.format(**work))
    before = files_under(work["tmp"])
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work["tmp"],
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(err) == 1 and "error" in err[0], err
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY:", "Prefect or Whisper was started"
    assert files_under(work["tmp"]) == before, "a file was created"


def test_the_table_has_at_least_fifteen_rows():
    assert len(CASES) >= 15 and len({c[0] for c in CASES}) == len(CASES)
