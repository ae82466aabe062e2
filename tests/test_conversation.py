"""Conversation stores (SQLite and real Redis): locking, persistence, arrival state, the handler API."""
from __future__ import annotations

import threading
import time

import pytest

from suprhook.handlers.stores.conversation import (Conversation, RedisConversations, Snapshot, SQLiteConversations,
                                   open_conversations)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path, redis_prefix):
    if request.param == "sqlite":
        return SQLiteConversations(tmp_path / "c.sqlite3", ttl=60)
    return RedisConversations("redis://127.0.0.1:6379/0", ttl=60, prefix=redis_prefix)


def test_save_and_load(store):
    assert store.load("k") == Snapshot()
    with store.locked("k") as token:
        store.save("k", Snapshot("asked_size", {"n": 1}, {"evt_1": None}), token)
    assert store.load("k") == Snapshot("asked_size", {"n": 1}, {"evt_1": None})


def test_a_lost_lock_refuses_the_save(store, monkeypatch):
    import suprhook.handlers.stores.conversation as conversation

    monkeypatch.setattr(conversation, "LOCK_LEASE_SECONDS", 0.3)
    with store.locked("k") as slow:
        time.sleep(0.5)  # the handler outlived its lease; another worker takes the lock and writes
        with store.locked("k") as fast:
            store.save("k", Snapshot("fast"), fast)
        with pytest.raises(conversation.ConversationBusy):
            store.save("k", Snapshot("slow"), slow)
    assert store.load("k").state == "fast"


def test_lock_serializes_read_modify_write_across_threads(store):
    with store.locked("k") as token:
        store.save("k", Snapshot(None, {"count": 0}), token)

    def bump() -> None:
        with store.locked("k") as token:
            snap = store.load("k")
            time.sleep(0.1)
            store.save("k", Snapshot(None, {"count": snap.data["count"] + 1}), token)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.load("k").data["count"] == 4


def test_locks_are_per_conversation(store):
    with store.locked("a"):
        started = time.monotonic()
        with store.locked("b"):  # another user's conversation is not blocked
            pass
        assert time.monotonic() - started < 1


def test_arrival_state_is_fixed_per_event():
    snap = Snapshot("asked_size")
    assert snap.arrival_state("evt_1") == "asked_size"
    snap.state = "asked_address"  # the first handler of evt_1 moved the conversation on
    assert snap.arrival_state("evt_1") == "asked_size"  # evt_1's other handlers still see its arrival state
    assert snap.arrival_state("evt_2") == "asked_address"
    for i in range(100):
        snap.arrival_state(f"evt_{i + 10}")
    assert len(snap.seen) == 50  # bounded


def test_conversation_api():
    conv = Conversation("k", Snapshot("a", {"x": 1}))
    conv.set("b", y=2)
    assert (conv.state, conv.data) == ("b", {"x": 1, "y": 2})
    with pytest.raises(TypeError):
        conv.set("c", when=object())  # not storable: refused in the handler, state unchanged
    assert conv.state == "b"
    conv.clear()
    assert (conv.state, conv.data) == (None, {})


def test_open_by_url(tmp_path):
    assert isinstance(open_conversations(f"sqlite:///{tmp_path}/c.sqlite3", 10), SQLiteConversations)
    assert isinstance(open_conversations("redis://127.0.0.1:6379/0", 10), RedisConversations)
    with pytest.raises(ValueError, match="unsupported"):
        open_conversations("mongodb://x", 10)
