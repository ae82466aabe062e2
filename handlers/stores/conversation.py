"""Conversation state for multi-step reply flows, keyed by (workspace_uid, channel, channel_value).

A handler that declares `conversation` (or filters on `state=`) runs under a per-conversation lock:
two replies from one user processed at once by two workers are serialized, never interleaved.
Every handler of one event sees the state as it was when that event first reached the conversation
(so one reply cannot drive two transitions), and changes are saved only if the handler succeeds.
Stored in SQLite by default, in Redis with SUPRHOOK_CONVERSATION_URL=redis://...; expires after
SUPRHOOK_CONVERSATION_TTL seconds without a change.
"""
from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol
from urllib.parse import urlparse

from ...schemas import Event

from .db import ThreadLocalSQLite, sqlite_path

LOCK_LEASE_SECONDS = 60.0  # a worker killed while holding a lock frees it after this
LOCK_WAIT_SECONDS = 30.0
SEEN_EVENTS_KEPT = 50


class ConversationBusy(Exception):
    """The conversation stayed locked for LOCK_WAIT_SECONDS: the task retries later."""


@dataclass
class Snapshot:
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, str | None] = field(default_factory=dict)  # event_id -> state when it arrived

    def arrival_state(self, event_id: str) -> str | None:
        if event_id not in self.seen:
            self.seen[event_id] = self.state
            for old in list(self.seen)[:-SEEN_EVENTS_KEPT]:
                del self.seen[old]
        return self.seen[event_id]

    def dumps(self) -> str:
        return json.dumps({"state": self.state, "data": self.data, "seen": self.seen})

    @classmethod
    def loads(cls, text: str | bytes | None) -> "Snapshot":
        return cls(**json.loads(text)) if text else cls()


class Conversation:
    """What a handler gets as `conversation`: `state`, `data`, `set(state, **data)`, `clear()`."""

    def __init__(self, key: str, snapshot: Snapshot) -> None:
        self.key = key
        self._state, self._data = snapshot.state, dict(snapshot.data)

    @property
    def state(self) -> str | None:
        return self._state

    @property
    def data(self) -> dict[str, Any]:
        return self._data

    def set(self, state: str | None, **data: Any) -> None:
        """Move to `state`, merging `data` into what the conversation already holds."""
        json.dumps(data)  # must be storable: fail here, in the handler, not after it
        self._state = state
        self._data.update(data)

    def clear(self) -> None:
        self._state, self._data = None, {}

    def __repr__(self) -> str:
        return f"Conversation({self.key!r}, state={self._state!r}, data={self._data!r})"


def conversation_key(event: Event) -> str:
    who = event.channel_value or (event.message.from_ if event.message else None) or event.distinct_id or "-"
    return f"{event.reference.workspace_uid or '-'}:{event.channel}:{who}"


class ConversationStore(Protocol):
    ttl: int

    def locked(self, key: str) -> Any: ...
    def load(self, key: str) -> Snapshot: ...
    def save(self, key: str, snapshot: Snapshot, token: str) -> None: ...


class SQLiteConversations:
    def __init__(self, path: str | Path, ttl: int) -> None:
        self.ttl = ttl
        self._conn = ThreadLocalSQLite(path, synchronous="FULL", busy_timeout=30)
        db = self._db()
        db.execute("CREATE TABLE IF NOT EXISTS conversations (key TEXT PRIMARY KEY, body TEXT NOT NULL,"
                   " expires_at REAL NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS conversation_locks (key TEXT PRIMARY KEY, token TEXT NOT NULL,"
                   " expires_at REAL NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        return self._conn.conn

    @contextmanager
    def locked(self, key: str) -> Iterator[str]:
        token, deadline = uuid.uuid4().hex, time.monotonic() + LOCK_WAIT_SECONDS
        while not self._db().execute(
                "INSERT INTO conversation_locks VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET"
                " token = excluded.token, expires_at = excluded.expires_at"
                " WHERE conversation_locks.expires_at <= ?",
                (key, token, time.time() + LOCK_LEASE_SECONDS, time.time())).rowcount:
            if time.monotonic() > deadline:
                raise ConversationBusy(key)
            time.sleep(0.02)
        try:
            yield token
        finally:
            self._db().execute("DELETE FROM conversation_locks WHERE key = ? AND token = ?", (key, token))

    def load(self, key: str) -> Snapshot:
        row = self._db().execute("SELECT body, expires_at FROM conversations WHERE key = ?", (key,)).fetchone()
        return Snapshot.loads(row[0]) if row and row[1] > time.time() else Snapshot()

    def save(self, key: str, snapshot: Snapshot, token: str) -> None:
        """Write only while still holding the lock `token` (a handler that outlived its lease must not
        overwrite what the next holder wrote): ConversationBusy otherwise, and the task retries."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            held = db.execute("SELECT 1 FROM conversation_locks WHERE key = ? AND token = ? AND expires_at > ?",
                              (key, token, time.time())).fetchone()
            if not held:
                raise ConversationBusy(f"{key}: the lock expired before the handler finished")
            db.execute("INSERT OR REPLACE INTO conversations VALUES (?, ?, ?)",
                       (key, snapshot.dumps(), time.time() + self.ttl))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


class RedisConversations:
    def __init__(self, url: str, ttl: int, prefix: str = "suprhook:conversation:") -> None:
        import redis

        self.ttl, self.prefix = ttl, prefix
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    _SAVE_IF_HELD = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                     "return redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3]) else return false end")

    @contextmanager
    def locked(self, key: str) -> Iterator[str]:
        token = uuid.uuid4().hex
        lock = self.client.lock(f"{self.prefix}lock:{key}", timeout=LOCK_LEASE_SECONDS,
                                blocking_timeout=LOCK_WAIT_SECONDS, sleep=0.02)
        if not lock.acquire(token=token):
            raise ConversationBusy(key)
        try:
            yield token
        finally:
            try:
                lock.release()
            except Exception:  # the lease ran out under a very slow handler; it is already free
                pass

    def load(self, key: str) -> Snapshot:
        return Snapshot.loads(self.client.get(self.prefix + key))

    def save(self, key: str, snapshot: Snapshot, token: str) -> None:
        """Atomically: write only while the lock still holds `token` (see SQLiteConversations.save)."""
        if not self.client.eval(self._SAVE_IF_HELD, 2, f"{self.prefix}lock:{key}", self.prefix + key,
                                token, snapshot.dumps(), self.ttl):
            raise ConversationBusy(f"{key}: the lock expired before the handler finished")


def open_conversations(url: str, ttl: int) -> ConversationStore:
    scheme = urlparse(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        return RedisConversations(url, ttl)
    if scheme == "sqlite":
        return SQLiteConversations(sqlite_path(url), ttl)
    raise ValueError(f"SUPRHOOK_CONVERSATION_URL: unsupported scheme {scheme!r} (use sqlite:/// or redis://)")
