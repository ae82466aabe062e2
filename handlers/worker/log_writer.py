"""The event log's writers: they move what the receivers accepted into the event log, in batches, off the
request path (`EventLogWriter` for the Redis stream, `QueueLogWriter` for the log queue on RabbitMQ).

Queue-first on Redis, a receiver's one write per webhook is the atomic script that dedups it, queues its
tasks and appends it to the stream `suprhook:eventlog:<queue>` (handlers/web/redis_fastpath.py). Each
worker's main process runs one writer thread. The writers share a consumer group, so each entry is written
by one of them; an entry is acknowledged and deleted only once its batch has committed, so a writer that
dies mid-batch leaves its entries pending, and any live writer claims them after `claim_idle` seconds
(XAUTOCLAIM). While the event log's database is down or slow the stream grows in Redis (webhooks are still
accepted) and the writer retries with backoff; it catches up when the database is back.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Union

from sqlalchemy.exc import DataError, IntegrityError

from ..messages import LoggedEvent, RunTransition
from ..observability import metrics
from ..stores.runs import RunBook
from ..stores.store import EventStore, StoreOf, store_opener

log = logging.getLogger("suprhook.log_writer")
GROUP = "suprhook-log"


# The database refuses the data itself (too long, a NUL byte, a broken constraint): retrying cannot help.
POISON = (DataError, IntegrityError)

Entry = Union[LoggedEvent, RunTransition]


def _record(store: EventStore, entries: list[Entry]) -> None:
    store.record_logged([e for e in entries if isinstance(e, LoggedEvent)],
                        [e for e in entries if isinstance(e, RunTransition)])


def _write(store_of: StoreOf, entries: list[Entry]) -> set[int]:
    """Write `entries` (accepted events, and run transitions made on Redis) in one transaction; the positions of
    those the database refuses as data (found by writing one at a time), for the dead letter. Anything else (an
    outage) raises: the batch stays on the broker."""
    if not entries:
        return set()
    started = time.perf_counter()
    store = store_of()
    try:
        _record(store, entries)
        poison: set[int] = set()
    except POISON:
        poison = set()
        for i, one in enumerate(entries):
            try:
                _record(store, [one])
            except POISON as exc:
                log.error("event log: the database refuses %s %s (%s): moved to the dead letter",
                          "event" if isinstance(one, LoggedEvent) else "run of", one.event_id, type(exc).__name__)
                poison.add(i)
    except Exception:
        metrics.EVENTLOG_FAILURES.inc()
        raise
    metrics.EVENTLOG_BATCH_SECONDS.observe(time.perf_counter() - started)
    events = sum(1 for i, e in enumerate(entries) if isinstance(e, LoggedEvent) and i not in poison)
    metrics.EVENTLOG_WRITTEN.inc(events)
    metrics.EVENTLOG_DEAD.inc(len(poison))
    return poison


def _keep_writing(step: Callable[[], int], reset: Callable[[], None] = lambda: None) -> threading.Event:
    """Run `step` on a daemon thread until the returned event is set. A failure (the database or the broker
    is down: the entries wait on the broker) is logged and retried with backoff from 0.5 s to 30 s, after
    `reset` (drop a broken connection)."""
    stop = threading.Event()

    def loop() -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                step()
                delay = 0.5
            except Exception as exc:
                log.warning("event log: write failed (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay)
                reset()
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
        reset()

    threading.Thread(target=loop, name="suprhook-log-writer", daemon=True).start()
    return stop


class EventLogWriter:
    """`step()` writes one batch; `start()` runs it on a daemon thread until the returned event is set."""

    def __init__(self, client: Any, stream: str, store: "EventStore | StoreOf", *, batch: int = 500,
                 block: float = 1.0, claim_idle: float = 30.0, consumer: str | None = None,
                 runs: RunBook | None = None, linger: float = 0.2) -> None:
        """`runs`: the run book whose Redis state of finished runs is dropped once their outcome is written.
        `linger`: after a batch that was not full, the running writer waits this long before reading the next,
        so that under a steady trickle it writes a few larger batches a second instead of one per entry (each
        batch costs a transaction and four Redis round trips whatever its size; measured: the writer thread
        took half a core at 300 events/s without it)."""
        self.client, self.stream, self.store_of, self.runs = client, stream, store_opener(store), runs
        self.linger = linger
        self._mine = True  # read our own pending entries first: at start, and after a failed batch
        self._rest_until = 0.0
        self.dead_letter = stream + ":dead"  # entries that can never be written, kept for a person to look at
        self.batch, self.block, self.claim_idle = batch, block, claim_idle
        # Unique per writer: containers often share a hostname and pid 1, and two writers under one name would
        # share one pending list (and write each other's batches twice). A stopped writer's entries are taken
        # over by XAUTOCLAIM, whatever its name.
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._grouped = False
        self._next_claim = 0.0

    def ensure_group(self) -> None:
        if self._grouped:
            return
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: another writer created it
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped = True

    def _entries(self, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        # 1. our own pending entries (a batch whose write failed), 2. entries a dead writer left pending,
        # 3. new ones (waiting up to `block_ms` for them).
        if self._mine:
            mine = self.client.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=self.batch)
            entries = [e for e in (mine[0][1] if mine else []) if e[1]]
            if entries:
                return entries
            self._mine = False
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(1.0, self.claim_idle / 2)
            self._forget_stopped_writers()
            claimed = self.client.xautoclaim(self.stream, GROUP, self.consumer, int(self.claim_idle * 1000),
                                             start_id="0-0", count=self.batch)
            entries = [e for e in claimed[1] if e[1]]
            if entries:
                log.warning("event log: took over %d entries a stopped writer left pending", len(entries))
                return entries
        if block_ms is not None and self._rest_until > now:  # the running writer, after a batch that was not full
            time.sleep(self._rest_until - now)
        new = self.client.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=self.batch, block=block_ms)
        return new[0][1] if new else []

    def _forget_stopped_writers(self, idle_ms: int = 3_600_000) -> None:
        """Remove group members idle for an hour with nothing pending (each writer process has its own name)."""
        for member in self.client.xinfo_consumers(self.stream, GROUP):
            name = member.get("name")
            name = name.decode() if isinstance(name, bytes) else name
            if member.get("pending") == 0 and member.get("idle", 0) > idle_ms and name != self.consumer:
                self.client.xgroup_delconsumer(self.stream, GROUP, name)

    def step(self, block_ms: int | None = None) -> int:
        """Write one batch; how many entries it held (0: nothing waited)."""
        self.ensure_group()
        try:
            entries = self._entries(block_ms)
        except Exception as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted (FLUSHDB): create the group again next time
                self._grouped = False
            self._mine = True  # a read whose answer was lost may have left entries pending under our name
            raise
        if not entries:
            return 0
        self._mine = True  # until this batch is acknowledged: should it fail, its entries are ours to retry
        readable, dead = [], []
        for entry_id, fields in entries:
            try:
                parsed: Entry = RunTransition.from_entry(fields) if b"run" in fields else LoggedEvent.from_entry(fields)
                readable.append((entry_id, fields, parsed))
            except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:  # not our format (another version?)
                log.error("event log: stream entry %s is not readable (%s): moved to the dead letter", entry_id, exc)
                dead.append((fields, f"unreadable: {type(exc).__name__}: {exc}"))
        poison = _write(self.store_of, [logged for _, _, logged in readable])
        dead += [(fields, "refused by the database") for i, (_, fields, _) in enumerate(readable) if i in poison]
        ids = [entry_id for entry_id, _ in entries]
        pipe = self.client.pipeline(transaction=True)  # dead-lettered and acknowledged together, or neither
        for fields, reason in dead:
            pipe.xadd(self.dead_letter, {**fields, b"reason": reason.encode()})
        pipe.xack(self.stream, GROUP, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()
        self._mine = False
        self._rest_until = time.monotonic() + (self.linger if len(entries) < self.batch else 0.0)
        if self.runs is not None:  # after the commit: a run's Redis state goes only once the log has its outcome
            self.runs.forget([m for i, (_, _, m) in enumerate(readable)
                              if isinstance(m, RunTransition) and i not in poison])
        return len(entries)

    def backlog(self) -> int:
        """Entries accepted but not yet in the event log."""
        return int(self.client.xlen(self.stream))

    def start(self) -> threading.Event:
        """Write batches on a daemon thread until the returned event is set."""
        return _keep_writing(lambda: self.step(block_ms=int(self.block * 1000)))

    def drain(self, timeout: float = 10.0) -> int:
        """Write until the stream is empty (tests); how many entries were written."""
        written, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.step()
            written += n
            if n == 0 and self.backlog() == 0:
                break
        return written


class QueueLogWriter:
    """The same for any other remote broker (RabbitMQ): the receivers publish each accepted event to the log
    queue `suprhook.eventlog.<queue>` (publisher-confirmed), and this consumer writes them in batches. A
    message is acknowledged only once its batch has committed: a writer that dies leaves its batch unacked,
    and the broker redelivers it to another (the write is idempotent)."""

    def __init__(self, celery: Any, queue: Any, store: "EventStore | StoreOf", *, batch: int = 500,
                 block: float = 1.0) -> None:
        self.celery, self.queue, self.store_of = celery, queue, store_opener(store)
        self.dead_letter = f"{queue.name}.dead"  # messages that can never be written, kept for a person
        self.batch, self.block = batch, block
        self._connection: Any = None
        self._simple: Any = None

    def _open(self) -> Any:
        if self._simple is None:
            self._connection = self.celery.connection_for_read()
            self._simple = self._connection.SimpleQueue(self.queue, no_ack=False, serializer="json",
                                                        accept=["json"])
            self._simple.consumer.qos(prefetch_count=self.batch)  # the broker pushes at most one batch
        return self._simple

    def close(self) -> None:
        """Close the connection (what a batch holds unacknowledged goes back to the queue)."""
        for closing in (getattr(self._simple, "close", None), getattr(self._connection, "release", None)):
            if closing is not None:
                try:
                    closing()
                except Exception:  # already gone with the broker
                    pass
        self._simple = self._connection = None

    def step(self, block: float | None = None) -> int:
        """Write one batch; how many messages it held (0: nothing waited `block` seconds)."""
        simple = self._open()
        messages = []
        try:
            messages.append(simple.get(block=block is not None, timeout=block))
            while len(messages) < self.batch:  # what the consumer already holds (basic_get would not see it)
                messages.append(simple.get(block=True, timeout=0.01))
        except simple.Empty:
            pass
        except Exception:
            self.close()  # a broken connection: reconnect next time; the unacked messages are redelivered
            raise
        readable, dead = [], []
        for message in messages:
            try:
                readable.append((message, LoggedEvent.from_message(message.payload)))
            except Exception as exc:  # not our format (another version?), or not decodable
                log.error("event log: a log message is not readable (%s): moved to the dead letter", exc)
                dead.append((message, f"unreadable: {type(exc).__name__}: {exc}"))
        poison = _write(self.store_of, [logged for _, logged in readable])
        dead += [(message, "refused by the database") for i, (message, _) in enumerate(readable) if i in poison]
        if dead:
            from kombu import Producer, Queue

            queue = Queue(self.dead_letter, routing_key=self.dead_letter, durable=True)
            producer = Producer(self._connection.default_channel)
            for message, reason in dead:  # kept before the original is acknowledged
                producer.publish({"reason": reason, "body": message.body.decode("utf-8", "replace")
                                  if isinstance(message.body, bytes) else str(message.body)},
                                 serializer="json", exchange="", routing_key=self.dead_letter, declare=[queue],
                                 delivery_mode=2)
        for message in messages:
            message.ack()
        return len(messages)

    def start(self) -> threading.Event:
        """Write batches on a daemon thread until the returned event is set."""
        return _keep_writing(lambda: self.step(block=self.block), reset=self.close)

    def drain(self, timeout: float = 10.0) -> int:
        """Write until the queue has nothing for `block` seconds (tests); how many messages were written."""
        written, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.step(block=min(self.block, 0.5))
            written += n
            if n == 0:
                break
        return written
