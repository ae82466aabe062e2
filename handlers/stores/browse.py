"""Read queries of the event console (receiver.console): the events list with its filters and cursor, one event
with its runs and timeline, the runs a bulk replay would send, and the overview's counts.

Nothing here writes the event log except `ReplayJobs` (the console's own table of bulk replays) and
`ensure_indexes` (the indexes the list needs, on an event log created before they existed). The list is
ordered by (received_at, event_id) descending and paginated by a cursor over that pair, so a page costs the
same however deep it is; `store.py` defines the indexes it walks.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import (JSON, Column, Float, Index, Integer, MetaData, String, Table, Text, and_, case, cast, exists,
                        func, literal_column, select, text, tuple_, union)
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql.elements import Grouping

from .db import DEAD, FAILED, PENDING, RUNNING, SKIPPED, SUCCEEDED
from .store import EventStore, as_utc, events, runs

OUTCOMES = (SUCCEEDED, FAILED, DEAD, PENDING, RUNNING, SKIPPED)
FEW_RUNS = 20_000  # up to this many matching runs, the list starts from the runs; beyond, from the newest events
log = logging.getLogger("suprhook.console")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_BULK = 10_000  # runs one bulk replay sends at most; the page says so when more match
_TEXT_MAX = 255  # longest filter or search value accepted (the columns' own limit)
_PHONE = re.compile(r"\+?[\d\s().-]{6,}")


def body_field(key: str, dialect: str, table: Table = events) -> Any:
    """A top-level field of the stored body as SQL; the filters and the search use the very expressions the indexes
    below are built on (constants inline, so PostgreSQL matches its index). PostgreSQL's JSON functions raise on a
    `\u0000` escape anywhere in a document, and an index expression that raises would refuse the event itself: such
    a body (the schemas accept one outside the logged columns) gets NULL here instead."""
    if dialect == "postgresql":
        storable = func.strpos(table.c.body, literal_column(r"'\u0000'")) == 0
        return Grouping(case((storable, cast(table.c.body, JSON).op("->>")(literal_column(f"'{key}'"))), else_=None))
    return func.json_extract(table.c.body, literal_column(f"'$.{key}'"))


_VALID_PG_INDEXES = ("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                     "JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE n.nspname = current_schema() AND i.indisvalid")


def console_indexes(dialect: str) -> list[Index]:
    """The indexes the console's list needs, created by `EventBrowser.ensure_indexes` when a console first opens the
    event log: the list newest first (received_at, event_id), each filter's value first then that order, the
    search's lookups, and runs by handler. Built on a copy of the tables, so they are not part of the event log's
    own schema: an event log without a console does not pay for them (~10-15% of the log writer's inserts)."""
    copy = MetaData()
    ev, rn = events.to_metadata(copy), runs.to_metadata(copy)
    order = (ev.c.received_at, ev.c.event_id)
    suffix = "pg" if dialect == "postgresql" else dialect
    concurrently = {"postgresql_concurrently": True} if dialect == "postgresql" else {}
    return [
        Index("ix_suprhook_events_received_id", *order, **concurrently),
        Index("ix_suprhook_events_channel", ev.c.channel, *order, **concurrently),
        Index("ix_suprhook_events_type", ev.c.event_type, *order, **concurrently),
        Index("ix_suprhook_events_distinct_id", ev.c.distinct_id, **concurrently),
        Index(f"ix_suprhook_events_vendor_{suffix}", body_field("vendor_name", dialect, ev), *order, **concurrently),
        Index(f"ix_suprhook_events_phone_{suffix}", body_field("channel_value", dialect, ev), ev.c.received_at,
              **concurrently),
        Index("ix_suprhook_handler_runs_handler_status", rn.c.handler, rn.c.status, **concurrently),
    ]


class BadQuery(ValueError):
    """A filter, search or cursor the console cannot use: answered 400 with this message."""


# --------------------------------------------------------------------------------------------------
# Filters and the cursor


@dataclass(frozen=True)
class Filters:
    """What the events list shows: every given filter must match. `q` finds an event by its `event_id`,
    `supr_nid`, `distinct_id` or phone number (`channel_value`)."""

    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None
    channel: str | None = None
    vendor: str | None = None
    handler: str | None = None
    outcomes: tuple[str, ...] = ()
    q: str | None = None

    FIELDS = ("since", "until", "event_type", "channel", "vendor", "handler", "outcome", "q")

    @classmethod
    def parse(cls, args: Any) -> "Filters":
        """From query arguments (a werkzeug MultiDict, or a mapping of lists); BadQuery names the bad one."""
        def one(name: str) -> str | None:
            values = _getlist(args, name)
            value = values[-1].strip() if values else ""
            if len(value) > _TEXT_MAX:
                raise BadQuery(f"{name}: at most {_TEXT_MAX} characters")
            if "\x00" in value:
                raise BadQuery(f"{name}: must not contain a NUL character")
            return value or None

        outcomes: list[str] = []
        for value in _getlist(args, "outcome"):
            for word in value.split(","):
                word = word.strip().lower()
                if not word:
                    continue
                if word not in OUTCOMES:
                    raise BadQuery(f"outcome: {word!r} is not one of {', '.join(OUTCOMES)}")
                if word not in outcomes:
                    outcomes.append(word)
        since, until = parse_time(one("since"), "since"), parse_time(one("until"), "until")
        if since and until and since > until:
            raise BadQuery("since: must not be after until")
        return cls(since, until, one("event_type"), one("channel"), one("vendor"), one("handler"), tuple(outcomes),
                   one("q"))

    def args(self) -> list[tuple[str, str]]:
        """These filters as query arguments (what `parse` reads back)."""
        out = [(name, _iso(getattr(self, name)) if name in ("since", "until") else getattr(self, name))
               for name in ("since", "until", "event_type", "channel", "vendor", "handler", "q")
               if getattr(self, name)]
        return out + [("outcome", o) for o in self.outcomes]

    def __bool__(self) -> bool:
        return bool(self.args())

    def with_outcomes(self, outcomes: Iterable[str]) -> "Filters":
        return replace(self, outcomes=tuple(outcomes))


def _getlist(args: Any, name: str) -> list[str]:
    if hasattr(args, "getlist"):
        return [str(v) for v in args.getlist(name)]
    value = args.get(name) if isinstance(args, Mapping) else None
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def parse_time(value: str | None, name: str = "time") -> datetime | None:
    """ISO 8601 (`2026-11-30T14:02`, with or without a zone: UTC when none) or Unix seconds; BadQuery otherwise."""
    if not value:
        return None
    try:
        if re.fullmatch(r"\d{9,11}(\.\d+)?", value):
            return datetime.fromtimestamp(float(value), timezone.utc)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise BadQuery(f"{name}: {value!r} is not a time (ISO 8601, e.g. 2026-11-30T14:02, or Unix seconds)") from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after (received_at, event_id), newest first. Opaque in URLs."""

    received_at: datetime
    event_id: str

    def encode(self) -> str:
        raw = json.dumps([self.received_at.astimezone(timezone.utc).isoformat(), self.event_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str | None) -> "Cursor | None":
        if not text:
            return None
        try:
            if len(text) > 600:
                raise ValueError("too long")
            at, event_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            received = datetime.fromisoformat(at)
            if not isinstance(event_id, str) or received.tzinfo is None:
                raise ValueError("malformed")
        except (ValueError, TypeError, UnicodeDecodeError):
            raise BadQuery("cursor: not a cursor of this list (follow the 'Older' link, or start again)") from None
        return cls(received, event_id)


# --------------------------------------------------------------------------------------------------
# Rows


@dataclass
class Run:
    handler: str
    status: str
    attempts: int
    error: str | None = None
    updated_at: datetime | None = None


@dataclass
class EventRow:
    """One event as the list shows it (`body` parsed; the page derives its columns from it)."""

    event_id: str
    received_at: datetime
    event_type: str | None
    channel: str | None
    status: str | None
    supr_nid: str | None
    distinct_id: str | None
    body: Any
    runs: list[Run] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def raw(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


@dataclass(frozen=True)
class Page:
    rows: list[EventRow]
    next_cursor: Cursor | None


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text  # shown as stored


# --------------------------------------------------------------------------------------------------
# The browser


class EventBrowser:
    """The console's reads over one event log (`EventStore`)."""

    def __init__(self, store: EventStore, few_runs: int = FEW_RUNS) -> None:
        self.store, self.few_runs = store, few_runs

    @property
    def dialect(self) -> str:
        return self.store.engine.dialect.name

    def ensure_indexes(self) -> None:
        """Create the console's indexes where missing (`console_indexes`). On PostgreSQL CONCURRENTLY: the log
        writers keep writing while a large log is indexed, which takes a while on the first start."""
        existing_sql = (_VALID_PG_INDEXES if self.dialect == "postgresql"
                        else "SELECT name FROM sqlite_master WHERE type = 'index'")
        with self.store.engine.connect() as conn:  # SQLAlchemy's own check misses SQLite's expression indexes
            existing = set(conn.execute(text(existing_sql)).scalars())
        missing = [index for index in console_indexes(self.dialect) if index.name not in existing]
        if not missing:
            return
        if self.dialect == "postgresql":  # CREATE INDEX CONCURRENTLY runs outside a transaction
            with self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for index in missing:
                    # A build that was interrupted leaves an invalid index of that name: drop it, build it again.
                    conn.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{index.name}"'))
                    conn.execute(CreateIndex(index, if_not_exists=True))  # two receivers may start at once
        else:
            with self.store.db.writing() as conn:
                for index in missing:
                    conn.execute(CreateIndex(index, if_not_exists=True))

    # -- the list ----------------------------------------------------------------------------------
    def where(self, filters: Filters) -> list[Any]:
        """The SQL conditions of `filters` on the events table."""
        conds: list[Any] = []
        if filters.since:
            conds.append(events.c.received_at >= filters.since)
        if filters.until:
            conds.append(events.c.received_at <= filters.until)
        if filters.event_type:
            conds.append(events.c.event_type == filters.event_type)
        if filters.channel:
            conds.append(events.c.channel == filters.channel)
        if filters.vendor:
            conds.append(body_field("vendor_name", self.dialect) == filters.vendor)
        if filters.handler or filters.outcomes:
            matched = select(runs.c.event_id)
            if filters.outcomes:
                matched = matched.where(runs.c.status.in_(filters.outcomes))
            if filters.handler:
                matched = matched.where(runs.c.handler == filters.handler)
            if self._few(matched):
                # Start from the matching runs (the status or handler index) and sort what they point to.
                conds.append(events.c.event_id.in_(matched))
            else:
                # Most events match: walk them newest first and look at each one's runs by their key. `status || ''`
                # keeps SQLite off the status index here (it would scan it once per event).
                run = [runs.c.event_id == events.c.event_id]
                if filters.handler:
                    run.append(runs.c.handler == filters.handler)
                if filters.outcomes:
                    run.append((runs.c.status + "").in_(filters.outcomes))
                conds.append(exists().where(*run))
        if filters.q:
            conds.append(events.c.event_id.in_(self._search(filters.q)))
        return conds

    def _few(self, matched: Any) -> bool:
        """Do at most `few_runs` runs match? PostgreSQL's planner knows (statistics) and picks the side to start from
        itself; SQLite has none, so it is asked, at a bounded cost, by the same index the query would use."""
        if self.dialect == "postgresql":
            return True
        with self.store.engine.connect() as conn:
            bounded = matched.limit(self.few_runs + 1).subquery()
            count = conn.execute(select(func.count()).select_from(bounded)).scalar_one()
        return count <= self.few_runs

    def _search(self, q: str) -> Any:
        """The events whose event_id, supr_nid, distinct_id or phone is `q`: one indexed lookup each, united (an OR
        would tempt the planner to walk the whole log newest first)."""
        phones = {q}
        if _PHONE.fullmatch(q):
            digits = re.sub(r"\D", "", q)
            phones |= {digits, "+" + digits}
        return union(select(events.c.event_id).where(events.c.event_id == q),
                     select(events.c.event_id).where(events.c.supr_nid == q),
                     select(events.c.event_id).where(events.c.distinct_id == q),
                     select(events.c.event_id).where(body_field("channel_value", self.dialect).in_(sorted(phones))))

    def page(self, filters: Filters, cursor: Cursor | None = None, limit: int = PAGE_SIZE) -> Page:
        """Up to `limit` events matching `filters`, newest first, after `cursor`; with each event's runs."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        conds = self.where(filters)
        if cursor is not None:
            conds.append(tuple_(events.c.received_at, events.c.event_id)
                         < tuple_(cursor.received_at.astimezone(timezone.utc), cursor.event_id))
        query = (select(events.c.event_id, events.c.received_at, events.c.event_type, events.c.channel,
                        events.c.status, events.c.supr_nid, events.c.distinct_id, events.c.body)
                 .where(and_(True, *conds)).order_by(events.c.received_at.desc(), events.c.event_id.desc())
                 .limit(limit + 1))
        with self.store.engine.connect() as conn:
            found = conn.execute(query).all()
            rows = [EventRow(r.event_id, as_utc(r.received_at), r.event_type, r.channel, r.status, r.supr_nid,
                             r.distinct_id, _loads(r.body)) for r in found[:limit]]
            self._attach_runs(conn, rows)
        last = rows[-1] if len(found) > limit else None
        return Page(rows, Cursor(last.received_at, last.event_id) if last else None)

    def _attach_runs(self, conn: Any, rows: Sequence[EventRow]) -> None:
        by_id = {row.event_id: row for row in rows}
        if not by_id:
            return
        for r in conn.execute(select(runs.c.event_id, runs.c.handler, runs.c.status, runs.c.attempts, runs.c.error,
                                     runs.c.updated_at).where(runs.c.event_id.in_(list(by_id)))
                              .order_by(runs.c.handler)):
            by_id[r.event_id].runs.append(Run(r.handler, r.status, r.attempts, r.error, _from_ts(r.updated_at)))

    # -- one event ---------------------------------------------------------------------------------
    def event(self, event_id: str) -> EventRow | None:
        """One event with its runs and the headers that were kept; None when the log does not have it."""
        with self.store.engine.connect() as conn:
            r = conn.execute(select(events).where(events.c.event_id == event_id)).first()
            if r is None:
                return None
            row = EventRow(r.event_id, as_utc(r.received_at), r.event_type, r.channel, r.status, r.supr_nid,
                           r.distinct_id, _loads(r.body))
            headers = _loads(r.headers)
            row.headers = {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}
            self._attach_runs(conn, [row])
        return row

    # -- bulk replay -------------------------------------------------------------------------------
    def _runs_query(self, filters: Filters, outcomes: Sequence[str]) -> Any:
        conds = self.where(replace(filters, outcomes=(), handler=None))
        run = [runs.c.status.in_(list(outcomes))]
        if filters.handler:
            run.append(runs.c.handler == filters.handler)
        return (select(runs.c.event_id, runs.c.handler).join(events, events.c.event_id == runs.c.event_id)
                .where(*conds, *run))

    def count_runs(self, filters: Filters, outcomes: Sequence[str]) -> int:
        """How many runs in `outcomes` (of the filter's handler, if any) the events matching `filters` have."""
        query = select(func.count()).select_from(self._runs_query(filters, outcomes).subquery())
        with self.store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def run_pairs(self, filters: Filters, outcomes: Sequence[str], limit: int = MAX_BULK) -> list[tuple[str, str]]:
        """The (event_id, handler) of those runs, oldest event first, at most `limit`."""
        query = self._runs_query(filters, outcomes).order_by(events.c.received_at, runs.c.event_id,
                                                             runs.c.handler).limit(limit)
        with self.store.engine.connect() as conn:
            return [(r.event_id, r.handler) for r in conn.execute(query)]

    def run_statuses(self, pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
        """How many of these runs are in each status now (the progress of a bulk replay)."""
        counts: dict[str, int] = {}
        pairs = list(pairs)
        with self.store.engine.connect() as conn:
            for start in range(0, len(pairs), 500):
                chunk = pairs[start:start + 500]
                query = select(runs.c.status, func.count()).where(
                    tuple_(runs.c.event_id, runs.c.handler).in_(chunk)).group_by(runs.c.status)
                for status, count in conn.execute(query):
                    counts[status] = counts.get(status, 0) + int(count)
        return counts

    # -- the overview ------------------------------------------------------------------------------
    def run_outcomes(self, since: float) -> dict[str, int]:
        """Runs by status among those updated since `since` (Unix seconds)."""
        query = select(runs.c.status, func.count()).where(runs.c.updated_at >= since).group_by(runs.c.status)
        with self.store.engine.connect() as conn:
            return {status: int(count) for status, count in conn.execute(query)}

    def oldest_pending(self) -> tuple[int, float | None]:
        """(how many runs are pending, the Unix time the oldest of them became pending)."""
        query = select(func.count(), func.min(runs.c.updated_at)).where(runs.c.status == PENDING)
        with self.store.engine.connect() as conn:
            count, oldest = conn.execute(query).one()
        return int(count), oldest


def _from_ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value else None


# --------------------------------------------------------------------------------------------------
# Bulk replays: which runs each one sent, so any receiver process can show its progress


jobs_metadata = MetaData()
replay_jobs = Table(
    "suprhook_console_replays", jobs_metadata,
    Column("job_id", String(32), primary_key=True), Column("created_at", Float, nullable=False, index=True),
    Column("sent", Integer, nullable=False), Column("pairs", Text, nullable=False), Column("summary", Text),
    Column("problems", Text), Column("finished_at", Float),
)


class ReplayJobs:
    """The console's bulk replays, in the event log's database (one small row each; the last 100 are kept)."""

    KEEP = 100

    def __init__(self, store: EventStore, few_runs: int = FEW_RUNS) -> None:
        self.store, self.few_runs = store, few_runs
        self.store.db.ensure(jobs_metadata)

    def add(self, pairs: Sequence[tuple[str, str]], sent: int, summary: str) -> str:
        job_id = uuid.uuid4().hex
        with self.store.db.writing() as conn:
            conn.execute(replay_jobs.insert().values(job_id=job_id, created_at=time.time(), sent=sent,
                                                     pairs=json.dumps([list(p) for p in pairs]), summary=summary))
            keep = select(replay_jobs.c.job_id).order_by(replay_jobs.c.created_at.desc()).limit(self.KEEP)
            conn.execute(replay_jobs.delete().where(replay_jobs.c.job_id.notin_(keep.scalar_subquery())))
        return job_id

    def update(self, job_id: str, sent: int, problems: Sequence[str] = (), finished: bool = False) -> None:
        """How many runs were sent so far (and what could not be), and whether sending is over."""
        values: dict[str, Any] = {"sent": sent, "problems": json.dumps(list(problems))}
        if finished:
            values["finished_at"] = time.time()
        with self.store.db.writing() as conn:
            conn.execute(replay_jobs.update().where(replay_jobs.c.job_id == job_id).values(**values))

    def get(self, job_id: str) -> dict[str, Any] | None:
        if not re.fullmatch(r"[0-9a-f]{32}", job_id or ""):
            return None
        with self.store.engine.connect() as conn:
            row = conn.execute(select(replay_jobs).where(replay_jobs.c.job_id == job_id)).first()
        if row is None:
            return None
        return {"job_id": row.job_id, "created_at": row.created_at, "sent": row.sent, "summary": row.summary,
                "problems": json.loads(row.problems) if row.problems else [],
                "sending_done": row.finished_at is not None, "pairs": [tuple(p) for p in json.loads(row.pairs)]}


class ConsoleData:
    """The console's view of the event log, opened on its first use and not before: a receiver starts, and takes
    webhooks, while the event log is down (queue-first it never needs it for them). Until the event log answers,
    each use raises the database's error and the console answers 503. Its indexes are built by a thread, so the
    first page does not wait for them over a large log (it is slower until they exist)."""

    def __init__(self, opener: Callable[[], EventStore]) -> None:
        self._opener = opener
        self._lock = threading.Lock()
        self._opened: tuple[EventStore, EventBrowser, ReplayJobs] | None = None
        self.indexing: threading.Thread | None = None

    def open(self) -> tuple[EventStore, EventBrowser, ReplayJobs]:
        opened = self._opened
        if opened is None:
            with self._lock:
                if self._opened is None:
                    store = self._opener()
                    browser = EventBrowser(store)
                    self._opened = (store, browser, ReplayJobs(store))
                    self.indexing = threading.Thread(target=_build_indexes, args=(browser,), daemon=True,
                                                     name="suprhook-console-indexes")
                    self.indexing.start()
                opened = self._opened
        return opened


def _build_indexes(browser: EventBrowser) -> None:
    try:
        browser.ensure_indexes()
    except Exception as exc:  # the list works without them, slower; the next receiver start tries again
        log.warning("console: could not create the event list's indexes: %s: %s", type(exc).__name__, exc)
