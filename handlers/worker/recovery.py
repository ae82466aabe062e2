"""The recovery sweep: re-sending handler runs whose task was lost or whose holder died."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from celery import Celery
from kombu.exceptions import ChannelError

from ..registry import Registry
from ..settings import Settings
from ..stores.store import EventStore, store_opener
from ..replay import redispatch

log = logging.getLogger("suprhook.recovery")


def queue_depth(celery: Celery, queue: str) -> int:
    with celery.connection_for_read() as conn:
        try:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except ChannelError as exc:  # Redis keeps no key for an empty queue: "no queue" means empty
            if getattr(exc, "code", None) == 404 or "NOT_FOUND" in str(exc):
                return 0
            raise


def sweep_once(store: EventStore, celery: Celery, registry: Registry, settings: Settings) -> int:
    """Re-dispatch two kinds of runs whose task is gone:

    - runs whose lease expired: the process running them stopped renewing it (it died); taken over at
      once, whatever the broker will do with their message;
    - runs left pending (or failed without a retry) too long whose queue is empty: their task was lost
      (a SIGKILLed worker's prefetched messages on the embedded broker, kombu's Redis BRPOP gap, a
      broker dying mid-delivery). A run whose queue still holds messages is most likely waiting in
      that backlog, so it is left alone rather than queued twice.

    Each run is taken and reopened (pending) by one conditional UPDATE (claim_expired, claim_stale),
    not claimed and then reopened by a second write: the claim's condition is the reopen's (not done,
    no live lease) at that instant, and a holder that still renews its lease never matches it. If a
    redelivered copy claims the run between the claim and the send, the sent task finds a live lease
    (it waits) or a success (it skips): begin_run, not the sweep, keeps success exactly-once.
    """
    sent = _resend(store, celery, registry, settings, store.claim_expired(), "whose lease expired")
    drained = {h.name for h in registry if queue_depth(celery, h.queue or settings.default_queue) == 0}
    if drained:
        stale = store.claim_stale(settings.recovery_after, settings.recovery_after + settings.retry_backoff_max,
                                  handlers=drained)
        sent += _resend(store, celery, registry, settings, stale,
                        f"left pending for over {settings.recovery_after:.0f} s")
    return sent


def _resend(store: EventStore, celery: Celery, registry: Registry, settings: Settings,
            runs: list[tuple[str, str]], why: str) -> int:
    if not runs:
        return 0
    sent, problems = redispatch(store, celery, registry, settings, runs, reopen=False)
    for problem in problems:
        log.warning("recovery: %s", problem)
    log.warning("recovery: re-dispatched %d handler runs %s", sent, why)
    return sent


def start_sweeper(store: EventStore | Callable[[], EventStore], celery: Celery, registry: Registry,
                  settings: Settings) -> threading.Event:
    """Sweep every `every` seconds on a daemon thread. `store` may be what opens the event log: it is opened
    inside the loop, so a database that is down when the worker starts only delays the first sweep."""
    stop = threading.Event()
    every = max(1.0, min(settings.recovery_after / 4, settings.lease_renew_every))
    store_of = store_opener(store)

    def loop() -> None:
        while not stop.wait(every):
            try:
                sweep_once(store_of(), celery, registry, settings)
            except Exception:  # the sweep must outlive a passing store error
                log.exception("recovery sweep failed; retrying in %.0f s", every)

    threading.Thread(target=loop, name="suprhook-recovery", daemon=True).start()
    return stop
