"""Heartbeats that let a short lease stand for a long-running handler, and a dead worker's work resume
within a minute whatever the broker.

Two leases are kept alive by the process that holds them, as Temporal activity heartbeats and
Sidekiq's reliable fetch do, so that each can be short (a dead holder's work is taken over soon)
without limiting how long a handler may run:

- **The run lease** (`SUPRHOOK_RUN_LEASE`, 30 s) in the event log: while a handler runs, a thread of
  the process running it renews the lease every third of it. A handler running 20 minutes keeps its
  run; a SIGKILLed process stops renewing, and the recovery sweep takes its run over once the lease
  has expired.
- **Held Redis messages** (`SUPRHOOK_VISIBILITY_TIMEOUT`, 30 s): kombu's Redis transport puts every
  message a worker takes into an ``unacked`` hash, indexed by delivery time, and any consumer puts one
  back on its queue once its time is older than the visibility timeout. Left alone that timeout must
  exceed the longest a worker may hold a message (a 10-minute retry countdown, a 20-minute handler),
  so a dead worker's prefetched messages came back after 15 minutes. `RefreshHeldMessages` moves the
  delivery time of each message this worker still holds to now, every quarter of the timeout: held
  messages never look stale, and a dead worker's come back within the timeout.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

from celery import bootsteps

log = logging.getLogger("suprhook.leases")

Held = tuple[str, str, int, str]  # (event_id, handler, attempt, where its state is: "redis" | "log")
Renew = Callable[[list[Held]], list[Held]]


class LeaseKeeper:
    """Renews the run leases of the handlers running in this process, from one daemon thread.

    `renew` takes the held (event_id, handler, attempt, where) runs and returns those taken over meanwhile
    (`RunBook.renew` with the lease bound). The thread starts on first use in each process
    (a forked pool child starts its own) and idles while nothing runs.
    """

    def __init__(self, renew: Renew, every: float) -> None:
        self._renew, self.every = renew, every
        self._held: dict[Held, int] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None

    def hold(self, event_id: str, handler: str, attempt: int, where: str = "log") -> "_Held":
        return _Held(self, (event_id, handler, attempt, where))

    def _add(self, key: Held) -> None:
        with self._lock:
            self._held[key] = self._held.get(key, 0) + 1
            if self._pid != os.getpid():  # first run in this process: start its heartbeat
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="suprhook-lease", daemon=True).start()

    def _remove(self, key: Held) -> None:
        with self._lock:
            left = self._held.get(key, 0) - 1
            if left > 0:
                self._held[key] = left
            else:
                self._held.pop(key, None)

    def held(self) -> list[Held]:
        with self._lock:
            return list(self._held)

    def beat(self) -> list[Held]:
        """Renew every held lease now; returns the runs another attempt took over."""
        held = self.held()
        if not held:
            return []
        lost = self._renew(held)
        for event_id, handler, attempt, _ in lost:
            log.warning("lease lost handler=%s event_id=%s attempt=%d: another attempt took the run over "
                        "(this process could not renew it in time)", handler, event_id, attempt)
        return lost

    def _loop(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(self.every)
            try:
                self.beat()
            except Exception as exc:  # a passing store error: the next beat tries again
                log.warning("lease renewal failed (%s: %s); retrying in %.0f s", type(exc).__name__, exc, self.every)


class _Held:
    """`with keeper.hold(...)`: the run's lease is renewed while the block runs."""

    def __init__(self, keeper: LeaseKeeper, key: Held) -> None:
        self._keeper, self._key = keeper, key

    def __enter__(self) -> "_Held":
        self._keeper._add(self._key)
        return self

    def __exit__(self, *exc: object) -> None:
        self._keeper._remove(self._key)


def held_delivery_tags(channel: Any) -> list[str] | None:
    """The delivery tags a kombu Redis channel holds unacknowledged, or None if this kombu keeps them
    elsewhere. kombu has no public accessor: its virtual QoS keeps them in ``_delivered``, a dict the
    event loop (where this is called) alone changes."""
    delivered = getattr(getattr(channel, "qos", None), "_delivered", None)
    return list(delivered) if isinstance(delivered, dict) else None


class RefreshHeldMessages(bootsteps.StartStopStep):
    """Consumer step (Redis broker): every quarter of the visibility timeout, in the worker's event
    loop, set the delivery time of each message this worker still holds to now (``ZADD XX`` on
    kombu's unacked index, one round trip). A held message then never reaches the visibility timeout;
    a dead worker's messages reach it at most one timeout after its last refresh and any live
    consumer puts them back (kombu's own restore, every ``unacked_restore_interval``)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None
        self.warned = False

    def start(self, c: Any) -> None:
        every = c.app.conf.get("suprhook_unacked_refresh_every")
        if every and c.app.conf.broker_url.startswith(("redis://", "rediss://", "unix://")):
            self.tref = c.timer.call_repeatedly(every, self.refresh, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop

    def refresh(self, c: Any) -> int:
        consumer = getattr(c, "task_consumer", None)
        channel = getattr(consumer, "channel", None)
        if channel is None:
            return 0
        tags = held_delivery_tags(channel)
        if tags is None:
            if not self.warned:
                self.warned = True
                log.error("this kombu keeps no list of held messages where suprhook looks: a dead worker's "
                          "messages come back only after SUPRHOOK_VISIBILITY_TIMEOUT, and a live worker's "
                          "after it too (their runs are still done once)")
            return 0
        if not tags:
            return 0
        now = time.time()
        try:
            # Never `channel.client`: that client is bound to the connection the event loop's BRPOP waits on, and a
            # command sent on it while a BRPOP is in flight reads the BRPOP's answer as its own: the message that
            # BRPOP popped is lost (measured: about one task per 8,000 under load, run only by the recovery sweep
            # 30 s later). kombu's own bookkeeping (QoS.append, restore) takes a client on the channel's other pool.
            with channel.conn_or_acquire() as client:
                client.zadd(channel.unacked_index_key, {tag: now for tag in tags}, xx=True)
        except Exception as exc:  # Redis away: kombu reconnects; the next refresh tries again
            log.warning("could not refresh %d held messages (%s: %s)", len(tags), type(exc).__name__, exc)
            return 0
        return len(tags)
