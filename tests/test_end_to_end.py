"""The whole path over real HTTP into real worker processes, on every broker.

Redis and RabbitMQ are the machine's real servers; in CI a missing one fails these tests.
"""
from __future__ import annotations

import time
import uuid

import pytest

from suprhook.handlers import Registry
from suprhook.handlers.stores.embedded import queue_depth
from suprhook.handlers.stores.store import EventStore
from suprhook.receiver import create_app

from .conftest import (BROKERS, LiveServer, Worker, delete_queue, make_inbound, make_status, stack_config,
                       wait_until)


@pytest.fixture(scope="module", params=list(BROKERS), ids=list(BROKERS))
def stack(request, tmp_path_factory):
    import tests.probe_handlers  # registers the probe handlers in this process too

    data_dir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    config = stack_config(data_dir, BROKERS[request.param], SUPRHOOK_HANDLERS="tests.probe_handlers",
                          SUPRHOOK_PROBE_DIR=str(data_dir / "probe"))
    if request.param == "redis":  # dedup in the broker's Redis: one round trip (handlers/web/redis_fastpath.py)
        config["SUPRHOOK_DEDUP_URL"] = BROKERS["redis"]
    app = create_app(config)
    assert (app.extensions["suprhook"].dispatcher.fastpath is not None) == (request.param == "redis")
    server = LiveServer(app)
    worker = Worker(config, data_dir / "probe")
    yield server, worker
    worker.stop()
    server.stop()
    if BROKERS[request.param]:
        for queue in (config["SUPRHOOK_QUEUE"], tests.probe_handlers.SIDE_QUEUE):
            delete_queue(app.extensions["suprhook"].dispatcher.celery, queue)


def test_seed_status_reaches_status_and_catch_all_handlers(stack):
    server, worker = stack
    r = server.post(make_status("delivered"))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    event_id = r.json()["event_id"]
    runs = worker.wait_runs(event_id, 2)
    assert sorted(run["handler"] for run in runs) == ["catch_all", "on_status"]
    assert {run["status"] for run in runs} == {"delivered"}


def test_seed_inbound_reply_reaches_reply_handlers_with_text(stack):
    server, worker = stack
    r = server.post(make_inbound("YES please"))
    assert r.status_code == 202, r.text
    runs = worker.wait_runs(r.json()["event_id"], 3)
    by_handler = {run["handler"]: run for run in runs}
    assert set(by_handler) == {"on_reply", "on_yes_no", "catch_all"}
    assert by_handler["on_yes_no"]["answer"] == "yes"  # regex groups injected as `match`
    assert by_handler["on_reply"]["text"] == "YES please"


def test_redelivery_is_a_duplicate_and_runs_once(stack):
    server, worker = stack
    payload = make_status("delivered")
    first, second = server.post(payload), server.post(payload)
    assert first.status_code == 202 and second.status_code == 200
    assert second.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    worker.wait_runs(first.json()["event_id"], 2)
    third = server.post(payload)  # even after the handlers ran
    assert third.status_code == 200
    time.sleep(1.0)  # give a wrongly enqueued second run time to show up
    assert len(worker.runs(first.json()["event_id"], "on_status")) == 1


def test_sent_then_delivered_of_one_notification_both_run(stack):
    server, worker = stack
    nid = f"nid-two-statuses-{uuid.uuid4().hex}"  # unique per run: the Redis dedup store outlives it
    sent = server.post(make_status("sent", nid=nid))
    delivered = server.post(make_status("delivered", nid=nid))
    assert sent.status_code == delivered.status_code == 202
    assert sent.json()["event_id"] != delivered.json()["event_id"]
    assert worker.wait_runs(sent.json()["event_id"], 1, "on_status")[0]["status"] == "sent"
    assert worker.wait_runs(delivered.json()["event_id"], 1, "on_status")[0]["status"] == "delivered"


def test_two_replies_to_one_notification_both_run(stack):
    server, worker = stack
    a, b = server.post(make_inbound("yes")), server.post(make_inbound("yes"))
    assert a.status_code == b.status_code == 202
    assert a.json()["event_id"] != b.json()["event_id"]
    assert len(worker.wait_runs(a.json()["event_id"], 1, "on_yes_no")) == 1
    assert len(worker.wait_runs(b.json()["event_id"], 1, "on_yes_no")) == 1


