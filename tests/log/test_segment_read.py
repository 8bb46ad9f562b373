"""LogSegment.read (Kafka's LogSegment.read): whole batches as one file slice, from the batch holding
the offset asked for, bounded by max_bytes (unless min_one_batch) and max_position.

Twenty batches of three records, an index entry about every other batch: reads near the start walk
the file from an index entry, reads near the end are answered from the in-memory tail; the segment
is read both as written and reopened from its files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.files import OpenFiles
from kbroker.log.segment import FetchDataInfo, LogSegment
from kbroker.wire.records import BatchHeader, assign_offsets

from tests.log.conftest import NOW, batch

BATCHES = 20
CONFIG = LogConfig(index_interval_bytes=200)


@pytest.fixture(params=["written", "reopened"])
def segment(request: pytest.FixtureRequest, tmp_path: Path) -> LogSegment:
    written = LogSegment.create(tmp_path, 0, CONFIG, NOW, OpenFiles())
    offset = 0
    for _ in range(BATCHES):
        data = batch(3)
        assign_offsets(data, offset, 0)
        header = BatchHeader.parse(data)
        written.append(data, header)
        offset = header.next_offset
    if request.param == "written":
        return written
    written.close()
    reopened, problem = LogSegment.open(tmp_path, 0, CONFIG, NOW, OpenFiles())
    assert problem is None
    return reopened


def positions(segment: LogSegment) -> list[tuple[int, BatchHeader]]:
    return list(segment.headers(0))


def offsets_read(found: FetchDataInfo | None) -> list[tuple[int, int]]:
    """(base offset, last offset) of each batch in the slice, parsed from the bytes read."""
    assert found is not None and found.records is not None
    data = os.pread(found.records.file.fileno(), found.records.length, found.records.position)
    out, at = [], 0
    while at < len(data):
        header = BatchHeader.parse(data, at)
        out.append((header.base_offset, header.last_offset))
        at += header.size
    assert at == len(data)  # whole batches only
    return out


@pytest.mark.parametrize("batch_index", [1, BATCHES - 2])
def test_an_offset_in_the_middle_of_a_batch_reads_from_that_batch(segment: LogSegment, batch_index: int) -> None:
    position, header = positions(segment)[batch_index]
    found = segment.read(header.base_offset + 1, 1 << 20)
    assert found is not None and found.first_offset == header.base_offset
    assert found.records is not None and found.records.position == position
    assert found.records.length == segment.size - position
    assert offsets_read(found)[0] == (header.base_offset, header.last_offset)


@pytest.mark.parametrize("batch_index", [0, BATCHES - 1])
def test_max_bytes_below_the_first_batch(segment: LogSegment, batch_index: int) -> None:
    position, header = positions(segment)[batch_index]
    too_small = segment.read(header.base_offset, header.size - 1)
    assert too_small == FetchDataInfo(header.base_offset, None)
    found = segment.read(header.base_offset, header.size - 1, min_one_batch=True)
    assert offsets_read(found) == [(header.base_offset, header.last_offset)]
    assert found is not None and found.records is not None and found.records.position == position


def test_max_bytes_takes_only_the_batches_that_fit_whole(segment: LogSegment) -> None:
    batches = positions(segment)
    sizes = [header.size for _, header in batches]
    found = segment.read(0, sizes[0] + sizes[1] + sizes[2] - 1)
    assert offsets_read(found) == [(0, 2), (3, 5)]
    assert offsets_read(segment.read(0, sizes[0] + sizes[1] + sizes[2])) == [(0, 2), (3, 5), (6, 8)]


def test_max_position_bounds_the_read(segment: LogSegment) -> None:
    batches = positions(segment)
    fourth, _ = batches[3]
    assert offsets_read(segment.read(0, 1 << 20, fourth)) == [(0, 2), (3, 5), (6, 8)]
    assert offsets_read(segment.read(4, 1 << 20, fourth + 10)) == [(3, 5), (6, 8)]  # not a boundary: the one before
    assert segment.read(9, 1 << 20, fourth) == FetchDataInfo(9, None)  # the first batch lies past it
    assert segment.read(9, 1 << 20, fourth, min_one_batch=True) == FetchDataInfo(9, None)
    last, _ = batches[-1]
    assert offsets_read(segment.read(3 * (BATCHES - 2), 1 << 20, last)) == [(54, 56)]


def test_past_the_end_there_is_nothing_to_read(segment: LogSegment, tmp_path: Path) -> None:
    assert segment.next_offset == 3 * BATCHES
    assert segment.read(segment.next_offset, 1 << 20, min_one_batch=True) is None
    assert segment.read(segment.next_offset + 100, 1 << 20) is None
    empty = LogSegment.create(tmp_path, 1000, CONFIG, NOW, OpenFiles())
    assert empty.read(1000, 1 << 20, min_one_batch=True) is None


def test_the_whole_segment_reads_back_byte_for_byte(segment: LogSegment, tmp_path: Path) -> None:
    found = segment.read(0, 1 << 20)
    assert found is not None and found.records is not None
    assert (found.records.position, found.records.length) == (0, segment.size)
    assert os.pread(found.records.file.fileno(), found.records.length, 0) == \
        (tmp_path / f"{0:020d}.log").read_bytes()
