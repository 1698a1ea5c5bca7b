#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): set up, lint, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "==> ruff"
.venv/bin/ruff check audit flows tests scripts bench
# The report test renders the HTML report in headless Chromium; Chinese evidence needs a
# CJK font or it is drawn as empty boxes. Debian packages, installed once (as root: CI).
if ! command -v chromium >/dev/null 2>&1 || ! fc-list :lang=zh 2>/dev/null | grep -q .; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "==> installing chromium and fonts-noto-cjk (report rendering test)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            chromium fonts-noto-cjk >/dev/null
    else
        echo "==> chromium or a CJK font is missing and we are not root: the test skips" >&2
    fi
fi
echo "==> pytest"
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: treating as a failure" >&2
    exit 1
fi
exit "$rc"
