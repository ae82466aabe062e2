"""The Usermaven sink over real HTTP to a fake Usermaven: mapping, selection, batching, historical
timestamps, retries, dead events, the outbox on SQLite and PostgreSQL, and one webhook end to end
through the receiver and a real worker process."""
from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid

import pytest
from freezegun import freeze_time

from suprhook.handlers import Registry, Settings
from suprhook.handlers.errors import ConfigError
from suprhook.handlers.keywords import enable_keywords
from suprhook.handlers.integrations.usermaven import HANDLER_NAME, UsermavenConfig, UsermavenSink, install
from suprhook.handlers.stores.usermaven_outbox import Outbox
from suprhook.receiver import create_app
from suprhook.schemas import load_event

from .conftest import REPO, LiveServer, Worker, make_inbound, make_status, stack_config, wait_until
from .fake_usermaven import FakeUsermaven

GUPSHUP_FAILED = json.loads((REPO / "tests/fixtures/vendors/gupshup/enterprise_status_failed.json").read_text())


@pytest.fixture
def fake():
    server = FakeUsermaven().start()
    yield server
    server.stop()


def um_config(fake: FakeUsermaven, **overrides: str) -> dict[str, str]:
    return {"USERMAVEN_API_KEY": fake.api_key, "USERMAVEN_SERVER_TOKEN": fake.server_token,
            "USERMAVEN_HOST": fake.url, "USERMAVEN_TIMEOUT": "2", **overrides}


def make_sink(fake: FakeUsermaven, tmp_path, **overrides: str) -> UsermavenSink:
    return UsermavenSink(UsermavenConfig.load(um_config(fake, **overrides), environ={}),
                         f"sqlite:///{tmp_path}/events.sqlite3")


def status(word: str = "delivered", **kw) -> object:
    return load_event(make_status(word, **kw))


def failed_status() -> object:
    return status("failed", vendor_response={"gupshup": GUPSHUP_FAILED["payload"]})


def drain(sink: UsermavenSink, force: bool = False) -> None:
    while sink.flusher.flush_once(force=force):
        pass


# -- configuration and mapping ---------------------------------------------------------------------
def test_opt_in_needs_both_credentials_and_never_shows_them(fake, tmp_path):
    settings = Settings.load(stack_config(tmp_path, None), environ={})
    registry = Registry()
    assert install(registry, settings, {}, environ={}) is None and len(registry) == 0
    with pytest.raises(ConfigError, match="both"):
        install(registry, settings, {"USERMAVEN_API_KEY": "k"}, environ={})
    with pytest.raises(ConfigError, match="USERMAVEN_HOST"):
        install(registry, settings, um_config(fake, USERMAVEN_HOST="ftp://x"), environ={})
    sink = install(registry, settings, {}, environ=um_config(fake))  # from the environment too
    assert sink is not None and registry.get(HANDLER_NAME).task_name == "suprhook.handler.suprhook.usermaven"
    for shown in (repr(sink), repr(sink.config), repr(sink.flusher.sender), str(sink.config)):
        assert fake.api_key not in shown and fake.server_token not in shown


