#!/usr/bin/env bash
# The README's first command: set everything up, then audit the bundled sample calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p demo
echo "==> auditing samples/inbox into demo/callaudit.duckdb (Prefect flow, Whisper base on CPU)"
exec .venv/bin/callaudit audit samples/inbox --db demo/callaudit.duckdb "$@"
