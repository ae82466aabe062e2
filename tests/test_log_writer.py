"""Queue-first ingest on Redis (issue 13): the request's one write is the atomic script; the event log is
filled off the request path by the worker's log writer (handlers/worker/log_writer.py), in batches."""
from __future__ import annotations

import json
import time
import uuid

import redis

from suprhook import Registry, load_event
from suprhook.compose import build_web, event_log, event_log_writer
from suprhook.handlers.messages import LoggedEvent, log_entry
from suprhook.handlers.stores.store import EventStore, Timeline
from suprhook.handlers.worker.log_writer import GROUP, EventLogWriter
from suprhook.receiver.ingest import WebhookRequest

from .conftest import make_inbound, make_status, stack_config

REDIS = "redis://127.0.0.1:6379/0"


def _noop(event):
    """A handler for these tests."""


def _stack(tmp_path, **extra: str):
    registry = Registry()
    registry(event_type="status", name="tests.logwriter.noop")(_noop)
    config = stack_config(tmp_path, REDIS, **{"SUPRHOOK_DEDUP_URL": REDIS, "SUPRHOOK_HANDLERS": "", **extra})
    web = build_web(config, registry=registry)
    return web, config


def _post(web, payload) -> str:
    body = json.dumps(payload).encode()
    answer = web.ingest.handle(WebhookRequest(headers={"Content-Type": "application/json"}, read=lambda n: body[:n],
                                              remote_addr="127.0.0.1", forwarded_for=(), content_length=len(body),
                                              content_type="application/json", mimetype="application/json",
                                              charset=None), web.routes[0])
    assert answer.code == 202, answer.body
    return answer.body["event_id"]


def _cleanup(web, config) -> None:
    client = redis.Redis.from_url(REDIS)
    stream = web.dispatcher.fastpath.log_stream
    client.delete(stream, stream + ":dead", config["SUPRHOOK_QUEUE"])


def test_the_receiver_writes_only_redis_and_the_writer_fills_the_event_log(tmp_path):
    web, config = _stack(tmp_path)
    try:
        assert web.dispatcher.store is None  # the web process never opens the event log
        ids = [_post(web, make_status()) for _ in range(30)]
        store = event_log(web.settings)
        assert store.select_runs(event_ids=ids) == []  # nothing written on the request path
        writer = event_log_writer(web.settings, store)
        assert writer.drain() == 30 and writer.backlog() == 0  # acknowledged and deleted
        assert sorted(r["event_id"] for r in store.recent_events(100)) == sorted(ids)
        runs = store.select_runs(event_ids=ids)
        assert len(runs) == 30 and {r["status"] for r in runs} == {"pending"}
        assert store.body(ids[0])["reference"]["supr_nid"]  # the raw body is kept
    finally:
        _cleanup(web, config)


def test_a_stopped_writers_entries_are_taken_over_and_written_once(tmp_path):
    """A writer that read a batch and died before acknowledging it leaves the entries pending; another
    writer claims them once they are `claim_idle` old. (claim_idle is 0.2 s here instead of 30 s so the
    test sees the timing; the next test runs the default.)"""
    web, config = _stack(tmp_path)
    try:
        ids = [_post(web, make_status()) for _ in range(5)]
        store, client = event_log(web.settings), redis.Redis.from_url(REDIS)
        stream = web.dispatcher.fastpath.log_stream
        dead = EventLogWriter(client, stream, store, consumer="dead-writer")
        dead.ensure_group()
        taken = client.xreadgroup(GROUP, "dead-writer", {stream: ">"}, count=10)  # read, never acknowledged
        assert len(taken[0][1]) == 5
        live = EventLogWriter(client, stream, store, claim_idle=0.2, consumer="live-writer")
        assert live.step() == 0  # not idle long enough yet: a live writer may still be writing them
        time.sleep(0.3)
        assert live.drain() == 5
        assert sorted(r["event_id"] for r in store.recent_events(100)) == sorted(ids)
        assert live.drain() == 0 and client.xpending(stream, GROUP)["pending"] == 0
    finally:
        _cleanup(web, config)


