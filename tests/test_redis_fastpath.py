"""The one-round-trip path (handlers/web/redis_fastpath.py): its messages are the ones Celery writes,
a real worker runs them, and accepting is atomic (remembered if and only if queued).

Runs against the machine's Redis (db 0, keys unique to each test); a missing server fails.
"""
from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis

from suprhook.handlers import Registry
from suprhook.handlers.stores.dedup import DUPLICATE, IN_FLIGHT, NEW
from suprhook.handlers.messages import RUN_TTL, same_redis
from suprhook.receiver import create_app

from .conftest import LiveServer, Worker, make_status, stack_config, wait_until

REDIS = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("broker, dedup, same", [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", True),
    ("redis://127.0.0.1:6379", "redis://127.0.0.1/0", True),
    ("redis://:pw@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", True),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1", False),
    ("redis://127.0.0.1:6379/0", "redis://10.0.0.2:6379/0", False),
    ("redis://127.0.0.1:6380/0", "redis://127.0.0.1:6379/0", False),
    ("amqp://guest:guest@127.0.0.1:5672//", "redis://127.0.0.1:6379/0", False),
    ("redis://127.0.0.1:6379/0", "sqlite:///var/dedup.sqlite3", False),
])
def test_same_redis(broker, dedup, same):
    assert same_redis(broker, dedup) is same


def _app(tmp_path, registry=None, **extra):
    config = stack_config(tmp_path, REDIS, SUPRHOOK_DEDUP_URL=REDIS, **extra)
    if registry is None:
        registry = Registry()
        registry(event_type="status", name="fastpath.noop")(lambda event: None)
    app = create_app(config, registry=registry)
    return app, config


def _envelope(raw: bytes) -> dict:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_messages_are_the_ones_send_task_writes(tmp_path):
    app, config = _app(tmp_path)
    dispatcher = app.extensions["suprhook"].dispatcher
    fast, celery, queue = dispatcher.fastpath, dispatcher.celery, config["SUPRHOOK_QUEUE"]
    client = redis.Redis.from_url(REDIS)
    arg = {"v": 1, "event_id": "evt_x", "payload": make_status(), "received_at": "2026-11-23T00:00:00+00:00"}
    try:
        celery.send_task("suprhook.handler.fastpath.noop", args=[arg], queue=queue, task_id="tid-1",
                         argsrepr="evt_x", kwargsrepr="{}")
        theirs = _envelope(client.rpop(queue))
        ours = _envelope(fast.message("suprhook.handler.fastpath.noop", "tid-1", arg, queue, "evt_x"))
    finally:
        client.delete(queue)
    assert ours["body"] == theirs["body"]  # [args, kwargs, embed], decoded
    assert {k: v for k, v in ours.items() if k not in ("body", "headers", "properties")} == \
        {k: v for k, v in theirs.items() if k not in ("body", "headers", "properties")}
    assert ours["headers"] == theirs["headers"]
    differ = {"delivery_tag", "reply_to"}  # a fresh uuid per message / per producer app
    assert {k: v for k, v in ours["properties"].items() if k not in differ} == \
        {k: v for k, v in theirs["properties"].items() if k not in differ}
    assert set(ours["properties"]) == set(theirs["properties"])


