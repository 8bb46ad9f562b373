"""A real ZooKeeper (Debian's `zookeeper` package) on a free 127.0.0.1 port: for `EmbeddedCluster`
(the pytest plugin's `kafka_cluster`) and kbroker's own cluster tests.

Standalone, with a temporary data dir, no admin HTTP server, stopped by its PID. tickTime=500
lets sessions expire within seconds (ZooKeeper bounds a session timeout to 2-20 ticks: 1-10 s);
`for_session_timeout` picks a tick that grants a longer one.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


_handed_out: set[int] = set()


def free_port() -> int:
    """A 127.0.0.1 port free now and not handed out before by this process. For processes that
    cannot report the port they bound (ZooKeeper; brokers of a cluster, whose ports are chosen
    before any of them starts): two calls with nothing bound in between may otherwise get the same
    port from the OS."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def zookeeper_missing() -> str | None:
    """Why a real ZooKeeper cannot run here, or None."""
    if shutil.which("java") is None:
        return "no java on PATH (apt-get install --no-install-recommends zookeeper)"
    if not Path("/usr/share/java/zookeeper.jar").exists():
        return "Debian's zookeeper package is not installed (apt-get install --no-install-recommends zookeeper)"
    return None


class ZooKeeperProcess:
    def __init__(self, directory: Path, port: int | None = None, tick_ms: int = 500) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.tick_ms = tick_ms
        self.process: subprocess.Popen | None = None

    @classmethod
    def for_session_timeout(cls, directory: Path, session_timeout_ms: int) -> ZooKeeperProcess:
        """A tick with which ZooKeeper grants `session_timeout_ms` (at most 20 ticks): 500 ms up to 10 s."""
        return cls(directory, tick_ms=max(500, math.ceil(session_timeout_ms / 20 / 100) * 100))

    @property
    def connect(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ZooKeeperProcess:
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        config = self.directory / "zoo.cfg"
        config.write_text(f"tickTime={self.tick_ms}\ninitLimit=10\nsyncLimit=5\ndataDir={self.directory / 'data'}\n"
                          f"clientPort={self.port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                          "4lw.commands.whitelist=ruok,srvr\nmaxClientCnxns=0\n")
        log = open(self.directory / "zookeeper.log", "ab")
        self.process = subprocess.Popen(["java", "-Xmx256m", "-cp", CLASSPATH, MAIN, str(config)],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.process.returncode}:\n{self.log()}")
            if self._ruok():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ZooKeeper did not answer within {timeout}s:\n{self.log()}")

    def _ruok(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"ruok")
                return s.recv(4) == b"imok"
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        try:
            return (self.directory / "zookeeper.log").read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""
