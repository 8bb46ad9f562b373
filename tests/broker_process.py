"""A kbroker started as a subprocess on a free 127.0.0.1 port with its own data dir.

Tests start what they need and stop it by its PID: SIGTERM for a clean shutdown, SIGKILL
for a crash.
"""
from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kbroker.zookeeper_process import free_port


class BrokerProcess:
    def __init__(self, data_dir: Path, overrides: dict[str, str] | None = None, port: int | None = None,
                 open_file_limit: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.overrides = dict(overrides or {})
        self.port = port or free_port()
        self.open_file_limit = open_file_limit  # RLIMIT_NOFILE (soft and hard) for the broker process
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-broker.log"
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> BrokerProcess:
        return self.launch().wait_listening(timeout)

    def launch(self) -> BrokerProcess:
        """Start the process without waiting (brokers of a cluster start side by side)."""
        args = [sys.executable, "-m", "kbroker", "serve", "--data-dir", str(self.data_dir)]
        if "listeners" not in self.overrides:  # else the test names every listener, `port` among them
            args += ["--listen", self.bootstrap]
        for key, value in self.overrides.items():
            args += ["-o", f"{key}={value}"]
        log = open(self.log_path, "ab")
        limit = self.open_file_limit
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=None if limit is None
                                        else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
        log.close()
        return self

    def wait_listening(self, timeout: float = 15.0) -> BrokerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"broker did not listen within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: a clean shutdown. Returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"broker ignored SIGTERM for {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed or checkpointed."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self) -> BrokerProcess:
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except FileNotFoundError:
            return ""
