"""Where every local store opens its database: one module for URLs, SQLite pragmas, engines and locks.

- `sqlite_path` / `sqlite_file`: the file behind a `sqlite:///` or `sqla+sqlite:///` URL.
- `configure` / `connect` / `ThreadLocalSQLite`: raw `sqlite3` connections (dedup, conversations, the
  embedded broker's helpers), all with the same pragmas: WAL, `synchronous`, a busy timeout.
- `open_database(url)` -> `Database`: the SQLAlchemy side (the event log and the Usermaven outbox). One
  per URL and process, so everything that writes one SQLite file from this process goes through one
  engine and one `WriterLock`; PostgreSQL gets a pre-pinged pool. `DatabaseUser` is the base of a store
  object that may outlive a fork (a Celery pool child) and must then open its own.

Nothing here is configuration: the only process-wide state is `OPEN_DATABASES`, the registry of open
databases, and it is fork-safe (see `DatabaseRegistry`). SQLAlchemy is imported only when a database is
opened: the dedup and conversation stores and the broker helpers do not need it.
"""
from __future__ import annotations

import fcntl
import os
import random
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection, Engine

# Row states. The event log's handler runs use all but SENT; the Usermaven outbox's rows are PENDING,
# SENT or DEAD. `suprhook replay` and the sweep turn a run back to PENDING; DEAD is kept, never retried.
PENDING, RUNNING, SUCCEEDED, FAILED, DEAD, SKIPPED, SENT = (
    "pending", "running", "succeeded", "failed", "dead", "skipped", "sent")

# SQLite pragmas. WAL lets readers and one writer work at once, across threads and processes;
# synchronous=NORMAL in WAL mode loses nothing when a process dies, only the last commits on power loss
# (stores that must survive that too pass "FULL"); a connection waits up to BUSY_TIMEOUT seconds for a
# lock another connection holds.
SYNCHRONOUS = "NORMAL"
BUSY_TIMEOUT = 30.0
_BUSY_MS = int(BUSY_TIMEOUT * 1000)


# -- URLs --------------------------------------------------------------------------------------------
def is_sqlite(url: str) -> bool:
    """`sqlite://...`, `sqlite+pysqlite://...`, `sqla+sqlite://...` (kombu's transport)."""
    return "sqlite" in url.partition("://")[0].split("+")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (`sqlite:////abs/x.sqlite3` -> /abs/x.sqlite3, `sqla+sqlite:///rel/x`
    -> rel/x), or None for an in-memory database (`sqlite://`, `:memory:`, `mode=memory`)."""
    if not is_sqlite(url):
        raise ValueError(f"not a SQLite URL: {url!r}")
    rest = url.partition("://")[2]
    database, _, query = rest[1:].partition("?") if rest.startswith("/") else (rest, "", "")
    if database in ("", ":memory:") or "mode=memory" in query:
        return None
    return Path(database)


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL; ValueError for an in-memory one (it has none)."""
    path = sqlite_file(url)
    if path is None:
        raise ValueError(f"{url!r} is an in-memory database, not a file")
    return path


# -- raw sqlite3 connections -------------------------------------------------------------------------
def configure(conn: Any, synchronous: str = SYNCHRONOUS, busy_timeout: float = BUSY_TIMEOUT) -> None:
    """The pragmas every SQLite connection of suprhook gets (a sqlite3 connection, raw or under SQLAlchemy).
    WAL is stored in the file (the first connection switches it); the other two are per connection."""
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    deadline = time.monotonic() + busy_timeout
    while True:  # several processes opening a new file at once: one may get "locked" without the busy wait
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    conn.execute(f"PRAGMA synchronous={synchronous}")


