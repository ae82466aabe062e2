"""The Usermaven sink's durable outbox and its flusher: rows in the event store, sent as bulk JSON arrays.

A handler run only inserts a row (keyed by event_id, so a re-run inserts nothing). One flusher thread
per worker process claims up to `batch_size` due rows with a lease, POSTs them as one JSON array and
marks them sent on 2xx. Transient failures (connection errors, timeouts, 5xx, 408, 425, 429) leave
the rows pending with an exponential, jittered, capped backoff (a Retry-After wins); any other 4xx
marks them dead (kept, logged; `requeue_dead()` revives them). A batch refused with a 4xx other than
401/403 is re-sent row by row, so one bad event cannot take its neighbours down with it. Sent rows
are kept `keep_sent` seconds so a late handler re-run cannot send an event twice.
"""
from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import requests
from sqlalchemy import (Column, Float, Index, Integer, MetaData, String, Table, Text, and_, delete, func, insert,
                        select, update)
from sqlalchemy.exc import IntegrityError

from .db import DEAD, PENDING, SENT, DatabaseUser

log = logging.getLogger("suprhook.usermaven")
TRANSIENT_4XX = (408, 425, 429)
_TOKEN = re.compile(r"(token=)[^&\s'\"]+")

metadata = MetaData()
outbox = Table(
    "suprhook_usermaven_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("body", Text, nullable=False),  # the Usermaven event without api_key (added when sending)
    Column("status", String(8), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("due_at", Float, nullable=False),  # not claimable before: a live lease or a retry's backoff
    Column("claim", String(32)), Column("error", Text), Column("updated_at", Float, nullable=False),
    Index("ix_suprhook_usermaven_outbox_due", "status", "due_at"),
)


def redact(text: str) -> str:
    """Remove the `token=API_KEY.SERVER_TOKEN` query value from a message (exceptions name the URL)."""
    return _TOKEN.sub(r"\1***", text)


class _RedactTokenFilter(logging.Filter):
    """urllib3 logs request lines (with our query string) at DEBUG: keep the token out of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactTokenFilter())
class Outbox(DatabaseUser):
    """The outbox table: add rows, claim due rows with a lease, record each batch's outcome.

    It lives in the event log's database, opened through the same `open_database(url)` (handlers/stores/
    db.py): one engine per process for both, and on SQLite every write here takes the event log's writer
    lock too. The table is created on first use (a receiver that never records an event never opens it)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, metadata)

    def add(self, event_id: str, body: dict[str, Any]) -> bool:
        """Record an event to send; False when it is already recorded (a re-run, a replay)."""
        now = time.time()
        with self.engine.connect() as conn:
            if conn.execute(select(outbox.c.id).where(outbox.c.event_id == event_id)).first() is not None:
                return False
        try:
            with self.db.writing() as conn:
                conn.execute(insert(outbox).values(event_id=event_id, body=json.dumps(body), status=PENDING,
                                                   attempts=0, created_at=now, due_at=now, updated_at=now))
        except IntegrityError:
            return False
        return True

    def _due(self, now: float) -> Any:
        return and_(outbox.c.status == PENDING, outbox.c.due_at <= now)

    def due_stats(self, now: float) -> tuple[int, float | None]:
        """How many rows are due, and the creation time of the oldest."""
        with self.engine.connect() as conn:
            row = conn.execute(select(func.count(), func.min(outbox.c.created_at)).where(self._due(now))).one()
        return int(row[0]), row[1]

    def claim(self, limit: int, lease: float) -> tuple[str, list[Any]]:
        """Lease up to `limit` due rows (oldest first) to one token; no other flusher gets them meanwhile."""
        now, token = time.time(), uuid.uuid4().hex
        with self.db.writing() as conn:
            ids = list(conn.execute(select(outbox.c.id).where(self._due(now)).order_by(outbox.c.id)
                                    .limit(limit)).scalars())
            if not ids:
                return token, []
            # the due condition again: on PostgreSQL a concurrent claimer's rows fail it after its commit
            conn.execute(update(outbox).where(outbox.c.id.in_(ids), self._due(now))
                         .values(claim=token, due_at=now + lease, updated_at=now))
            rows = conn.execute(select(outbox.c.id, outbox.c.event_id, outbox.c.body, outbox.c.attempts)
                                .where(outbox.c.claim == token).order_by(outbox.c.id)).all()
        return token, rows

    def finish(self, token: str, ids: Sequence[int], status: str, *, delay: float = 0.0,
               error: str | None = None) -> None:
        """Mark leased rows sent or dead, or (PENDING) put them back, due again after `delay`."""
        now = time.time()
        values: dict[str, Any] = {"status": status, "claim": None, "updated_at": now,
                                  "error": redact(error)[:2000] if error else None}
        if status == PENDING:
            values.update(attempts=outbox.c.attempts + 1, due_at=now + delay)
        with self.db.writing() as conn:
            conn.execute(update(outbox).where(outbox.c.id.in_(list(ids)), outbox.c.claim == token).values(**values))

    def extend(self, token: str, ids: Sequence[int], lease: float) -> None:
        """Renew the lease on rows still being worked on (a batch re-sent row by row takes a while)."""
        with self.db.writing() as conn:
            conn.execute(update(outbox).where(outbox.c.id.in_(list(ids)), outbox.c.claim == token)
                         .values(due_at=time.time() + lease))

    def purge_sent(self, older_than: float) -> int:
        with self.db.writing() as conn:
            return conn.execute(delete(outbox).where(outbox.c.status == SENT,
                                                     outbox.c.updated_at < time.time() - older_than)).rowcount

    def requeue_dead(self) -> int:
        """Send dead rows again (after fixing the token or the configuration)."""
        now = time.time()
        with self.db.writing() as conn:
            return conn.execute(update(outbox).where(outbox.c.status == DEAD).values(
                status=PENDING, attempts=0, due_at=now, claim=None, updated_at=now)).rowcount

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {s: int(n) for s, n in conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    transient: bool = False
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


class Sender:
    """POSTs a JSON array of events to `{host}/api/v1/s2s/event?token=API_KEY.SERVER_TOKEN`."""

    def __init__(self, host: str, api_key: str, server_token: str, timeout: float) -> None:
        self.url = host.rstrip("/") + "/api/v1/s2s/event"
        self._api_key, self._token, self.timeout = api_key, f"{api_key}.{server_token}", timeout
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Sender({self.url!r}, timeout={self.timeout})"

    def post(self, bodies: Sequence[dict[str, Any]]) -> Outcome:
        session = getattr(self._local, "session", None) or requests.Session()
        self._local.session = session
        data = json.dumps([{"api_key": self._api_key, **body} for body in bodies])
        try:
            response = session.post(self.url, params={"token": self._token}, data=data, timeout=self.timeout,
                                    headers={"Content-Type": "application/json", "User-Agent": "suprhook-usermaven"})
        except requests.RequestException as exc:
            error = redact(f"{type(exc).__name__}: {exc}").replace(self._token, "***")
            return Outcome(False, transient=True, error=error)
        if response.status_code // 100 == 2:
            return Outcome(True, status=response.status_code)
        retry_after = response.headers.get("Retry-After", "")
        return Outcome(False, status=response.status_code,
                       transient=response.status_code >= 500 or response.status_code in TRANSIENT_4XX,
                       error=f"HTTP {response.status_code}: {redact(response.text[:300])}",
                       retry_after=float(retry_after) if retry_after.isdigit() else None)


class Flusher:
    """Sends due rows as bulk arrays of at most `batch_size` events and `max_bytes` bytes: a batch goes
    when it is full or its oldest event has waited `interval` seconds; failures back off."""

    def __init__(self, outbox: Outbox, sender: Sender, *, batch_size: int, interval: float, retry_base: float,
                 retry_max: float, keep_sent: float, max_bytes: int) -> None:
        self.outbox, self.sender = outbox, sender
        self.batch_size, self.interval, self.max_bytes = batch_size, interval, max_bytes
        self.retry_base, self.retry_max, self.keep_sent = retry_base, retry_max, keep_sent
        self.lease = 3 * sender.timeout + 30  # per request; renewed before each request of a batch
        self.tick = max(0.02, min(0.5, interval / 4))
        self.paused_until = 0.0  # after a transient failure nothing is sent before this (time.time())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Exponential in the attempts so far, equal jitter, capped; at least the server's Retry-After."""
        delay = min(self.retry_max, self.retry_base * 2 ** min(attempts, 30))
        delay = random.uniform(delay / 2, delay)
        return min(self.retry_max, max(delay, retry_after or 0.0))

    def flush_once(self, force: bool = False) -> int:
        """Send one batch if one is due (`force`: any due rows); the number of rows it settled."""
        now = time.time()
        if now < self.paused_until:
            return 0
        count, oldest = self.outbox.due_stats(now)
        if not count or (not force and count < self.batch_size and (oldest or now) > now - self.interval):
            return 0
        token, rows = self.outbox.claim(self.batch_size, self.lease)
        return self._deliver(token, rows) if rows else 0

    def _chunks(self, rows: Sequence[Any]) -> list[list[Any]]:
        chunks: list[list[Any]] = [[]]
        size = 2
        for row in rows:
            if chunks[-1] and size + len(row.body) + 40 > self.max_bytes:
                chunks.append([])
                size = 2
            chunks[-1].append(row)
            size += len(row.body) + 40  # + the api_key and separators
        return chunks

    def _deliver(self, token: str, rows: Sequence[Any]) -> int:
        settled, queue = 0, self._chunks(rows)
        while queue:
            chunk = queue.pop(0)
            ids = [r.id for r in chunk]
            self.outbox.extend(token, ids + [r.id for c in queue for r in c], self.lease)
            outcome = self.sender.post([json.loads(r.body) for r in chunk])
            if outcome.ok:
                self.outbox.finish(token, ids, SENT)
                settled += len(ids)
                log.info("usermaven: sent %d events", len(ids))
            elif outcome.transient:
                delay = self.backoff(max(r.attempts for r in chunk), outcome.retry_after)
                self.outbox.finish(token, ids + [r.id for c in queue for r in c], PENDING, delay=delay,
                                   error=outcome.error)
                self.paused_until = time.time() + delay
                log.warning("usermaven: %s; %d events kept, retrying in %.1f s", outcome.error,
                            len(ids) + sum(map(len, queue)), delay)
                return settled
            elif len(chunk) > 1 and outcome.status not in (401, 403):
                queue[:0] = [[r] for r in chunk]  # one bad event must not sink the rest: send each alone
            else:
                self.outbox.finish(token, ids, DEAD, error=outcome.error)
                settled += len(ids)
                log.error("usermaven: %s; %d events marked dead (kept in the outbox, not retried): %s",
                          outcome.error, len(ids), ", ".join(r.event_id for r in chunk[:5]))
        return settled

    def run(self) -> None:
        """The flusher thread: poll every `tick` seconds; a store or network surprise never ends it."""
        last_purge = 0.0
        while not self._stop.wait(self.tick):
            try:
                while not self._stop.is_set() and self.flush_once():
                    pass
                if time.time() - last_purge > 60:
                    last_purge = time.time()
                    self.outbox.purge_sent(self.keep_sent)
            except Exception as exc:  # the store is down, most likely: rows are safe there, try again shortly
                log.error("usermaven: flush failed (%s: %s); retrying in 5 s", type(exc).__name__,
                          redact(str(exc))[:300])
                self._stop.wait(5)

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="suprhook-usermaven", daemon=True)
            self._thread.start()

    def stop(self, flush: bool = True, timeout: float = 10.0) -> None:
        """Stop the thread; with `flush`, send what is due now (rows that cannot go stay for next time)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        try:
            while flush and time.monotonic() < deadline and self.flush_once(force=True):
                pass
        except Exception as exc:
            log.error("usermaven: final flush failed (%s); events stay in the outbox", type(exc).__name__)
