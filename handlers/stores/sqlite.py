"""SQLite helpers shared by the local stores (dedup, conversations) and the embedded broker."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


def sqlite_path(url: str) -> Path:
    """`sqlite:////abs/x.sqlite3` or `sqla+sqlite:///rel/x.sqlite3` -> the file's path."""
    return Path(url.split("sqlite:///", 1)[1])


class ThreadLocalSQLite:
    """One autocommit connection per thread to a WAL-mode file (safe across threads and processes)."""

    def __init__(self, path: str | Path, timeout: float, synchronous: str = "FULL") -> None:
        self.path, self.timeout, self.synchronous = str(path), timeout, synchronous
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._local.conn = conn
        return conn
