"""Transactions on the partition log: markers, the last stable offset, the aborted-transactions
index (.txnindex) across restarts and crashes, read_committed reads."""
from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.files import OpenFiles
from kbroker.log.partition_log import PartitionLog
from kbroker.log.txn_index import AbortedTxn, TransactionIndex
from kbroker.wire.records import BatchHeader, ControlRecordType, decode_records, end_txn_marker

from tests.log.conftest import NOW, SMALL, TOPIC_ID, OpenLog, append, batch

PID, OTHER = 1000, 2000


def send(log: PartitionLog, sequence: int, *, pid: int = PID, epoch: int = 0, count: int = 3,
         transactional: bool = True, expose: bool = True):
    return append(log, producer_id=pid, producer_epoch=epoch, sequence=sequence, count=count,
                  transactional=transactional) if expose else _append_hidden(log, pid, epoch, sequence, count)


def _append_hidden(log: PartitionLog, pid: int, epoch: int, sequence: int, count: int):
    """Append without moving the high watermark (an append not yet replicated or fsynced)."""
    data = batch(count, producer_id=pid, producer_epoch=epoch, sequence=sequence, transactional=True)
    return log.append(data, BatchHeader.parse(data), leader_epoch=0, now_ms=NOW)


def end(log: PartitionLog, *, commit: bool, pid: int = PID, epoch: int = 0, coordinator_epoch: int = 0,
        expose: bool = True) -> int:
    offset = log.append_control_batch(pid, epoch, coordinator_epoch, commit, NOW)
    if expose:
        log.update_high_watermark(log.log_end_offset)
    return offset


def error(call, *args, **kwargs) -> ErrorCode:
    with pytest.raises(KafkaError) as info:
        call(*args, **kwargs)
    return info.value.code


def txn_index_files(log: PartitionLog) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(log.directory.glob("*.txnindex"))}


def test_marker_is_kafkas_control_batch(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0)
    offset = end(log, commit=True, coordinator_epoch=7)
    assert offset == 3 and log.log_end_offset == 4
    (data,) = log.read_batches(3, 4)
    header = BatchHeader.parse(data)
    assert header.is_control and header.is_transactional and header.record_count == 1
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (PID, 0, -1)
    (record,) = decode_records(data)
    assert record.key == struct.pack(">hh", 0, 1) and record.value == struct.pack(">hi", 0, 7)
    assert end_txn_marker(data) == (ControlRecordType.COMMIT, 7)


def test_the_last_stable_offset_waits_for_open_transactions_and_unexposed_markers(open_log: OpenLog) -> None:
    log = open_log()
    append(log)  # 0-2, not transactional
    send(log, 0)  # 3-5, PID's transaction
    send(log, 0, pid=OTHER)  # 6-8
    assert (log.last_stable_offset, log.high_watermark) == (3, 9)
    end(log, commit=True, expose=False)  # marker at 9, not yet below the high watermark
    assert log.last_stable_offset == 3  # Kafka: the outcome is not yet as durable as the records
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 6  # OTHER's transaction still open
    end(log, commit=False, pid=OTHER)
    assert log.last_stable_offset == log.high_watermark == 11
    send(log, 3, expose=False)  # a new transaction whose data the high watermark has not passed
    assert log.last_stable_offset == 11


def test_markers_from_an_old_producer_or_coordinator_epoch_are_refused(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0, epoch=2)
    assert error(end, log, commit=False, epoch=1) == ErrorCode.INVALID_PRODUCER_EPOCH
    end(log, commit=False, epoch=2, coordinator_epoch=5)
    send(log, 3, epoch=2)
    assert error(end, log, commit=True, epoch=2, coordinator_epoch=4) == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert log.log_end_offset == 7 and log.last_stable_offset == 4  # nothing written, still open
    end(log, commit=True, epoch=3, coordinator_epoch=5)  # a bumped epoch (the coordinator fenced the producer)
    assert log.last_stable_offset == log.log_end_offset


def test_a_marker_without_an_open_transaction_is_written_and_indexes_nothing(open_log: OpenLog) -> None:
    log = open_log()
    assert end(log, commit=False) == 0
    assert log.aborted_transactions(0, 1) == [] and txn_index_files(log) == {}


