"""A worker SIGKILLed mid-task: the run is redone by another worker, and its side effects happen once.

On Redis the broker redelivers the unacknowledged task (visibility timeout, shortened here); the
embedded SQLite broker never does, so there the recovery sweep over the event log re-dispatches it.
"""
from __future__ import annotations

import uuid

import pytest

from handlers import Settings
from handlers.store import EventStore
from receiver import create_app

from .conftest import BROKERS, LiveServer, Worker, delete_queue, make_status, stack_config, wait_until
from .fake_suprsend import FakeSuprsend


@pytest.mark.parametrize("broker", ["redis", "embedded"])
def test_sigkilled_worker_task_completes_once(tmp_path, broker):
    import tests.probe_slow  # noqa: F401  (the receiver must know the handler too)

    fake = FakeSuprsend().start()
    config = stack_config(
        tmp_path, BROKERS[broker], SUPRHOOK_HANDLERS="tests.probe_slow", SUPRHOOK_PROBE_DIR=str(tmp_path / "probe"),
        SUPRSEND_WORKSPACE_KEY=fake.workspace_key, SUPRSEND_WORKSPACE_SECRET=fake.workspace_secret,
        SUPRSEND_BASE_URL=fake.url,
        # shortened so the test takes seconds: redelivery, lease expiry and the sweep
        SUPRHOOK_VISIBILITY_TIMEOUT="4", SUPRHOOK_RETRY_BACKOFF_MAX="2", SUPRHOOK_RUN_LEASE="3",
        SUPRHOOK_RECOVERY_AFTER="3")
    app = create_app(config)
    server = LiveServer(app)
    first = Worker(config, tmp_path / "probe", concurrency=1)
    second = None
    try:
        r = server.post(make_status("delivered", workflow_name="Slow", probe_sleep=3, nid=uuid.uuid4().hex))
        assert r.status_code == 202
        event_id = r.json()["event_id"]
        assert first.wait_runs(event_id, 1, "slow_started", timeout=30), first.output()
        first.kill()  # mid-task: the handler sleeps 3 s before its side effect
        assert first.runs(event_id, "slow_done") == []
        second = Worker(config, tmp_path / "probe", concurrency=1)
        assert second.wait_runs(event_id, 1, "slow_done", timeout=60), second.output()
        assert wait_until(lambda: len(fake.events_named("slow_done")) == 1, 10)
        store = EventStore(Settings.load(config, environ={}).store_url)

        def slow_run() -> dict:
            return next(r for r in store.select_runs(event_ids=[event_id]) if r["handler"] == "tests.probe_slow.slow")

        assert wait_until(lambda: slow_run()["status"] == "succeeded", 10)
        run = slow_run()
        assert run["attempts"] >= 2  # claimed by the killed worker, then by the second
        # The side effect happened once: one completed run, one follow-up accepted by SuprSend.
        assert len(second.runs(event_id, "slow_done")) == 1
        assert len(fake.events_named("slow_done")) == 1
    finally:
        for worker in (first, second):
            if worker:
                worker.stop()
        server.stop()
        fake.stop()
        if BROKERS[broker]:
            delete_queue(app.extensions["suprhook"].dispatcher.celery, config["SUPRHOOK_QUEUE"])
