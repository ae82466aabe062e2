"""The console overview's webhook counts: accepted / duplicate / rejected (by reason) per minute over the last
hour, and the last 500 rejected requests (time, source, reason, code, declared size; never a body).

Off the ack path: `TrafficRecorder.observe` only appends a tuple to a bounded in-process buffer; a daemon
thread flushes it every second into shared storage, so every receiver process (and host) adds to the same
counts: the dedup store's Redis when there is one (one pipeline per flush), else a SQLite file in the data
directory. Storage stays bounded: minutes older than an hour and rejections beyond the last 500 are dropped
at each flush.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections import deque
from typing import Any, Protocol

from ..settings import Settings
from ..stores.db import connect

log = logging.getLogger("suprhook.console")

WINDOW_MINUTES = 60
KEEP_REJECTIONS = 500
FLUSH_EVERY = 1.0
BUFFER_MAX = 100_000  # observations held while the storage is unreachable; older ones are dropped


class TrafficStorage(Protocol):
    def add(self, observations: list[tuple]) -> None: ...

    def minutes(self, since_minute: int) -> dict[int, dict[str, int]]: ...

    def rejections(self, limit: int = KEEP_REJECTIONS) -> list[dict[str, Any]]: ...


def _count_key(outcome: str, reason: str | None) -> str:
    return f"rejected:{reason}" if outcome == "rejected" else outcome


def _tally(observations: list[tuple]) -> tuple[dict[tuple[int, str], int], list[tuple]]:
    """Counts per (minute, outcome key), and the rejections as (at, client, reason, code, size), oldest first."""
    counts: dict[tuple[int, str], int] = {}
    rejected = []
    for at, outcome, reason, code, client, size in observations:
        key = (int(at // 60), _count_key(outcome, reason))
        counts[key] = counts.get(key, 0) + 1
        if outcome == "rejected":
            rejected.append((at, client, reason, code, size))
    return counts, rejected


class SqliteTraffic:
    """Counts in a SQLite file (the embedded default: one host)."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with self._conn() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS minutes (minute INTEGER NOT NULL, key TEXT NOT NULL, "
                         "count INTEGER NOT NULL, PRIMARY KEY (minute, key))")
            conn.execute("CREATE TABLE IF NOT EXISTS rejections (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                         "at REAL NOT NULL, client TEXT, reason TEXT, code INTEGER, size INTEGER)")

    def _conn(self) -> Any:
        conn = connect(self.path)
        return _Closing(conn)

    def add(self, observations: list[tuple]) -> None:
        counts, rejected = _tally(observations)
        now_minute = int(time.time() // 60)
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO minutes VALUES (?, ?, ?) ON CONFLICT (minute, key) "
                             "DO UPDATE SET count = count + excluded.count",
                             [(m, k, c) for (m, k), c in counts.items()])
            conn.executemany("INSERT INTO rejections (at, client, reason, code, size) VALUES (?, ?, ?, ?, ?)",
                             rejected[-KEEP_REJECTIONS:])
            conn.execute("DELETE FROM minutes WHERE minute < ?", (now_minute - WINDOW_MINUTES,))
            conn.execute("DELETE FROM rejections WHERE id <= (SELECT MAX(id) FROM rejections) - ?", (KEEP_REJECTIONS,))
            conn.execute("COMMIT")

    def minutes(self, since_minute: int) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {}
        with self._conn() as conn:
            for minute, key, count in conn.execute("SELECT minute, key, count FROM minutes WHERE minute >= ?",
                                                   (since_minute,)):
                out.setdefault(minute, {})[key] = count
        return out

    def rejections(self, limit: int = KEEP_REJECTIONS) -> list[dict[str, Any]]:
        with self._conn() as conn:
            rows = conn.execute("SELECT at, client, reason, code, size FROM rejections ORDER BY id DESC LIMIT ?",
                                (limit,)).fetchall()
        return [{"at": at, "client": client, "reason": reason, "code": code, "size": size}
                for at, client, reason, code, size in rows]


class _Closing:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()