def test_aborted_transactions_are_indexed_in_the_segment_of_their_marker(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0)  # 0-2
    send(log, 0, pid=OTHER)  # 3-5
    end(log, commit=False)  # 6: PID aborted while OTHER is open: last stable offset 3
    end(log, commit=False, pid=OTHER)  # 7
    assert log.aborted_transactions(0, 8) == [AbortedTxn(PID, 0, 6, 3), AbortedTxn(OTHER, 3, 7, 8)]
    assert txn_index_files(log) == {f"{0:020d}.txnindex": struct.pack(">hqqqq", 0, PID, 0, 6, 3)
                                    + struct.pack(">hqqqq", 0, OTHER, 3, 7, 8)}
    assert log.aborted_transactions(0, 3) == [AbortedTxn(PID, 0, 6, 3)]  # OTHER begins at 3
    assert log.aborted_transactions(7, 8) == [AbortedTxn(OTHER, 3, 7, 8)]  # PID's marker is before 7


def test_read_committed_returns_the_aborted_transactions_of_the_range_read(open_log: OpenLog) -> None:
    log = open_log()
    for i in range(6):  # six aborted transactions of 3 records (~130 bytes each), spanning segments
        send(log, 3 * i)
        end(log, commit=False)
    assert len(log.segments) > 1
    data, aborted = log.read_committed(0, 300, log.last_stable_offset, min_one_batch=True)
    assert data.size == 148 + 78  # the first transaction and its marker; the next batch would pass 300
    assert aborted == [AbortedTxn(PID, 0, 3, 4)]
    data, aborted = log.read_committed(8, 1 << 20, log.last_stable_offset, min_one_batch=True)
    assert [txn.first_offset for txn in aborted] == [8, 12, 16, 20]
    assert log.read_committed(24, 1 << 20, log.last_stable_offset, min_one_batch=True)[1] == []


