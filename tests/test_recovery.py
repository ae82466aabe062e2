"""The recovery sweep re-dispatches a pending run only once its queue is empty (so it was lost)."""
from __future__ import annotations

import time

from suprhook.handlers import Registry, Settings
from suprhook.handlers.celery_app import create_celery
from suprhook.handlers.stores.embedded import queue_depth
from suprhook.handlers.worker.recovery import sweep_once
from suprhook.handlers.stores.store import EventStore
from suprhook.schemas import load_event

from .conftest import make_status, stack_config


def noop(event):
    return None


def test_sweep_waits_for_a_busy_queue_and_redispatches_from_an_empty_one(tmp_path):
    settings = Settings.load(stack_config(tmp_path, None, SUPRHOOK_RECOVERY_AFTER="0.1"), environ={})
    registry = Registry()
    registry(name="tests.noop")(noop)
    celery = create_celery(settings, registry, role="producer")
    store = EventStore(settings.store_url)
    event = load_event(make_status())
    store.record_accepted(event, ["tests.noop"])
    celery.send_task("suprhook.handler.tests.noop", args=[{"event_id": "other", "payload": {}}],
                     queue=settings.default_queue)  # a backlog: the run may still be waiting in it
    time.sleep(0.2)
    assert sweep_once(store, celery, registry, settings) == 0
    with celery.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.default_queue)
    assert queue_depth(settings.broker_url) == 0  # drained, and the run still pending: its task was lost
    assert sweep_once(store, celery, registry, settings) == 1
    assert queue_depth(settings.broker_url) == 1
    assert store.select_runs(event_ids=[event.event_id])[0]["status"] == "pending"


def test_the_sweep_takes_and_reopens_each_run_in_one_write(tmp_path):
    """A run whose holder died (lease lapsed) and a failed run left too long: the sweep re-sends both,
    and writes each run row once (the claim reopens it), never touching a run whose lease is renewed."""
    from sqlalchemy import event as sa_event

    settings = Settings.load(stack_config(tmp_path, None, SUPRHOOK_RECOVERY_AFTER="0.1",
                                          SUPRHOOK_RETRY_BACKOFF_MAX="0"), environ={})
    registry = Registry()
    for name in ("tests.dead", "tests.failed", "tests.live"):
        registry(name=name)(noop)
    celery = create_celery(settings, registry, role="producer")
    store = EventStore(settings.store_url)
    event = load_event(make_status())
    store.record_accepted(event, ["tests.dead", "tests.failed", "tests.live"])
    store.begin_run(event.event_id, "tests.dead", lease=0.1)
    failed = store.begin_run(event.event_id, "tests.failed", lease=60)
    store.finish_run(event.event_id, "tests.failed", "failed", "boom", attempt=failed)
    live = store.begin_run(event.event_id, "tests.live", lease=0.3)
    time.sleep(0.2)
    assert store.renew_leases([(event.event_id, "tests.live", live)], lease=60) == []  # its holder is alive
    updates: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE SUPRHOOK_HANDLER_RUNS"):
            updates.append(statement)

    sa_event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert sweep_once(store, celery, registry, settings) == 1  # the dead one; its task now fills the queue
        with celery.connection_for_write() as conn:
            conn.default_channel.queue_purge(settings.default_queue)
        assert sweep_once(store, celery, registry, settings) == 1  # the failed one, once the queue is empty
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", count)
    assert len(updates) == 2  # one per re-sent run: taken and reopened at once
    assert {r["handler"]: r["status"] for r in store.select_runs(event_ids=[event.event_id])} == \
        {"tests.dead": "pending", "tests.failed": "pending", "tests.live": "running"}
    assert queue_depth(settings.broker_url) == 1
