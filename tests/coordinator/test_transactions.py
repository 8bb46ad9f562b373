"""The transaction table: Kafka's transitions, fencing, KIP-360 bumps, timeouts and expiry; and
Hypothesis over random event sequences keeping every transaction consistent."""
from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kbroker.coordinator import txn_records
from kbroker.coordinator.transactions import (
    IDLE,
    MAX_EPOCH,
    VALID_PREVIOUS,
    TransactionTable,
    Transit,
    TxnState,
)
from kbroker.errors import ErrorCode

TID = "app-1"
TP = ("out", 0)


def logged(table: TransactionTable, tid: str, outcome):
    """The async layer's part: the pending transit is durable."""
    assert isinstance(outcome, Transit), outcome
    table.complete(tid, outcome)
    return outcome


def init(table: TransactionTable, now: int = 0, expected=None, pid: int | None = 7, tid: str = TID) -> Transit:
    new = pid if table.needs_producer_id(tid, None if expected is None else expected[1]) else None
    result = table.init_producer_id(tid, 60_000, expected, now, new)
    assert result.error == ErrorCode.NONE and result.fence is None, result
    return logged(table, tid, result.transit)


def test_first_init_gives_epoch_zero_and_each_init_bumps_it():
    table = TransactionTable(900_000)
    assert (init(table).producer_id, table.transactions[TID].current.producer_epoch) == (7, 0)
    assert init(table).producer_epoch == 1


def test_timeout_is_validated_against_the_maximum():
    table = TransactionTable(1000)
    assert table.init_producer_id(TID, 1001, None, 0, 7).error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert table.init_producer_id(TID, 0, None, 0, 7).error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert TID not in table.transactions


def test_commit_walks_ongoing_prepare_complete():
    table = TransactionTable(900_000)
    t = init(table)
    ongoing = logged(table, TID, table.add_partitions(TID, t.producer_id, t.producer_epoch, [TP], 5))
    assert ongoing.state is TxnState.ONGOING and ongoing.start_ms == 5
    assert table.add_partitions(TID, t.producer_id, t.producer_epoch, [TP], 6) is None  # already in
    prepared = logged(table, TID, table.end_txn(TID, t.producer_id, t.producer_epoch, True, 7))
    assert prepared.state is TxnState.PREPARE_COMMIT and prepared.partitions == {TP}
    # While the markers are written: retries wait, the wrong outcome is refused.
    assert table.end_txn(TID, t.producer_id, t.producer_epoch, True, 8) == ErrorCode.CONCURRENT_TRANSACTIONS
    assert table.end_txn(TID, t.producer_id, t.producer_epoch, False, 8) == ErrorCode.INVALID_TXN_STATE
    assert table.add_partitions(TID, t.producer_id, t.producer_epoch, [TP], 8) == ErrorCode.CONCURRENT_TRANSACTIONS
    done = logged(table, TID, table.complete_transit(TID, 9))
    assert done.state is TxnState.COMPLETE_COMMIT and not done.partitions
    assert table.end_txn(TID, t.producer_id, t.producer_epoch, True, 10) is None  # a retry: NONE
    assert table.end_txn(TID, t.producer_id, t.producer_epoch, False, 10) == ErrorCode.INVALID_TXN_STATE


def test_bad_requests_get_kafkas_errors():
    table = TransactionTable(900_000)
    assert table.end_txn(TID, 7, 0, True, 0) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    t = init(table)
    assert table.end_txn(TID, t.producer_id, t.producer_epoch, True, 0) == ErrorCode.INVALID_TXN_STATE
    assert table.end_txn(TID, t.producer_id + 1, t.producer_epoch, True, 0) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert table.add_partitions(TID, t.producer_id, t.producer_epoch - 1, [TP], 0) == ErrorCode.PRODUCER_FENCED
    assert table.add_partitions("", t.producer_id, t.producer_epoch, [TP], 0) == ErrorCode.INVALID_REQUEST