def test_the_index_survives_a_clean_restart_and_is_rebuilt_after_a_crash(open_log: OpenLog) -> None:
    log = open_log()
    for i in range(8):  # rolls at least once
        send(log, 3 * (i // 2), pid=PID + i % 2)
        end(log, commit=i % 3 == 0, pid=PID + i % 2)
    send(log, 12, pid=PID)  # left open
    expected = log.aborted_transactions(0, log.log_end_offset)
    files = txn_index_files(log)
    lso = log.last_stable_offset
    assert len(expected) == 5 and len(files) > 1 and lso < log.log_end_offset
    log.close()
    log = open_log(clean_shutdown=True, recovery_point=log.log_end_offset)
    assert log.aborted_transactions(0, log.log_end_offset) == expected and log.last_stable_offset == lso
    for segment in log.segments:  # a crash: nothing flushed, the index files lost or torn
        segment.close()
    for name in files:
        os.truncate(log.directory / name, 17)
    log = open_log(recovery_point=0)
    assert log.aborted_transactions(0, log.log_end_offset) == expected
    assert txn_index_files(log) == files and log.last_stable_offset == lso
    end(log, commit=False)
    assert log.last_stable_offset == log.log_end_offset


def test_a_torn_tail_takes_its_markers_out_of_the_index(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0)
    end(log, commit=False)  # 3
    send(log, 3)  # 4-6
    end(log, commit=False)  # 7
    active = log.segments[-1]
    size = active.size
    for segment in log.segments:
        segment.close()
    os.truncate(active.log_path, size - 10)  # tears the second marker
    log = open_log()
    assert log.log_end_offset == 7 and log.last_stable_offset == 4  # the second transaction is open again
    assert log.aborted_transactions(0, 7) == [AbortedTxn(PID, 0, 3, 4)]


def test_an_open_transaction_survives_a_restart_from_a_snapshot(open_log: OpenLog) -> None:
    log = open_log()
    append(log)
    send(log, 0)
    log.close()
    assert list(log.directory.glob("*.snapshot"))
    log = open_log(clean_shutdown=True, recovery_point=log.log_end_offset)
    assert log.last_stable_offset == 3
    assert [(p.producer_id, p.txn_first_offset) for p in log.active_producers()] == [(PID, 3)]
    end(log, commit=True)
    assert log.last_stable_offset == log.log_end_offset


def test_truncation_drops_index_entries_and_reopens_transactions(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0)
    end(log, commit=False)  # 3
    send(log, 3)  # 4-6
    end(log, commit=False)  # 7
    log.truncate_to(7)
    assert log.aborted_transactions(0, 8) == [AbortedTxn(PID, 0, 3, 4)]
    assert log.last_stable_offset == 4
    assert len(txn_index_files(log)[f"{0:020d}.txnindex"]) == 34


def test_retention_deletes_the_index_with_its_segment(open_log: OpenLog) -> None:
    log = open_log()
    for i in range(8):
        send(log, 3 * i)
        end(log, commit=False)
    first = f"{0:020d}.txnindex"
    assert first in txn_index_files(log)
    log.delete_records_before(log.segments[1].base_offset)
    assert first not in txn_index_files(log)
    assert all(t.last_offset >= log.log_start_offset for t in log.aborted_transactions(log.log_start_offset, 100))


def test_deleting_the_start_of_an_open_transaction_keeps_it_open(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0)  # PID's transaction begins at 0
    for _ in range(12):
        append(log, count=3)  # plain records, rolling segments
    assert len(log.segments) > 2
    log.delete_records_before(log.segments[1].base_offset)  # Kafka bounds this by the high watermark only
    start = log.log_start_offset
    assert start > 0 and log.last_stable_offset == start  # the open transaction still holds it
    assert [p.txn_first_offset for p in log.active_producers()] == [0]
    end(log, commit=False)
    assert log.last_stable_offset == log.high_watermark
    assert log.aborted_transactions(start, log.log_end_offset) == [AbortedTxn(PID, 0, log.log_end_offset - 1,
                                                                               log.log_end_offset)]


def test_txn_index_collects_like_kafka_and_refuses_a_damaged_file(tmp_path) -> None:
    path = tmp_path / f"{0:020d}.txnindex"
    index = TransactionIndex(path, OpenFiles())
    assert not path.exists()  # created with its first entry, as Kafka's
    txns = [AbortedTxn(1, 0, 10, 5), AbortedTxn(2, 5, 12, 13), AbortedTxn(3, 20, 30, 31), AbortedTxn(4, 31, 40, 41)]
    for txn in txns:
        index.append(txn)
    with pytest.raises(ValueError):
        index.append(AbortedTxn(5, 39, 40, 41))  # markers only go forward
    assert index.collect(11, 25) == ([txns[1], txns[2]], True)  # txn 3's last stable offset reaches 25
    assert index.collect(41, 50) == ([], False)  # nothing here: later segments may still hold some
    assert index.collect(0, 1) == ([txns[0]], True)
    reopened = TransactionIndex(path, OpenFiles())
    assert reopened.load() is None and reopened.entries == txns
    reopened.truncate_to(30)  # the marker at 30 goes, and everything after it
    assert reopened.entries == txns[:2] and path.stat().st_size == 2 * 34
    reopened.close()
    data = bytearray(path.read_bytes())
    data[0:2] = struct.pack(">h", 1)  # an unknown entry version
    path.write_bytes(data)
    damaged = TransactionIndex(path, OpenFiles())
    assert "unknown version" in damaged.load() and damaged.entries == [] and path.stat().st_size == 0


def test_a_version_1_snapshot_still_loads(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0, epoch=4)  # 0-2: an open transaction
    log.close()
    # As kbroker wrote them before, with a producer the log does not show (its batches deleted, say):
    # only the snapshot can bring it back.
    body = (struct.pack(">i", 2) + struct.pack(">qhqb", PID, 4, 0, 1) + struct.pack(">iqiq", 2, 2, 2, NOW + 2)
            + struct.pack(">qhqb", 55, 9, -1, 0))
    (snapshot,) = log.directory.glob("*.snapshot")
    snapshot.write_bytes(struct.pack(">hI", 1, crc32c.crc32c(body)) + body)
    log = open_log(clean_shutdown=True, recovery_point=3)
    entries = {p.producer_id: p for p in log.active_producers()}
    assert (entries[55].epoch, entries[55].coordinator_epoch) == (9, -1)
    entry = entries[PID]
    assert (entry.epoch, entry.txn_first_offset, entry.coordinator_epoch, entry.last_seq) == (4, 0, -1, 2)
    assert send(log, 0, epoch=4).duplicate and log.last_stable_offset == 0


PIDS = (11, 12, 13)
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("data"), st.sampled_from(PIDS), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("plain"), st.integers(1, 3)),
    st.tuples(st.just("end"), st.sampled_from(PIDS), st.booleans()),
    st.tuples(st.just("restart"), st.sampled_from(["clean", "crash", "crash-all"])),
    st.tuples(st.just("truncate"), st.integers(0, 100)),
), max_size=40)


