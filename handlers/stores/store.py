"""The event log: every accepted event, each handler's run per event, and each notification's timeline.

SQLite by default, PostgreSQL with SUPRHOOK_STORE_URL=postgresql+psycopg://... (SQLAlchemy Core).
Handler-run bookkeeping is what makes handler success exactly-once: a run is claimed with a lease
before the handler starts and marked succeeded after; a redelivered, replayed or swept task for a
run that already succeeded is skipped, and one whose lease is live elsewhere waits and retries.
"""
from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import (Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text, and_, bindparam, or_,
                        select, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ...schemas import Event

from ..messages import LoggedEvent, RunTransition
from .db import DEAD, FAILED, PENDING, RUNNING, SKIPPED, SUCCEEDED, DatabaseUser, open_database

DONE = (SUCCEEDED, SKIPPED)  # a run in one of these is never run again
ERROR_CHARS = 8000  # a run's last error: "Type: message", then its traceback (the end of it, when longer)
# Notification statuses in the order a notification moves through them; failed is terminal.
STATUS_RANK = {"triggered": 0, "sent": 1, "delivered": 2, "seen": 3, "read": 3, "clicked": 4, "failed": 100}

metadata = MetaData()
events = Table(
    "suprhook_events", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("event_type", String(64)), Column("channel", String(64)), Column("status", String(64)),
    Column("supr_nid", String(128), index=True), Column("distinct_id", String(255)),
    Column("body", Text, nullable=False), Column("headers", Text, nullable=False),
)
runs = Table(
    "suprhook_handler_runs", metadata,
    Column("event_id", String(64), primary_key=True), Column("handler", String(255), primary_key=True),
    Column("status", String(16), nullable=False, index=True), Column("attempts", Integer, nullable=False),
    Column("error", Text), Column("lease_until", Float), Column("updated_at", Float, nullable=False, index=True),
)
timeline = Table(
    "suprhook_timeline", metadata,
    Column("supr_nid", String(128), primary_key=True), Column("event_id", String(64), primary_key=True),
    Column("status", String(64), nullable=False), Column("status_at", DateTime(timezone=True)),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
followups = Table(
    "suprhook_followups", metadata,  # the follow-up events a run sent, and SuprSend's answer to each
    Column("event_id", String(64), primary_key=True), Column("handler", String(255), primary_key=True),
    Column("attempt", Integer, primary_key=True), Column("seq", Integer, primary_key=True),
    Column("event_name", String(255), nullable=False), Column("idempotency_key", String(255)),
    Column("ok", Boolean), Column("status_code", Integer), Column("answer", Text), Column("sent_at", Float),
)
notifications = Table(
    "suprhook_notifications", metadata,
    Column("supr_nid", String(128), primary_key=True), Column("current_status", String(64), nullable=False),
    Column("rank", Integer, nullable=False), Column("updated_at", DateTime(timezone=True), nullable=False),
)


class RunInProgress(Exception):
    """Another worker holds this run's lease; the task waits for it (and then finds it done, or takes
    it over once the lease has expired because its holder stopped renewing it)."""

    def __init__(self, message: str, retry_in: float = 1.0) -> None:
        super().__init__(message)
        self.retry_in = max(0.0, retry_in)  # seconds until the lease expires, unless its holder renews it


@dataclass(frozen=True)
class TimelineEntry:
    status: str
    at: datetime | None
    event_id: str


class Timeline:
    """`event.timeline` in a handler: the notification's status history and forward-only current status.

    With `event`, that event counts whether or not the event log has it yet: queue-first, the log writer
    may record it a moment after its handlers start."""

    def __init__(self, store: "EventStore | StoreOf", supr_nid: str | None, event: Event | None = None) -> None:
        """`store`: the event log, or what opens it (a handler that never reads the timeline never opens it)."""
        self._store_of, self.supr_nid = store_opener(store), supr_nid
        own = bool(supr_nid) and event is not None and event.is_status and event.status \
            and event.reference.supr_nid == supr_nid  # the log keeps a timeline only for a notification
        self._own = TimelineEntry(event.status, event.timestamp, event.event_id) if own else None  # type: ignore

    @property
    def current(self) -> str | None:
        stored = self._store_of().current_status(self.supr_nid) if self.supr_nid else None
        own = self._own
        if own is None or STATUS_RANK.get(own.status) is None:
            return stored
        if stored is None or (STATUS_RANK[own.status] > STATUS_RANK.get(stored, -1)
                              and STATUS_RANK.get(stored, -1) < STATUS_RANK["failed"]):
            return own.status
        return stored

    @property
    def history(self) -> list[TimelineEntry]:
        entries = self._store_of().history(self.supr_nid) if self.supr_nid else []
        own = self._own
        if own is not None and all(e.event_id != own.event_id for e in entries):
            later = [i for i, e in enumerate(entries) if own.at is not None and e.at is not None and e.at > own.at]
            entries.insert(later[0] if later else len(entries), own)  # where the log will have it
        return entries

    def __repr__(self) -> str:
        return f"Timeline({self.supr_nid!r}, current={self.current!r})"


StoreOf = Callable[[], "EventStore"]


def store_opener(store: "EventStore | StoreOf") -> StoreOf:
    """What opens the event log, from the event log itself or from what opens it on first use (a worker opens it
    inside its retry loops, so a database that is down at start only delays them)."""
    return store if callable(store) else (lambda: store)


def clip_error(error: str | None) -> str | None:
    """A run's error as the event log keeps it: its first line whole, then as much of the end as fits."""
    if not error or len(error) <= ERROR_CHARS:
        return error or None
    head, _, rest = error.partition("\n")
    head = head[:1000]
    return f"{head}\n…{rest[-(ERROR_CHARS - len(head) - 2):]}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands timezone-aware columns back naive: they were stored as UTC."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


class EventStore(DatabaseUser):
    """The hot statements (record_accepted, begin_run, finish_run) are built once: SQLAlchemy then
    reuses their compiled form, and each is a single upsert or a single UPDATE ... RETURNING.
    The database is `open_database(url)`'s (handlers/stores/db.py): one engine and, on a SQLite file, one
    writer lock per process, shared with the Usermaven outbox on the same URL."""

    def __init__(self, url: str) -> None:
        db = open_database(url)
        dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(db.dialect)
        if dialect is None:
            raise ValueError(f"SUPRHOOK_STORE_URL: the event log runs on SQLite or PostgreSQL, not {db.dialect}")
        super().__init__(url, metadata, eager=True)  # the tables exist before the first event
        # RETURNING, not rowcount, tells whether a row went in: PostgreSQL's rowcount for a skipped
        # ON CONFLICT DO NOTHING insert is not reliable through SQLAlchemy.
        self._insert_event = dialect.insert(events).on_conflict_do_nothing().returning(events.c.event_id)
        self._insert_run = dialect.insert(runs).on_conflict_do_nothing()
        self._insert_claimed_run = self._insert_run.returning(runs.c.attempts)
        self._insert_timeline = dialect.insert(timeline).on_conflict_do_nothing()
        self._insert_followups = dialect.insert(followups).on_conflict_do_nothing()
        upsert = dialect.insert(notifications)
        self._advance_status = upsert.on_conflict_do_update(
            index_elements=[notifications.c.supr_nid],
            set_={"current_status": upsert.excluded.current_status, "rank": upsert.excluded.rank,
                  "updated_at": upsert.excluded.updated_at},
            # forward only, and failed is terminal
            where=and_(upsert.excluded.rank > notifications.c.rank, notifications.c.rank < STATUS_RANK["failed"]))
        key = and_(runs.c.event_id == bindparam("k_event"), runs.c.handler == bindparam("k_handler"))
        self._claim_run = update(runs).where(key, or_(
            runs.c.status.in_((PENDING, FAILED)),
            and_(runs.c.status == RUNNING, runs.c.lease_until < bindparam("k_now")),
        )).values(status=RUNNING, lease_until=bindparam("k_lease"), attempts=runs.c.attempts + 1,
                  updated_at=bindparam("k_now")).returning(runs.c.attempts)
        self._run_status = select(runs.c.status, runs.c.lease_until).where(key)
        self._renew = update(runs).where(key, runs.c.status == RUNNING, runs.c.attempts == bindparam("k_attempt")) \
            .values(lease_until=bindparam("k_lease"))
        self._finish = update(runs).where(key).values(
            status=bindparam("k_status"), error=bindparam("k_error"), lease_until=None, updated_at=bindparam("k_now"))
        self._finish_attempt = self._finish.where(runs.c.attempts == bindparam("k_attempt"))
        # Run transitions made on Redis (stores/runs.py), applied in any order and any number of times: a claim or
        # a lease renewal only moves a run forward (a later attempt, or the same attempt still running), an outcome
        # only lands on its own attempt while it is not finished, or on an earlier one.
        upsert_run = dialect.insert(runs)
        ex = upsert_run.excluded
        self._run_moved = upsert_run.on_conflict_do_update(
            index_elements=[runs.c.event_id, runs.c.handler],
            set_={"status": ex.status, "attempts": ex.attempts, "lease_until": ex.lease_until,
                  "updated_at": ex.updated_at},
            where=or_(runs.c.attempts < ex.attempts, and_(runs.c.attempts == ex.attempts, runs.c.status == RUNNING)))
        self._run_ended = upsert_run.on_conflict_do_update(
            index_elements=[runs.c.event_id, runs.c.handler],
            set_={"status": ex.status, "attempts": ex.attempts, "error": ex.error, "lease_until": None,
                  "updated_at": ex.updated_at},
            where=or_(runs.c.attempts < ex.attempts,
                      and_(runs.c.attempts == ex.attempts, or_(runs.c.status == RUNNING, runs.c.status == PENDING))))
        self._reopen = update(runs).where(key, runs.c.status.notin_(DONE), or_(
            runs.c.status != RUNNING, runs.c.lease_until.is_(None), runs.c.lease_until < bindparam("k_now"),
        )).values(status=PENDING, lease_until=None, updated_at=bindparam("k_now"))

    def _writing(self) -> AbstractContextManager[Connection]:
        """A write transaction; on SQLite under this host's writer lock for the file (see db.Database)."""
        return self.db.writing()

    # -- receiver side -------------------------------------------------------------------------
    def record_accepted(self, event: Event, handlers: Iterable[str], body: bytes | str | None = None,
                        headers: Mapping[str, str] | None = None) -> None:
        """Log the event, a pending run per handler, and its notification status, in one transaction.
        Idempotent: a redelivered event adds nothing."""
        self.record_logged([LoggedEvent.from_event(event, handlers, body, headers)])

    def record_logged(self, logged: Sequence[LoggedEvent], moves: Sequence[RunTransition] = ()) -> int:
        """`record_accepted` for a batch (the log writer's, from the event-log stream), and the run transitions
        workers made on Redis, in one transaction; how many events were new. Events already logged add nothing,
        and a run the worker claimed before its event was logged keeps its state (runs are inserted only where
        none exists)."""
        if not logged and not moves:
            return 0
        now = time.time()
        rows = {e.event_id: e for e in logged}
        with self._writing() as conn:
            if moves:
                self._apply_moves(conn, moves)
            if not rows:
                return 0
            new = {row.event_id for row in conn.execute(self._insert_event, [{
                "event_id": e.event_id, "received_at": e.received_at, "event_type": e.event_type,
                "channel": e.channel, "status": e.status, "supr_nid": e.supr_nid, "distinct_id": e.distinct_id,
                "body": e.body, "headers": e.headers} for e in rows.values()])}
            if not new:  # all already logged (redeliveries, or a batch written before a crash): runs are there too
                return 0
            fresh = [e for e in rows.values() if e.event_id in new]
            statuses = [e for e in fresh if e.is_status and e.supr_nid and e.status]
            if statuses:
                conn.execute(self._insert_timeline, [{"supr_nid": e.supr_nid, "event_id": e.event_id,
                                                      "status": e.status, "status_at": e.status_at,
                                                      "recorded_at": e.received_at} for e in statuses])
                # One at a time, so two statuses of one notification in a batch both count; ordered by
                # notification so that two writers' batches lock rows in one order (no deadlock on PostgreSQL).
                for e in sorted(statuses, key=lambda e: e.supr_nid or ""):
                    rank = STATUS_RANK.get(e.status)
                    if rank is not None:  # an unknown word is kept in the history but never moves the status
                        conn.execute(self._advance_status, {"supr_nid": e.supr_nid, "current_status": e.status,
                                                            "rank": rank, "updated_at": e.received_at})
            pending = [{"event_id": e.event_id, "handler": name, "status": PENDING, "attempts": 0, "updated_at": now}
                       for e in fresh for name in e.handlers]
            if pending:
                conn.execute(self._insert_run, pending)
        return len(new)

    def _apply_moves(self, conn: Connection, moves: Sequence[RunTransition]) -> None:
        ordered = sorted(moves, key=lambda m: (m.event_id, m.handler, m.attempts))  # one lock order for all writers
        running = [{"event_id": m.event_id, "handler": m.handler, "status": RUNNING, "attempts": m.attempts,
                    "lease_until": m.lease_until, "updated_at": m.at} for m in ordered if m.status == RUNNING]
        ended = [{"event_id": m.event_id, "handler": m.handler, "status": m.status, "attempts": m.attempts,
                  "error": clip_error(m.error), "lease_until": None, "updated_at": m.at}
                 for m in ordered if m.status != RUNNING]
        if ended:  # outcomes first: a retry's claim in the same batch then keeps the failed attempt's error
            conn.execute(self._run_ended, ended)
            self._record_followups(conn, [(m.event_id, m.handler, m.attempts, m.followups) for m in ordered])
        if running:
            conn.execute(self._run_moved, running)

    # -- worker side ---------------------------------------------------------------------------
    def begin_run(self, event_id: str, handler: str, lease: float) -> int:
        """Claim a run: its attempt number (pass it to finish_run), or 0 when it already succeeded
        (skip). RunInProgress: a live lease elsewhere."""
        now = time.time()
        key = {"k_event": event_id, "k_handler": handler}
        with self._writing() as conn:
            for _ in range(2):
                claimed = conn.execute(self._claim_run, {**key, "k_now": now, "k_lease": now + lease}).first()
                if claimed is not None:
                    return int(claimed.attempts)
                row = conn.execute(self._run_status, key).first()
                if row is not None:
                    break
                # A run the receiver did not log (replayed from elsewhere, or an older version). On
                # PostgreSQL a concurrent transaction may insert it first: then claim that row instead.
                if conn.execute(self._insert_claimed_run, {
                        "event_id": event_id, "handler": handler, "status": RUNNING, "attempts": 1,
                        "lease_until": now + lease, "updated_at": now}).first() is not None:
                    return 1
        if row is None:
            raise RunInProgress(f"{handler} for {event_id} is being logged elsewhere")
        if row.status in DONE or row.status == DEAD:  # dead: only `suprhook replay` runs it again
            return 0
        raise RunInProgress(f"{handler} for {event_id} is running elsewhere",
                            retry_in=(row.lease_until or now) - now)

    def _record_followups(self, conn: Connection,
                          sent: Sequence[tuple[str, str, int, Sequence[Mapping[str, Any]]]]) -> None:
        rows = [{"event_id": event_id, "handler": handler, "attempt": attempt, "seq": seq,
                 "event_name": str(f.get("name") or "?")[:255],
                 "idempotency_key": None if f.get("key") is None else str(f["key"])[:255],
                 "ok": f.get("ok"), "status_code": f.get("code") if isinstance(f.get("code"), int) else None,
                 "answer": None if f.get("answer") is None else str(f["answer"])[:500],
                 "sent_at": f.get("at") if isinstance(f.get("at"), (int, float)) else None}
                for event_id, handler, attempt, items in sent for seq, f in enumerate(items)]
        if rows:
            conn.execute(self._insert_followups, rows)

    def followups_of(self, event_id: str) -> list[dict[str, Any]]:
        """The follow-ups each run of an event sent, in order (the console's event page)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(followups).where(followups.c.event_id == event_id)
                                .order_by(followups.c.handler, followups.c.attempt, followups.c.seq)).all()
        return [dict(r._mapping) for r in rows]

    def run_status(self, event_id: str, handler: str) -> str | None:
        """A run's status in the event log (None: not logged), by one point read."""
        with self.engine.connect() as conn:
            row = conn.execute(self._run_status, {"k_event": event_id, "k_handler": handler}).first()
        return row.status if row is not None else None

    def renew_leases(self, held: Iterable[tuple[str, str, int]], lease: float) -> list[tuple[str, str, int]]:
        """Extend the lease of each (event_id, handler, attempt) this process is running, in one
        transaction: the heartbeat that keeps a long handler's run its own. Returns the runs that
        were taken over meanwhile (their lease had expired and another attempt claimed them)."""
        held = list(held)
        if not held:
            return []
        until, lost = time.time() + lease, []
        with self._writing() as conn:
            for event_id, handler, attempt in held:
                if not conn.execute(self._renew, {"k_event": event_id, "k_handler": handler, "k_attempt": attempt,
                                                  "k_lease": until}).rowcount:
                    lost.append((event_id, handler, attempt))
        return lost

    def finish_run(self, event_id: str, handler: str, status: str, error: str | None = None,
                   attempt: int | None = None, followups: Sequence[Mapping[str, Any]] = ()) -> bool:
        """Record an outcome (and the follow-ups the run sent). With `attempt`, only if no later attempt took the
        run over (a worker that outlived its lease must not overwrite its successor's outcome); False when it
        was taken over."""
        params = {"k_event": event_id, "k_handler": handler, "k_status": status,
                  "k_error": clip_error(error), "k_now": time.time()}
        statement = self._finish
        if attempt is not None:
            statement, params["k_attempt"] = self._finish_attempt, attempt
        with self._writing() as conn:
            done = bool(conn.execute(statement, params).rowcount)
            if done and followups:
                self._record_followups(conn, [(event_id, handler, attempt or 0, followups)])
            return done

    def reopen_run(self, event_id: str, handler: str) -> bool:
        """Make a run claimable again for a re-sent task (sweep, replay): False, and nothing changed,
        when it succeeded (or was skipped) meanwhile or a live lease holds it."""
        with self._writing() as conn:
            return bool(conn.execute(self._reopen, {"k_event": event_id, "k_handler": handler,
                                                    "k_now": time.time()}).rowcount)

    def dispose(self) -> None:
        """Close every pooled connection (see db.Database.dispose: the engine is shared, and reconnects
        when used again; the writer lock's file is closed once nothing in this process uses it)."""
        self.db.dispose()

    def claim_expired(self, limit: int = 500) -> list[tuple[str, str]]:
        """Runs whose lease expired: the process running them stopped renewing it (it died), so they
        are taken over at once, wherever their task message is. Each is reopened (pending, no lease)
        in the same statement that takes it: a second sweeper no longer matches it, and the sweep
        re-sends its task without writing the row again (reopen_run is for `suprhook replay`)."""
        now = time.time()
        return self._claim(and_(runs.c.status == RUNNING, runs.c.lease_until < now), limit,
                           {"status": PENDING, "lease_until": None, "updated_at": now})

    def claim_stale(self, pending_after: float, failed_after: float, limit: int = 500,
                    handlers: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """Runs left pending, or failed without a retry, for too long (only of `handlers`, when
        given). Each is reopened (pending) and its updated_at bumped in the same statement, so two
        sweepers never take the same run and the sweep needs no reopen_run."""
        now = time.time()
        stale = or_(
            and_(runs.c.status == PENDING, runs.c.updated_at < now - pending_after),
            and_(runs.c.status == FAILED, runs.c.updated_at < now - failed_after),
        )
        return self._claim(stale, limit, {"status": PENDING, "updated_at": now}, handlers)

    def _claim(self, stale: Any, limit: int, values: dict[str, Any],
               handlers: Iterable[str] | None = None) -> list[tuple[str, str]]:
        if handlers is not None:
            stale = and_(stale, runs.c.handler.in_(list(handlers)))
        with self._writing() as conn:
            keys = conn.execute(select(runs.c.event_id, runs.c.handler).where(stale).limit(limit)).all()
            taken = []
            for event_id, handler in keys:
                if conn.execute(update(runs).where(runs.c.event_id == event_id, runs.c.handler == handler, stale)
                                .values(**values)).rowcount:
                    taken.append((event_id, handler))
        return taken

    # -- reading -------------------------------------------------------------------------------
    def body(self, event_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(events.c.body).where(events.c.event_id == event_id)).first()
        return json.loads(row.body) if row else None

    def select_runs(self, *, event_ids: Iterable[str] = (), since: datetime | None = None,
                    until: datetime | None = None, statuses: Iterable[str] = ()) -> list[dict[str, Any]]:
        query = select(runs, events.c.received_at).join(events, events.c.event_id == runs.c.event_id)
        if event_ids:
            query = query.where(runs.c.event_id.in_(list(event_ids)))
        if since:
            query = query.where(events.c.received_at >= since)
        if until:
            query = query.where(events.c.received_at <= until)
        if statuses:
            query = query.where(runs.c.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(events.c.received_at))]

    def recent_events(self, limit: int = 20, event_ids: Iterable[str] = ()) -> list[dict[str, Any]]:
        query = select(events.c.event_id, events.c.received_at, events.c.event_type, events.c.channel,
                       events.c.status, events.c.supr_nid)
        if event_ids:
            query = query.where(events.c.event_id.in_(list(event_ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(events.c.received_at.desc()).limit(limit)).all()
            out = [{**r._mapping, "received_at": as_utc(r.received_at)} for r in rows]
            for row in out:
                row["runs"] = [dict(r._mapping) for r in conn.execute(
                    select(runs.c.handler, runs.c.status, runs.c.attempts, runs.c.error)
                    .where(runs.c.event_id == row["event_id"]).order_by(runs.c.handler))]
        return out

    def current_status(self, supr_nid: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(notifications.c.current_status)
                               .where(notifications.c.supr_nid == supr_nid)).first()
        return row.current_status if row else None

    def history(self, supr_nid: str) -> list[TimelineEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(timeline).where(timeline.c.supr_nid == supr_nid)
                                .order_by(timeline.c.status_at, timeline.c.recorded_at)).all()
        return [TimelineEntry(r.status, as_utc(r.status_at), r.event_id) for r in rows]

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))
