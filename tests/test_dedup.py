"""Dedup stores: claim / commit / release semantics and TTL expiry, on SQLite and on real Redis."""
from __future__ import annotations


import pytest
from freezegun import freeze_time

from suprhook.handlers.stores.dedup import DUPLICATE, IN_FLIGHT, LEASE_SECONDS, NEW, RedisDedup, SQLiteDedup, open_dedup


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path, redis_prefix):
    if request.param == "sqlite":
        return SQLiteDedup(tmp_path / "dedup.sqlite3", ttl=3600)
    return RedisDedup("redis://127.0.0.1:6379/0", ttl=3600, prefix=redis_prefix)


def test_claim_commit_then_duplicate(store):
    assert store.claim("evt_1") == NEW
    assert store.claim("evt_1") == IN_FLIGHT  # a concurrent request for the same event
    store.commit("evt_1")
    assert store.claim("evt_1") == DUPLICATE
    assert store.claim("evt_2") == NEW


def test_release_after_failed_enqueue_lets_the_retry_in(store):
    assert store.claim("evt_1") == NEW
    store.release("evt_1")
    assert store.claim("evt_1") == NEW


def test_release_never_forgets_a_committed_event(store):
    store.claim("evt_1")
    store.commit("evt_1")
    store.release("evt_1")
    assert store.claim("evt_1") == DUPLICATE


def test_ping(store):
    store.ping()


def test_sqlite_committed_id_expires_after_ttl(tmp_path):
    with freeze_time("2026-01-01 00:00:00") as clock:
        store = SQLiteDedup(tmp_path / "d.sqlite3", ttl=86400)
        store.claim("evt_1")
        store.commit("evt_1")
        clock.tick(86399)
        assert store.claim("evt_1") == DUPLICATE
        clock.tick(2)
        assert store.claim("evt_1") == NEW


def test_sqlite_abandoned_lease_expires(tmp_path):
    """A receiver that died between claim and commit does not block the event for long."""
    with freeze_time("2026-01-01 00:00:00") as clock:
        store = SQLiteDedup(tmp_path / "d.sqlite3", ttl=86400)
        store.claim("evt_1")
        clock.tick(LEASE_SECONDS + 1)
        assert store.claim("evt_1") == NEW


def test_sqlite_store_is_shared_between_instances(tmp_path):
    a, b = SQLiteDedup(tmp_path / "d.sqlite3", 60), SQLiteDedup(tmp_path / "d.sqlite3", 60)
    a.claim("evt_1")
    a.commit("evt_1")
    assert b.claim("evt_1") == DUPLICATE


def test_open_dedup_by_url(tmp_path):
    assert isinstance(open_dedup(f"sqlite:///{tmp_path}/x.sqlite3", 10), SQLiteDedup)
    assert isinstance(open_dedup("redis://127.0.0.1:6379/0", 10), RedisDedup)
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_dedup("memcached://x", 10)


def test_settings_never_show_secrets():
    from suprhook.handlers import Settings

    settings = Settings.load({"SUPRHOOK_AUTH_TOKENS": "tok-secret-1", "SUPRSEND_WORKSPACE_SECRET": "ws-secret-2",
                              "SUPRHOOK_SIGNING_SECRET": "whsec_c2VjcmV0LTM=",
                              "CELERY_BROKER_URL": "redis://:pw-secret-4@127.0.0.1:6379/0",
                              "SUPRHOOK_STORE_URL": "postgresql+psycopg://app:pw-secret-5@db/events"}, environ={})
    text = repr(settings) + str(settings)
    for secret in ("tok-secret-1", "ws-secret-2", "c2VjcmV0LTM", "pw-secret-4", "pw-secret-5"):
        assert secret not in text
    assert "redis://:***@127.0.0.1:6379/0" in text and "app:***@db" in text
