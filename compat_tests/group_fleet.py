"""Start consumer-group members as processes (`group_member.py`) and watch what they report.

A `Member` reads its process's JSON lines on a thread: its current assignment, every record it
processed and every commit it saw return, with timestamps. `Fleet` starts members and waits
for group-wide conditions (every partition assigned once, N records consumed).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Member:
    name: str
    process: subprocess.Popen
    assignment: list[int] | None = None          # None until the first assignment
    assignments: list[tuple[float, list[int]]] = field(default_factory=list)
    records: list[tuple[int, int, float]] = field(default_factory=list)  # partition, offset, time
    committed: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    closed: bool = False
    subscribed_at: float | None = None
    output: list[str] = field(default_factory=list)
    stderr: Any = None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event["event"]
            if kind == "assigned":
                self.assignment = event["partitions"]
                self.assignments.append((event["t"], event["partitions"]))
            elif kind == "records":
                self.records.extend((p, o, event["t"]) for p, o in event["records"])
            elif kind == "committed":
                for partition, offset in event["offsets"].items():
                    self.committed[int(partition)] = max(offset, self.committed.get(int(partition), 0))
            elif kind == "error":
                self.errors.append(event["text"])
            elif kind == "closed":
                self.closed = True
            elif kind == "subscribed":
                self.subscribed_at = event["t"]

    def kill(self) -> float:
        """SIGKILL: the member vanishes without leaving its group. Returns when it happened."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        return time.time()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: the client closes cleanly (and leaves the group)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        errors = ""
        if self.stderr is not None:
            self.stderr.seek(0)
            errors = self.stderr.read()[-3000:]
        return "".join(self.output[-30:]) + errors


class Fleet:
    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.members: list[Member] = []

    def start(self, client: str, *, name: str | None = None, session_ms: int = 0, assignor: str | None = None,
              instance_id: str | None = None, protocol: str = "classic") -> Member:
        name = name or f"{client}-{len(self.members)}"
        args = [sys.executable, "-m", "compat_tests.group_member", "--client", client, "--bootstrap", self.bootstrap,
                "--topic", self.topic, "--group", self.group, "--protocol", protocol, "--client-id", name]
        if session_ms:
            args += ["--session-ms", str(session_ms)]
        if assignor:
            args += ["--assignor", assignor]
        if instance_id:
            args += ["--instance-id", instance_id]
        stderr = tempfile.TemporaryFile("w+")
        process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        member = Member(name, process, stderr=stderr)
        threading.Thread(target=member._read, daemon=True).start()
        self.members.append(member)
        return member

    def live(self) -> list[Member]:
        return [m for m in self.members if m.process.poll() is None]

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `condition` until true; returns the time it became true. Fails with the members' output."""
        def described() -> str:
            return what + "".join(f"\n--- {m.name} (assignment {m.assignment}, {len(m.records)} records, "
                                  f"errors {m.errors[-3:]})\n{m.log()}" for m in self.members)
        wait_until(condition, described, timeout, poll=0.05)
        return time.time()

    def assignments_cover(self, partitions: int, members: list[Member] | None = None) -> bool:
        """Every partition assigned to exactly one of `members` (default: the live ones)."""
        members = self.live() if members is None else members
        owned = [p for m in members for p in (m.assignment or [])]
        return sorted(owned) == list(range(partitions))

    def wait_balanced(self, partitions: int, timeout: float = 60, members: list[Member] | None = None) -> float:
        def balanced() -> bool:
            group = self.live() if members is None else members
            sizes = [len(m.assignment or []) for m in group]
            return self.assignments_cover(partitions, group) and max(sizes) - min(sizes) <= 1
        return self.wait_for(balanced, timeout, f"{partitions} partitions balanced over the live members")

    def consumed(self) -> list[tuple[int, int]]:
        return [(p, o) for m in self.members for p, o, _ in m.records]

    def wait_consumed(self, expected: set[tuple[int, int]], timeout: float = 120) -> float:
        return self.wait_for(lambda: expected <= set(self.consumed()), timeout,
                             f"{len(expected)} records consumed")

    def stop_all(self) -> None:
        for member in self.members:
            if member.process.poll() is None:
                os.kill(member.process.pid, signal.SIGTERM)
        for member in self.members:
            member.stop()
