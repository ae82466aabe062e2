"""Run bookkeeping on the broker's Redis (handlers/stores/runs.py): claims, leases and outcomes decided there by
one script each, carried to the event log's run table by the log writer, in any order, and dropped from Redis
once the log has them. Real Redis; the event log on SQLite and on PostgreSQL."""
from __future__ import annotations

import itertools
import time
import uuid

import pytest
import redis

from suprhook.handlers.messages import FIRST, RunTransition
from suprhook.handlers.stores.runs import RunBook
from suprhook.handlers.stores.store import EventStore, RunInProgress
from suprhook.handlers.worker.log_writer import EventLogWriter
from suprhook import load_event

from .conftest import make_status

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def book(store_url, redis_prefix):
    """A run book on Redis whose keys and stream live under this test's prefix, and the log writer that drains it."""
    client = redis.Redis.from_url(REDIS)
    store = EventStore(store_url)
    stream = redis_prefix + "eventlog"
    runs = RunBook(lambda: store, client, lambda event_id: f"{redis_prefix}runs:{event_id}", stream)
    writer = EventLogWriter(client, stream, store, runs=runs, block=0.1)
    return runs, store, writer, client


def accepted(runs: RunBook, *handlers: str) -> str:
    """An event the receiver accepted: its runs created pending on Redis, as the ingest script does."""
    event = load_event(make_status(nid=uuid.uuid4().hex[:26]))
    runs.client.hset(runs.key_of(event.event_id), mapping={h: FIRST for h in handlers})
    return event.event_id


def test_a_run_is_claimed_finished_and_skipped_on_redis_and_reaches_the_log(book):
    runs, store, writer, client = book
    event_id = accepted(runs, "h")
    claim = runs.begin(event_id, "h", lease=30)
    assert (claim.attempt, claim.where) == (1, "redis")
    with pytest.raises(RunInProgress) as waiting:  # a redelivered copy while it runs (the default 30 s lease)
        runs.begin(event_id, "h", lease=30)
    assert 28 < waiting.value.retry_in <= 30
    assert runs.finish(event_id, "h", claim, "succeeded")
    assert runs.begin(event_id, "h", lease=30).attempt == 0  # done: every later copy is skipped
    assert store.run_status(event_id, "h") is None  # not yet in the log: the writer moves it there
    writer.drain()
    row = next(r for r in _runs(store) if r["event_id"] == event_id)
    assert (row["status"], row["attempts"], row["lease_until"]) == ("succeeded", 1, None)
    assert not client.hexists(runs.key_of(event_id), "h")  # the log has it: Redis forgets it
    assert runs.begin(event_id, "h", lease=30).attempt == 0  # and a later copy is skipped by the log


def _runs(store: EventStore) -> list[dict]:
    from sqlalchemy import select

    from suprhook.handlers.stores.store import runs as table

    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def test_a_failure_keeps_its_error_and_the_retry_claims_the_next_attempt(book):
    runs, store, writer, client = book
    event_id = accepted(runs, "h")
    first = runs.begin(event_id, "h", lease=30)
    assert runs.finish(event_id, "h", first, "failed", "TimeoutError: vendor slow")
    second = runs.begin(event_id, "h", lease=30)
    assert second.attempt == 2
    writer.drain()  # a claim is not logged: most runs end before their first renewal
    row = next(r for r in _runs(store) if r["event_id"] == event_id)
    assert (row["status"], row["attempts"], row["error"]) == ("failed", 1, "TimeoutError: vendor slow")
    assert runs.renew([(event_id, "h", second.attempt, "redis")], lease=30) == []  # the heartbeat's first beat
    writer.drain()
    row = next(r for r in _runs(store) if r["event_id"] == event_id)
    assert (row["status"], row["attempts"], row["error"]) == ("running", 2, "TimeoutError: vendor slow")
    assert row["lease_until"] > time.time() + 25
    assert client.hexists(runs.key_of(event_id), "h")  # still running: Redis keeps deciding it