def test_with_the_default_claim_idle_entries_are_taken_over_after_30_s_not_before(tmp_path):
    """The default (claim_idle 30 s), without waiting 30 s: Redis's XCLAIM ... IDLE sets how long an entry has
    been pending, so the dead writer's entries are made 29 s old, then 31 s old."""
    web, config = _stack(tmp_path)
    try:
        ids = [_post(web, make_status()) for _ in range(3)]
        store, client = event_log(web.settings), redis.Redis.from_url(REDIS)
        stream = web.dispatcher.fastpath.log_stream
        EventLogWriter(client, stream, store, consumer="dead-writer").ensure_group()
        taken = [entry_id for entry_id, _ in client.xreadgroup(GROUP, "dead-writer", {stream: ">"})[0][1]]
        live = EventLogWriter(client, stream, store)  # every default: batch 500, block 1 s, claim_idle 30 s
        assert live.claim_idle == 30.0
        client.xclaim(stream, GROUP, "dead-writer", 0, taken, idle=29_000)
        assert live.step() == 0  # 29 s: its writer may still be writing them
        client.xclaim(stream, GROUP, "dead-writer", 0, taken, idle=31_000)
        # A writer looks for stopped writers' entries at its first step, then every claim_idle / 2: a second
        # writer with the defaults, rather than waiting 15 s for this one to look again.
        assert EventLogWriter(client, stream, store).step() == 3
        assert sorted(r["event_id"] for r in store.recent_events(100)) == sorted(ids)
    finally:
        _cleanup(web, config)


class _Down:
    """An event log whose database is down for the first `failures` batches."""

    def __init__(self, store: EventStore, failures: int) -> None:
        self.store, self.failures = store, failures

    def record_logged(self, logged, moves=()):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the event log's database is down")
        return self.store.record_logged(logged, moves)


def test_a_down_event_log_refuses_no_webhook_and_catches_up(tmp_path):
    """The event log on a PostgreSQL that does not answer: webhooks are still accepted (the receiver never
    touches it); the writer keeps the entries in Redis until it can write them, then writes each once."""
    web, config = _stack(tmp_path, SUPRHOOK_STORE_URL="postgresql+psycopg://postgres@127.0.0.1:9/nowhere")
    try:
        assert web.dispatcher.ready() == {"broker": "ok", "dedup": "ok"}  # not a readiness check queue-first
        ids = [_post(web, make_status()) for _ in range(10)]
        store = EventStore(f"sqlite:///{tmp_path}/events.sqlite3")
        writer = EventLogWriter(redis.Redis.from_url(REDIS), web.dispatcher.fastpath.log_stream, _Down(store, 2))
        for _ in range(2):
            try:
                writer.step()
            except ConnectionError:
                pass
        assert store.recent_events(100) == [] and writer.backlog() == 10  # kept, pending
        assert writer.drain() == 10
        assert sorted(r["event_id"] for r in store.recent_events(100)) == sorted(ids)
    finally:
        _cleanup(web, config)


def test_record_logged_keeps_a_run_the_worker_claimed_first(tmp_path):
    """Queue-first a fast worker may claim a run before the writer logs its event: the pending row the writer
    then inserts must not reset it."""
    store = EventStore(f"sqlite:///{tmp_path}/events.sqlite3")
    event = load_event(make_status())
    assert store.begin_run(event.event_id, "h", 30) == 1
    assert store.record_logged([LoggedEvent.from_event(event, ["h"], None, {})]) == 1
    assert [(r["status"], r["attempts"]) for r in store.select_runs(event_ids=[event.event_id])] == [("running", 1)]
    assert store.record_logged([LoggedEvent.from_event(event, ["h"], None, {})]) == 0  # idempotent


def test_a_stream_entry_is_what_record_accepted_would_write(tmp_path):
    event = load_event(make_inbound("YES"))
    fields = {k.encode(): v for k, v in log_entry(event, ["a", "b"], b'{"x": 1}', {"User-Agent": "t"}).items()}
    logged = LoggedEvent.from_entry(fields)
    direct = LoggedEvent.from_event(event, ["a", "b"], b'{"x": 1}', {"User-Agent": "t"})
    assert logged.event_id == event.event_id and logged.handlers == ("a", "b") and logged.body == '{"x": 1}'
    assert {k: v for k, v in vars(logged).items() if k != "received_at"} == \
        {k: v for k, v in vars(direct).items() if k != "received_at"}