def test_delivered_read_failed_and_reply_are_mapped(fake, tmp_path):
    config = make_sink(fake, tmp_path).config
    delivered = config.body(status("delivered", ts=1672310923000))
    assert delivered["event_type"] == "notification_delivered"
    assert delivered["user"] == {"anonymous_id": "user@example.com", "id": "user@example.com",
                                 "email": "user@example.com"}
    assert delivered["_timestamp"] == 1672310923000  # the event's own time, in ms
    attributes = delivered["event_attributes"]
    assert {k: attributes[k] for k in ("channel", "workflow", "template", "vendor", "status")} == {
        "channel": "whatsapp", "workflow": "Purchase Made", "template": "purchase-made", "vendor": "gupshup",
        "status": "delivered"}
    assert "error" not in attributes and delivered["event_id"] == attributes["suprhook_event_id"]
    assert {k: delivered[k] for k in ("ids", "src", "screen_resolution")} == {"ids": {}, "src": "http",
                                                                             "screen_resolution": "0"}
    assert config.body(status("seen"))["event_type"] == "notification_read"
    failed = config.body(failed_status())
    assert failed["event_type"] == "notification_failed"
    assert failed["event_attributes"]["error"] == "UNKNOWN_SUBSCRIBER"
    assert failed["event_attributes"]["error_code"] == "005"
    reply = config.body(load_event(make_inbound("YES", ts=1683898377000)))
    assert reply["event_type"] == "whatsapp_reply_received" and reply["_timestamp"] == 1683898377000
    assert reply["event_attributes"]["message_type"] == "text" and "status" not in reply["event_attributes"]
    assert config.body(status("sent")) is None  # not selected by default
    assert config.body(load_event(make_status("delivered", distinct_id=None))) is None  # nobody to attribute


def test_event_selection_and_naming_is_configurable(fake, tmp_path):
    settings = Settings.load(stack_config(tmp_path, None), environ={})
    registry = Registry()
    enable_keywords(registry)
    events = "*=nm_{status},sent=,whatsapp:reply=wa_reply,sms:reply="
    sink = install(registry, settings, um_config(fake, USERMAVEN_EVENTS=events), environ={})
    names = {"delivered": status("delivered"), "sent": status("sent"), "wa": load_event(make_inbound("hi")),
             "sms": load_event(make_inbound("hi", channel="sms")), "stop": load_event(make_inbound("STOP"))}
    assert {k: sink.config.event_name(e) for k, e in names.items()} == {
        "delivered": "nm_delivered", "sent": None, "wa": "wa_reply", "sms": None, "stop": "wa_reply"}
    routed = {k: HANDLER_NAME in [h.name for h in registry.match(e)] for k, e in names.items()}
    assert routed == {"delivered": True, "sent": True, "wa": True, "sms": False, "stop": True}  # sent: a no-op
    mapping = UsermavenConfig.load(um_config(fake, USERMAVEN_EVENTS={"failed": "oops"}), environ={})
    assert mapping.event_name(status("failed")) == "oops" and mapping.event_name(status("delivered")) is None
    install(registry, settings, um_config(fake, USERMAVEN_EVENTS="failed=oops"), environ={})  # again: replaced
    assert [h.name for h in registry.match(status("delivered"))] == []


@pytest.mark.parametrize("events, message", [
    ("delivered", "is not"), ("bad selector!=x", "is not"), ("delivered={user}_x", "only use"), ("sent=", "no events"),
])
def test_bad_event_selection_is_refused(fake, events, message):
    with pytest.raises(ConfigError, match=message):
        UsermavenConfig.load(um_config(fake, USERMAVEN_EVENTS=events), environ={})


# -- delivery over HTTP ----------------------------------------------------------------------------
def test_historical_event_lands_at_its_own_time(fake, tmp_path):
    sink = make_sink(fake, tmp_path)
    with freeze_time("2024-06-01 12:00:00"):  # the webhook arrives 18 months late
        assert sink.record(status("delivered", ts=1672310923000))
        assert sink.record(load_event(make_inbound("YES", ts=1683898377000)))
        drain(sink, force=True)
    assert [(e["event_type"], e["_timestamp"]) for e in fake.events] == [
        ("notification_delivered", 1672310923000), ("whatsapp_reply_received", 1683898377000)]
    assert all(r.token_ok and isinstance(r.body, list) for r in fake.requests)
    assert all(e["api_key"] == fake.api_key for e in fake.events)


