#!/usr/bin/env bash
# Install kbroker into ./.venv (first run only) and start it: 127.0.0.1:9092, data in ./kbroker-data.
# Extra arguments go to `kbroker serve`, e.g. scripts/serve.sh -o num.partitions=3
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/kbroker serve --data-dir ./kbroker-data --listen 127.0.0.1:9092 "$@"