@dataclass
class TxnModel:
    """What the log should say, replayed from the batches it holds: (kind, producer id, first
    offset, record count, transactional / commit)."""
    batches: list[tuple[str, int, int, int, bool]] = field(default_factory=list)

    @property
    def end_offset(self) -> int:
        return self.batches[-1][2] + self.batches[-1][3] if self.batches else 0

    def state(self) -> tuple[dict[int, int], dict[int, int], list[AbortedTxn]]:
        """Next sequence and open transaction (first offset) per producer; the aborted transactions."""
        sequences, open_txns, aborted = dict.fromkeys(PIDS, 0), {}, []
        for kind, pid, offset, count, flag in self.batches:
            if kind == "data":
                sequences[pid] += count
                if flag:
                    open_txns.setdefault(pid, offset)
            elif kind == "end":
                first = open_txns.pop(pid, None)
                if first is not None and not flag:
                    aborted.append(AbortedTxn(pid, first, offset, min(open_txns.values(), default=offset + 1)))
        return sequences, open_txns, aborted


@settings(max_examples=200, deadline=None)
@given(operations=OPERATIONS)
def test_last_stable_offset_and_index_follow_a_model_across_restarts_and_crashes(operations) -> None:
    """Random transactional writes, markers, truncations, clean restarts and crashes (the active
    segment, or every segment, recovered): the LSO and the aborted transactions always equal a
    model's, replayed from the batches the log holds."""
    with tempfile.TemporaryDirectory() as tmp:
        def reopen(**kwargs: object) -> PartitionLog:
            return PartitionLog.open(Path(tmp) / "t-0", "t", 0, TOPIC_ID, SMALL, now_ms=NOW, files=OpenFiles(),
                                     **kwargs)

        log = reopen()
        model = TxnModel()
        for op in operations:
            sequences, open_txns, _ = model.state()
            at = model.end_offset
            if op[0] == "data":
                _, pid, count, transactional = op
                if pid in open_txns and not transactional:
                    assert error(send, log, sequences[pid], pid=pid, count=count, transactional=False) == \
                        ErrorCode.INVALID_TXN_STATE
                    continue
                send(log, sequences[pid], pid=pid, count=count, transactional=transactional)
                model.batches.append(("data", pid, at, count, transactional))
            elif op[0] == "plain":
                append(log, count=op[1])
                model.batches.append(("plain", -1, at, op[1], False))
            elif op[0] == "end":
                assert end(log, commit=op[2], pid=op[1]) == at
                model.batches.append(("end", op[1], at, 1, op[2]))
            elif op[0] == "truncate":  # a follower cut back to a new leader's log: at a batch boundary
                keep = op[1] % (len(model.batches) + 1)
                del model.batches[keep:]
                log.truncate_to(model.end_offset)
            elif op[1] == "clean":
                log.close()
                log = reopen(clean_shutdown=True, recovery_point=at)
            else:  # a crash: nothing closed cleanly, no snapshot; recovery from the active segment or from 0
                for segment in log.segments:
                    segment.close()
                log = reopen(recovery_point=at if op[1] == "crash" else 0)
                log.update_high_watermark(log.log_end_offset)
            _, open_txns, aborted = model.state()
            assert log.log_end_offset == model.end_offset
            assert log.last_stable_offset == min(open_txns.values(), default=model.end_offset)
            assert log.aborted_transactions(0, model.end_offset) == aborted
        log.close()
