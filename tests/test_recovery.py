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