def test_a_new_incarnation_aborts_the_open_transaction_under_a_bumped_epoch():
    table = TransactionTable(900_000)
    old = init(table)
    logged(table, TID, table.add_partitions(TID, old.producer_id, old.producer_epoch, [TP], 1))
    result = table.init_producer_id(TID, 60_000, None, 2, None)
    assert result.fence is not None and result.fence.state is TxnState.PREPARE_ABORT
    assert result.fence.producer_epoch == old.producer_epoch + 1
    table.complete(TID, result.fence)
    assert table.init_producer_id(TID, 60_000, None, 3, None).error == ErrorCode.CONCURRENT_TRANSACTIONS
    logged(table, TID, table.complete_transit(TID, 4))
    fresh = init(table, now=5)
    assert fresh.producer_epoch == old.producer_epoch + 2
    # The zombie is fenced everywhere.
    assert table.add_partitions(TID, old.producer_id, old.producer_epoch, [TP], 6) == ErrorCode.PRODUCER_FENCED
    assert table.end_txn(TID, old.producer_id, old.producer_epoch, True, 6) == ErrorCode.PRODUCER_FENCED


def test_kip360_bump_checks_the_epoch_the_producer_sends():
    table = TransactionTable(900_000)
    t = init(table)
    bumped = init(table, expected=(t.producer_id, t.producer_epoch))
    assert bumped.producer_epoch == t.producer_epoch + 1
    # A retry of that bump (the answer was lost) gets the same epoch again.
    again = init(table, expected=(t.producer_id, t.producer_epoch))
    assert again.producer_epoch == bumped.producer_epoch
    assert table.init_producer_id(TID, 60_000, (t.producer_id, 99), 0, None).error == ErrorCode.PRODUCER_FENCED
    assert table.init_producer_id(TID, 60_000, (12345, 0), 0, None).error == ErrorCode.PRODUCER_FENCED


def test_an_exhausted_epoch_rotates_the_producer_id():
    table = TransactionTable(900_000)
    t = init(table)
    txn = table.transactions[TID]
    txn.current = Transit(t.producer_id, -1, MAX_EPOCH - 1, -1, t.timeout_ms, TxnState.EMPTY, frozenset(), -1, 0)
    assert table.needs_producer_id(TID, None)
    rotated = init(table, pid=8)
    assert (rotated.producer_id, rotated.producer_epoch, rotated.last_producer_id) == (8, 0, t.producer_id)


def test_timed_out_transactions_are_fenced_and_aborted():
    table = TransactionTable(900_000)
    t = init(table)
    logged(table, TID, table.add_partitions(TID, t.producer_id, t.producer_epoch, [TP], 1000))
    assert table.timed_out(1000 + t.timeout_ms) == []
    [(tid, abort)] = table.timed_out(1001 + t.timeout_ms)
    assert tid == TID and abort.state is TxnState.PREPARE_ABORT and abort.producer_epoch == t.producer_epoch + 1
    assert table.timed_out(10**9) == []  # pending: not twice


def test_idle_ids_expire_and_a_failed_write_changes_nothing():
    table = TransactionTable(900_000)
    init(table, now=0)
    [(tid, dead)] = table.expired(100, 100)
    table.cancel(tid)
    assert table.transactions[TID].current.state is TxnState.EMPTY and not table.transactions[TID].busy
    [(tid, dead)] = table.expired(100, 100)
    table.complete(tid, dead)
    assert TID not in table.transactions


def test_log_records_round_trip():
    entry = txn_records.TxnLogEntry(42, 3, 60_000, TxnState.ONGOING, frozenset({("a", 1), ("a", 0), ("b", 2)}),
                                    1234, 1000)
    assert txn_records.decode_value(txn_records.encode_value(entry)) == entry
    assert txn_records.decode_key(txn_records.encode_key("tx-é")) == "tx-é"
    # Kafka's layout: key version 0 + string; value version 0 starts with the producer id.
    assert txn_records.encode_key("ab") == b"\x00\x00\x00\x02ab"
    assert txn_records.encode_value(entry)[:10] == b"\x00\x00" + (42).to_bytes(8, "big")


