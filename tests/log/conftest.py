"""Building batches and opening logs on tmp_path for the log tests."""
from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.files import OpenFiles
from kbroker.log.partition_log import AppendResult, PartitionLog
from kbroker.wire.records import Compression, Record, build_batch, validate_produce_batch

NOW = 1_800_000_000_000
TOPIC_ID = uuid.UUID("6d0f7d5e-5a4b-4a38-9d8e-6a1c0e1f2a3b")
SMALL = LogConfig(segment_bytes=1024, index_interval_bytes=200)


def batch(count: int = 3, *, timestamp: int = NOW, value_size: int = 20, producer_id: int = -1,
          producer_epoch: int = -1, sequence: int = -1, transactional: bool = False,
          compression: Compression = Compression.NONE) -> bytearray:
    records = [Record(i, timestamp + i, b"k%d" % i, b"v" * value_size) for i in range(count)]
    return bytearray(build_batch(records, producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=sequence,
                                 is_transactional=transactional, compression=compression))


def append(log: PartitionLog, data: bytearray | None = None, *, now_ms: int = NOW, leader_epoch: int = 0,
           **batch_args: object) -> AppendResult:
    data = batch(**batch_args) if data is None else data
    header = validate_produce_batch(memoryview(data), log.config.max_message_bytes)
    result = log.append(data, header, leader_epoch=leader_epoch, now_ms=now_ms)
    log.update_high_watermark(log.log_end_offset)
    return result


OpenLog = Callable[..., PartitionLog]


@pytest.fixture
def open_log(tmp_path: Path) -> OpenLog:
    """Open `t-0` under tmp_path; keyword arguments go to PartitionLog.open."""
    def opener(config: LogConfig = SMALL, **kwargs: object) -> PartitionLog:
        kwargs.setdefault("now_ms", NOW)
        kwargs.setdefault("files", OpenFiles())
        return PartitionLog.open(tmp_path / "t-0", "t", 0, TOPIC_ID, config, **kwargs)
    return opener


def fail_next_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next os.fsync fails with EIO, as a dying disk answers; later ones go through."""
    real_fsync = os.fsync
    left = [1]

    def fsync(fd: int) -> None:
        if left[0]:
            left[0] -= 1
            raise OSError(errno.EIO, "injected")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