def test_accept_is_atomic_and_remembers_only_what_it_queued(tmp_path):
    """Dedup, enqueue and the event-log stream entry go together: a failed script leaves no dedup key and no
    log entry (the sender's retry is accepted), a duplicate adds neither a message nor a log entry."""
    from suprhook.handlers.messages import log_entry
    from suprhook.schemas import load_event

    app, config = _app(tmp_path)
    fast, queue = app.extensions["suprhook"].dispatcher.fastpath, config["SUPRHOOK_QUEUE"]
    client = redis.Redis.from_url(REDIS)
    event_id, bad_queue = f"evt_{uuid.uuid4().hex}", f"{queue}-wrongtype"
    entry = log_entry(load_event(make_status()), ["h"], b"{}", {})
    try:
        client.set(bad_queue, "not a list")  # a push that fails inside the script
        with pytest.raises(redis.ResponseError):
            fast.accept(event_id, [("h1", queue, b"m1"), ("h2", bad_queue, b"m2")], entry)
        assert client.get(fast.prefix + event_id) is None  # not remembered: the sender's retry is taken
        assert client.xlen(fast.log_stream) == 0  # nor logged: a 503 means nothing was kept
        assert not client.exists(fast.run_key(event_id))  # no runs either
        client.delete(queue)
        assert fast.accept(event_id, [("h1", queue, b"m1"), ("h2", queue, b"m2")], entry) == NEW
        assert fast.accept(event_id, [("h1", queue, b"m1"), ("h2", queue, b"m2")], entry) == DUPLICATE
        assert client.lrange(queue, 0, -1) == [b"m2", b"m1"]  # queued once
        assert client.xlen(fast.log_stream) == 1  # logged once
        assert 0 < client.ttl(fast.prefix + event_id) <= fast.ttl
        # Each handler's run, pending, where workers claim it (stores/runs.py); it expires if never finished.
        assert client.hgetall(fast.run_key(event_id)) == {b"h1": b"pending|0|0", b"h2": b"pending|0|0"}
        assert 0 < client.ttl(fast.run_key(event_id)) <= RUN_TTL
        lease = f"evt_{uuid.uuid4().hex}"
        client.set(fast.prefix + lease, b"0", ex=30)  # a two-phase receiver holds this one
        assert fast.accept(lease, [("h1", queue, b"m")], entry) == IN_FLIGHT
        assert not client.exists(fast.run_key(lease))
    finally:
        client.delete(queue, bad_queue, fast.prefix + event_id, fast.log_stream, fast.run_key(event_id))


def test_a_worker_runs_what_the_fast_path_queued(tmp_path):
    import tests.probe_handlers  # noqa: F401  (registers the probe handlers here too)

    config = stack_config(tmp_path, REDIS, SUPRHOOK_DEDUP_URL=REDIS, SUPRHOOK_HANDLERS="tests.probe_handlers",
                          SUPRHOOK_PROBE_DIR=str(tmp_path / "probe"))
    app = create_app(config)
    assert app.extensions["suprhook"].dispatcher.fastpath is not None
    server, worker = LiveServer(app), Worker(config, tmp_path / "probe")
    try:
        payload = make_status(nid=f"fast-{uuid.uuid4().hex}")
        first = server.post(payload)
        assert first.status_code == 202, first.text
        event_id = first.json()["event_id"]
        assert server.post(payload).json() == {"status": "duplicate", "event_id": event_id}
        runs = worker.wait_runs(event_id, 2)
        assert sorted(r["handler"] for r in runs) == ["catch_all", "on_status"]
        assert app.extensions["suprhook"].dispatcher.store is None  # queue-first: the receiver never opens it
        from suprhook.compose import event_log

        store = event_log(app.extensions["suprhook"].settings)  # filled by the worker's log writer
        assert wait_until(lambda: [(r["status"], r["attempts"]) for r in store.select_runs(event_ids=[event_id])]
                          == [("succeeded", 1), ("succeeded", 1)])
    finally:
        worker.stop()
        server.stop()
        redis.Redis.from_url(REDIS).delete(config["SUPRHOOK_QUEUE"])


def test_a_zero_ttl_queues_and_remembers_nothing(tmp_path):
    """SUPRHOOK_DEDUP_TTL=0 (the run ledger alone stops repeats): `SET .. EX 0` would fail after the
    push, answering 503 for an event that is queued."""
    app, config = _app(tmp_path, SUPRHOOK_DEDUP_TTL="0")
    fast, queue = app.extensions["suprhook"].dispatcher.fastpath, config["SUPRHOOK_QUEUE"]
    client, event_id = redis.Redis.from_url(REDIS), f"evt_{uuid.uuid4().hex}"
    from suprhook.handlers.messages import log_entry
    from suprhook.schemas import load_event

    entry = log_entry(load_event(make_status()), ["h"], b"{}", {})
    try:
        assert fast.accept(event_id, [("h", queue, b"m")], entry) == NEW
        assert fast.accept(event_id, [("h", queue, b"m")], entry) == NEW
        assert client.llen(queue) == 2 and client.get(fast.prefix + event_id) is None
    finally:
        client.delete(queue, fast.log_stream)
