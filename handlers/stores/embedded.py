"""The embedded broker: kombu's SQLAlchemy transport on a local SQLite file, made fit for use.

kombu leaves four things to us (measured; see docs/embedded-broker.md): the file must be in WAL
mode for concurrent producers; processes that create the same queue row at once collide on its
unique name (kombu catches only OperationalError, so the publish fails); the poll interval is a class
attribute (1 s by default; passing it as a transport option breaks engine creation); and consumed
rows are never deleted.
"""
from __future__ import annotations

import fcntl
import logging
import sqlite3
import threading
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

from celery import Celery

from .db import connect, sqlite_path

log = logging.getLogger("suprhook.embedded")


def prepare(broker_url: str, poll_interval: float) -> None:
    """Create the file in WAL mode (persistent per file) and set the consumer poll interval."""
    from kombu.transport import sqlalchemy as sqla_transport

    path = sqlite_path(broker_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One process at a time: switching a new file to WAL while another process does the same can fail at
    # once with "database is locked", without waiting on the busy timeout (seen when gunicorn's workers and
    # the Celery worker start together: a receiver failed to boot).
    with _file_lock(path.with_name(path.name + ".lock")):
        connect(path).close()  # db.configure switches the file to WAL
    sqla_transport.Transport.polling_interval = poll_interval


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def declare_queues(app: Celery) -> None:
    """Create kombu's tables and every queue row once, serialized across processes by a file lock."""
    path = sqlite_path(app.conf.broker_url)
    with _file_lock(path.with_name(path.name + ".lock")), app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in app.amqp.queues.values():
            queue.bind(channel).declare()


def purge_consumed(broker_url: str) -> int:
    """Delete messages a consumer has already taken (kombu marks them invisible, never deletes)."""
    try:
        with closing(connect(sqlite_path(broker_url))) as db:
            return db.execute("DELETE FROM kombu_message WHERE visible = 0").rowcount
    except sqlite3.OperationalError as exc:  # table not created yet, or busy: next round
        log.debug("embedded broker cleanup skipped: %s", exc)
        return 0


def queue_depth(broker_url: str) -> int:
    """Messages waiting to be consumed (for readiness output and tests)."""
    try:
        with closing(connect(sqlite_path(broker_url))) as db:
            return db.execute("SELECT count(*) FROM kombu_message WHERE visible = 1").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def start_cleanup(broker_url: str, every: float = 60.0) -> threading.Event:
    """Purge consumed rows every `every` seconds in a daemon thread; set the returned event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            removed = purge_consumed(broker_url)
            if removed:
                log.debug("embedded broker: removed %d consumed messages", removed)

    threading.Thread(target=loop, name="suprhook-broker-cleanup", daemon=True).start()
    return stop
