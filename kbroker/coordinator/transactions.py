"""The transaction coordinator's state: one `Transaction` per transactional id, a pure machine.

Kafka's TransactionMetadata / TransactionCoordinator semantics (transaction protocol v1, the one
clients up to EndTxn v4 speak). States and the transitions into them:

    Empty             <- Empty, CompleteCommit, CompleteAbort   (InitProducerId: epoch bump)
    Ongoing           <- Ongoing, Empty, CompleteCommit, CompleteAbort   (AddPartitions/AddOffsets)
    PrepareCommit     <- Ongoing                                (EndTxn commit)
    PrepareAbort      <- Ongoing, PrepareEpochFence             (EndTxn abort, fencing, timeout)
    CompleteCommit    <- PrepareCommit                          (every marker written)
    CompleteAbort     <- PrepareAbort
    Dead              <- Empty, CompleteCommit, CompleteAbort   (transactional.id.expiration.ms)
    PrepareEpochFence <- Ongoing   (in memory only: the epoch is bumped, then the abort is logged)

A step never changes a transaction directly: it returns a `Transit` (the state to log), and the
transaction holds it as `pending` until the async layer has written it to `__transaction_state`
(`complete`) or failed to (`cancel`). While a transit is pending, other requests for the id get
CONCURRENT_TRANSACTIONS, as Kafka's `pendingTransitionInProgress`. Time is passed in.

Errors are Kafka's, with PRODUCER_FENCED for the current request versions; the handlers map it
to INVALID_PRODUCER_EPOCH for versions that predate it (KIP-588).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from kbroker.errors import ErrorCode

MAX_EPOCH = 32767  # Short.MaxValue: an exhausted epoch gets a new producer id
NO_PRODUCER_ID = -1
NO_EPOCH = -1

TopicPartition = tuple[str, int]


class TxnState(IntEnum):
    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display_name(self) -> str:
        """The name DescribeTransactions / ListTransactions show (Kafka's TransactionState.name)."""
        return _NAMES[self]


_NAMES = {TxnState.EMPTY: "Empty", TxnState.ONGOING: "Ongoing", TxnState.PREPARE_COMMIT: "PrepareCommit",
          TxnState.PREPARE_ABORT: "PrepareAbort", TxnState.COMPLETE_COMMIT: "CompleteCommit",
          TxnState.COMPLETE_ABORT: "CompleteAbort", TxnState.DEAD: "Dead",
          TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence"}
STATE_BY_NAME = {name: state for state, name in _NAMES.items()}

_S = TxnState
VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    _S.EMPTY: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.ONGOING: frozenset({_S.ONGOING, _S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_COMMIT: frozenset({_S.ONGOING}),
    _S.PREPARE_ABORT: frozenset({_S.ONGOING, _S.PREPARE_EPOCH_FENCE}),
    _S.COMPLETE_COMMIT: frozenset({_S.PREPARE_COMMIT}),
    _S.COMPLETE_ABORT: frozenset({_S.PREPARE_ABORT}),
    _S.DEAD: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_EPOCH_FENCE: frozenset({_S.ONGOING}),
}
# States without an open transaction: the id may expire, InitProducerId bumps the epoch at once.
IDLE = frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT})
PREPARING = frozenset({_S.PREPARE_COMMIT, _S.PREPARE_ABORT})


@dataclass(frozen=True, slots=True)
class Transit:
    """A transaction's state as it will be logged: the value of its `__transaction_state` record."""
    producer_id: int
    last_producer_id: int  # the id before an epoch-exhaustion rotation (a retried InitProducerId)
    producer_epoch: int
    last_producer_epoch: int  # the epoch before the last bump (a retried KIP-360 bump)
    timeout_ms: int
    state: TxnState
    partitions: frozenset[TopicPartition]
    start_ms: int  # -1: no transaction open
    last_update_ms: int


@dataclass(slots=True)
class Transaction:
    transactional_id: str
    current: Transit
    pending: Transit | None = None

    @property
    def state(self) -> TxnState:
        return self.current.state

    @property
    def busy(self) -> bool:
        return self.pending is not None


@dataclass(frozen=True, slots=True)
class InitResult:
    """InitProducerId: an error, a transit to log (answer its producer id and epoch), or `fence`:
    an open transaction is aborted first with `fence` (the pending abort transit), after which the
    client is told CONCURRENT_TRANSACTIONS and retries."""
    error: ErrorCode = ErrorCode.NONE
    transit: Transit | None = None
    fence: Transit | None = None


class TransactionTable:
    """Every transaction this coordinator owns, by transactional id."""

    def __init__(self, max_timeout_ms: int) -> None:
        self.max_timeout_ms = max_timeout_ms
        self.transactions: dict[str, Transaction] = {}

    # -- InitProducerId -------------------------------------------------------------------------

    def needs_producer_id(self, transactional_id: str, expected_epoch: int | None) -> bool:
        """Whether InitProducerId will hand out a new producer id (a new id, or an exhausted epoch)."""
        txn = self.transactions.get(transactional_id)
        if txn is None:
            return True
        current = txn.current
        return (current.state in IDLE and current.producer_epoch >= MAX_EPOCH - 1
                and (expected_epoch is None or expected_epoch == current.producer_epoch))

    def init_producer_id(self, transactional_id: str, timeout_ms: int, expected: tuple[int, int] | None,
                         now_ms: int, new_producer_id: int | None) -> InitResult:
        """`expected`: the (producer id, epoch) a v3+ client sends (KIP-360), else None.
        `new_producer_id`: allocated when `needs_producer_id` said so."""
        if not transactional_id:
            return InitResult(ErrorCode.INVALID_REQUEST)
        if not 0 < timeout_ms <= self.max_timeout_ms:
            return InitResult(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        txn = self.transactions.get(transactional_id)
        if txn is None:
            if new_producer_id is None:
                raise ValueError("a new transactional id needs a producer id")
            txn = Transaction(transactional_id, Transit(new_producer_id, NO_PRODUCER_ID, NO_EPOCH, NO_EPOCH,
                                                        timeout_ms, _S.EMPTY, frozenset(), -1, now_ms))
            self.transactions[transactional_id] = txn
        current = txn.current
        if expected is not None and not _valid_producer_id(current, expected):
            return InitResult(ErrorCode.PRODUCER_FENCED)
        if txn.busy or current.state in PREPARING:
            return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        if current.state is _S.ONGOING:
            # Fence the previous incarnation: bump the epoch (unless exhausted), abort with it.
            txn.pending = self._fence(txn, now_ms)
            return InitResult(fence=txn.pending)
        if current.state not in IDLE:  # Dead: being removed
            return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        if self.needs_producer_id(transactional_id, None if expected is None else expected[1]) \
                and current.producer_epoch != NO_EPOCH:
            if new_producer_id is None:
                raise ValueError("an exhausted epoch needs a new producer id")
            # A new id with epoch 0; a v3+ client may retry with the old id at the exhausted epoch.
            transit = _replace(current, producer_id=new_producer_id, last_producer_id=current.producer_id,
                               producer_epoch=0, last_producer_epoch=NO_EPOCH if expected is None else
                               current.producer_epoch, timeout_ms=timeout_ms, state=_S.EMPTY,
                               partitions=frozenset(), start_ms=-1, last_update_ms=now_ms)
        else:
            bumped = current.producer_epoch + 1
            if expected is None or current.producer_epoch == NO_EPOCH or expected[1] == current.producer_epoch:
                epoch, last_epoch = bumped, (NO_EPOCH if expected is None else current.producer_epoch)
            elif expected[1] == current.last_producer_epoch:  # a retry of a bump that took
                epoch, last_epoch = current.producer_epoch, current.last_producer_epoch
            else:
                return InitResult(ErrorCode.PRODUCER_FENCED)
            transit = _replace(current, producer_epoch=epoch, last_producer_epoch=last_epoch,
                               timeout_ms=timeout_ms, state=_S.EMPTY, partitions=frozenset(), start_ms=-1,
                               last_update_ms=now_ms)
        txn.pending = transit
        return InitResult(transit=transit)

    # -- AddPartitionsToTxn / AddOffsetsToTxn ---------------------------------------------------

    def _check_producer(self, transactional_id: str, producer_id: int,
                        producer_epoch: int) -> Transaction | ErrorCode:
        if not transactional_id:
            return ErrorCode.INVALID_REQUEST
        txn = self.transactions.get(transactional_id)
        if txn is None or txn.current.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if txn.current.producer_epoch != producer_epoch:
            return ErrorCode.PRODUCER_FENCED
        return txn

    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[TopicPartition], now_ms: int) -> ErrorCode | Transit | None:
        """A transit to log, an error, or None: every partition is already in the transaction."""
        txn = self._check_producer(transactional_id, producer_id, producer_epoch)
        if isinstance(txn, ErrorCode):
            return txn
        current = txn.current
        if txn.busy or current.state in PREPARING:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if current.state not in VALID_PREVIOUS[_S.ONGOING]:
            return ErrorCode.INVALID_TXN_STATE
        added = frozenset(partitions)
        if current.state is _S.ONGOING and added <= current.partitions:
            return None
        transit = _replace(current, state=_S.ONGOING, partitions=current.partitions | added,
                           start_ms=now_ms if current.state in IDLE else current.start_ms, last_update_ms=now_ms)
        txn.pending = transit
        return transit

    def contains(self, transactional_id: str, producer_id: int, producer_epoch: int,
                 partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn v4+ verify_only: is each partition in the ongoing transaction?"""
        txn = self._check_producer(transactional_id, producer_id, producer_epoch)
        if isinstance(txn, ErrorCode):
            return {tp: txn for tp in partitions}
        inside = txn.current.partitions if txn.current.state is _S.ONGOING else frozenset()
        return {tp: ErrorCode.NONE if tp in inside else ErrorCode.INVALID_TXN_STATE for tp in partitions}

    # -- EndTxn ---------------------------------------------------------------------------------

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool,
                now_ms: int) -> ErrorCode | Transit | None:
        """A client's EndTxn: a Prepare transit to log, an error, or None (a retry of an EndTxn that
        already completed: answer NONE)."""
        txn = self._check_producer(transactional_id, producer_id, producer_epoch)
        if isinstance(txn, ErrorCode):
            return txn
        if txn.busy:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        state = txn.current.state
        if state is _S.ONGOING:
            transit = self._prepare_end(txn, commit, now_ms, txn.current.producer_epoch)
            txn.pending = transit
            return transit
        if state is (_S.COMPLETE_COMMIT if commit else _S.COMPLETE_ABORT):
            return None
        if state is (_S.PREPARE_COMMIT if commit else _S.PREPARE_ABORT):
            return ErrorCode.CONCURRENT_TRANSACTIONS
        return ErrorCode.INVALID_TXN_STATE

    def _prepare_end(self, txn: Transaction, commit: bool, now_ms: int, epoch: int) -> Transit:
        return _replace(txn.current, producer_epoch=epoch,
                        state=_S.PREPARE_COMMIT if commit else _S.PREPARE_ABORT, last_update_ms=now_ms)

    def _fence(self, txn: Transaction, now_ms: int) -> Transit:
        """Abort an open transaction under a bumped epoch (kept if exhausted), so its producer's
        next request, and its late writes at the partitions, are fenced. Kafka's
        prepareFenceProducerEpoch followed by the abort (PrepareEpochFence -> PrepareAbort)."""
        epoch = txn.current.producer_epoch
        return self._prepare_end(txn, False, now_ms, epoch if epoch >= MAX_EPOCH else epoch + 1)

    def complete_transit(self, transactional_id: str, now_ms: int) -> Transit:
        """Every marker of a Prepare state is written: the Complete transit to log."""
        txn = self.transactions[transactional_id]
        current = txn.current
        if current.state not in PREPARING or txn.busy:
            raise ValueError(f"{transactional_id}: cannot complete from {current.state.display_name}")
        transit = _replace(current, state=_S.COMPLETE_COMMIT if current.state is _S.PREPARE_COMMIT
                           else _S.COMPLETE_ABORT, partitions=frozenset(), last_update_ms=now_ms)
        txn.pending = transit
        return transit

    # -- the log write's outcome ----------------------------------------------------------------

    def complete(self, transactional_id: str, transit: Transit) -> None:
        """`transit` is durable in `__transaction_state`: it is the state now."""
        txn = self.transactions.get(transactional_id)
        if txn is None or txn.pending != transit:
            raise ValueError(f"{transactional_id}: no such pending transition")
        if txn.current.state not in VALID_PREVIOUS[transit.state]:
            raise ValueError(f"{transactional_id}: {txn.current.state.display_name} -> "
                             f"{transit.state.display_name} is not a transition")
        txn.current, txn.pending = transit, None
        if transit.state is _S.DEAD:
            del self.transactions[transactional_id]

    def cancel(self, transactional_id: str) -> None:
        """The write failed: the transaction stays as it was (a fence is undone too)."""
        txn = self.transactions.get(transactional_id)
        if txn is not None:
            txn.pending = None
            if txn.current.producer_epoch == NO_EPOCH and txn.current.state is _S.EMPTY:
                del self.transactions[transactional_id]  # created by this InitProducerId, never logged

    # -- timers ---------------------------------------------------------------------------------

    def timed_out(self, now_ms: int) -> list[tuple[str, Transit]]:
        """Ongoing transactions past their timeout, fenced: the abort transits to log. Kafka's
        abortTimedOutTransactions."""
        out = []
        for txn in self.transactions.values():
            current = txn.current
            if current.state is _S.ONGOING and not txn.busy and current.start_ms + current.timeout_ms < now_ms:
                txn.pending = self._fence(txn, now_ms)
                out.append((txn.transactional_id, txn.pending))
        return out

    def expired(self, now_ms: int, expiration_ms: int) -> list[tuple[str, Transit]]:
        """Idle ids unused for `transactional.id.expiration.ms`: the Dead transits (tombstones)."""
        out = []
        for txn in self.transactions.values():
            current = txn.current
            if current.state in IDLE and not txn.busy and current.last_update_ms + expiration_ms <= now_ms:
                transit = _replace(current, state=_S.DEAD, last_update_ms=now_ms)
                txn.pending = transit
                out.append((txn.transactional_id, transit))
        return out

    def preparing(self) -> list[tuple[str, Transit]]:
        """Transactions in PrepareCommit / PrepareAbort with no write pending: their markers are due
        (after a restart, the log says so)."""
        return [(tid, txn.current) for tid, txn in self.transactions.items()
                if txn.current.state in PREPARING and not txn.busy]

    # -- replay ---------------------------------------------------------------------------------

    def restore(self, transactional_id: str, transit: Transit | None) -> None:
        """Start-up: the latest `__transaction_state` record of an id (None: a tombstone)."""
        if transit is None or transit.state is _S.DEAD:
            self.transactions.pop(transactional_id, None)
        else:
            self.transactions[transactional_id] = Transaction(transactional_id, transit)


def _valid_producer_id(current: Transit, expected: tuple[int, int]) -> bool:
    """Kafka's isValidProducerId: the id a KIP-360 client sends must be this id (its epoch is checked
    by the bump), or the previous one at an exhausted epoch (a retried rotation); a fresh id
    (epoch -1) accepts anything."""
    producer_id, epoch = expected
    return (current.producer_epoch == NO_EPOCH or producer_id == current.producer_id
            or (producer_id == current.last_producer_id and epoch >= MAX_EPOCH - 1))


def _replace(transit: Transit, **changes: object) -> Transit:
    return dataclasses.replace(transit, **changes)
