"""Remembers accepted event ids so a redelivered webhook is answered `duplicate`, not run twice.

Two-phase: `claim` takes a short lease before enqueueing; `commit` turns it into the full TTL once
the event is on the broker; `release` drops it when the enqueue failed, so the sender's retry is
accepted rather than dropped as a duplicate. A second request for an id under lease is `IN_FLIGHT`.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from .db import ThreadLocalSQLite, sqlite_path

NEW, DUPLICATE, IN_FLIGHT = "new", "duplicate", "in_flight"
LEASE_SECONDS = 30  # longer than any bounded enqueue


class DedupStore(Protocol):
    def claim(self, event_id: str) -> str: ...
    def commit(self, event_id: str) -> None: ...
    def release(self, event_id: str) -> None: ...
    def ping(self) -> None: ...


class SQLiteDedup:
    """Default store: one SQLite file (WAL), safe across threads and processes."""

    def __init__(self, path: str | Path, ttl: int) -> None:
        self.ttl = ttl
        self._db = ThreadLocalSQLite(path, synchronous="NORMAL", busy_timeout=10)
        self._claims = 0
        self._conn().execute("CREATE TABLE IF NOT EXISTS dedup (event_id TEXT PRIMARY KEY,"
                             " committed INTEGER NOT NULL, expires_at REAL NOT NULL)")

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn

    def claim(self, event_id: str) -> str:
        now = time.time()
        db = self._conn()
        inserted = db.execute(
            "INSERT INTO dedup VALUES (?, 0, ?) ON CONFLICT(event_id) DO UPDATE SET committed = 0,"
            " expires_at = excluded.expires_at WHERE dedup.expires_at <= ?",
            (event_id, now + LEASE_SECONDS, now),
        ).rowcount
        self._claims += 1
        if self._claims % 1000 == 0:
            db.execute("DELETE FROM dedup WHERE expires_at <= ?", (now,))
        if inserted:
            return NEW
        row = db.execute("SELECT committed FROM dedup WHERE event_id = ?", (event_id,)).fetchone()
        return DUPLICATE if row and row[0] else IN_FLIGHT

    def commit(self, event_id: str) -> None:
        self._conn().execute("UPDATE dedup SET committed = 1, expires_at = ? WHERE event_id = ?",
                             (time.time() + self.ttl, event_id))

    def release(self, event_id: str) -> None:
        self._conn().execute("DELETE FROM dedup WHERE event_id = ? AND committed = 0", (event_id,))

    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()


class RedisDedup:
    """`SUPRHOOK_DEDUP_URL=redis://...`: shared by every receiver instance."""

    def __init__(self, url: str, ttl: int, prefix: str = "suprhook:dedup:") -> None:
        import redis

        self.ttl, self.prefix = ttl, prefix
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0,
                                           health_check_interval=30)

    def claim(self, event_id: str) -> str:
        key = self.prefix + event_id
        if self.client.set(key, b"0", nx=True, ex=LEASE_SECONDS):
            return NEW
        return DUPLICATE if self.client.get(key) == b"1" else IN_FLIGHT

    def commit(self, event_id: str) -> None:
        self.client.set(self.prefix + event_id, b"1", ex=self.ttl)

    def release(self, event_id: str) -> None:
        key = self.prefix + event_id
        # Only drop an uncommitted lease; never forget an accepted event.
        self.client.eval("if redis.call('get', KEYS[1]) == '0' then return redis.call('del', KEYS[1]) end"
                         " return 0", 1, key)

    def ping(self) -> None:
        self.client.ping()


def open_dedup(url: str, ttl: int) -> DedupStore:
    scheme = urlparse(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        return RedisDedup(url, ttl)
    if scheme == "sqlite":
        return SQLiteDedup(sqlite_path(url), ttl)
    raise ValueError(f"SUPRHOOK_DEDUP_URL: unsupported scheme {scheme!r} (use sqlite:/// or redis://)")
