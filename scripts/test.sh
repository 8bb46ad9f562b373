#!/usr/bin/env bash
# Install kbroker with its test dependencies into ./.venv and run the whole suite:
# unit tests (tests/) and real clients against a broker subprocess (compat_tests/).
# The compat tests also drive Debian's kcat, rsyslog's and syslog-ng's Kafka outputs, and the cluster tests a
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
  # syslog-ng's Kafka module conflicts with rsyslog in apt: its libraries from apt, the two
  # packages themselves unpacked into a prefix of their own (compat_tests/test_log_pipeline.py).
  syslog_ng=/opt/syslog-ng-kafka
  if [ ! -x "$syslog_ng/usr/sbin/syslog-ng" ]; then
    missing="$missing libivykis0 libnet1 libwrap0 libjson-c5 libpcre3 libglib2.0-0 libcap2 libsystemd0 librdkafka1"
  fi
  if [ -n "$missing" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null \
      || { apt-get update -q >/dev/null \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null; }
  fi
  if [ ! -x "$syslog_ng/usr/sbin/syslog-ng" ]; then
    debs=$(mktemp -d)
    (cd "$debs" && apt-get download -q syslog-ng-core syslog-ng-mod-rdkafka >/dev/null 2>&1 \
       && for deb in ./*.deb; do dpkg -x "$deb" "$syslog_ng"; done) \
      || echo "could not unpack syslog-ng into $syslog_ng: its log pipeline test will fail" >&2
    rm -rf "$debs"
  fi
fi
# kafkajs for compat_tests/test_kafkajs.py, at the version package-lock.json pins.
if command -v npm >/dev/null && [ ! -d compat_tests/js/node_modules/kafkajs ]; then
  npm ci --prefix compat_tests/js --no-audit --no-fund --loglevel=error >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