def connect(path: str | Path, *, synchronous: str = SYNCHRONOUS,
            busy_timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    """A configured autocommit connection to `path` (the file is created, not its directory). Use it
    from one thread."""
    conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
    configure(conn, synchronous, busy_timeout)
    return conn


class ThreadLocalSQLite:
    """One configured autocommit connection per thread and process (`.conn`): the dedup and conversation
    stores use theirs on every request or task, so they keep it open. A forked child opens its own: it
    never uses, nor closes, a connection it inherited (SQLite forbids carrying one across fork)."""

    def __init__(self, path: str | Path, *, synchronous: str = SYNCHRONOUS,
                 busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path, self.synchronous, self.busy_timeout = str(path), synchronous, busy_timeout
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._inherited: list[sqlite3.Connection] = []  # kept open, untouched, in a forked child

    @property
    def conn(self) -> sqlite3.Connection:
        local, pid = self._local, os.getpid()
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != pid:
            if conn is not None:
                self._inherited.append(conn)
            conn = local.conn = connect(self.path, synchronous=self.synchronous, busy_timeout=self.busy_timeout)
            local.pid = pid
        return conn


# -- the SQLAlchemy side -----------------------------------------------------------------------------
class WriterLock:
    """Serializes this host's writers of one SQLite file: a thread lock inside a process, a POSIX record
    lock (lockf) on `<db>.writelock` between processes. SQLite's own busy handler sleeps 1, 2, 5, 10,
    15, 20, 25 ms... between tries, which turned brief overlaps between receivers' and workers' writes
    into tens of milliseconds of latency; the kernel wakes a lockf waiter at once. lockf, not flock:
    its lock belongs to the process, so a forked child (a Celery pool process) never inherits it and
    it is released when its holder dies, however the holder's children live on.

    There must be one per file and process: closing *any* descriptor of the file drops every lockf lock
    the process holds on it, and two descriptors in one process would not exclude each other. So only
    `Database` makes them (one per file, through `OPEN_DATABASES`), and a forked child makes its own."""

    def __init__(self, path: str) -> None:
        self.path, self.pid = path, os.getpid()
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def __del__(self) -> None:
        if getattr(self, "pid", None) == os.getpid():  # never in a forked child: see the class docstring
            os.close(self._fd)


def begin_immediate(dbapi_conn: Any, deadline: float = 30.0) -> None:
    """Take SQLite's write lock. This host's writers of the file hold its WriterLock already, so this
    waits only for writers outside suprhook (the sqlite3 shell, a backup): retry every 0.1-2 ms."""
    give_up, delay = time.monotonic() + deadline, 0.0001
    while True:
        try:
            dbapi_conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > give_up:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.002)


def _sqlite_engine(url: str) -> Engine:
    """One pool for readers and writers. The driver's own transaction handling is off: a writer
    (`Database.writing`) begins with BEGIN IMMEDIATE, retried finely with SQLite's busy handler off; any
    other transaction with a deferred BEGIN (in the "begin" event), under the busy timeout."""
    from sqlalchemy import create_engine, event

    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT, "isolation_level": None})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: Any, record: Any) -> None:
        configure(dbapi_conn)
        record.info["busy_ms"] = _BUSY_MS

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        dbapi_conn = conn.connection.dbapi_connection
        if not dbapi_conn.in_transaction:  # else Database.writing began it (BEGIN IMMEDIATE)
            _busy_timeout(conn, _BUSY_MS)
            dbapi_conn.execute("BEGIN")

    return engine


def _busy_timeout(conn: Connection, ms: int) -> None:
    """Set a pooled connection's busy timeout, only when it changes roles (reader <-> writer)."""
    info = conn.connection.info
    if info.get("busy_ms") != ms:
        conn.connection.dbapi_connection.execute(f"PRAGMA busy_timeout={ms}")
        info["busy_ms"] = ms