def test_a_handlers_timeline_has_its_own_event_before_the_log_does(tmp_path):
    store = EventStore(f"sqlite:///{tmp_path}/events.sqlite3")
    nid = uuid.uuid4().hex
    sent = load_event(make_status("sent", nid=nid, ts=1672310923000))
    store.record_accepted(sent, [])
    delivered = load_event(make_status("delivered", nid=nid, ts=1672310924000))
    timeline = Timeline(store, nid, delivered)  # not logged yet
    assert timeline.current == "delivered"
    assert [e.status for e in timeline.history] == ["sent", "delivered"]
    store.record_accepted(delivered, [])
    assert [e.status for e in Timeline(store, nid, delivered).history] == ["sent", "delivered"]  # not twice
    failed = load_event(make_status("failed", nid=nid, ts=1672310925000))
    store.record_accepted(failed, [])
    assert Timeline(store, nid, delivered).current == "failed"  # forward only: a late delivered changes nothing


RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def _rabbit_stack(tmp_path):
    registry = Registry()
    registry(event_type="status", name="tests.logwriter.noop")(_noop)
    config = stack_config(tmp_path, RABBITMQ, SUPRHOOK_HANDLERS="")
    return build_web(config, registry=registry), config


def _drop_queues(web, config) -> None:
    from .conftest import delete_queue

    for name in (config["SUPRHOOK_QUEUE"], web.dispatcher.log_queue.name):
        delete_queue(web.celery, name)


def test_on_rabbitmq_the_receiver_publishes_the_log_and_the_writer_writes_it(tmp_path):
    """Any broker but the Redis fast path: the event goes to the log queue, publisher-confirmed, after its
    tasks; the receiver does not open the event log; the worker's QueueLogWriter writes it in batches."""
    web, config = _rabbit_stack(tmp_path)
    try:
        assert web.dispatcher.fastpath is None and web.dispatcher.store is None
        ids = [_post(web, make_status()) for _ in range(20)]
        store = event_log(web.settings)
        assert store.recent_events(100) == []
        writer = event_log_writer(web.settings, store, web.celery)
        try:
            assert writer.drain() == 20 and writer.drain() == 0
        finally:
            writer.close()
        assert sorted(r["event_id"] for r in store.recent_events(100)) == sorted(ids)
        assert len(store.select_runs(event_ids=ids)) == 20
    finally:
        _drop_queues(web, config)


def test_on_rabbitmq_a_writer_that_dies_before_acking_loses_nothing(tmp_path):
    """A writer whose batch write fails (or which dies) never acknowledges it: the broker gives the messages
    to the next writer, which writes each event once."""
    web, config = _rabbit_stack(tmp_path)
    try:
        ids = [_post(web, make_status()) for _ in range(7)]
        store = event_log(web.settings)
        failing = event_log_writer(web.settings, store, web.celery)
        down = _Down(store, 1)
        failing.store_of = lambda: down
        try:
            failing.step(block=2.0)
        except ConnectionError:
            pass
        finally:
            failing.close()  # its unacknowledged batch goes back to the queue
        assert store.recent_events(100) == []
        writer = event_log_writer(web.settings, store, web.celery)
        try:
            assert writer.drain() == 7
        finally:
            writer.close()
        assert sorted(r["event_id"] for r in store.recent_events(100)) == sorted(ids)
    finally:
        _drop_queues(web, config)


