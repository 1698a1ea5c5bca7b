"""What a Dask worker process loads: it imports the flow's module to run the flow's
tasks, and has no use there for DuckDB, the inbox planner or the reports."""

from __future__ import annotations

import subprocess
import sys

FLOW_PROCESS_ONLY = ("duckdb", "audit.store", "audit.report", "audit.manifest", "audit.batch")


def test_importing_the_flow_loads_no_database_and_no_reports():
    code = (
        "import sys, flows.audit_flow; "
        f"print(' '.join(m for m in {FLOW_PROCESS_ONLY!r} if m in sys.modules) or 'none')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["none"]
