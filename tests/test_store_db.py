"""The one database layer of the local stores (handlers/stores/db.py): the event log and the Usermaven
outbox share one engine and one writer lock per process; a forked child opens its own; every SQLite
connection gets the same pragmas."""
from __future__ import annotations

import gc
import os
import signal
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from suprhook.handlers.stores.db import (OPEN_DATABASES, ThreadLocalSQLite, connect, open_database, sqlite_file,
                                         sqlite_path)
from suprhook.handlers.stores.dedup import NEW, SQLiteDedup
from suprhook.handlers.stores.store import EventStore
from suprhook.handlers.stores.usermaven_outbox import Outbox
from suprhook.schemas import load_event

from .conftest import make_status, start_together

def _child(check) -> bool:
    """Run `check()` in a forked child; True when it returned truthy (a hang fails after 20 s)."""
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)
        try:
            os._exit(0 if check() else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(2)
    _, code = os.waitpid(pid, 0)
    return os.WIFEXITED(code) and os.WEXITSTATUS(code) == 0


def test_the_event_log_and_the_outbox_share_one_engine(store_url):
    store, outbox = EventStore(store_url), Outbox(store_url)
    assert store.db is outbox.db and store.engine is outbox.engine
    assert outbox.add("evt_1", {"event_id": "evt_1"}) and outbox.counts() == {"pending": 1}
    store.record_accepted(load_event(make_status()), ["h"])
    assert len(store.recent_events(10)) == 1


def test_the_outbox_writes_under_the_event_logs_writer_lock(tmp_path):
    """On SQLite the outbox used to bypass the event log's writer lock (and meet its writers in SQLite's
    sleeping busy handler). Now one lock per file and process serves both, whatever the URL's spelling,
    and an outbox write waits for a writer holding it in another process."""
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    store, outbox = EventStore(url), Outbox(url)
    assert store.db.lock is not None and outbox.db.lock is store.db.lock
    assert EventStore(f"sqlite:///{tmp_path}/../{tmp_path.name}/events.sqlite3").db is store.db

    added = threading.Event()
    with store.db.lock():  # a writer of the event log in this process: the outbox waits for it
        threading.Thread(target=lambda: outbox.add("evt_1", {}) and added.set(), daemon=True).start()
        assert not added.wait(0.3)
    assert added.wait(10)

    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # another process (a receiver, a pool child) holding the file's writer lock
        try:
            with open_database(url).lock():
                os.write(ready_w, b"1")
                os.read(release_r, 1)
        finally:
            os._exit(0)
    assert os.read(ready_r, 1) == b"1"
    added.clear()
    threading.Thread(target=lambda: outbox.add("evt_2", {}) and added.set(), daemon=True).start()
    assert not added.wait(0.3)  # the outbox waits for the other process's writer...
    os.write(release_w, b"1")
    assert added.wait(10)  # ...and writes as soon as it is done
    os.waitpid(pid, 0)
    assert outbox.counts() == {"pending": 2}


def test_a_forked_child_opens_its_own_engine_and_never_touches_the_parents(store_url):
    """A Celery pool child (or a gunicorn worker after --preload) inherits store objects: they open the
    child's own engine there; the parent's pooled connection is neither used nor closed by the child."""
    store = EventStore(store_url)
    store.record_accepted(load_event(make_status()), ["h"])
    parent_db, parent_engine = store.db, store.engine
    backend = "SELECT pg_backend_pid()" if parent_db.dialect == "postgresql" else "SELECT 1"
    with parent_engine.connect() as conn:
        parent_conn = conn.connection.dbapi_connection
        before = conn.execute(text(backend)).scalar()
    pooled = parent_engine.pool.checkedin()
    assert pooled >= 1
    child_event = load_event(make_status())

    def in_child() -> bool:
        db = store.db
        assert db is not parent_db and db.pid == os.getpid() and db.engine is not parent_engine
        assert open_database(store_url) is db and Outbox(store_url).db is db  # shared in the child too
        assert db.lock is None or db.lock is not parent_db.lock
        store.record_accepted(child_event, ["h"])
        with db.writing() as conn:
            assert conn.connection.dbapi_connection is not parent_conn
        assert parent_engine.pool.checkedin() == pooled and parent_engine.pool.checkedout() == 0
        return True

    assert _child(in_child)
    assert store.db is parent_db
    with store.engine.connect() as conn:  # the very connection the parent pooled, alive and untouched
        assert conn.connection.dbapi_connection is parent_conn
        assert conn.execute(text(backend)).scalar() == before
    assert child_event.event_id in {e["event_id"] for e in store.recent_events(10)}


def test_a_fork_while_another_thread_opens_databases_leaves_the_child_a_usable_registry(tmp_path):
    """The registry's lock is taken around fork: a child forked while another thread opens a database
    never starts with that lock held (it would wait for it forever)."""
    stop, keep = threading.Event(), []

    def opener() -> None:
        i = 0
        while not stop.is_set():
            keep.append(open_database(f"sqlite:///{tmp_path}/other-{i % 50}.sqlite3"))
            del keep[:-20]
            i += 1

    thread = threading.Thread(target=opener, daemon=True)
    thread.start()
    try:
        url = f"sqlite:///{tmp_path}/events.sqlite3"
        assert all(_child(lambda: open_database(url).pid == os.getpid()) for _ in range(20))
    finally:
        stop.set()
        thread.join(10)


def test_a_database_lives_while_a_store_uses_it(tmp_path):
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    store = EventStore(url)
    key = (OPEN_DATABASES.key(url), os.getpid())
    assert OPEN_DATABASES._open.get(key) is store.db
    del store
    gc.collect()
    assert OPEN_DATABASES._open.get(key) is None  # its pool and lock file closed with it


def test_thread_local_connections_are_per_thread_and_per_process(tmp_path):
    dedup = SQLiteDedup(tmp_path / "dedup.sqlite3", ttl=60)
    assert dedup.claim("evt_parent") == NEW
    parent_conn = dedup._db.conn
    other: list = []
    threading.Thread(target=lambda: other.append(dedup._db.conn)).start()
    time.sleep(0.2)
    assert other and other[0] is not parent_conn

    def in_child() -> bool:
        assert dedup._db.conn is not parent_conn
        return dedup.claim("evt_child") == NEW and dedup.claim("evt_parent") == "in_flight"

    assert _child(in_child)
    assert dedup._db.conn is parent_conn and dedup.claim("evt_child") == "in_flight"


def test_every_sqlite_connection_gets_the_same_pragmas(tmp_path):
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    store = EventStore(url)
    raw = ThreadLocalSQLite(tmp_path / "dedup.sqlite3").conn
    with store.engine.connect() as conn:
        pragmas = [conn.execute(text(f"PRAGMA {p}")).scalar() for p in ("journal_mode", "synchronous", "busy_timeout")]
    assert pragmas == ["wal", 1, 30000]  # synchronous NORMAL, 30 s
    assert [raw.execute(f"PRAGMA {p}").fetchone()[0] for p in ("journal_mode", "synchronous", "busy_timeout")] \
        == ["wal", 1, 30000]
    with store.db.writing() as conn:  # a writer retries BEGIN IMMEDIATE itself, SQLite's sleeping handler off
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 0
        assert conn.connection.dbapi_connection.in_transaction
    with store.engine.connect() as conn:  # the same pooled connection, a reader again
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    with connect(tmp_path / "x.sqlite3", synchronous="FULL", busy_timeout=5) as conn:
        assert [conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("synchronous", "busy_timeout")] == [2, 5000]


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:////abs/dir/events.sqlite3", "/abs/dir/events.sqlite3"),
    ("sqlite:///rel/events.sqlite3", "rel/events.sqlite3"),
    ("sqla+sqlite:////abs/broker.sqlite3", "/abs/broker.sqlite3"),
    ("sqlite+pysqlite:///x.db?timeout=5", "x.db"),
    ("sqlite://", None),
    ("sqlite:///:memory:", None),
    ("sqlite:///file:mem?mode=memory&uri=true", None),
])
def test_sqlite_urls(url, path):
    assert sqlite_file(url) == (None if path is None else type(sqlite_path("sqlite:///x"))(path))
    if path is None:
        with pytest.raises(ValueError):
            sqlite_path(url)


def test_urls_that_are_not_sqlite_are_refused():
    with pytest.raises(ValueError):
        sqlite_file("postgresql+psycopg://postgres@127.0.0.1/test")


def _open_when_released(path: str, barrier) -> None:
    from suprhook.handlers.stores import db

    barrier.wait()
    db.connect(path).close()


def test_many_processes_opening_a_new_file_at_once_all_get_it_in_wal_mode(tmp_path):
    """Switching a new file to WAL from several processes at once could fail at once with "database is
    locked" (no busy wait): a gunicorn receiver failed to boot beside its worker on the embedded broker."""
    for round_ in range(5):
        path = str(tmp_path / f"fresh-{round_}.sqlite3")
        assert start_together(_open_when_released, [(path,)] * 8) == [0] * 8
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