def test_batches_respect_the_size_bound_and_the_time_bound(fake, tmp_path):
    sink = make_sink(fake, tmp_path, USERMAVEN_BATCH_SIZE="3", USERMAVEN_FLUSH_INTERVAL="5")
    with freeze_time("2024-06-01 12:00:00") as clock:
        for i in range(7):
            assert sink.record(status("delivered", nid=f"nid-{i}"))
        ids = [status("delivered", nid=f"nid-{i}").event_id for i in range(7)]
        drain(sink)  # two full batches go at once, the partial one waits
        assert fake.bulk_sizes() == [3, 3]
        clock.tick(4.9)
        drain(sink)
        assert fake.bulk_sizes() == [3, 3]
        clock.tick(0.2)  # the oldest waiting event is now 5 s old
        drain(sink)
    assert fake.bulk_sizes() == [3, 3, 1]
    assert fake.event_ids() == ids  # in order, each once
    assert sink.outbox.counts() == {"sent": 7}


def test_byte_bound_splits_a_batch(fake, tmp_path):
    sink = make_sink(fake, tmp_path, USERMAVEN_BATCH_BYTES="1500")
    for i in range(5):
        sink.record(status("delivered", nid=f"nid-bytes-{i}"))
    drain(sink, force=True)
    assert len(fake.requests) > 1 and sum(fake.bulk_sizes()) == 5
    assert all(len(json.dumps(r.body)) <= 1500 for r in fake.requests)


def test_time_bound_flushes_a_partial_batch_from_the_thread(fake, tmp_path):
    sink = make_sink(fake, tmp_path, USERMAVEN_FLUSH_INTERVAL="0.3")
    # Both are waiting before the thread starts: on a loaded machine the thread could otherwise
    # send the first alone (its 0.3 s may pass between the two records).
    sink.record(status("delivered"))
    sink.record(status("failed"))
    sink.flusher.start()
    try:
        assert wait_until(lambda: len(fake.events) == 2, 10), fake.requests
        assert fake.bulk_sizes() == [2]
    finally:
        sink.flusher.stop()


@pytest.mark.parametrize("failures", [[503, 500], [429, 502]])
def test_5xx_is_retried_with_backoff_and_delivered_exactly_once(fake, tmp_path, failures):
    sink = make_sink(fake, tmp_path, USERMAVEN_RETRY_BASE="10", USERMAVEN_RETRY_MAX="15")
    fake.fail_next = list(failures)
    with freeze_time("2024-06-01 12:00:00") as clock:
        for i in range(4):
            sink.record(status("delivered", nid=f"nid-retry-{i}"))
        drain(sink, force=True)
        assert [r.status for r in fake.requests] == failures[:1] and sink.outbox.counts() == {"pending": 4}
        first = sink.flusher.paused_until - time.time()
        assert 5 <= first <= 10  # base 10 s, equal jitter
        drain(sink, force=True)
        clock.tick(first - 0.5)
        drain(sink, force=True)
        assert len(fake.requests) == 1  # nothing is sent during the backoff
        clock.tick(1)
        drain(sink, force=True)
        assert [r.status for r in fake.requests] == failures
        second = sink.flusher.paused_until - time.time()
        assert 7.5 <= second <= 15  # doubled (20 s), capped at USERMAVEN_RETRY_MAX, jittered
        clock.tick(second + 0.1)
        drain(sink, force=True)
    assert [r.status for r in fake.requests] == failures + [200]
    assert sorted(fake.event_ids()) == sorted(status("delivered", nid=f"nid-retry-{i}").event_id for i in range(4))
    assert sink.outbox.counts() == {"sent": 4}


def test_the_flusher_thread_rides_out_5xx(fake, tmp_path):
    sink = make_sink(fake, tmp_path, USERMAVEN_RETRY_BASE="0.05", USERMAVEN_FLUSH_INTERVAL="0.05")
    fake.fail_next = [503, 503]
    sink.flusher.start()
    try:
        events = [status("delivered") for _ in range(5)]
        for event in events:
            sink.record(event)
        assert wait_until(lambda: len(fake.events) >= 5, 15), fake.requests
    finally:
        sink.flusher.stop()
    assert sorted(fake.event_ids()) == sorted(e.event_id for e in events)  # exactly once each
    assert [r.status for r in fake.requests][:2] == [503, 503]


