"""A worker SIGKILLed mid-task, with default settings: its runs complete elsewhere within 60 s, once.

The killed worker held one run it had started (its lease in the event log, renewed by a heartbeat)
and messages it had prefetched but not started. How each comes back, per broker:
- Redis: its held messages reach the visibility timeout (30 s; a live worker keeps its own fresh) and
  any consumer puts them back; the started run's lease (30 s) has lapsed by then.
- RabbitMQ: the broker redelivers at once; the copy of the started run waits for its lease to lapse.
- embedded (SQLite): nothing is redelivered; the recovery sweep takes the lapsed lease and the runs
  left pending in a drained queue.
"""
from __future__ import annotations

import time
import uuid

import pytest

from suprhook.handlers import Settings
from suprhook.handlers.stores.store import EventStore
from suprhook.receiver import create_app

from .conftest import BROKERS, LiveServer, Worker, delete_queue, make_status, stack_config, wait_until
from .fake_suprsend import FakeSuprsend

SLOW = "tests.probe_slow.slow"
RECOVERY_BOUND = 60.0  # seconds from the SIGKILL to every run done, with default settings


@pytest.mark.parametrize("broker", ["redis", "rabbitmq", "embedded"])
def test_sigkilled_worker_runs_resume_within_a_minute_on_defaults(tmp_path, broker):
    import tests.probe_slow  # noqa: F401  (the receiver must know the handler too)

    fake = FakeSuprsend().start()
    # Nothing about recovery is changed here: lease, sweep and visibility timeout are the defaults.
    config = stack_config(
        tmp_path, BROKERS[broker], SUPRHOOK_HANDLERS="tests.probe_slow", SUPRHOOK_PROBE_DIR=str(tmp_path / "probe"),
        SUPRSEND_WORKSPACE_KEY=fake.workspace_key, SUPRSEND_WORKSPACE_SECRET=fake.workspace_secret,
        SUPRSEND_BASE_URL=fake.url)
    defaults = Settings.load({}, environ={})
    assert (defaults.run_lease, defaults.recovery_after, defaults.visibility_timeout) == (30, 30, 30)
    app = create_app(config)
    server = LiveServer(app)
    first = Worker(config, tmp_path / "probe", concurrency=1)
    second = None
    try:
        ids = []
        for _ in range(3):  # one starts; the worker prefetches the others
            r = server.post(make_status("delivered", workflow_name="Slow", probe_sleep=2, nid=uuid.uuid4().hex))
            assert r.status_code == 202
            ids.append(r.json()["event_id"])
        assert wait_until(lambda: first.runs(None, "slow_started"), 30), first.output()
        time.sleep(0.5)  # let it take the others from the queue
        first.kill()  # mid-task: the handler sleeps 2 s before its side effect
        killed = time.monotonic()
        started_by_first = {r["event_id"] for r in first.runs(None, "slow_started")}
        assert len(started_by_first) == 1 and not first.runs(None, "slow_done")
        second = Worker(config, tmp_path / "probe", concurrency=2)
        store = EventStore(Settings.load(config, environ={}).store_url)

        def all_done() -> bool:  # the slow handler's runs and the probe's other handlers' for the same events
            runs = store.select_runs(event_ids=ids)
            return sum(r["handler"] == SLOW for r in runs) == 3 and all(r["status"] == "succeeded" for r in runs)

        assert wait_until(all_done, RECOVERY_BOUND + 30, interval=0.5), second.output()
        recovered = time.monotonic() - killed
        print(f"\n{broker}: SIGKILL to all 3 runs succeeded elsewhere in {recovered:.1f} s")
        assert recovered < RECOVERY_BOUND, f"{broker}: {recovered:.1f} s"
        # The side effect happened once per event: one follow-up accepted by SuprSend for each.
        assert wait_until(lambda: len(fake.events_named("slow_done")) == 3, 10)
        assert len({e["properties"]["order"] for e in fake.events_named("slow_done")}) == 3
        started_run = next(r for r in store.select_runs(event_ids=list(started_by_first)) if r["handler"] == SLOW)
        assert started_run["attempts"] >= 2  # claimed by the killed worker, then taken over
    finally:
        for worker in (first, second):
            if worker:
                worker.stop()
        server.stop()
        fake.stop()
        if BROKERS[broker]:
            delete_queue(app.extensions["suprhook"].dispatcher.celery, config["SUPRHOOK_QUEUE"])


def test_a_handler_longer_than_its_lease_keeps_its_run(tmp_path):
    """A handler running 4 leases keeps its run (the heartbeat renews it) and its Redis message (the
    held-message refresh) while a second worker's sweep runs every second: never taken over, never
    delivered to the other worker, never run twice at once."""
    import tests.probe_slow  # noqa: F401

    fake = FakeSuprsend().start()
    # Shrunk so a lease is shorter than the handler within seconds (default 30 s lease, 30 s sweep);
    # the handler sleeps 12 s, four leases.
    config = stack_config(
        tmp_path, BROKERS["redis"], SUPRHOOK_HANDLERS="tests.probe_slow", SUPRHOOK_PROBE_DIR=str(tmp_path / "probe"),
        SUPRSEND_WORKSPACE_KEY=fake.workspace_key, SUPRSEND_WORKSPACE_SECRET=fake.workspace_secret,
        SUPRSEND_BASE_URL=fake.url, SUPRHOOK_RUN_LEASE="3", SUPRHOOK_RECOVERY_AFTER="3",
        SUPRHOOK_VISIBILITY_TIMEOUT="4")
    app = create_app(config)
    server = LiveServer(app)
    workers = [Worker(config, tmp_path / "probe", concurrency=1), Worker(config, tmp_path / "probe", concurrency=1)]
    try:
        r = server.post(make_status("delivered", workflow_name="Slow", probe_sleep=12, nid=uuid.uuid4().hex))
        event_id = r.json()["event_id"]
        assert workers[0].wait_runs(event_id, 1, "slow_done", timeout=40), workers[0].output()
        store = EventStore(Settings.load(config, environ={}).store_url)

        def slow_run() -> dict:
            return next(r for r in store.select_runs(event_ids=[event_id]) if r["handler"] == SLOW)

        assert wait_until(lambda: slow_run()["status"] == "succeeded", 10)
        assert slow_run()["attempts"] == 1  # never taken over
        assert len(workers[0].runs(event_id, "slow_started")) == 1  # never started twice
        assert len(fake.events_named("slow_done")) == 1
        # Its message was held 3 visibility timeouts and kept fresh: never put back for the other worker.
        log_text = (tmp_path / "probe" / "worker.log").read_text()
        assert "handler run waiting" not in log_text and "restor" not in log_text.lower(), log_text[-3000:]
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        fake.stop()
        delete_queue(app.extensions["suprhook"].dispatcher.celery, config["SUPRHOOK_QUEUE"])
