#!/usr/bin/env bash
# The README's first command: set everything up, then audit the bundled sample calls
# (with their call-detail records, so the contact-time and frequency rules run too) and
# write the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p demo
echo "==> auditing samples/inbox into demo/callaudit.duckdb (Prefect flow, Whisper base on CPU)"
set +e
.venv/bin/callaudit audit samples/inbox --db demo/callaudit.duckdb \
    --manifest samples/calls.csv "$@"
rc=$?
set -e
.venv/bin/callaudit report --db demo/callaudit.duckdb --out demo/report.html
echo "report: $(pwd)/demo/report.html"
exit "$rc"
