"""What a flush fsyncs: the active segment's .log only; a rolled segment's indexes once it rolled."""
from __future__ import annotations

import os

import pytest

from tests.log.conftest import OpenLog, append


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file names passed to os.fsync from now on."""
    names: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        names.append(os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1])
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return names


def test_a_flush_syncs_the_active_log_and_the_indexes_of_rolled_segments(open_log: OpenLog, synced: list) -> None:
    log = open_log()
    append(log)
    synced.clear()  # partition.metadata and the leader-epoch checkpoint were written
    for _ in range(2):
        append(log)
    log.flush()
    assert synced == [f"{0:020d}.log"]
    synced.clear()
    for _ in range(4):  # the 1024-byte segment rolls at the seventh batch
        append(log)
    assert [s.base_offset for s in log.segments] == [0, 18]
    log.flush()
    assert sorted(synced) == sorted([f"{0:020d}.log", f"{0:020d}.index", f"{0:020d}.timeindex",
                                     f"{18:020d}.log", "t-0"])  # the directory: a new segment's names
    synced.clear()
    append(log)
    log.flush()
    assert synced == [f"{18:020d}.log"]


def test_a_clean_close_syncs_the_active_indexes_too(open_log: OpenLog, synced: list) -> None:
    log = open_log()
    for _ in range(3):
        append(log)
    log.flush()
    synced.clear()
    log.close()
    assert {f"{0:020d}.index", f"{0:020d}.timeindex"} <= set(synced)


def test_a_segment_synced_to_its_end_before_it_rolled_gets_its_indexes_synced(open_log: OpenLog,
                                                                              synced: list) -> None:
    log = open_log()
    for _ in range(6):  # segment 0 full, still active
        append(log)
    log.flush()
    assert log.recovery_point == 18 and log.segments[-1].base_offset == 0
    synced.clear()
    append(log)  # rolls; the recovery point is already at segment 0's end
    log.flush()
    assert {f"{0:020d}.index", f"{0:020d}.timeindex", f"{18:020d}.log"} <= set(synced)
    assert f"{0:020d}.log" not in synced
