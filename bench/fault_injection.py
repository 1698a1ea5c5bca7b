"""Fault injection: randomised batches hit by signals and a full disk at random points.

    .venv/bin/python bench/fault_injection.py [--batches 200] [--seed 1]

Each batch is a fresh inbox of 2-7 recordings with random names (Unicode, spaces,
control characters, very long names) and some duplicated content, audited by a child
process running the library's batch loop (plan, audit, store: what the flow's tasks call)
with a scripted transcriber, so a batch takes about a second.  One fault per batch, at a
random moment: SIGKILL, SIGINT or SIGTERM of the child, or a file-size limit that makes
the database's writes fail part-way (a full disk, as DuckDB sees it), or none.

After each faulted run: the database opens; no utterance or finding without its call;
no call id and no recording (content hash) stored twice.  Then a rerun without a fault
must complete the batch: exactly one ``ok`` call per distinct recording.  Prints one
line per fault kind and exits 1 on the first broken invariant (with the batch's seed).

The Whisper model and Prefect are left out on purpose: they are the same on every batch
and covered end to end by tests/test_nightly.py (SIGINT, kill -9, resume); what this
checks is that no interruption anywhere in the storage path loses or doubles a call.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAULTS = ("none", "sigkill", "sigint", "sigterm", "disk_full")
LINES = (
    ("agent", "您好，我是信和资产的催收员小王，工号3017。"),
    ("customer", "我知道，这个月实在周转不开。"),
    ("agent", "你再不还钱，我们明天就去你单位找你领导。"),
    ("agent", "你这个老赖，脸都不要了。"),
    ("customer", "我下周一定还。"),
    ("agent", "好的，那我们下周再跟您确认，谢谢配合。"),
)
NAME_PARTS = (
    "call",
    "通话",
    "录音 2026-03-02",
    "客户 张三",
    "a b",
    "x\ty",
    "line\nbreak",
    "CON",
    "nul",
    "-rf",
    "=cmd",
    "🙂",
    "ü",
    "..",
)


# -- child: one batch with the library, as a flow run would -----------------------------------
def child(inbox: str, db: str) -> int:
    from dataclasses import replace

    from audit import batch, store
    from audit.pipeline import AuditOptions, audit_call, discover
    from audit.transcribe import Utterance

    def scripted(channels, options):
        time.sleep(random.uniform(0.0, 0.15))  # room for a signal between calls
        return [
            Utterance(i, spk, i * 3.0, i * 3.0 + 2.5, text, text, -0.2, 0.01)
            for i, (spk, text) in enumerate(LINES)
        ]

    options = replace(AuditOptions(), learned=False, correct=False)
    con = store.connect(db)
    try:
        plan = batch.plan_batch(discover(Path(inbox)), con, options)
        for call in plan.todo:
            result = audit_call(call, options, transcriber=scripted)
            try:
                store.write_call(con, result)
            except store.StoreError as exc:  # a full disk: this call is lost, go on
                print(f"not stored: {exc}", file=sys.stderr)
    finally:
        con.close()
    return 0


# -- parent ----------------------------------------------------------------------------------
def tone_wav(path: Path, seed: int, seconds: float = 1.0) -> None:
    import wave

    import numpy as np

    rate = 8000
    t = np.arange(int(rate * seconds)) / rate
    freq = 200 + (seed % 50) * 10
    left = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    right = (0.3 * np.sin(2 * np.pi * (freq + 70) * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.stack([left, right], axis=1).tobytes())


def random_name(rng: random.Random, used: set[str]) -> str:
    while True:
        parts = rng.sample(NAME_PARTS, rng.randint(1, 3))
        name = " ".join(parts).replace("/", "_")
        if rng.random() < 0.15:
            name = name + "长" * rng.randint(40, 70)  # toward the 255-byte name limit
        name = name.encode("utf-8")[:240].decode("utf-8", "ignore").strip(".") or "x"
        name += rng.choice([".wav", ".WAV", ".wav"])
        if name.lower() not in used:
            used.add(name.lower())
            return name


def make_inbox(rng: random.Random, root: Path) -> tuple[Path, set[str]]:
    inbox = root / "inbox"
    inbox.mkdir()
    pool = [rng.randrange(10**6) for _ in range(rng.randint(2, 5))]
    used: set[str] = set()
    contents: set[str] = set()
    for _ in range(rng.randint(2, 7)):
        seed = rng.choice(pool)  # repeated seeds: the same recording under two names
        path = inbox / random_name(rng, used)
        tone_wav(path, seed)
        contents.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return inbox, contents


def run_child(inbox: Path, db: Path, fault: str, rng: random.Random) -> int:
    # Log-uniform: a new database 4 KB - 2 MB (its first page to its last checkpoint); one
    # in use 15-60 KB (its write-ahead log grows from nothing: ~20 KB at open, then calls).
    limit = None
    if fault == "disk_full":
        low, high = (1.5e4, 6e4) if db.exists() else (4e3, 2e6)
        limit = int(math.exp(rng.uniform(math.log(low), math.log(high))))

    def prepare() -> None:
        # Ctrl-C as in a foreground terminal, even if this runner was started in the
        # background (a shell then sets SIGINT to ignored for its children).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(inbox), str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=prepare,
    )
    if fault in ("sigkill", "sigint", "sigterm"):
        time.sleep(rng.uniform(0.5, 4.0))  # imports, planning, or somewhere in the calls
        sig = {"sigkill": signal.SIGKILL, "sigint": signal.SIGINT, "sigterm": signal.SIGTERM}
        if proc.poll() is None:
            proc.send_signal(sig[fault])
    try:
        return proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the child hung") from None


def invariants(db: Path) -> None:
    import duckdb

    with duckdb.connect(str(db)) as con:  # opens (and replays its WAL)
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert tables, "a database file with no tables (a creation cut short)"
        missing = {"calls", "utterances", "findings", "reviews", "runs"} - tables
        assert not missing, f"a half-created database: no {sorted(missing)}"
        orphans = con.execute(
            "SELECT (SELECT count(*) FROM utterances WHERE call_id NOT IN "
            "(SELECT call_id FROM calls)) + (SELECT count(*) FROM findings WHERE call_id "
            "NOT IN (SELECT call_id FROM calls))"
        ).fetchone()[0]
        twice = con.execute(
            "SELECT count(*) FROM (SELECT sha256 FROM calls WHERE status = 'ok' "
            "GROUP BY sha256 HAVING count(*) > 1)"
        ).fetchone()[0]
        gaps = con.execute(
            "SELECT count(*) FROM (SELECT call_id FROM utterances GROUP BY call_id "
            "HAVING count(*) <> max(idx) + 1)"
        ).fetchone()[0]
    assert orphans == 0, f"{orphans} utterances/findings without their call"
    assert twice == 0, f"{twice} recordings stored twice"
    assert gaps == 0, f"{gaps} calls with missing or doubled turns"


def stored_share(db: Path, contents: set[str]) -> str:
    """Where the fault struck: before any call was stored, mid-batch, or after all."""
    import duckdb

    if not db.exists():
        return "before"
    with duckdb.connect(str(db), read_only=True) as con:
        if not con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0]:
            return "before"
        sql = "SELECT count(DISTINCT sha256) FROM calls WHERE status = 'ok'"
        n = con.execute(sql).fetchone()[0]
    return "before" if n == 0 else "mid" if n < len(contents) else "after"


def complete(db: Path, contents: set[str]) -> None:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        stored = Counter(
            r[0] for r in con.execute("SELECT sha256 FROM calls WHERE status = 'ok'").fetchall()
        )
        findings = con.execute("SELECT count(*) FROM findings").fetchone()[0]
    assert set(stored) == contents and set(stored.values()) == {1}, (stored, contents)
    assert findings >= len(contents), "each call's script holds findings"


def run(batches: int, seed: int) -> dict[str, Counter[str]]:
    import duckdb

    counts: dict[str, Counter[str]] = {f: Counter() for f in FAULTS}
    master = random.Random(seed)
    for b in range(batches):
        batch_seed = master.randrange(2**32)
        rng = random.Random(batch_seed)
        fault = FAULTS[b % len(FAULTS)] if b < len(FAULTS) else rng.choice(FAULTS)
        with tempfile.TemporaryDirectory(prefix="callaudit-fault-") as tmp:
            inbox, contents = make_inbox(rng, Path(tmp))
            db = Path(tmp) / "audit.duckdb"
            try:
                if fault == "disk_full" and rng.random() < 0.5:
                    from audit import store  # half the time the disk fills on a database

                    store.connect(db).close()  # already in use, not one being created
                run_child(inbox, db, fault, rng)
                if db.exists():
                    invariants(db)
                where = stored_share(db, contents)
                code = run_child(inbox, db, "none", rng)  # the rerun completes the batch
                assert code == 0, f"rerun exited {code}"
                invariants(db)
                complete(db, contents)
            except (AssertionError, duckdb.Error) as exc:
                raise SystemExit(f"batch {b} (seed {batch_seed}, fault {fault}): {exc!r}") from exc
        counts[fault][where] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", nargs=2, metavar=("INBOX", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(*args.child)
    started = time.perf_counter()
    counts = run(args.batches, args.seed)
    for fault in FAULTS:
        c = counts[fault]
        print(
            f"{fault:<10} {sum(c.values()):>4} batches (struck before any call stored "
            f"{c['before']}, mid-batch {c['mid']}, after all {c['after']}): invariants held, "
            "rerun completed"
        )
    total = sum(sum(c.values()) for c in counts.values())
    print(f"{total} batches in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