def test_an_event_the_database_refuses_goes_to_the_dead_letter_and_the_batch_is_written(tmp_path):
    """One entry PostgreSQL cannot store must not stop the log for everyone (the writer would retry its batch
    forever): the batch is written one by one, and the refused entry moves to <stream>:dead with its reason.
    (A hand-made entry: the schemas refuse such values with a 400 before they are accepted.)"""
    web, config = _stack(tmp_path, SUPRHOOK_STORE_URL="postgresql+psycopg://postgres@127.0.0.1/test")
    client = redis.Redis.from_url(REDIS)
    stream = web.dispatcher.fastpath.log_stream
    try:
        ids = [_post(web, make_status()) for _ in range(3)]
        bad = log_entry(load_event(make_status()), ["h"], b"{}", {})
        meta = json.loads(bad["meta"])
        meta["channel"] = "c" * 200  # longer than the column
        client.xadd(stream, {**bad, "meta": json.dumps(meta).encode()})
        client.xadd(stream, {"id": b"evt_unreadable", "meta": b"{not json"})  # another version's entry, say
        ids += [_post(web, make_status()) for _ in range(2)]
        store = event_log(web.settings)
        writer = event_log_writer(web.settings, store)
        assert writer.drain() == 7 and writer.backlog() == 0
        assert set(ids) <= {r["event_id"] for r in store.recent_events(500, event_ids=ids)}
        dead = client.xrange(writer.dead_letter)
        assert sorted(fields[b"reason"].split(b":")[0] for _, fields in dead) == [b"refused by the database",
                                                                                   b"unreadable"]
        assert any(fields[b"id"] == bad["id"] for _, fields in dead)  # kept whole, for a person to look at
    finally:
        _cleanup(web, config)


def test_a_writer_started_while_the_database_is_down_catches_up(tmp_path):
    """The worker hands the writer what opens the event log, not an open store: a database that is down when
    the worker starts delays the log; it used to leave the worker without a writer for its whole life."""
    web, config = _stack(tmp_path)
    try:
        ids = [_post(web, make_status()) for _ in range(4)]
        attempts = []

        def store_of():
            attempts.append(1)
            if len(attempts) < 3:
                raise ConnectionError("the event log's database is not up yet")
            return event_log(web.settings)

        writer = event_log_writer(web.settings, store_of)
        for _ in range(2):
            try:
                writer.step()
            except ConnectionError:
                pass
        assert writer.drain() == 4
        assert sorted(r["event_id"] for r in event_log(web.settings).recent_events(100)) == sorted(ids)
    finally:
        _cleanup(web, config)


def test_values_the_event_log_cannot_store_are_refused_with_a_400(tmp_path):
    web, config = _stack(tmp_path)
    try:
        for field, value in (("channel", "c" * 65), ("distinct_id", "d" * 256), ("distinct_id", "a\x00b")):
            body = json.dumps({**make_status(), field: value}).encode()
            answer = web.ingest.handle(WebhookRequest(
                headers={"Content-Type": "application/json"}, read=lambda n, b=body: b[:n], remote_addr="127.0.0.1",
                forwarded_for=(), content_length=len(body), content_type="application/json",
                mimetype="application/json", charset=None), web.routes[0])
            assert answer.code == 400 and field in answer.body["errors"], answer.body
        assert redis.Redis.from_url(REDIS).xlen(web.dispatcher.fastpath.log_stream) == 0
    finally:
        _cleanup(web, config)


def test_a_redis_broker_with_dedup_elsewhere_logs_through_the_stream_too(tmp_path):
    """Redis broker, SQLite dedup (no fast path): the event still goes to the stream on the broker's Redis,
    right after its tasks, never to a log queue, which kombu's Redis transport could lose (the BRPOP gap)."""
    web, config = _stack(tmp_path, SUPRHOOK_DEDUP_URL=f"sqlite:///{tmp_path}/dedup.sqlite3")
    client = redis.Redis.from_url(REDIS)
    stream = f"suprhook:eventlog:{config['SUPRHOOK_QUEUE']}"
    try:
        assert web.dispatcher.fastpath is None and web.dispatcher.log_queue is None
        assert web.dispatcher.store is None
        ids = [_post(web, make_status()) for _ in range(3)]
        assert client.xlen(stream) == 3
        writer = event_log_writer(web.settings)
        assert writer.drain() == 3
        assert sorted(r["event_id"] for r in event_log(web.settings).recent_events(100)) == sorted(ids)
    finally:
        client.delete(stream, config["SUPRHOOK_QUEUE"])