class Database:
    """One database as this process uses it: `engine` (reads, and everything on PostgreSQL) and
    `writing()` (a write transaction: on a SQLite file, under the file's WriterLock, then BEGIN
    IMMEDIATE). Get one with `open_database(url)`; it belongs to the process that opened it."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self.url, self.pid = url, os.getpid()
        self.lock: WriterLock | None = None
        if is_sqlite(url):
            path = sqlite_file(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.lock = WriterLock(f"{path}.writelock")
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        self.dialect = self.engine.dialect.name
        self._created: set[MetaData] = set()

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction, committed on leaving (rolled back on an exception). On SQLite: this
        host's writers of the file one at a time (the WriterLock), then BEGIN IMMEDIATE."""
        if self.dialect != "sqlite":
            with self.engine.begin() as conn:
                yield conn
            return
        with self.lock() if self.lock is not None else nullcontext(), self.engine.connect() as conn:
            _busy_timeout(conn, 0)
            begin_immediate(conn.connection.dbapi_connection)
            with conn.begin():
                yield conn

    def ensure(self, metadata: MetaData) -> None:
        """Create `metadata`'s missing tables, once per Database. Receivers and workers start together:
        on SQLite this runs in one write transaction under the WriterLock (without it, two processes both
        saw no table and the second CREATE failed: "table suprhook_events already exists", seen booting
        gunicorn -w 3); on PostgreSQL another host may create them between check and CREATE: once more."""
        from sqlalchemy.exc import DBAPIError

        if metadata in self._created:
            return
        try:
            with self.writing() as conn:
                metadata.create_all(conn)
        except DBAPIError:
            with self.writing() as conn:
                metadata.create_all(conn)
        self._created.add(metadata)

    def dispose(self) -> None:
        """Close the pooled connections (the engine opens new ones when used again). The WriterLock's
        file stays open while anything uses this Database: closing it would drop the lock under them."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.engine.url!r}, pid={self.pid})"


class DatabaseRegistry:
    """The databases this process has open, one per URL (a SQLite file: per file, however spelled), held
    weakly: a Database lives while a store uses it, so opening the same URL again while it is in use
    returns the same engine and WriterLock (the event log and the Usermaven outbox share them).

    Fork-safe without reassigning anything: entries are keyed by pid too, so a child opens its own; the
    registry's lock is taken around fork (as `logging` does), so a child never starts with it held; and
    the child keeps what it inherited alive but untouched (`_inherited`), so no inherited pooled connection
    or lock descriptor is ever closed, or used, by it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._open: weakref.WeakValueDictionary[tuple[str, int], Database] = weakref.WeakValueDictionary()
        self._inherited: list[Database] = []
        os.register_at_fork(before=self._lock.acquire, after_in_parent=self._lock.release,
                            after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        self._inherited.extend(self._open.values())
        self._lock.release()

    @staticmethod
    def key(url: str) -> str:
        if is_sqlite(url):
            path = sqlite_file(url)
            if path is not None:
                return "sqlite:///" + os.path.realpath(path)
        return url

    def open(self, url: str) -> Database:
        import sqlalchemy  # noqa: F401  (not first under the lock, which a fork waits for)

        key = (self.key(url), os.getpid())
        with self._lock:
            db = self._open.get(key)
            if db is None:
                db = self._open[key] = Database(url)
            return db


OPEN_DATABASES = DatabaseRegistry()


def open_database(url: str) -> Database:
    """This process's Database for `url` (opened on first use, shared while in use)."""
    return OPEN_DATABASES.open(url)


class DatabaseUser:
    """Base of a store object: `db` is this process's Database for `url`, with `metadata`'s tables
    created; an object built before a fork (a Celery pool child, gunicorn --preload) opens the child's
    own on first use there. `eager`: open it now, else on first use."""

    def __init__(self, url: str, metadata: MetaData | None = None, *, eager: bool = False) -> None:
        self.url, self._metadata = url, metadata
        self._db: Database | None = self._open() if eager else None

    def _open(self) -> Database:
        db = open_database(self.url)
        if self._metadata is not None:
            db.ensure(self._metadata)
        return db

    @property
    def db(self) -> Database:
        db = self._db
        if db is None or db.pid != os.getpid():
            db = self._db = self._open()
        return db

    @property
    def engine(self) -> Engine:
        return self.db.engine
