"""Idempotent producers (duplicates, gaps, fencing) and transactions, across restarts."""
from __future__ import annotations

import logging
import struct

import pytest

from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.partition_log import PartitionLog
from kbroker.wire.records import BatchHeader, Record, build_batch

from tests.log.conftest import NOW, OpenLog, append

PID = 1000
INT32_MAX = 2**31 - 1


def send(log: PartitionLog, sequence: int, *, epoch: int = 0, count: int = 3, pid: int = PID,
         transactional: bool = False):
    return append(log, producer_id=pid, producer_epoch=epoch, sequence=sequence, count=count, transactional=transactional)


def error(call, *args, **kwargs) -> ErrorCode:
    with pytest.raises(KafkaError) as info:
        call(*args, **kwargs)
    return info.value.code


def marker(log: PartitionLog, *, commit: bool, epoch: int = 0, pid: int = PID):
    key = struct.pack(">hh", 0, 1 if commit else 0)
    data = bytearray(build_batch([Record(0, NOW, key, struct.pack(">hi", 0, 0))], producer_id=pid,
                                 producer_epoch=epoch, is_transactional=True, is_control=True))
    result = log.append(data, BatchHeader.parse(data), leader_epoch=0, now_ms=NOW)
    log.update_high_watermark(log.log_end_offset)
    return result


def test_retry_of_any_of_the_last_five_batches_is_a_duplicate(open_log: OpenLog) -> None:
    log = open_log()
    originals = [send(log, 3 * i) for i in range(7)]
    size = log.segments[-1].size, log.log_end_offset
    for i in range(2, 7):
        retry = send(log, 3 * i)
        assert retry.duplicate and (retry.base_offset, retry.last_offset) == (originals[i].base_offset,
                                                                               originals[i].last_offset)
    assert (log.segments[-1].size, log.log_end_offset) == size
    assert error(send, log, 3) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER  # older than the last five
    assert not send(log, 21).duplicate


def test_sequence_gap_and_fenced_epoch(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0, epoch=3)
    assert error(send, log, 4, epoch=3) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert error(send, log, 3, epoch=2) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert error(send, log, 3, epoch=4) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER  # new epoch starts at 0
    send(log, 0, epoch=4)
    assert not send(log, 3, epoch=4).duplicate
    assert error(send, log, 0, epoch=3) == ErrorCode.INVALID_PRODUCER_EPOCH  # a retry from the fenced epoch
    assert log.log_end_offset == 9


def test_unknown_producer_may_start_anywhere_and_sequences_wrap(open_log: OpenLog) -> None:
    log = open_log()
    send(log, INT32_MAX - 1)  # sequences MAX-1, MAX, 0
    assert error(send, log, 0) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert send(log, INT32_MAX - 1).duplicate
    assert not send(log, 1).duplicate


def test_non_idempotent_batches_are_never_deduplicated(open_log: OpenLog) -> None:
    log = open_log()
    for epoch, sequence in ((-1, -1), (-1, 0), (0, 0)):  # kafka-python, aiokafka, kafkajs
        assert not append(log, producer_id=-1, producer_epoch=epoch, sequence=sequence).duplicate
        assert not append(log, producer_id=-1, producer_epoch=epoch, sequence=sequence).duplicate
    assert log.log_end_offset == 18


def test_transactions_bound_the_last_stable_offset(open_log: OpenLog) -> None:
    log = open_log()
    append(log)
    send(log, 0, transactional=True)
    send(log, 0, pid=7)
    assert log.high_watermark == 9 and log.last_stable_offset == 3
    assert error(send, log, 3) == ErrorCode.INVALID_TXN_STATE  # non-transactional inside a transaction
    send(log, 3, transactional=True)
    assert error(marker, log, commit=True, epoch=-1) == ErrorCode.INVALID_PRODUCER_EPOCH
    marker(log, commit=True)
    assert log.last_stable_offset == log.high_watermark == 13
    send(log, 6, transactional=True)
    assert log.last_stable_offset == 13
    marker(log, commit=False)
    assert log.last_stable_offset == 17
    assert not send(log, 9).duplicate  # after the marker, plain batches are fine again


def test_the_verification_guard_moves_with_markers(open_log: OpenLog) -> None:
    """KIP-890's guard: None while the producer's transaction is open, else a value a marker changes."""
    log = open_log()
    before = log.verification_guard(PID)
    assert before is not None and log.verification_guard(PID) == before
    send(log, 0, transactional=True)
    assert log.verification_guard(PID) is None
    assert log.verification_guard(7) == before  # another producer's batch leaves it alone
    marker(log, commit=False)
    after = log.verification_guard(PID)
    assert after is not None and after != before  # a batch verified before the marker is refused
    marker(log, commit=True, pid=7)
    assert log.verification_guard(PID) != after


def test_state_survives_a_clean_restart(open_log: OpenLog) -> None:
    log = open_log()
    originals = [send(log, 3 * i) for i in range(8)]  # rolls once, at offset 18
    send(log, 0, pid=7, transactional=True)
    log.close()
    assert sorted(p.name for p in log.directory.glob("*.snapshot")) == [f"{18:020d}.snapshot", f"{27:020d}.snapshot"]
    log = open_log(clean_shutdown=True, recovery_point=27)
    for i in range(3, 8):  # all five retained batches are still recognised
        assert send(log, 3 * i).base_offset == originals[i].base_offset
    assert error(send, log, 30) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.last_stable_offset == 24  # the open transaction of producer 7
    assert not send(log, 24).duplicate


def test_state_is_replayed_from_the_log_after_a_crash(open_log: OpenLog) -> None:
    log = open_log()
    for i in range(10):  # snapshot at the roll to 18; batches after it only in the log
        send(log, 3 * i, epoch=2)
    send(log, 0, pid=7, transactional=True)
    for segment in log.segments:
        segment.close()
    log = open_log()
    assert send(log, 27, epoch=2).duplicate
    assert send(log, 18, epoch=2).duplicate
    assert error(send, log, 33, epoch=2) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert error(send, log, 30, epoch=1) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert log.last_stable_offset == 30
    marker(log, commit=False, pid=7)
    assert log.last_stable_offset == log.high_watermark


def test_torn_snapshot_falls_back_to_replay(open_log: OpenLog, caplog: pytest.LogCaptureFixture) -> None:
    log = open_log()
    for i in range(8):
        send(log, 3 * i)
    log.close()
    latest = log.directory / f"{24:020d}.snapshot"
    latest.write_bytes(latest.read_bytes()[:-3])
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        log = open_log(clean_shutdown=True, recovery_point=24)
    assert any("unreadable" in r.message for r in caplog.records)
    assert send(log, 21).duplicate and send(log, 9).duplicate
    assert not send(log, 24).duplicate


def test_truncation_rewinds_producer_state(open_log: OpenLog) -> None:
    log = open_log()
    for i in range(10):
        send(log, 3 * i)
    log.truncate_to(24)
    assert log.log_end_offset == 24
    assert error(send, log, 27) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert send(log, 21).duplicate
    assert send(log, 24).base_offset == 24


def test_delete_records_forgets_producers_below_the_log_start(open_log: OpenLog) -> None:
    log = open_log()
    for i in range(7):
        send(log, 3 * i)
    append(log, count=6)
    append(log, count=6)
    log.delete_records_before(30)
    assert PID not in log._producers.producers
    assert not send(log, 500).duplicate  # an unknown producer again: any sequence
    assert not any(p.name < f"{30:020d}.snapshot" for p in log.directory.glob("*.snapshot"))