def test_a_run_redis_does_not_hold_is_claimed_in_the_event_log(book):
    """Another broker's receiver, a replayed dead run, a run finished and forgotten: the log decides."""
    runs, store, _, client = book
    event = load_event(make_status())
    store.record_accepted(event, ["h"])
    claim = runs.begin(event.event_id, "h", lease=30)
    assert (claim.attempt, claim.where) == (1, "log")
    assert not client.exists(runs.key_of(event.event_id))
    assert runs.finish(event.event_id, "h", claim, "succeeded")
    assert store.run_status(event.event_id, "h") == "succeeded"


def test_a_lapsed_lease_is_taken_over_and_the_old_holder_cannot_overwrite_it(book):
    """Lease 0.3 s (not the default 30 s) so that it lapses within the test, as a SIGKILLed holder's would."""
    runs, store, writer, _ = book
    event_id = accepted(runs, "h")
    old = runs.begin(event_id, "h", lease=0.3)
    time.sleep(0.4)
    new = runs.begin(event_id, "h", lease=30)
    assert new.attempt == 2
    assert runs.renew([(event_id, "h", old.attempt, "redis")], lease=30) == [(event_id, "h", 1, "redis")]
    assert not runs.finish(event_id, "h", old, "succeeded")  # the stalled holder's outcome is refused
    assert runs.finish(event_id, "h", new, "succeeded")
    writer.drain()
    row = next(r for r in _runs(store) if r["event_id"] == event_id)
    assert (row["status"], row["attempts"]) == ("succeeded", 2)


def test_renewing_moves_the_lease_on_redis_and_in_the_log(book):
    runs, store, writer, client = book
    event_id = accepted(runs, "h")
    claim = runs.begin(event_id, "h", lease=1)
    assert runs.renew([(event_id, "h", claim.attempt, "redis")], lease=60) == []
    with pytest.raises(RunInProgress) as waiting:
        runs.begin(event_id, "h", lease=30)
    assert waiting.value.retry_in > 55
    writer.drain()
    row = next(r for r in _runs(store) if r["event_id"] == event_id)
    assert row["status"] == "running" and row["lease_until"] > time.time() + 55  # so the sweep leaves it alone
    assert store.claim_expired() == []


def test_an_event_sent_again_after_the_dedup_window_is_skipped_by_the_log(book):
    """The dedup key is gone after SUPRHOOK_DEDUP_TTL, so the receiver creates fresh pending runs; the first claim's
    read of the event log finds the earlier success, skips the run and drops the fresh state."""
    runs, store, _, client = book
    event = load_event(make_status())
    store.record_accepted(event, ["h", "g"])
    earlier = store.begin_run(event.event_id, "h", 30)
    store.finish_run(event.event_id, "h", "succeeded", attempt=earlier)
    runs.client.hset(runs.key_of(event.event_id), mapping={"h": FIRST, "g": FIRST})
    assert runs.begin(event.event_id, "h", lease=30).attempt == 0
    assert not client.hexists(runs.key_of(event.event_id), "h")
    assert runs.begin(event.event_id, "g", lease=30).attempt == 1  # g never ran: it runs


def test_an_unreadable_event_log_does_not_stop_a_first_run(book):
    runs, _, _, _ = book

    def down():
        raise ConnectionError("the event log's database is down")

    event_id = accepted(runs, "h")
    cut_off = RunBook(down, runs.client, runs.key_of, runs.stream)
    claim = cut_off.begin(event_id, "h", lease=30)
    assert (claim.attempt, claim.where) == (1, "redis")
    assert cut_off.finish(event_id, "h", claim, "succeeded")  # and its outcome waits on Redis for the log


def test_reopen_for_replay(book):
    runs, store, writer, client = book
    failed, done, busy = accepted(runs, "h"), accepted(runs, "h"), accepted(runs, "h")
    runs.finish(failed, "h", runs.begin(failed, "h", lease=30), "dead", "PermanentError: no")
    runs.finish(done, "h", runs.begin(done, "h", lease=30), "succeeded")
    runs.begin(busy, "h", lease=30)
    assert runs.reopen(failed, "h")  # dead on Redis (the log not written yet): claimable again
    assert runs.begin(failed, "h", lease=30).attempt == 2
    assert not runs.reopen(done, "h")
    assert not runs.reopen(busy, "h")  # a live lease holds it
    writer.drain()
    assert not client.hexists(runs.key_of(done), "h")
    event = load_event(make_status())  # not on Redis at all: the log decides
    store.record_accepted(event, ["h"])
    store.finish_run(event.event_id, "h", "dead", "x")
    assert runs.reopen(event.event_id, "h") and store.run_status(event.event_id, "h") == "pending"


