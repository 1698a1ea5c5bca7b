"""Re-audit (detection on stored utterances) against full re-transcription.

Audits the sample calls once with the real model (timing it: that is what a rule
change would cost without re-audit), then re-runs detection from the database.
Prints utterances per second for both and the ratio.  Run:
    .venv/bin/python bench/bench_reaudit.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import sample_inbox  # noqa: E402


def main() -> None:
    from audit import store
    from audit.pipeline import AuditOptions, audit_call, discover
    from audit.reaudit import reaudit

    inbox = sample_inbox(1)
    db = Path(tempfile.mkdtemp()) / "bench.duckdb"
    con = store.connect(db)
    options = AuditOptions()
    calls = discover(inbox)
    audit_call(calls[0], options)  # load the model outside the timing
    started = time.perf_counter()
    for call in calls:
        store.write_call(con, audit_call(call, options))
    transcribe_s = time.perf_counter() - started
    n_utt = con.execute("SELECT count(*) FROM utterances").fetchone()[0]

    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        summary = reaudit(con, force=True)
    reaudit_s = (time.perf_counter() - started) / rounds
    assert summary.utterances == n_utt
    con.close()
    print(f"{len(calls)} calls, {n_utt} utterances")
    print(f"full re-transcription : {transcribe_s:8.3f} s  {n_utt / transcribe_s:10.1f} utt/s")
    print(f"re-audit (detection)  : {reaudit_s:8.3f} s  {n_utt / reaudit_s:10.1f} utt/s")
    print(f"re-audit is {transcribe_s / reaudit_s:.0f}x faster than re-transcription")


if __name__ == "__main__":
    main()
