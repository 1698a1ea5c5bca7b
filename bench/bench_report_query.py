"""A compliance report query over 1 million synthetic findings in DuckDB.

Builds a database with 200,000 calls and 1,000,000 findings (the real schema and
views), then times the report queries against a baseline scan (count of findings by
category) measured in the same run, and the same queries at 100,000 findings to show
how they scale.  Run:
    .venv/bin/python bench/bench_report_query.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUERIES = {
    "baseline: findings by category": "SELECT category, count(*) FROM findings GROUP BY 1",
    "top 50 calls by risk (view call_risk)": (
        "SELECT call_id, risk_score FROM call_risk ORDER BY risk_score DESC LIMIT 50"
    ),
    "findings per agent per day": (
        "SELECT c.agent_id, c.started_at::DATE AS day, count(*) FROM findings f "
        "JOIN calls c USING (call_id) GROUP BY ALL ORDER BY 3 DESC LIMIT 20"
    ),
    "critical evidence in a date range": (
        "SELECT f.call_id, f.rule_id, f.text FROM findings f JOIN calls c USING (call_id) "
        "WHERE f.severity = 'critical' AND c.started_at >= TIMESTAMPTZ '2026-01-03 00:00:00+08' "
        "AND c.started_at < TIMESTAMPTZ '2026-01-10 00:00:00+08'"
    ),
}


def build(n_findings: int) -> object:
    from audit import store

    db = Path(tempfile.mkdtemp()) / "report.duckdb"
    con = store.connect(db)
    n_calls = n_findings // 5
    con.execute(f"""
        INSERT INTO calls (call_id, status, duration_s, agent_id, debtor_id, started_at,
                           callee_relation)
        SELECT 'c' || i, 'ok', 60 + i % 300, 'agent' || (i % 400), 'debtor' || (i % 50000),
               TIMESTAMPTZ '2026-01-01 08:00:00+08' + to_minutes(i % 500000),
               CASE WHEN i % 20 = 0 THEN 'third_party' ELSE 'debtor' END
        FROM range({n_calls}) t(i)""")
    con.execute(f"""
        INSERT INTO findings (finding_id, call_id, rule_id, category, severity, speaker,
                              utterance_idx, start_s, end_s, text, match, via, citation)
        SELECT 'f' || i, 'c' || (i % {n_calls}),
               'R' || (i % 17),
               ['threat','insult','harassment','third_party_disclosure','impersonation',
                'false_legal_claim','inducement_to_borrow','pii_exposure'][1 + i % 8],
               ['low','medium','high','critical'][1 + (i * 7) % 4],
               'agent', i % 40, i % 600, i % 600 + 4, '你再不还钱，明天我们就派人去你单位找你',
               '去你单位', 'text', 'CBA-2026 §prohibited-2'
        FROM range({n_findings}) t(i)""")
    return con


def time_query(con, sql: str, repeat: int = 5) -> float:
    con.execute(sql).fetchall()  # warm
    started = time.perf_counter()
    for _ in range(repeat):
        con.execute(sql).fetchall()
    return (time.perf_counter() - started) / repeat


def main() -> None:
    results = {}
    for n in (100_000, 1_000_000):
        t0 = time.perf_counter()
        con = build(n)
        print(f"built {n:,} findings in {time.perf_counter() - t0:.1f} s")
        results[n] = {name: time_query(con, sql) for name, sql in QUERIES.items()}
        rows = con.execute(QUERIES["critical evidence in a date range"]).fetchall()
        assert rows, "the date-range query must select something"
        print(f"  date-range query returns {len(rows):,} critical findings")
        con.close()
    base = results[1_000_000]["baseline: findings by category"]
    print(f"{'query':<42}{'100k':>9}{'1M':>9}{'1M/base':>9}{'1M/100k':>9}")
    for name in QUERIES:
        small, big = results[100_000][name], results[1_000_000][name]
        print(
            f"{name:<42}{small * 1000:8.1f}ms{big * 1000:7.1f}ms{big / base:8.1f}x"
            f"{big / small:8.1f}x"
        )


if __name__ == "__main__":
    main()