def test_wrong_token_is_401_dead_and_not_retried(fake, tmp_path):
    sink = make_sink(fake, tmp_path, USERMAVEN_SERVER_TOKEN="not-the-token")
    with freeze_time("2024-06-01 12:00:00") as clock:
        sink.record(status("delivered"))
        sink.record(status("seen"))
        drain(sink, force=True)
        assert [(r.status, r.token_ok) for r in fake.requests] == [(401, False)]  # one request, not one per event
        assert sink.outbox.counts() == {"dead": 2}
        clock.tick(3600)
        drain(sink, force=True)
    assert len(fake.requests) == 1 and fake.events == []
    with sqlite3.connect(tmp_path / "events.sqlite3") as db:
        errors = [row[0] for row in db.execute("SELECT error FROM suprhook_usermaven_outbox")]
    assert all("401" in e and "not-the-token" not in e for e in errors)
    fixed = make_sink(fake, tmp_path)  # the token fixed: dead events can be sent again
    assert fixed.requeue_dead() == 2
    drain(fixed, force=True)
    assert len(fake.events) == 2 and fixed.outbox.counts() == {"sent": 2}


def test_a_refused_event_does_not_sink_its_batch(fake, tmp_path):
    sink = make_sink(fake, tmp_path)
    fake.reject_event_types = {"notification_failed"}
    for event in (status("delivered"), failed_status(), status("seen")):
        sink.record(event)
    drain(sink, force=True)
    assert [r.status for r in fake.requests] == [400, 200, 400, 200]  # the batch, then one by one
    assert [e["event_type"] for e in fake.events] == ["notification_delivered", "notification_read"]
    assert sink.outbox.counts() == {"sent": 2, "dead": 1}


def test_a_slow_server_times_out_and_the_retry_carries_the_same_event_id(fake, tmp_path):
    sink = make_sink(fake, tmp_path, USERMAVEN_TIMEOUT="0.3", USERMAVEN_RETRY_BASE="0.05")
    event = status("delivered")
    sink.record(event)
    fake.delay = 1.0
    drain(sink, force=True)
    assert sink.outbox.counts() == {"pending": 1}
    fake.delay = 0
    assert wait_until(lambda: sink.flusher.flush_once(force=True) or sink.outbox.counts() == {"sent": 1}, 10)
    assert wait_until(lambda: len(fake.events) == 2, 5)  # the slow request did land, after we gave up on it
    assert fake.event_ids() == [event.event_id] * 2  # at-least-once, under one id Usermaven can dedup on


def test_a_handler_rerun_never_sends_twice(fake, tmp_path):
    sink = make_sink(fake, tmp_path)
    event = status("delivered")
    assert sink.record(event) is True
    assert sink.record(event) is False  # a redelivered task, a retry after the row was written
    drain(sink, force=True)
    assert sink.record(event) is False  # even after it was sent (kept USERMAVEN_KEEP_SENT seconds)
    drain(sink, force=True)
    assert fake.event_ids() == [event.event_id]


def test_shutdown_flushes_a_waiting_batch(fake, tmp_path):
    sink = make_sink(fake, tmp_path, USERMAVEN_FLUSH_INTERVAL="3600")
    sink.flusher.start()
    sink.record(status("delivered"))
    sink.record(status("seen"))
    sink.flusher.stop(flush=True)
    assert fake.bulk_sizes() == [2]


def test_the_token_stays_out_of_logs_and_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sink = make_sink(fake, tmp_path)
    sink.record(status("delivered"))
    drain(sink, force=True)  # urllib3 logs the request line, query string included, at DEBUG
    fake.stop()
    down = make_sink(fake, tmp_path / "down")
    down.record(status("delivered"))
    drain(down, force=True)  # connection refused: requests' message names the URL
    assert "/api/v1/s2s/event" in caplog.text and "token=***" in caplog.text
    assert fake.server_token not in caplog.text and fake.api_key not in caplog.text
    with sqlite3.connect(tmp_path / "down" / "events.sqlite3") as db:
        (error,) = db.execute("SELECT error FROM suprhook_usermaven_outbox").fetchone()
    assert "ConnectionError" in error and fake.server_token not in error


