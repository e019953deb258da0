"""Drains the outbox: sends every due notification, retries with backoff, records the outcome.

Delivery guarantee. The evaluator writes each notification to the outbox (``enqueue``) before
anything is sent; the dispatcher sends an item and then, in a transaction of its own holding
nothing else, marks it delivered (``mark_delivered``). A crash *before the send* loses nothing
(the item is still pending). A crash *between the send and the mark* — the at-least-once window
— resends that one item after the restart. The window is kept as small as we can make it: the
mark is the very next statement after the receiver answered (no batching of marks, no other
work in between), and each receiver has at most one request in flight, so at most one item per
receiver can be duplicated. Duplicates are harmless downstream: PagerDuty collapses events with
the same ``dedup_key`` (the alert fingerprint) into one incident, and the webhook's
``Idempotency-Key`` header (the notification ``id``) lets the receiver drop a repeat. Slack has
no such key; a rare duplicate message there is the accepted cost.

Retries. A retryable failure (timeout, connection error, 429, 5xx) schedules the next attempt
after an exponential backoff with *full jitter*: ``uniform(0, min(cap, base * factor**(n-1)))``
after the n-th failed attempt (base 1 s, factor 2, cap 5 min), and never earlier than a
``Retry-After`` the receiver sent. The other items of the same receiver that were due in the
same pass are deferred to that time too, rather than hammering a receiver that just said no.
An item whose next attempt would fall after ``created_at + max_age`` (24 h), or that is already
older than that when it comes due, is marked dead with the reason. A non-retryable failure
(``ok=False, retry=False``, e.g. a 400 or 401) is dead at once; its error is logged with the
notifier's ``describe()`` (never its URL or key).

Order and concurrency. The items of one receiver go one after another in outbox order, and an
item waits while an older one of the same receiver and alert is pending (``AlertStore.due``): a
resolve is never delivered before its trigger, even when the trigger waits out a retry
backoff after an outage (with PagerDuty, a trigger after its resolve would reopen an incident
nobody closes). Receivers are independent: ``run`` drains each in a task of its own and polls
again while one is busy, so a receiver that hangs until the timeout delays only its own items.

>>> import asyncio, httpx
>>> from storage.database import Database
>>> from alerts.model import Notification
>>> from alerts.outbox import AlertStore
>>> class Echo:
...     name = "echo"
...     async def send(self, n, http, timeout):
...         return SendOutcome(ok=True, status=200)
>>> db = Database("sqlite:///:memory:"); db.migrate(); store = AlertStore(db)
>>> store.enqueue([Notification(id="n1", receiver="echo", kind="trigger", fingerprint="f",
...     rule="R", labels={}, annotations={}, value=1.0, starts_at=0.0, ends_at=None,
...     created_at=0.0)])
>>> async def main():
...     async with httpx.AsyncClient() as http:
...         return await Dispatcher(store, {"echo": Echo()}, http, clock=lambda: 1.0).run_once(1.0)
>>> asyncio.run(main())
1
>>> db.close()
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

import httpx

from alerts.model import SendOutcome
from alerts.notifiers.base import GroupNotifier, Notifier
from alerts.outbox import AlertStore, OutboxItem
from core.numbers import LatencyHistogram

__all__ = ["Dispatcher", "backoff_delay"]

log = logging.getLogger("inferwatch.alerts.dispatcher")

#: Upper bounds (seconds) of the delivery-latency histogram buckets (plus +Inf).
LATENCY_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def backoff_delay(
    attempts: int, rng: random.Random, *, base: float = 1.0, factor: float = 2.0, cap: float = 300.0
) -> float:
    """Full-jitter delay after the ``attempts``-th failed attempt (1, 2, …).

    >>> backoff_delay(1, random.Random(0)) <= 1.0 and backoff_delay(30, random.Random(0)) <= 300
    True
    """
    ceiling = min(cap, base * factor ** max(0, attempts - 1))
    return rng.uniform(0.0, ceiling)


def _failure_reason(outcome: SendOutcome) -> str:
    """A low-cardinality label for ``failures_total``."""
    if outcome.status == 429:
        return "rate_limited"
    if outcome.status is not None and outcome.status >= 500:
        return "server_error"
    if outcome.status is not None and outcome.retry:
        return "retryable_status"
    if outcome.status is not None:
        return "rejected"
    return "transport" if outcome.retry else "error"


class Dispatcher:
    """Sends what the outbox holds, once each, through the configured notifiers.

    ``notifiers`` maps receiver name (``Notification.receiver``) to notifier. ``clock`` gives
    the times written to the outbox, ``sleep`` waits in ``run`` and ``rng`` draws the jitter:
    tests inject all three. Store calls run in a worker thread (the store is thread-safe).

    Metrics for ``/metrics``: ``queue_size`` (pending items after the last pass),
    ``sent_total[receiver]``, ``failures_total[(receiver, reason)]`` and
    ``delivery_latency_seconds`` (a ``LatencyHistogram``).
    """

    def __init__(
        self,
        store: AlertStore,
        notifiers: Mapping[str, Notifier],
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        *,
        timeout: float = 10.0,
        batch: int = 100,
        backoff_base: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_cap: float = 300.0,
        max_age: float = 86400.0,
        idle_wait: float = 60.0,
        error_wait: float = 5.0,
        stop_grace: float = 2.0,
    ) -> None:
        self._store = store
        self._notifiers = dict(notifiers)
        self._http = http
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self.timeout = timeout
        self.batch = batch
        self.backoff_base = backoff_base
        self.backoff_factor = backoff_factor
        self.backoff_cap = backoff_cap
        self.max_age = max_age
        self.idle_wait = idle_wait
        self.error_wait = error_wait
        self.stop_grace = stop_grace

        self.queue_size = 0
        self.sent_total: Counter[str] = Counter()
        self.failures_total: Counter[tuple[str, str]] = Counter()
        self.delivery_latency_seconds = LatencyHistogram(LATENCY_BUCKETS)

        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy: dict[str, asyncio.Task[int]] = {}  # receiver -> its drain in flight (``run``)
        self._notified = False
        self._notify_lock = threading.Lock()

    def set_notifiers(self, notifiers: Mapping[str, Notifier]) -> None:
        """Receivers after a config reload (drains in flight finish with the old ones)."""
        self._notifiers = dict(notifiers)

    # --- one pass ------------------------------------------------------------------------------

    async def run_once(self, now: float) -> int:
        """Try every item due at ``now`` once; returns how many were delivered."""
        items = await asyncio.to_thread(self._store.due, now, self.batch)
        sent = await asyncio.gather(
            *(self._drain(receiver, queue) for receiver, queue in _by_receiver(items).items())
        )
        self.queue_size = await asyncio.to_thread(self._store.pending_count)
        return sum(sent)

    async def _drain(self, receiver: str, queue: list[OutboxItem]) -> int:
        notifier = self._notifiers.get(receiver)
        if notifier is None:
            for item in queue:
                await self._dead(item, None, f"no notifier named {receiver!r}", "no_notifier",
                                 attempted=False)
            return 0
        sent = 0
        grouping = isinstance(notifier, GroupNotifier) and notifier.merges_groups()
        batches = _batches(queue) if grouping else [[item] for item in queue]
        for i, batch in enumerate(batches):
            retry_at = await self._deliver(notifier, batch)
            if isinstance(retry_at, int):
                sent += retry_at
            elif isinstance(retry_at, float):
                # The receiver is down or rate-limiting: the rest waits as long as this one.
                rest = [later.id for b in batches[i + 1:] for later in b]
                if rest:
                    await asyncio.to_thread(self._store.defer, rest, retry_at)
                break
        return sent

    async def _deliver(self, notifier: Notifier, batch: list[OutboxItem]) -> int | float | None:
        """Send one item, or one group's items as one message, and record the outcome. An int:
        that many delivered; a float: retry at that time; None: dead (or no longer pending)."""
        now = self._clock()
        live: list[OutboxItem] = []
        for item in batch:
            if now > item.notification.created_at + self.max_age:
                why = f"expired: older than {self.max_age:g}s"
                if item.last_error:
                    why += f" after {item.attempts} attempts, last error: {item.last_error}"
                await self._dead(item, notifier, why, "expired", attempted=False)
            else:
                live.append(item)
        if not live:
            return None
        item = live[0]  # the batch's oldest: its attempts and age govern the retry
        n = item.notification
        deadline = n.created_at + self.max_age
        try:
            if len(live) > 1 and isinstance(notifier, GroupNotifier):
                sending = notifier.send_group([x.notification for x in live], self._http, self.timeout)
            else:
                sending = notifier.send(n, self._http, self.timeout)
            outcome = await asyncio.wait_for(sending, self.timeout + 5.0)
        except Exception as exc:  # a notifier must not raise; treat it as a transient failure
            outcome = SendOutcome(ok=False, retry=True, error=f"{type(exc).__name__} in notifier")
        now = self._clock()
        if outcome.ok:
            # The at-least-once window is from the receiver's answer to these commits: nothing
            # else happens in between.
            for x in live:
                latency = max(0.0, now - x.notification.created_at)
                await asyncio.to_thread(self._store.mark_delivered, x.id, now, latency)
                self.delivery_latency_seconds.observe(latency)
            self.sent_total[n.receiver] += 1
            return len(live)
        reason = _failure_reason(outcome)
        error = outcome.error or (f"HTTP {outcome.status}" if outcome.status else "failed")
        if not outcome.retry:
            for x in live:
                await self._dead(x, notifier, error, reason, attempted=True)
            return None
        attempts = item.attempts + 1
        delay = backoff_delay(
            attempts,
            self._rng,
            base=self.backoff_base,
            factor=self.backoff_factor,
            cap=self.backoff_cap,
        )
        if outcome.retry_after is not None and math.isfinite(outcome.retry_after):
            delay = max(delay, float(outcome.retry_after))
        next_at = now + delay
        if next_at > deadline:
            why = f"gave up after {attempts} attempts over {self.max_age:g}s, last error: {error}"
            for x in live:
                await self._dead(x, notifier, why, "expired", attempted=True, counted=reason)
            return None
        self.failures_total[(n.receiver, reason)] += 1
        for x in live:
            await asyncio.to_thread(self._store.mark_retry, x.id, now, next_at, error)
        log.info(
            "notification %s to %s failed (attempt %d, %s), retry in %.1fs",
            n.id, _describe(notifier, n.receiver), attempts, error, delay,
        )
        return next_at

    async def _dead(
        self,
        item: OutboxItem,
        notifier: Notifier | None,
        error: str,
        reason: str,
        *,
        attempted: bool,
        counted: str | None = None,
    ) -> None:
        n = item.notification
        if counted is not None:  # the failed attempt that led to giving up
            self.failures_total[(n.receiver, counted)] += 1
        self.failures_total[(n.receiver, reason)] += 1
        await asyncio.to_thread(
            self._store.mark_dead, n.id, self._clock(), error, attempted=attempted
        )
        log.error(
            "notification %s (%s %s) to %s dropped: %s",
            n.id, n.kind, n.rule, _describe(notifier, n.receiver), error,
        )

    # --- the loop ------------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake ``run`` now (call after an ``enqueue``); safe from any thread."""
        with self._notify_lock:
            self._notified = True
            loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # loop closed
                pass

    async def _start_drains(self, now: float) -> None:
        """Start a drain for every receiver with due items and none in flight."""
        busy = set(self._busy)
        items = await asyncio.to_thread(self._store.due, now, self.batch, busy)
        for receiver, queue in _by_receiver(items).items():
            task = asyncio.create_task(self._drain_counted(receiver, queue), name=f"notify:{receiver}")
            self._busy[receiver] = task
            task.add_done_callback(functools.partial(self._drained, receiver))
        self.queue_size = await asyncio.to_thread(self._store.pending_count)

    async def _drain_counted(self, receiver: str, queue: list[OutboxItem]) -> int:
        sent = await self._drain(receiver, queue)
        self.queue_size = await asyncio.to_thread(self._store.pending_count)
        return sent

    def _drained(self, receiver: str, _task: object = None) -> None:
        task = self._busy.pop(receiver, None)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("delivery to %s failed: %s", receiver, type(task.exception()).__name__)
        self.notify()  # its other items (or a resolve it held back) may be due now

    async def run(self, stop_event: asyncio.Event) -> None:
        """Dispatch until ``stop_event`` is set: start a drain for each receiver with due items
        (one per receiver at a time), then sleep until the next item is due (at most
        ``idle_wait``), ``notify()``, a drain's end or stop. A failing store is retried after
        ``error_wait``. Drains in flight at stop get ``stop_grace`` seconds, then are cancelled."""
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        try:
            while not stop_event.is_set():
                with self._notify_lock:
                    self._notified = False
                    self._wake.clear()
                try:
                    await self._start_drains(self._clock())
                    next_at = await asyncio.to_thread(self._store.next_due_at, set(self._busy))
                    if next_at is None and self._busy:
                        wait = math.inf  # until a drain ends (it wakes this loop) or notify()
                    else:
                        wait = self.idle_wait if next_at is None else next_at - self._clock()
                        wait = min(self.idle_wait, max(0.0, wait))
                except Exception:
                    log.exception("dispatcher pass failed; retrying in %gs", self.error_wait)
                    wait = self.error_wait
                with self._notify_lock:
                    if self._notified:
                        continue
                if stop_event.is_set():
                    break
                if wait <= 0:
                    await asyncio.sleep(0)  # let others run between back-to-back passes
                    continue
                await self._wait(wait, stop_event)
        finally:
            with self._notify_lock:
                self._wake, self._loop = None, None
            if self._busy:
                # sends in flight get ``stop_grace`` to finish and be marked; a send cut off
                # stays pending in the outbox and goes again after a restart (at least once)
                drains = list(self._busy.values())
                _, late = await asyncio.wait(drains, timeout=self.stop_grace)
                for task in late:
                    task.cancel()
                if late:
                    await asyncio.gather(*late, return_exceptions=True)
                    log.warning("dispatcher stopped with %d receiver(s) still sending; their items stay "
                                "pending and go out after a restart", len(late))

    async def _wait(self, seconds: float, stop_event: asyncio.Event) -> None:
        assert self._wake is not None
        tasks: list[asyncio.Future[object]] = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(stop_event.wait()),
        ]
        if math.isfinite(seconds):
            tasks.append(asyncio.ensure_future(self._sleep(seconds)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


#: the most notifications one grouped message carries (a bigger group goes out in several)
MAX_GROUP = 50


def _batches(queue: list[OutboxItem]) -> list[list[OutboxItem]]:
    """One receiver's due items as messages: the items of one group (``group_key``) together,
    in the order of each group's oldest item; an item without a group alone."""
    out: list[list[OutboxItem]] = []
    open_: dict[str, list[OutboxItem]] = {}
    for item in queue:
        key = item.notification.group_key
        batch = open_.get(key) if key else None
        if batch is None or len(batch) >= MAX_GROUP:
            batch = []
            out.append(batch)
            if key:
                open_[key] = batch
        batch.append(item)
    return out


def _by_receiver(items: list[OutboxItem]) -> dict[str, list[OutboxItem]]:
    """Due items per receiver, each list in outbox order."""
    out: dict[str, list[OutboxItem]] = {}
    for item in items:
        out.setdefault(item.receiver, []).append(item)
    return out


def _describe(notifier: Notifier | None, receiver: str) -> str:
    """How logs name a notifier: its own ``describe()`` (secret-free) or the receiver name."""
    if notifier is not None:
        try:
            return str(notifier.describe())
        except Exception:
            pass
    return receiver