def test_a_failing_handler_is_retried_alone(stack):
    server, worker = stack
    r = server.post(make_status("delivered", workflow_name="Flaky", probe_fail_times=2))
    assert r.status_code == 202
    event_id = r.json()["event_id"]
    done = worker.wait_runs(event_id, 1, "flaky", timeout=30)
    assert done[0]["attempt"] == 2, worker.output()
    assert [f["attempt"] for f in worker.runs(event_id, "flaky_failed")] == [0, 1]
    # The other handlers of the same event ran once, untouched by flaky's retries.
    assert len(worker.runs(event_id, "on_status")) == 1
    assert len(worker.runs(event_id, "catch_all")) == 1


def test_permanent_error_is_not_retried(stack):
    server, worker = stack
    r = server.post(make_status("delivered", workflow_name="Broken"))
    event_id = r.json()["event_id"]
    worker.wait_runs(event_id, 1, "broken")
    worker.wait_runs(event_id, 1, "on_status")
    time.sleep(1.5)
    assert len(worker.runs(event_id, "broken")) == 1
    # The event log keeps why: the error, then its traceback down to the handler's raising line.
    store = EventStore(server.server.app.extensions["suprhook"].settings.store_url)
    row = wait_until(lambda: next((r for r in store.select_runs(event_ids=[event_id], statuses=["dead"])
                                   if r["handler"].endswith("broken")), None), timeout=15)
    summary, _, trace = row["error"].partition("\n\n")
    assert summary == "PermanentError: this handler never succeeds"
    assert trace.startswith("Traceback (most recent call last):") and "probe_handlers.py" in trace


def test_unknown_event_type_reaches_only_catch_all(stack):
    server, worker = stack
    payload = make_status("delivered")
    payload["event_type"] = "link_clicked"  # a type this version does not know
    r = server.post(payload)
    assert r.status_code == 202
    runs = worker.wait_runs(r.json()["event_id"], 1)
    time.sleep(0.5)
    assert [run["handler"] for run in worker.runs(r.json()["event_id"])] == ["catch_all"]
    assert runs[0]["event_type"] == "link_clicked"


def test_registry_isolation_for_an_app_with_its_own_registry(tmp_path):
    """An app built with its own Registry enqueues nothing for handlers it does not hold."""
    app = create_app(stack_config(tmp_path, None), registry=Registry())
    r = app.test_client().post("/webhooks/suprsend", json=make_status())
    assert r.status_code == 202
    assert queue_depth(app.extensions["suprhook"].settings.broker_url) == 0


def test_handler_with_its_own_queue_runs_from_that_queue(stack):
    server, worker = stack
    r = server.post(make_status("delivered", template="side-queue"))
    assert r.status_code == 202
    run = worker.wait_runs(r.json()["event_id"], 1, "on_side_queue")[0]
    assert run["queue"] == "suprhook-probe-side", run


def test_handlers_see_the_notification_timeline_moving_forward_only(stack):
    server, worker = stack
    nid = f"nid-timeline-{uuid.uuid4().hex}"
    seen = server.post(make_status("seen", nid=nid, ts=1_700_000_002_000))
    assert worker.wait_runs(seen.json()["event_id"], 1, "on_status")[0]["current"] == "seen"
    # Queue-first, the timeline of *other* webhooks is the event log's, which the worker writes from the broker
    # within about a second of their 2xx (docs/guarantees.md); a handler's own event is in it at once.
    from suprhook.compose import event_log

    log = event_log(server.server.app.extensions["suprhook"].settings)
    assert wait_until(lambda: log.current_status(nid) == "seen", timeout=10)
    late = server.post(make_status("delivered", nid=nid, ts=1_700_000_001_000))  # arrives after seen
    run = worker.wait_runs(late.json()["event_id"], 1, "on_status")[0]
    assert run["current"] == "seen"  # recorded, but it does not move the status back
    assert run["history"] == ["delivered", "seen"]  # in status-time order
