"""A log pipeline: Debian's rsyslog ships syslog lines to the broker with omkafka.

rsyslogd runs in the foreground with its own config in a temp dir: imtcp on a free
127.0.0.1 port, every message (its raw text, template %rawmsg%) to one topic through
omkafka, which links the system librdkafka 2.0.2 (ApiVersions v3, Metadata v4, Produce v7,
acks=-1, its defaults). 1,000 syslog lines go in over TCP and a consumer must read every one
of them back, once. rsyslogd is stopped by its PID.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from compat_tests.clients import BY_NAME, ConsumeTimeout, create_topic
from tests.broker_process import free_port

LINES = 1000
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
OMKAFKA = [p for p in ("/usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so", "/usr/lib/aarch64-linux-gnu/rsyslog/omkafka.so",
                       "/usr/lib/rsyslog/omkafka.so") if Path(p).exists()]

CONFIG = """\
global(workDirectory="{workdir}")
module(load="imtcp")
module(load="omkafka")
template(name="raw" type="string" string="%rawmsg%")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="to-kafka")
ruleset(name="to-kafka") {{
  action(type="omkafka" broker=["{bootstrap}"] topic="{topic}" template="raw")
}}
"""


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"rsyslogd exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"rsyslogd did not listen on 127.0.0.1:{port} within {timeout}s")


@pytest.mark.timeout(180)
def test_rsyslog_omkafka_delivers_every_line(broker, topic_name, tmp_path):
    assert Path(RSYSLOGD).exists() and OMKAFKA, \
        "rsyslogd with omkafka is not installed (Debian packages rsyslog rsyslog-kafka; scripts/test.sh installs them)"
    consumer = BY_NAME["confluent-kafka"]
    create_topic(consumer, broker.bootstrap, topic_name, partitions=1)
    port = free_port()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(CONFIG.format(workdir=tmp_path, port=port, bootstrap=broker.bootstrap, topic=topic_name))
    log_path = tmp_path / "rsyslogd.out"
    with open(log_path, "wb") as log:
        rsyslogd = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_for_port(port, rsyslogd)
        sent = [f"<134>Nov 25 21:00:{i % 60:02d} compat-host app[{4000 + i}]: line {i} of {LINES} \u00e9t\u00e9 "
                f"key=value \"quoted\"" for i in range(LINES)]
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall("".join(line + "\n" for line in sent).encode())

        try:
            received = consumer.consume(broker.bootstrap, topic_name, {0: (0, LINES)}, timeout=90)
        except ConsumeTimeout as short:
            raise AssertionError(f"{short}\nrsyslogd output:\n{log_path.read_text(errors='replace')[-3000:]}")
        assert Counter(r.value for r in received) == Counter(line.encode() for line in sent)
        assert all(r.key is None for r in received)
        # Nothing beyond the 1,000 lines: each was appended once.
        assert consumer.latest(broker.bootstrap, topic_name, [0]) == {0: LINES}
    finally:
        if rsyslogd.poll() is None:
            rsyslogd.send_signal(signal.SIGTERM)
            try:
                rsyslogd.wait(15)
            except subprocess.TimeoutExpired:
                rsyslogd.kill()
                rsyslogd.wait()
