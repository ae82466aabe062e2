"""Accepting an event: dedup, log and enqueue one task per matching handler, exactly once. Used by the receiver.

Queue-first on Redis (broker and dedup on one Redis, `messages.queue_first`): one atomic script dedups,
enqueues and appends the event to the event-log stream; nothing else is written on the request path.
On any other broker: dedup claim -> publish the tasks -> publish the event to the log queue (confirmed;
the worker's log writer drains it in batches) -> commit. The embedded broker writes the log itself, before
publishing."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping

from celery import Celery
from kombu import Queue

from ...schemas import Event
from ...schemas.vendors import record_drift

from ..errors import EnqueueError, InFlight
from ..observability import metrics
from ..messages import (FIRST, RUN_TTL, is_echo, log_entry, log_message, log_mode, log_queue, log_stream_key,
                        queue_first, run_key, task_id, task_message)
from ..registry import Handler, Registry
from ..settings import Settings, redact_url
from ..stores.dedup import DUPLICATE, IN_FLIGHT, DedupStore, RedisDedup
from ..stores.store import EventStore
from .redis_fastpath import RedisFastPath

log = logging.getLogger("suprhook.dispatch")


@dataclass(frozen=True)
class Outcome:
    status: str  # "accepted" | "duplicate"
    event_id: str
    handlers: tuple[str, ...] = ()


class Dispatcher:
    def __init__(self, settings: Settings, registry: Registry, celery: Celery, dedup: DedupStore,
                 store: EventStore | None) -> None:
        """`store`: the event log, written here on the embedded broker only; None elsewhere, where the worker's
        log writer fills it from the broker (a Redis stream, or the log queue) and the web process never opens it."""
        self.settings, self.registry, self.celery, self.dedup, self.store = settings, registry, celery, dedup, store
        self.fastpath: RedisFastPath | None = None
        if queue_first(settings) and isinstance(dedup, RedisDedup):
            self.fastpath = RedisFastPath(celery, dedup.client, dedup.prefix, dedup.ttl, log_stream_key(settings),
                                          lambda event_id: run_key(settings, event_id))
        self.log_queue: Queue | None = None
        self.log_stream: Any = None  # (a Redis client on the broker, the stream key): a Redis broker, dedup elsewhere
        mode = log_mode(settings)
        if self.fastpath is None and mode == "stream":
            import redis

            self.log_stream = (redis.Redis.from_url(settings.broker_url, socket_timeout=settings.publish_timeout,
                                                    socket_connect_timeout=settings.publish_timeout),
                               log_stream_key(settings))
        elif mode == "queue":
            self.log_queue = log_queue(settings)
        elif mode == "sync" and store is None:
            raise ValueError("the embedded broker's receiver writes the event log: a store is required")

    def submit(self, event: Event, body: bytes | None = None, headers: Mapping[str, str] | None = None) -> Outcome:
        """Log `event` and enqueue it for every matching handler, exactly once per event id."""
        handlers = [] if is_echo(event, self.settings.own_numbers) else self.registry.match(event)
        if self.fastpath is not None:
            claim = self._submit_atomic(event, handlers, body, headers)
        else:
            claim = self._submit_two_phase(event, handlers, body, headers)
        if claim == DUPLICATE:
            return Outcome("duplicate", event.event_id)
        if event.vendor.drift:  # once per accepted event (a duplicate returned above)
            record_drift(event.vendor, event.event_id)
            metrics.vendor_drift((event.vendor.name or "").lower())
        return Outcome("accepted", event.event_id, tuple(h.name for h in handlers))

    def _submit_atomic(self, event: Event, handlers: list[Handler], body: bytes | None,
                       headers: Mapping[str, str] | None) -> str:
        """Broker and dedup on one Redis: dedup + enqueue + log stream in one atomic round trip, no SQL."""
        try:
            entry = log_entry(event, [h.name for h in handlers], body, headers)
            message = task_message(event.event_id, event.raw, event=event)
            batch = []
            for handler in handlers:
                queue = handler.queue or self.settings.default_queue
                batch.append((handler.name, queue, self.fastpath.message(
                    handler.task_name, task_id(event.event_id, handler.name), message, queue, event.event_id)))
            claim = self.fastpath.accept(event.event_id, batch, entry)
        except Exception as exc:  # Redis is down: nothing was queued or logged, the sender retries
            log.warning("enqueue failed event_id=%s error=%s", event.event_id, type(exc).__name__)
            metrics.ENQUEUE_ERRORS.inc()
            raise EnqueueError(str(exc)) from exc
        if claim == IN_FLIGHT:
            raise InFlight(event.event_id)
        return claim

    def _submit_two_phase(self, event: Event, handlers: list[Handler], body: bytes | None,
                          headers: Mapping[str, str] | None) -> str:
        """Any other broker: dedup claim -> log -> publish -> commit (release on failure)."""
        try:
            claim = self.dedup.claim(event.event_id)
        except Exception as exc:  # the dedup store is down: the sender retries later
            log.warning("dedup claim failed event_id=%s error=%s", event.event_id, type(exc).__name__)
            metrics.dedup_errors["claim"].inc()
            raise EnqueueError(str(exc)) from exc
        if claim == DUPLICATE:
            return claim
        if claim == IN_FLIGHT:
            raise InFlight(event.event_id)
        try:
            message = task_message(event.event_id, event.raw, event=event)
            names = [h.name for h in handlers]
            if self.log_queue is None and self.log_stream is None:
                # The embedded broker logs synchronously, before it publishes: a crash between the two
                # leaves pending runs for the recovery sweep.
                self.store.record_accepted(event, names, body, headers)  # type: ignore[union-attr]
            elif self.log_stream is not None and names:
                # The runs, pending, on the broker's Redis before any of their tasks exists (never over a run that
                # exists: a retried request after a partial publish), so workers claim them there (stores/runs.py).
                client, _ = self.log_stream
                key = run_key(self.settings, event.event_id)
                pipe = client.pipeline(transaction=True)
                for name in names:
                    pipe.hsetnx(key, name, FIRST)
                pipe.expire(key, RUN_TTL)
                pipe.execute()
            for handler in handlers:
                self.celery.send_task(
                    handler.task_name, args=[message], queue=handler.queue or self.settings.default_queue,
                    task_id=task_id(event.event_id, handler.name),
                    argsrepr=event.event_id, kwargsrepr="{}",  # not a repr of the whole payload per publish
                )
            if self.log_queue is not None:  # after the tasks: a 503 never leaves a logged event behind
                self._publish_log(log_message(event, names, body, headers))
            elif self.log_stream is not None:  # one XADD on the broker's Redis (durable as the tasks are)
                client, key = self.log_stream
                client.xadd(key, log_entry(event, names, body, headers))
        except Exception as exc:  # broker or store failure: the sender must retry, so forget the claim
            try:
                self.dedup.release(event.event_id)
            except Exception:  # the lease then expires by itself (LEASE_SECONDS)
                log.warning("dedup release failed event_id=%s", event.event_id)
                metrics.dedup_errors["release"].inc()
            log.warning("enqueue failed event_id=%s error=%s", event.event_id, type(exc).__name__)
            metrics.ENQUEUE_ERRORS.inc()
            raise EnqueueError(str(exc)) from exc
        try:
            self.dedup.commit(event.event_id)
        except Exception:  # the tasks are queued: still a 202; a redelivery is caught by run bookkeeping
            log.warning("dedup commit failed event_id=%s; accepted anyway", event.event_id)
            metrics.dedup_errors["commit"].inc()
        return claim

    def _publish_log(self, entry: dict[str, str]) -> None:
        """One publisher-confirmed message on the log queue (RabbitMQ: confirm_publish), retried as tasks are."""
        queue = self.log_queue
        assert queue is not None
        with self.celery.producer_or_acquire() as producer:
            producer.publish(entry, serializer="json", exchange="", routing_key=queue.name, declare=[queue],
                             delivery_mode=2, retry=True, retry_policy=self.celery.conf.task_publish_retry_policy)

    def probe(self) -> dict[str, BaseException | None]:
        """Reach the broker, the dedup store and the event log: None for each that answered, else its exception."""
        problems: dict[str, BaseException | None] = {}
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2,
                                     timeout=self.settings.publish_timeout)
            problems["broker"] = None
        except Exception as exc:
            problems["broker"] = exc
        checks = [("dedup", self.dedup.ping)] + ([("store", self.store.ping)] if self.store is not None else [])
        for name, ping in checks:
            try:
                ping()
                problems[name] = None
            except Exception as exc:
                problems[name] = exc
        return problems

    def ready(self) -> dict[str, str]:
        """For the public `/readyz`: {"broker": "ok" | "unreachable: connection refused" | ..., "dedup": ...,
        "store": ...}, a short reason per failing check, never a host, a URL or a credential (`public_reason`).
        Queue-first (the Redis fast path), the event log is not on the request path: a down or slow event log
        delays the log, never a webhook, so it is not a readiness check."""
        problems = self.probe()
        if self.fastpath is not None:
            problems.pop("store", None)
        return {name: "ok" if exc is None else public_reason(exc) for name, exc in problems.items()}


# Why a store could not be reached, in words safe for a public answer: (what to look for in the exception's
# class names and messages, lower-cased, along its cause/context chain; the reason shown).
_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("no such transport", "unsupported scheme", "can't load plugin", "unknown scheme", "invalid url scheme"),
     "unsupported URL scheme"),
    (("access_refused", "authentication", "wrongpass", "noauth", "invalid password", "not authorized",
      "authorizationerror"), "authentication failed"),
    (("connectionrefusederror", "connection refused", "error 111", "errno 111"), "unreachable: connection refused"),
    (("gaierror", "name or service not known", "nodename nor servname", "failed to resolve host",
      "name resolution", "could not translate host name"), "unreachable: unknown host"),
    (("timeouterror", "timed out", "timeout"), "unreachable: timed out"),
    (("unable to open database", "no such file or directory", "permission denied", "read-only"),
     "unreachable: cannot open the database"),
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 8:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def public_reason(exc: BaseException) -> str:
    """A short reason a store is unreachable, for `/readyz` (public): a fixed phrase, never the exception's
    message (it may name hosts, users or URLs); the exception class when nothing more is recognised."""
    text = " ".join(f"{type(e).__name__} {e.args[0] if isinstance(e, KeyError) and e.args else e}"
                    for e in _chain(exc)).lower()
    for needles, reason in _REASONS:
        if any(needle in text for needle in needles):
            return reason
    return f"unreachable: {type(exc).__name__}"


_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s&;,]+)")


def explain(exc: BaseException) -> str:
    """For `suprhook check-config` (an operator's terminal): the public reason and the exception's own first
    line, with passwords in URLs and `password=...` parameters masked."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    first_line = next(iter(str(message).splitlines()), "")[:200]
    detail = _SECRET_PARAM.sub(r"\1\2***", redact_url(first_line))
    return f"{public_reason(exc)} ({type(exc).__name__}{': ' + detail if detail else ''})"
