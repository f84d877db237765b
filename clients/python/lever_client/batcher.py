"""A bounded queue drained by one background thread: a batch goes out when ``flush_at``
items are waiting, when the oldest has waited ``flush_interval`` seconds, on ``flush()``
and on ``close()``. A full queue drops new items and counts them; nothing blocks the caller."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Deque, Generic, List, Optional, Tuple, TypeVar

from .logs import LogOnce
from .models import DeliveryStats

T = TypeVar("T")


class Counters:
    """Delivery counters shared by the batcher and the sender (see ``DeliveryStats``)."""

    def __init__(self) -> None:
        self.after_fork()
        self.sent = self.duplicates = self.rejected = self.failed = self.dropped = 0

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it when the process forked

    def add(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def snapshot(self, queued: int) -> DeliveryStats:
        with self._lock:
            return DeliveryStats(queued=queued, sent=self.sent, duplicates=self.duplicates, rejected=self.rejected,
                                 failed=self.failed, dropped=self.dropped)


class Batcher(Generic[T]):
    """``deliver(batch)`` runs on the background thread and must return only once the batch
    is settled (sent, refused or given up) or ``stop`` is set (it counts what it abandons)."""

    def __init__(self, deliver: Callable[[List[T]], None], counters: Counters, stop: threading.Event,
                 flush_at: int = 50, flush_interval: float = 1.0, max_queue: int = 10_000) -> None:
        if flush_at < 1 or max_queue < flush_at or not flush_interval > 0:
            raise ValueError("need 1 <= flush_at <= max_queue and flush_interval > 0")
        self._deliver = deliver
        self._counters = counters
        self._stop = stop
        self.flush_at = flush_at
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self._log = LogOnce()
        self.after_fork()

    def after_fork(self) -> None:
        """Start empty, with no thread (a forked child: the parent sends its own queue)."""
        self._cond = threading.Condition()
        self._queue: Deque[Tuple[float, T]] = deque()
        self._enqueued = 0  # items ever accepted
        self._settled = 0  # of those, how many are sent, refused, given up or dropped
        self._flush_wanted = 0  # settle at least up to this sequence number without waiting
        self._closing = False
        self._thread: Optional[threading.Thread] = None

    def put(self, item: T) -> bool:
        with self._cond:
            if self._closing:
                self._counters.add(dropped=1)
                self._log.warning("closed", "lever_client: reward or event after close(): dropped")
                return False
            if len(self._queue) >= self.max_queue:
                self._counters.add(dropped=1)
                self._log.warning("full", "lever_client: queue full (%d items, Lever unreachable?): dropping "
                                  "new rewards and events; see Lever.stats().dropped", self.max_queue)
                return False
            self._queue.append((time.monotonic(), item))
            self._enqueued += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lever-client-sender", daemon=True)
                self._thread.start()
            if len(self._queue) >= self.flush_at:
                self._cond.notify_all()
            return True

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def flush(self, timeout: float) -> bool:
        """Wait until everything put before this call is settled; False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._enqueued
            self._flush_wanted = max(self._flush_wanted, target)
            self._cond.notify_all()
            while self._settled < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float) -> bool:
        """Send what is queued within ``timeout`` s, then stop; the rest counts as dropped."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if not flushed:
            self._stop.set()  # the sender abandons its retries
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout if flushed else 1.0)
        with self._cond:  # whatever the thread could not take (it stopped or never ran)
            left = len(self._queue)
            self._queue.clear()
            self._settled += left
            self._cond.notify_all()
        if left:
            self._counters.add(dropped=left)
        return flushed and not left

    def _next_batch(self) -> Optional[List[T]]:
        with self._cond:
            while True:
                if self._stop.is_set() or (self._closing and not self._queue):
                    return None
                if self._queue:
                    due = self._queue[0][0] + self.flush_interval
                    if (len(self._queue) >= self.flush_at or self._closing
                            or self._flush_wanted > self._settled or time.monotonic() >= due):
                        count = min(self.flush_at, len(self._queue))
                        return [self._queue.popleft()[1] for _ in range(count)]
                    self._cond.wait(due - time.monotonic())
                else:
                    self._cond.wait()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._settled += len(batch)
                    self._cond.notify_all()