def _moves(event_id: str) -> list[RunTransition]:
    """What two attempts of one run send to the log: claim, renewal, failure, claim, success."""
    t = time.time()
    return [RunTransition(event_id, "h", 1, "running", t + 30, None, t),
            RunTransition(event_id, "h", 1, "running", t + 40, None, t + 10),
            RunTransition(event_id, "h", 1, "failed", None, "ValueError: x", t + 11),
            RunTransition(event_id, "h", 2, "running", t + 42, None, t + 12),
            RunTransition(event_id, "h", 2, "succeeded", None, None, t + 13)]


def test_transitions_land_the_same_in_any_order_and_any_number_of_times(store_url):
    """Log writers share the stream, so one run's transitions may be written by two batches in either order, and a
    batch a dead writer left is written again. Every order of one run's transitions (120), each also written twice,
    ends in the same row; and with the event logged before or after them."""
    store = EventStore(store_url)
    base = _moves("x")
    for i, order in enumerate(itertools.permutations(range(len(base)))):
        event = load_event(make_status(nid=f"nid{i}"))
        moves = [RunTransition(event.event_id, *_astuple(base[j])[1:]) for j in order]
        if i % 2:
            store.record_accepted(event, ["h"])
        for move in moves:
            store.record_logged([], [move])
        store.record_logged([], moves[:2])  # written again
        if not i % 2:
            store.record_accepted(event, ["h"])
        row = next(r for r in _runs(store) if r["event_id"] == event.event_id)
        assert (row["status"], row["attempts"], row["lease_until"]) == ("succeeded", 2, None), order


def _astuple(m: RunTransition) -> tuple:
    return (m.event_id, m.handler, m.attempts, m.status, m.lease_until, m.error, m.at)


@pytest.mark.parametrize("age, reads", [(0, False), (23 * 3600 - 60, False), (23 * 3600 + 60, True),
                                        (-3 * 3600, True), (None, True)])
def test_only_an_event_old_enough_to_be_a_repeat_reads_the_log_first(book, age, reads):
    """On the default SUPRHOOK_DEDUP_TTL (24 h): an event younger than 23 h cannot have been accepted before (its
    dedup key would still be there), so its first claim skips the log read; an older one, one from a clock far
    ahead, or one without a time reads it."""
    from datetime import datetime, timedelta, timezone

    runs, store, _, _ = book
    opened = []
    counted = RunBook(lambda: opened.append(1) or store, runs.client, runs.key_of, runs.stream, dedup_ttl=86400)
    event_id = accepted(runs, "h")
    happened = None if age is None else datetime.now(timezone.utc) - timedelta(seconds=age)
    assert counted.begin(event_id, "h", lease=30, happened=happened).attempt == 1
    assert bool(opened) is reads


def test_the_followups_a_run_sent_reach_the_log_with_its_outcome(book):
    runs, store, writer, _ = book
    event_id = accepted(runs, "h")
    claim = runs.begin(event_id, "h", lease=30)
    sent = [{"name": "order_confirmed", "key": "suprhook-d1-abc", "ok": True, "code": 202, "answer": "ok", "at": 1.5},
            {"name": "order_audit", "key": "k2", "ok": False, "code": 400, "answer": "bad property", "at": 2.5}]
    assert runs.finish(event_id, "h", claim, "succeeded", followups=sent)
    writer.drain()
    writer.drain()  # written twice (a batch a dead writer left): still once
    assert [(f["attempt"], f["seq"], f["event_name"], f["idempotency_key"], f["ok"], f["status_code"], f["answer"])
            for f in store.followups_of(event_id)] == [(1, 0, "order_confirmed", "suprhook-d1-abc", True, 202, "ok"),
                                                        (1, 1, "order_audit", "k2", False, 400, "bad property")]
