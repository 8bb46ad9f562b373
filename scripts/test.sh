#!/usr/bin/env bash
# Install kbroker with its test dependencies into ./.venv and run the whole suite:
# unit tests (tests/) and real clients against a broker subprocess (compat_tests/).
# The compat tests also drive Debian's kcat and rsyslog's Kafka output, and the cluster tests a
# real ZooKeeper (Debian's zookeeper package, Java), the console test a headless Chromium; as root
# on Debian this installs them, otherwise install `kcat rsyslog rsyslog-kafka`, `zookeeper` and
# `chromium` (--no-install-recommends) yourself. kafkajs comes from npm (compat_tests/js).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=""
  command -v kcat >/dev/null || missing="$missing kcat"
  [ -e /usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so ] || [ -n "$(find /usr/lib -name omkafka.so 2>/dev/null | head -1)" ] || missing="$missing rsyslog rsyslog-kafka"
  [ -e /usr/share/java/zookeeper.jar ] || missing="$missing zookeeper"
  command -v chromium >/dev/null || missing="$missing chromium"
  command -v npm >/dev/null || missing="$missing nodejs npm"
  if [ -n "$missing" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null \
      || { apt-get update -q >/dev/null \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null; }
  fi
fi
# kafkajs for compat_tests/test_kafkajs.py, at the version package-lock.json pins.
if command -v npm >/dev/null && [ ! -d compat_tests/js/node_modules/kafkajs ]; then
  npm ci --prefix compat_tests/js --no-audit --no-fund --loglevel=error >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
