#!/bin/sh
# Everything the development setup and the whole test suite need, on a fresh machine, in one
# command (run it inside a venv; README.md and .ci/run both call exactly this):
#   1. Debian's chromium, which the web UI tests of `logarchive serve` drive (Playwright cannot
#      download a browser without internet): installed with apt-get when this runs as root, apt-get
#      exists and /usr/bin/chromium is missing. Otherwise those tests are skipped, saying why.
#   2. pip install -r requirements-dev.txt: core with every extra, every plugin (editable), the
#      test tools.
set -eu
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== apt-get install -y chromium (for the web UI tests)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }
    else
        echo "note: /usr/bin/chromium is missing and this is not root with apt-get: the web UI" \
             "tests will be skipped (as root: apt-get install chromium)" >&2
    fi
fi

echo "== pip install -r requirements-dev.txt"
pip install -r requirements-dev.txt
