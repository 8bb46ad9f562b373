"""A real kbroker for tests and scripts: `with EmbeddedBroker(**config) as broker: broker.bootstrap_servers`.

The broker runs as a subprocess (`python -m kbroker serve`), not in a thread of the caller:
`serve()` owns process-wide state — signal handlers (only the main thread may install them),
`gc.freeze()`, the open-file limit and the segment-file cache — so a thread would share them with
the code under test; a subprocess also keeps a broker crash or fd leak out of the test process,
and can always be stopped by its PID. What a thread would gain is start-up time, and the
subprocess already starts within the target (`benchmarks/startup.py`).

It listens on 127.0.0.1 port 0 and reads the bound port back from its own "listening on" log line,
so no port is chosen here and raced for. Ready means that log line is written and the broker
answers ApiVersions. The data dir is a fresh temporary directory unless one is given (`data_dir=`
or `log.dirs`); the temporary one is removed at stop. The broker's log is `log_path` /
`log_text()`. A broker left running is stopped at interpreter exit.

Config keys are Kafka's names: `EmbeddedBroker(**{"num.partitions": 3})`, or the same with
underscores, `EmbeddedBroker(num_partitions=3)`. `DEV_DEFAULTS` are applied unless given:
`group.initial.rebalance.delay.ms=0`, so a consumer group's first join is answered at once instead
of Kafka's 3 s wait for more members (right for production, dead time in tests).
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from kbroker.blocking_client import BlockingClient, BrokerRequestError
from kbroker.config import ConfigError, build_config
from kbroker.errors import ErrorCode

__all__ = ["DEV_DEFAULTS", "ConfigError", "EmbeddedBroker", "EmbeddedBrokerError"]  # ConfigError: a bad config value

DEV_DEFAULTS: dict[str, str] = {"group.initial.rebalance.delay.ms": "0"}

_LISTENING = re.compile(rb"listening on \S+ \(advertised (?P<host>\S+?):(?P<port>\d+)\)")
_POLL_INTERVAL = 0.005
_running: set[EmbeddedBroker] = set()  # subprocesses this process started: stopped at its exit (atexit is process-wide)


class EmbeddedBrokerError(RuntimeError):
    """The broker could not be started or stopped; the message ends with its log."""


def kafka_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Kafka-named string settings from keyword-style ones (`num_partitions=3` -> `num.partitions=3`)."""
    settings = {}
    for name, value in config.items():
        key = name if "." in name else name.replace("_", ".")
        settings[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return settings


class EmbeddedBroker:
    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, startup_timeout: float = 15.0,
                 **config: Any) -> None:
        settings = {**DEV_DEFAULTS, "listeners": "127.0.0.1:0", **kafka_config(config)}
        if data_dir is not None:
            settings["log.dirs"] = str(data_dir)
        build_config(settings)  # a bad value raises ConfigError here, before anything starts
        self.config = settings
        self.startup_timeout = startup_timeout
        self._work_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._final_log = b""
        self.host = ""
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> EmbeddedBroker:
        return self.launch().wait_ready()

    def launch(self) -> EmbeddedBroker:
        """Spawn the broker without waiting for it (a cluster's brokers start side by side)."""
        if self._process is not None:
            raise EmbeddedBrokerError("already started")
        self._work_dir = Path(tempfile.mkdtemp(prefix="kbroker-embedded-"))
        self._log_path = self._work_dir / "broker.log"
        settings = dict(self.config)
        settings.setdefault("log.dirs", str(self._work_dir / "data"))
        args = [sys.executable, "-m", "kbroker", "serve"]
        for key, value in settings.items():
            args += ["-o", f"{key}={value}"]
        try:
            with open(self._log_path, "wb") as log:
                self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except BaseException:
            self._cleanup()
            raise
        _running.add(self)
        return self

    def wait_ready(self) -> EmbeddedBroker:
        """Until the broker answers ApiVersions; on failure it is killed and cleaned up."""
        try:
            self._wait_ready(time.monotonic() + self.startup_timeout)
        except BaseException:
            self._kill()
            self._cleanup()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after `timeout`; removes the temporary data dir.

        Raises EmbeddedBrokerError unless the broker stopped cleanly (it died on its own, or
        ignored SIGTERM).
        """
        if self._process is None:
            return
        try:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    self._process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._kill()
                    raise EmbeddedBrokerError(f"broker ignored SIGTERM for {timeout} s; killed{self._log_tail()}")
            if self._process.returncode != 0:
                raise EmbeddedBrokerError(f"broker exited with code {self._process.returncode}{self._log_tail()}")
        finally:
            self._cleanup()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop_after(exc)

    async def __aenter__(self) -> EmbeddedBroker:
        import asyncio  # only async users pay for it
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        import asyncio
        await asyncio.to_thread(self._stop_after, exc)

    # -- what tests use --------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if not self.port:
            raise EmbeddedBrokerError("the broker is not running")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The broker's log file while it runs (it goes with the temporary dir at stop)."""
        return self._log_path

    def log_text(self, since: int = 0) -> str:
        """What the broker logged from byte `since` on (see `log_size`); after stop, until it stopped."""
        if self._log_path is None:
            return self._final_log[since:].decode(errors="replace")
        with open(self._log_path, "rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    @property
    def log_size(self) -> int:
        """Bytes logged so far: a mark for `log_text(since=...)`."""
        return len(self._final_log) if self._log_path is None else self._log_path.stat().st_size

    def create_topic(self, name: str, partitions: int = 1, config: Mapping[str, Any] | None = None,
                     replication_factor: int = 1) -> None:
        from kbroker.wire.messages.create_topics import (
            CREATE_TOPICS, CreatableTopic, CreatableTopicConfig, CreateTopicsRequest)
        configs = [CreatableTopicConfig(name=key, value=value) for key, value in kafka_config(config or {}).items()]
        with self._client() as client:
            response = client.request(CREATE_TOPICS, 5, CreateTopicsRequest(timeout_ms=30000, topics=[
                CreatableTopic(name=name, num_partitions=partitions, replication_factor=replication_factor,
                               assignments=[], configs=configs)]))
        result = response.topics[0]
        if result.error_code:
            raise BrokerRequestError(f"create topic {name!r}", result.error_code, result.error_message)

    def topics(self) -> list[str]:
        """The topics clients created (internal ones like __consumer_offsets left out)."""
        from kbroker.wire.messages.metadata import METADATA, MetadataRequest
        with self._client() as client:
            response = client.request(METADATA, 1, MetadataRequest(topics=None))
        return sorted(topic.name for topic in response.topics if not topic.is_internal)

    def delete_topics(self, names: list[str]) -> None:
        """Delete topics; one that is already gone is not an error."""
        from kbroker.wire.messages.delete_topics import DELETE_TOPICS, DeleteTopicsRequest
        if not names:
            return
        with self._client() as client:
            response = client.request(DELETE_TOPICS, 4, DeleteTopicsRequest(topic_names=names, timeout_ms=30000))
        for result in response.responses:
            if result.error_code not in (ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION):
                raise BrokerRequestError(f"delete topic {result.name!r}", result.error_code, result.error_message)

    def delete_all_topics(self) -> None:
        """Isolation between tests: every client-created topic goes, with its committed offsets."""
        self.delete_topics(self.topics())

    # -- internals -------------------------------------------------------------------------------

    def _stop_after(self, exc: BaseException | None) -> None:
        """Stop at the end of a with block; a failure to stop does not hide the block's own exception."""
        try:
            self.stop()
        except EmbeddedBrokerError:
            if exc is None:
                raise

    def _wait_ready(self, deadline: float) -> None:
        assert self._process is not None and self._log_path is not None
        while not self.port:
            self._check_alive()
            match = _LISTENING.search(self._log_path.read_bytes())
            if match:
                self.host, self.port = match["host"].decode(), int(match["port"])
            elif time.monotonic() > deadline:
                raise EmbeddedBrokerError(f"broker did not listen within {self.startup_timeout} s{self._log_tail()}")
            else:
                time.sleep(_POLL_INTERVAL)
        from kbroker.wire.messages.api_versions import API_VERSIONS, ApiVersionsRequest
        while True:
            self._check_alive()
            try:
                with self._client(timeout=max(0.1, deadline - time.monotonic())) as client:
                    response = client.request(API_VERSIONS, 0, ApiVersionsRequest())
                if response.error_code == ErrorCode.NONE:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise EmbeddedBrokerError(f"broker did not answer ApiVersions within {self.startup_timeout} s"
                                          f"{self._log_tail()}")
            time.sleep(_POLL_INTERVAL)

    def _check_alive(self) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            raise EmbeddedBrokerError(f"broker exited with code {self._process.returncode}{self._log_tail()}")

    def _client(self, timeout: float = 30.0) -> BlockingClient:
        return BlockingClient(self.host or "127.0.0.1", self.port, timeout=timeout)

    def _log_tail(self, lines: int = 40) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return ":\n" + "\n".join(tail) if tail else ""

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def _cleanup(self) -> None:
        """Keep the log text, remove the temporary dir (and the given data dir stays)."""
        if self._log_path is not None:
            self._final_log = self._log_path.read_bytes()
        _running.discard(self)
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
        self._work_dir = self._log_path = self._process = None
        self.host, self.port = "", 0


@atexit.register
def _stop_all() -> None:
    for broker in list(_running):
        try:
            broker.stop(timeout=5.0)
        except EmbeddedBrokerError:
            pass
