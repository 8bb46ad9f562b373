"""Reads answered from a segment's in-memory tail (the batch headers after its last index entry)
return exactly what walking the file returns: a model of the appended batches is the reference,
through appends, index entries, a tail that outgrows its bound, truncation and reopening."""
from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.log import segment
from kbroker.log.config import LogConfig
from kbroker.log.files import OpenFiles
from kbroker.log.local_log import FetchSlices
from kbroker.log.partition_log import PartitionLog

from tests.log.conftest import NOW, TOPIC_ID, append, batch

Batch = tuple[int, int, bytes]  # base offset, last offset, bytes as stored

OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 4), st.integers(0, 150)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("reopen"), st.just(0), st.just(0)),
), min_size=1, max_size=40)


def as_stored(data: bytes, base_offset: int) -> bytes:
    """The log patches base offset and partition leader epoch (0 here), both outside the CRC."""
    return struct.pack(">q", base_offset) + data[8:12] + struct.pack(">i", 0) + data[16:]


def read_bytes(found: FetchSlices) -> bytes:
    return b"".join(os.pread(s.file.fileno(), s.length, s.position) for s in found.slices)


def expected(model: list[Batch], offset: int, max_bytes: int) -> bytes:
    out = b""
    for _, last, data in model:
        if last < offset:
            continue
        if out and len(out) + len(data) > max_bytes:
            break
        out += data
        if len(out) >= max_bytes:
            break
    return out


def check_reads(log: PartitionLog, model: list[Batch]) -> None:
    end = log.log_end_offset
    assert end == (model[-1][1] + 1 if model else 0)
    for offset in range(0, end + 1):
        for max_bytes in (1, 400, 1 << 20):
            got = read_bytes(log.read(offset, max_bytes, end, min_one_batch=True))
            assert got == expected(model, offset, max_bytes), (offset, max_bytes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS, interval=st.sampled_from([0, 150, 600, 4096]), tail_bound=st.integers(1, 6),
       segment_bytes=st.sampled_from([900, 3000, 1 << 20]))
def test_reads_through_the_tail_match_the_batches_appended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           operations: list, interval: int, tail_bound: int,
                                                           segment_bytes: int) -> None:
    monkeypatch.setattr(segment, "TAIL_HEADERS", tail_bound)
    directory = tmp_path / "t-0"
    shutil.rmtree(directory, ignore_errors=True)
    config = LogConfig(segment_bytes=segment_bytes, index_interval_bytes=interval)

    def open_log() -> PartitionLog:
        return PartitionLog.open(directory, "t", 0, TOPIC_ID, config, now_ms=NOW, files=OpenFiles())

    log, model = open_log(), []
    try:
        for kind, a, b in operations:
            if kind == "append":
                data = batch(a, value_size=b)
                result = append(log, bytearray(data))
                model.append((result.base_offset, result.base_offset + a - 1, as_stored(bytes(data), result.base_offset)))
            elif kind == "truncate" and model:
                keep = int(a * len(model))
                log.truncate_to(model[keep][0] if keep < len(model) else log.log_end_offset)
                del model[keep:]
            elif kind == "reopen":
                log.close()
                log = open_log()
            check_reads(log, model)
    finally:
        log.close()
