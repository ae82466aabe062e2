"""What a handler run uses besides its event: the event log, conversations, the lease heartbeat and the
SuprSend client, built once per process from one `Settings`.

The worker's composition root (`suprhook.compose.build_worker`) makes one `WorkerRuntime` and the
handler tasks share it; the testing kit makes its own with a `FollowupRecorder` as the SuprSend client.
Each part is built on first use *in each process*: a Celery pool child forked from the main process
starts with none of its parent's connections (pooled database and Redis connections must not cross a
fork), so nothing here is ever shared between processes.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable, TypeVar

from suprsend import Suprsend

from ..integrations.followup import connect as connect_suprsend
from ..settings import Settings
from ..stores.conversation import ConversationStore, open_conversations
from ..stores.runs import RunBook, open_run_book
from ..stores.store import EventStore
from .leases import LeaseKeeper

T = TypeVar("T")


class WorkerRuntime:
    """The per-process parts of the worker: `event_store`, `runs`, `conversations`, `leases`, `suprsend`."""

    def __init__(self, settings: Settings, *, suprsend: Suprsend | Callable[[], Suprsend] | None = None) -> None:
        """`suprsend`: the client follow-ups send with (default: the SDK client for the settings' workspace,
        built on first use); a callable is called once per process to make it."""
        self.settings = settings
        self._suprsend = suprsend
        self._pid: int | None = None
        self._parts: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _part(self, name: str, build: Callable[[], T]) -> T:
        pid = os.getpid()
        if self._pid != pid:  # first use in this process (a forked child has one thread: resetting is safe)
            self._pid, self._parts, self._lock = pid, {}, threading.Lock()
        part = self._parts.get(name)
        if part is None:
            with self._lock:
                part = self._parts.get(name)
                if part is None:
                    part = self._parts[name] = build()
        return part

    def event_store(self) -> EventStore:
        return self._part("event_store", lambda: EventStore(self.settings.store_url))

    def runs(self) -> RunBook:
        """Claiming, renewing and finishing runs (on the broker's Redis where the receiver put them)."""
        return self._part("runs", lambda: open_run_book(self.settings, self.event_store))

    def conversations(self) -> ConversationStore:
        s = self.settings
        return self._part("conversations", lambda: open_conversations(s.conversation_url, s.conversation_ttl))

    def leases(self) -> LeaseKeeper:
        """The run-lease heartbeat of this process (its thread starts with the first run it holds)."""
        s = self.settings
        return self._part("leases", lambda: LeaseKeeper(
            lambda held: self.runs().renew(held, s.run_lease), s.lease_renew_every))

    def suprsend(self) -> Suprsend:
        """The SuprSend SDK client follow-ups send with (ConfigError without a workspace key and secret)."""
        given = self._suprsend
        if isinstance(given, Suprsend):
            return given
        return self._part("suprsend", given if given is not None else lambda: connect_suprsend(self.settings))

    def __repr__(self) -> str:
        return f"WorkerRuntime(pid={self._pid}, parts={sorted(self._parts)})"
