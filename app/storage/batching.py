"""Group commit: many requests' writes committed in one transaction, each answered after it.

A request hands its write (a function of the backend's transaction context) to
``GroupCommitter.submit`` and waits. Whoever commits takes whatever is pending (at most
``max_batch`` items; with ``max_wait_s`` > 0 it first waits that long for a batch to fill),
runs every item in one transaction, commits, and only then wakes each waiter with its own
result. So nothing is acknowledged before the commit that holds its row, and the fixed cost
of a transaction (BEGIN, the database lock, COMMIT, on PostgreSQL the WAL flush) is paid
once per batch instead of once per request.

Who commits (``GroupCommitOptions.leader``):

* a writer thread per process (``leader=False``): every request hands its write over and
  waits, so even a request alone pays a thread hand-off: the writer must be woken and get
  the GIL, then wake the request, which must get it back;
* leader/follower (``leader=True``): the request that finds no commit in progress leads:
  it commits the pending batch on its own thread (itself, and whoever queued meanwhile),
  and once it is answered it wakes the oldest waiter to lead the next batch (nobody
  queued: the next request leads). A request alone commits without any hand-off; under
  load batches form exactly as with the writer. The leader waits for its own transaction,
  so a backend uses this mode only where its commit is bounded within ``timeout_s``
  (SQLite: the busy timeout bounds each lock wait, ``app.storage.open_storage``).

Failure rules (the request's point of view):

* the batch's transaction fails for the database's reasons (``StorageBusy``: lock timeout,
  connection lost, ``StorageOutcomeUnknown`` after an ambiguous commit) → every item of the
  batch gets that error (a 503), and nothing of the batch is written;
* an item raises anything else (bad data, a bug in a model update) → the transaction is
  rolled back and every item of the batch is run again in a transaction of its own, so only
  the poisoned request fails and the others are committed;
* the waiter's own deadline (``timeout_s``) passes → if no commit has taken the item yet
  it is withdrawn (``StorageBusy``: nothing written; a waiter just woken to lead hands the
  lead on first); if its batch is being committed the answer is ``StorageOutcomeUnknown``
  (it may land): a slow commit never holds a waiting request past its deadline without an
  answer. (A leader is in its own commit: the backend's bound applies, see above.)

Items of one batch run in the order of their ``order`` keys, so two processes' batches take
row locks in one global order (PostgreSQL) and cannot wait for each other crosswise.

Threads do not survive ``fork``: the writer is started lazily and again in a child process;
a child's first request drops the parent's queue and leader state (their waiters are not here).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

from .base import StorageBusy, StorageOutcomeUnknown

log = logging.getLogger("lever.storage")

C = TypeVar("C")  # the backend's transaction context handed to each item
T = TypeVar("T")

#: one item of a batch: runs inside the batch's transaction
Work = Callable[[C], Any]
#: the backend's runner: run ``body`` as one write transaction and return what it returned
Transact = Callable[[Callable[[C], list[Any]]], list[Any]]

_NOT_SET = object()


@dataclass(eq=False)
class _Pending:
    work: Callable[[Any], Any]
    order: tuple
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = _NOT_SET
    error: BaseException | None = None
    taken: bool = False
    #: leader mode: this waiter was woken to commit the next batch itself
    lead: bool = False

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


@dataclass(frozen=True)
class GroupCommitOptions:
    """How a backend batches its event writes (``LEVER_GROUP_COMMIT_*`` settings)."""

    #: most items in one transaction
    max_batch: int = 64
    #: how long the writer waits for a batch to fill once something is pending (0: commit at once;
    #: what arrives meanwhile forms the next batch)
    max_wait_s: float = 0.0
    #: how long a request waits for its commit before it is answered 503 regardless
    timeout_s: float = 10.0
    #: leader/follower: the request that finds no commit in progress commits the pending batch on
    #: its own thread (False: a dedicated writer thread commits every batch)
    leader: bool = False

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_wait_s < 0 or self.timeout_s <= 0:
            raise ValueError("max_batch >= 1, max_wait_s >= 0 and timeout_s > 0 are required")


@dataclass(frozen=True)
class BatchStats:
    """Counts since the writer started (for benchmarks and tests)."""

    batches: int
    items: int
    isolated_retries: int


class GroupCommitter(Generic[C]):
    """A per-process batching writer over a backend's ``transact`` function."""

    def __init__(self, transact: Transact, options: GroupCommitOptions = GroupCommitOptions(),
                 name: str = "lever-group-commit") -> None:
        self._transact = transact
        self.max_batch, self.max_wait_s, self.timeout_s = options.max_batch, options.max_wait_s, options.timeout_s
        self.leader = options.leader
        self._leading = False  # leader mode: a request thread is committing (or has been woken to)
        self.name = name
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._pid = 0  # the process whose writer is running (0: none)
        self._owner = 0  # the process whose requests the queue holds
        self._generation = 0  # a writer runs while the generation it started with is current
        self._batches = self._items = self._isolated = 0

    # -- the request's side --------------------------------------------------------------
    def submit(self, work: Callable[[C], T], order: tuple = ()) -> T:
        """Run ``work`` in the next batch's transaction; return its result after the commit."""
        if self.leader:
            return self._submit_led(_Pending(work, order))
        pending = _Pending(work, order)
        with self._cond:
            if self._pid != os.getpid():
                self._start()
            self._queue.append(pending)
            self._cond.notify()
        self._wait_or_lead(pending)
        return self._result(pending)

    # -- leader/follower -------------------------------------------------------------------
    def _submit_led(self, pending: _Pending) -> Any:
        with self._cond:
            if self._owner != os.getpid():  # after a fork: the parent's waiters do not exist here
                self._queue.clear()
                self._owner, self._leading = os.getpid(), False
            self._queue.append(pending)
            lead = not self._leading
            self._leading = True
            if self.max_wait_s:
                self._cond.notify()  # a leader waiting for its batch to fill
        while not lead:
            self._wait_or_lead(pending)
            if not pending.lead:
                return self._result(pending)
            pending.lead, lead = False, True
            pending.done.clear()
        self._lead(pending)
        return self._result(pending)

    def _wait_or_lead(self, pending: _Pending) -> None:
        """Until ``pending`` is answered or woken to lead; past the deadline, ``_wait``'s answers."""
        if pending.done.wait(self.timeout_s):
            return
        with self._cond:
            if not pending.taken:
                self._queue.remove(pending)
                if pending.lead:
                    self._promote()
                raise StorageBusy(f"the write was not started within {self.timeout_s:g} s; nothing was written")
        if not pending.done.wait(0.05):
            raise StorageOutcomeUnknown(
                f"the transaction holding this write did not commit within {self.timeout_s:g} s: "
                "it may or may not be recorded")

    @staticmethod
    def _result(pending: _Pending) -> Any:
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _lead(self, own: _Pending) -> None:
        """Commit batches from the queue's head until ``own`` is answered, then wake the next
        waiter to lead (or, with nothing queued, let the next request lead)."""
        try:
            while not own.done.is_set():
                batch = self._take()
                try:
                    self._commit(sorted(batch, key=lambda p: p.order))
                except BaseException as error:  # never leave a waiter without an answer
                    for pending in batch:
                        if not pending.done.is_set():
                            pending.finish(error=StorageBusy(f"the write failed: {error}"))
                    raise
        finally:
            with self._cond:
                self._promote()

    def _take(self) -> list[_Pending]:
        with self._cond:
            if self.max_wait_s and len(self._queue) < self.max_batch:
                deadline = time.monotonic() + self.max_wait_s
                while len(self._queue) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            for pending in batch:
                pending.taken = True
        return batch

    def _promote(self) -> None:
        """(Holding the condition.) The oldest waiter commits next; none: no commit in progress."""
        if self._queue:
            head = self._queue[0]
            head.lead = True
            head.done.set()
        else:
            self._leading = False

    def stats(self) -> BatchStats:
        return BatchStats(self._batches, self._items, self._isolated)

    def stop(self) -> None:
        """Let the writer finish what is queued, then end (the next submit starts a new one)."""
        with self._cond:
            self._pid = 0
            self._generation += 1
            self._cond.notify_all()

    # -- the writer's side -----------------------------------------------------------------
    def _start(self) -> None:
        """(Holding the condition.) A writer for this process; after a fork the parent's
        queue belongs to waiters that do not exist here."""
        if self._owner != os.getpid():
            self._queue.clear()
            self._owner = os.getpid()
        self._pid = os.getpid()
        self._generation += 1
        threading.Thread(target=self._run, args=(self._generation,), name=self.name, daemon=True).start()

    def _next_batch(self, generation: int) -> list[_Pending] | None:
        with self._cond:
            while not self._queue:
                if generation != self._generation:
                    return None
                self._cond.wait()
            if self.max_wait_s and len(self._queue) < self.max_batch:
                deadline = time.monotonic() + self.max_wait_s
                while len(self._queue) < self.max_batch and generation == self._generation:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            for pending in batch:
                pending.taken = True
        return batch

    def _run(self, generation: int) -> None:
        while True:
            batch = self._next_batch(generation)
            if batch is None:
                return
            try:
                self._commit(sorted(batch, key=lambda p: p.order))
            except BaseException as error:  # never leave a waiter without an answer
                log.exception("group commit writer failed")
                for pending in batch:
                    if not pending.done.is_set():
                        pending.finish(error=StorageBusy(f"the write failed: {error}"))

    def _commit(self, batch: Sequence[_Pending]) -> None:
        self._batches += 1
        self._items += len(batch)
        try:
            results = self._transact(lambda context: [pending.work(context) for pending in batch])
        except StorageBusy as error:  # the database's reason: the whole batch shares it
            for pending in batch:
                pending.finish(error=error)
            return
        except Exception as error:
            if len(batch) == 1:
                batch[0].finish(error=error)
                return
            # one item's own failure: rolled back; each item again on its own, so only it fails
            self._isolated += 1
            for pending in batch:
                try:
                    pending.finish(self._transact(lambda context, p=pending: [p.work(context)])[0])
                except Exception as own:
                    pending.finish(error=own)
            return
        for pending, result in zip(batch, results):
            pending.finish(result)