def test_outbox_leases_are_exclusive_and_expire(store_url):
    a, b = Outbox(store_url), Outbox(store_url)
    with freeze_time("2024-06-01 12:00:00") as clock:
        for i in range(10):
            assert a.add(f"evt_{i}", {"event_id": f"evt_{i}"})
        assert not b.add("evt_3", {"event_id": "evt_3"})
        token_a, rows_a = a.claim(4, lease=30)
        token_b, rows_b = b.claim(10, lease=30)
        assert [r.event_id for r in rows_a] == [f"evt_{i}" for i in range(4)]
        assert [r.event_id for r in rows_b] == [f"evt_{i}" for i in range(4, 10)]
        assert b.claim(10, lease=30)[1] == []
        b.finish(token_b, [r.id for r in rows_b], "sent")
        clock.tick(31)  # a's flusher died holding its lease: the rows come back
        token_c, rows_c = b.claim(10, lease=30)
        assert [r.event_id for r in rows_c] == [f"evt_{i}" for i in range(4)]
        a.finish(token_a, [r.id for r in rows_a], "sent")  # the late original owner changes nothing
        assert a.counts() == {"pending": 4, "sent": 6}
        b.finish(token_c, [r.id for r in rows_c], "pending", delay=60, error="HTTP 503")
        assert a.due_stats(time.time() + 59)[0] == 0
        assert a.due_stats(time.time() + 61)[0] == 4


# -- end to end ------------------------------------------------------------------------------------
def test_webhooks_reach_usermaven_through_receiver_and_worker(fake, tmp_path):
    """Posted webhooks -> receiver -> broker -> real worker -> outbox -> bulk POST; the size bound
    sends the first three together, worker shutdown flushes the fourth."""
    config = stack_config(tmp_path, None, SUPRHOOK_HANDLERS="tests.probe_handlers",
                          SUPRHOOK_PROBE_DIR=str(tmp_path / "probe"),
                          **um_config(fake, USERMAVEN_BATCH_SIZE="3", USERMAVEN_FLUSH_INTERVAL="3600"))
    server = LiveServer(create_app(config, registry=Registry()))  # the receiver holds only the sink
    worker = Worker(config, tmp_path / "probe")
    try:
        nid = f"nid-e2e-{uuid.uuid4().hex}"
        posted = [make_status("delivered", nid=nid, ts=1672310923000), make_status("sent"),
                  make_status("seen", nid=nid, ts=1672310999000), make_inbound("YES", ts=1683898377000)]
        for payload in posted:
            assert server.post(payload).status_code == 202
        assert wait_until(lambda: len(fake.events) == 3, 30), worker.output()
        assert fake.bulk_sizes() == [3]
        assert sorted((e["event_type"], e["_timestamp"], e["user"]["id"]) for e in fake.events) == [
            ("notification_delivered", 1672310923000, "user@example.com"),
            ("notification_read", 1672310999000, "user@example.com"),
            ("whatsapp_reply_received", 1683898377000, "user@example.com")]
        last = make_status("failed")
        assert server.post(last).status_code == 202

        def pending() -> int:
            with sqlite3.connect(tmp_path / "events.sqlite3") as db:
                return db.execute("SELECT count(*) FROM suprhook_usermaven_outbox WHERE status='pending'").fetchone()[0]

        assert wait_until(lambda: pending() == 1, 30), worker.output()
        worker.stop()  # warm shutdown: worker_shutdown flushes the partial batch
        assert fake.bulk_sizes() == [3, 1], worker.output()
        assert fake.events[-1]["event_type"] == "notification_failed"
        assert all(r.token_ok for r in fake.requests)
    finally:
        worker.stop()
        server.stop()
