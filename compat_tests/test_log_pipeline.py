"""Log pipelines: Debian's rsyslog (omkafka) and syslog-ng (kafka-c) ship syslog lines to the broker.

Each shipper runs in the foreground with its own config in a temp dir: a TCP syslog input on a
free 127.0.0.1 port, every message's raw text to one topic through its Kafka output, which links
the system librdkafka 2.0.2 (ApiVersions v3, Metadata v4, Produce v7, acks=-1, its defaults).
1,000 syslog lines go in over TCP and a consumer must read every one of them back, once. The
shipper is stopped by its PID.

syslog-ng's Kafka module conflicts with rsyslog in apt, so scripts/test.sh unpacks Debian's
syslog-ng-core and syslog-ng-mod-rdkafka into SYSLOG_NG_PREFIX instead of installing them.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from compat_tests.clients import BY_NAME, ConsumeTimeout, create_topic
from tests.broker_process import free_port

LINES = 1000
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
OMKAFKA = [p for p in ("/usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so", "/usr/lib/aarch64-linux-gnu/rsyslog/omkafka.so",
                       "/usr/lib/rsyslog/omkafka.so") if Path(p).exists()]
SYSLOG_NG_PREFIX = Path("/opt/syslog-ng-kafka")
SYSLOG_NG = SYSLOG_NG_PREFIX / "usr/sbin/syslog-ng"
SYSLOG_NG_MODULES = SYSLOG_NG_PREFIX / "usr/lib/syslog-ng/3.38"

RSYSLOG_CONFIG = """\
global(workDirectory="{workdir}")
module(load="imtcp")
module(load="omkafka")
template(name="raw" type="string" string="%rawmsg%")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="to-kafka")
ruleset(name="to-kafka") {{
  action(type="omkafka" broker=["{bootstrap}"] topic="{topic}" template="raw"{options})
}}
"""

# flags(no-parse): $MSG is the whole line as received, as rsyslog's %rawmsg%.
SYSLOG_NG_CONFIG = """\
@version: 3.38
options {{ stats_freq(0); }};
source s_tcp {{ network(ip("127.0.0.1") port({port}) transport("tcp") flags(no-parse)); }};
destination d_kafka {{ kafka-c(bootstrap-servers("{bootstrap}") topic("{topic}") message("$MSG")); }};
log {{ source(s_tcp); destination(d_kafka); }};
"""


@dataclass(frozen=True)
class Shipper:
    name: str
    config: str
    command: Callable[[Path, Path], list[str]]  # (config file, work dir) -> argv
    missing: Callable[[], str | None]  # why it cannot run here, or None
    env: dict[str, str] | None = None


SHIPPERS = [
    Shipper("rsyslog", RSYSLOG_CONFIG,
            lambda conf, work: [RSYSLOGD, "-n", "-f", str(conf), "-i", str(work / "rsyslogd.pid")],
            lambda: None if Path(RSYSLOGD).exists() and OMKAFKA else
            "rsyslogd with omkafka is not installed (Debian packages rsyslog rsyslog-kafka; scripts/test.sh installs them)"),
    Shipper("syslog-ng", SYSLOG_NG_CONFIG,
            lambda conf, work: [str(SYSLOG_NG), "-F", "--no-caps", "-f", str(conf), f"--module-path={SYSLOG_NG_MODULES}",
                                "-R", str(work / "persist"), "-p", str(work / "pid"), "-c", str(work / "ctl")],
            lambda: None if SYSLOG_NG.exists() else
            f"syslog-ng with kafka-c is not unpacked in {SYSLOG_NG_PREFIX} (scripts/test.sh does it)",
            env={"LD_LIBRARY_PATH": str(SYSLOG_NG_PREFIX / "usr/lib/syslog-ng")}),
]


def _wait_for_port(port: int, process: subprocess.Popen, log_path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the shipper exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the shipper did not listen on 127.0.0.1:{port} within {timeout}s")


@contextmanager
def shipping(shipper: Shipper, tmp_path: Path, bootstrap: str, topic: str, options: str = "") -> Iterator[int]:
    """Run `shipper` towards `bootstrap` (rsyslog: `options` added to its omkafka action, e.g.
    confParam); yields the port of its TCP syslog input, stops it afterwards."""
    missing = shipper.missing()
    assert missing is None, missing
    port = free_port()
    conf = tmp_path / f"{shipper.name}.conf"
    conf.write_text(shipper.config.format(workdir=tmp_path, port=port, bootstrap=bootstrap, topic=topic,
                                          options=options))
    log_path = tmp_path / f"{shipper.name}.out"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(shipper.command(conf, tmp_path), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=shipper.env and {**os.environ, **shipper.env})
    try:
        _wait_for_port(port, process, log_path)
        yield port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def syslog_lines(count: int) -> list[str]:
    return [f"<134>Nov 25 21:00:{i % 60:02d} compat-host app[{4000 + i}]: line {i} of {count} \u00e9t\u00e9 "
            f"key=value \"quoted\"" for i in range(count)]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("shipper", SHIPPERS, ids=lambda s: s.name)
def test_a_log_shipper_delivers_every_line(shipper: Shipper, broker, topic_name, tmp_path):
    consumer = BY_NAME["confluent-kafka"]
    create_topic(consumer, broker.bootstrap, topic_name, partitions=1)
    with shipping(shipper, tmp_path, broker.bootstrap, topic_name) as port:
        sent = syslog_lines(LINES)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall("".join(line + "\n" for line in sent).encode())

        try:
            received = consumer.consume(broker.bootstrap, topic_name, {0: (0, LINES)}, timeout=90)
        except ConsumeTimeout as short:
            output = (tmp_path / f"{shipper.name}.out").read_text(errors="replace")
            raise AssertionError(f"{short}\n{shipper.name} output:\n{output[-3000:]}")
        assert Counter(r.value for r in received) == Counter(line.encode() for line in sent)
        assert all(r.key is None for r in received)
        # Nothing beyond the 1,000 lines: each was appended once.
        assert consumer.latest(broker.bootstrap, topic_name, [0]) == {0: LINES}