class RedisTraffic:
    """Counts in Redis (shared by every receiver): a hash per minute and a capped list of rejections."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    def add(self, observations: list[tuple]) -> None:
        pipe = self.client.pipeline(transaction=False)
        counts, rejected = _tally(observations)
        for at, client, reason, code, size in rejected:
            pipe.lpush(f"{self.prefix}rejections", json.dumps(
                {"at": at, "client": client, "reason": reason, "code": code, "size": size}))
        for (minute, key), count in counts.items():
            pipe.hincrby(f"{self.prefix}m:{minute}", key, count)
            pipe.expire(f"{self.prefix}m:{minute}", (WINDOW_MINUTES + 5) * 60)
        pipe.ltrim(f"{self.prefix}rejections", 0, KEEP_REJECTIONS - 1)
        pipe.execute()

    def minutes(self, since_minute: int) -> dict[int, dict[str, int]]:
        now = int(time.time() // 60)
        pipe = self.client.pipeline(transaction=False)
        wanted = list(range(since_minute, now + 1))
        for minute in wanted:
            pipe.hgetall(f"{self.prefix}m:{minute}")
        return {minute: {k.decode(): int(v) for k, v in found.items()}
                for minute, found in zip(wanted, pipe.execute(), strict=True) if found}

    def rejections(self, limit: int = KEEP_REJECTIONS) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self.client.lrange(f"{self.prefix}rejections", 0, limit - 1)]


def traffic_storage(settings: Settings) -> TrafficStorage:
    """Redis when the dedup store is Redis (shared by every receiver), else a SQLite file in the data directory."""
    if settings.dedup_url.startswith(("redis://", "rediss://")):
        return RedisTraffic(settings.dedup_url, f"suprhook:console:{settings.default_queue}:")
    return SqliteTraffic(str(settings.data_dir / "console-traffic.sqlite3"))


class TrafficRecorder:
    """`observe` is called once per webhook answered; it never blocks on I/O."""

    def __init__(self, storage: TrafficStorage, flush_every: float = FLUSH_EVERY) -> None:
        self.storage, self.flush_every = storage, flush_every
        self._buffer: deque[tuple] = deque(maxlen=BUFFER_MAX)
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def observe(self, outcome: str, reason: str | None, code: int, client: str | None,
                size: int | None) -> None:
        """Count one answer (`client` and `size` are kept for rejections only; never a body)."""
        if self._pid != os.getpid():
            self._start()
        self._buffer.append((time.time(), outcome, reason, code, client if outcome == "rejected" else None,
                             size if outcome == "rejected" else None))

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._pid is not None:  # a forked child (gunicorn --preload): the parent's buffer is the parent's
                self._buffer = deque(maxlen=BUFFER_MAX)
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="suprhook-console-traffic", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_every):
            self.flush()

    def flush(self) -> None:
        """Write what was observed since the last flush (kept for the next one if the storage fails)."""
        taken = []
        while self._buffer:
            try:
                taken.append(self._buffer.popleft())
            except IndexError:
                break
        if not taken:
            return
        try:
            self.storage.add(taken)
        except Exception as exc:  # the counts wait; the webhooks never do
            self._buffer.extendleft(reversed(taken))
            log.warning("console traffic counts not written (kept for the next flush): %s", type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        self.flush()

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """The last hour per minute (oldest first: minute start, accepted, duplicate, rejected by reason) and the
        rejections, newest first. What this process has not flushed yet is included."""
        now = time.time() if now is None else now
        self.flush()
        first = int(now // 60) - WINDOW_MINUTES + 1
        stored = self.storage.minutes(first)
        minutes = []
        for minute in range(first, int(now // 60) + 1):
            counts = stored.get(minute, {})
            rejected = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("rejected:")}
            minutes.append({"minute": minute * 60, "accepted": counts.get("accepted", 0),
                            "duplicate": counts.get("duplicate", 0), "rejected": rejected,
                            "rejected_total": sum(rejected.values())})
        return {"minutes": minutes, "rejections": self.storage.rejections()}