class TransactionMachine(RuleBasedStateMachine):
    """Random client requests, log outcomes and time; the table must stay a valid Kafka state."""

    @initialize()
    def start(self) -> None:
        self.table = TransactionTable(10_000)
        self.now = 0
        self.next_pid = 100
        self.seen_pids: dict[int, str] = {}
        self.last_epoch: dict[str, tuple[int, int]] = {}

    tids = st.sampled_from(["a", "b"])
    parts = st.lists(st.sampled_from([("t", 0), ("t", 1), ("u", 0)]), min_size=1, max_size=3)

    def _known(self, tid: str) -> tuple[int, int]:
        txn = self.table.transactions.get(tid)
        return (txn.current.producer_id, txn.current.producer_epoch) if txn else (1, 0)

    @rule(tid=tids, kip360=st.booleans(), timeout=st.sampled_from([1000, 20_000]))
    def init_producer_id(self, tid, kip360, timeout):
        expected = self._known(tid) if kip360 and tid in self.table.transactions else None
        pid = None
        if self.table.needs_producer_id(tid, None if expected is None else expected[1]):
            pid = self.next_pid
            self.next_pid += 1
        result = self.table.init_producer_id(tid, timeout, expected, self.now, pid)
        if timeout > 10_000:
            assert result.error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
        if result.transit is not None:
            assert result.transit.state is TxnState.EMPTY
        if result.fence is not None:
            assert result.fence.state is TxnState.PREPARE_ABORT

    @rule(tid=tids, partitions=parts, stale=st.booleans())
    def add_partitions(self, tid, partitions, stale):
        pid, epoch = self._known(tid)
        self.table.add_partitions(tid, pid, epoch - stale, partitions, self.now)

    @rule(tid=tids, commit=st.booleans())
    def end_txn(self, tid, commit):
        pid, epoch = self._known(tid)
        self.table.end_txn(tid, pid, epoch, commit, self.now)

    @rule(tid=tids, ok=st.booleans())
    def write_outcome(self, tid, ok):
        txn = self.table.transactions.get(tid)
        if txn is None or txn.pending is None:
            return
        if ok:
            self.table.complete(tid, txn.pending)
        else:
            self.table.cancel(tid)

    @rule(tid=tids)
    def markers_written(self, tid):
        txn = self.table.transactions.get(tid)
        if txn is not None and not txn.busy and txn.current.state in (TxnState.PREPARE_COMMIT,
                                                                       TxnState.PREPARE_ABORT):
            self.table.complete(tid, self.table.complete_transit(tid, self.now))

    @rule(ms=st.integers(0, 15_000))
    def time_passes(self, ms):
        self.now += ms
        self.table.timed_out(self.now)

    @rule()
    def expire(self):
        self.table.expired(self.now, 30_000)

    @invariant()
    def consistent(self):
        for tid, txn in getattr(self, "table", TransactionTable(1)).transactions.items():
            current = txn.current
            assert 0 <= current.producer_epoch <= MAX_EPOCH or current.producer_epoch == -1
            if current.state in IDLE:
                assert not current.partitions
            else:
                assert current.partitions and current.start_ms >= 0
            assert current.state not in (TxnState.DEAD, TxnState.PREPARE_EPOCH_FENCE)
            if txn.pending is not None:
                assert current.state in VALID_PREVIOUS[txn.pending.state]
            owner = self.seen_pids.setdefault(current.producer_id, tid)
            assert owner == tid  # a producer id belongs to one transactional id
            # The epoch of a producer id never goes back.
            last = self.last_epoch.get(tid)
            if last is not None and last[0] == current.producer_id:
                assert current.producer_epoch >= last[1]
            self.last_epoch[tid] = (current.producer_id, current.producer_epoch)


TestTransactionMachine = TransactionMachine.TestCase
TestTransactionMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
