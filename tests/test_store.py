"""The event log on SQLite and on the machine's PostgreSQL: runs, leases, the timeline, the sweep's claim."""
from __future__ import annotations

import os
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from suprhook.handlers.stores.store import EventStore, RunInProgress
from suprhook.schemas import load_event

from .conftest import PG, make_status, start_together


@pytest.fixture
def store(store_url):
    store = EventStore(store_url)  # SQLite, or a throwaway PostgreSQL schema (conftest.store_url)
    yield store
    store.dispose()


def status(word: str, nid: str = "nid-1", ts: int = 1_700_000_000_000) -> object:
    return load_event(make_status(word, nid=nid, ts=ts))


def test_accepted_event_is_logged_with_pending_runs(store):
    event = status("delivered")
    store.record_accepted(event, ["h1", "h2"], b'{"raw": "body"}', {"Content-Type": "application/json"})
    store.record_accepted(event, ["h1", "h2"])  # the sender's retry after a 503: nothing duplicated
    runs = store.select_runs(event_ids=[event.event_id])
    assert [(r["handler"], r["status"], r["attempts"]) for r in runs] == [("h1", "pending", 0), ("h2", "pending", 0)]
    assert store.body(event.event_id) == {"raw": "body"}
    assert store.recent_events(1)[0]["event_id"] == event.event_id
    assert store.recent_events(1)[0]["received_at"].tzinfo is not None


def test_run_claim_success_skip_and_lease(store):
    event = status("delivered")
    store.record_accepted(event, ["h"])
    assert store.begin_run(event.event_id, "h", lease=60) == 1
    with pytest.raises(RunInProgress):  # a redelivered copy while the first still runs
        store.begin_run(event.event_id, "h", lease=60)
    store.finish_run(event.event_id, "h", "succeeded")
    assert store.begin_run(event.event_id, "h", lease=60) == 0  # never twice after success


def test_an_expired_lease_can_be_taken_over(store):
    event = status("delivered")
    store.record_accepted(event, ["h"])
    first = store.begin_run(event.event_id, "h", lease=0.2)
    time.sleep(0.3)  # the worker holding it died, or is just too slow
    second = store.begin_run(event.event_id, "h", lease=60)
    assert (first, second) == (1, 2)
    assert store.finish_run(event.event_id, "h", "succeeded", attempt=second)
    # the first attempt, still alive, finishes late: it must not overwrite its successor's outcome
    assert store.finish_run(event.event_id, "h", "failed", "TimeoutError", attempt=first) is False
    assert store.select_runs(event_ids=[event.event_id])[0]["status"] == "succeeded"
    assert store.begin_run(event.event_id, "h", lease=60) == 0


def test_a_renewed_lease_is_never_taken_over_and_a_lapsed_one_is(store):
    event = status("delivered")
    store.record_accepted(event, ["long", "dead"])
    long_run = store.begin_run(event.event_id, "long", lease=0.4)
    dead_run = store.begin_run(event.event_id, "dead", lease=0.4)
    for _ in range(4):  # the process running "long" heartbeats; the one running "dead" was SIGKILLed
        time.sleep(0.15)
        assert store.renew_leases([(event.event_id, "long", long_run)], lease=0.4) == []
    with pytest.raises(RunInProgress) as held:  # a redelivered copy waits for the live holder...
        store.begin_run(event.event_id, "long", lease=0.4)
    assert 0 < held.value.retry_in <= 0.4  # ...about as long as the lease has left
    assert store.claim_expired() == [(event.event_id, "dead")]  # the sweep takes the dead one only
    assert store.claim_expired() == []  # once: a second sweeper finds it pending, not expired
    assert store.select_runs(event_ids=[event.event_id])[0]["status"] == "pending"
    assert store.begin_run(event.event_id, "dead", lease=60) == dead_run + 1
    # the dead attempt cannot renew a run another attempt took over: renew reports it lost
    assert store.renew_leases([(event.event_id, "dead", dead_run)], lease=60) == [(event.event_id, "dead", dead_run)]
    assert store.finish_run(event.event_id, "long", "succeeded", attempt=long_run)


def test_lease_keeper_renews_while_held_and_stops_after(store):
    from suprhook.handlers.stores.runs import RunBook
    from suprhook.handlers.worker.leases import LeaseKeeper

    event = status("delivered")
    store.record_accepted(event, ["h"])
    attempt = store.begin_run(event.event_id, "h", lease=0.6)
    keeper = LeaseKeeper(lambda held: RunBook(lambda: store).renew(held, 0.6), every=0.2)
    with keeper.hold(event.event_id, "h", attempt):
        time.sleep(1.5)  # 2.5 leases: only the heartbeat keeps it
        assert store.claim_expired() == []
    assert keeper.held() == []
    time.sleep(0.8)  # no longer renewed: it lapses like a dead process's
    assert store.claim_expired() == [(event.event_id, "h")]


def test_failed_runs_retry_dead_runs_only_by_replay(store):
    event = status("delivered")
    store.record_accepted(event, ["h", "g"])
    store.begin_run(event.event_id, "g", 60)
    store.finish_run(event.event_id, "g", "failed", "RuntimeError: once")
    assert store.begin_run(event.event_id, "g", 60)  # Celery's retry of a failed run
    store.begin_run(event.event_id, "h", 60)
    store.finish_run(event.event_id, "h", "dead", "RuntimeError: boom")
    assert store.select_runs(statuses=["dead"])[0]["error"] == "RuntimeError: boom"
    assert store.begin_run(event.event_id, "h", 60) == 0  # a stray redelivery does not revive it
    store.finish_run(event.event_id, "h", "pending")  # what `suprhook replay` does
    assert store.begin_run(event.event_id, "h", 60)


def test_timeline_moves_forward_only_and_failed_is_terminal(store):
    nid = f"nid-{uuid.uuid4().hex}"
    for word, ts in [("sent", 1), ("seen", 3), ("delivered", 2), ("clicked", 4)]:
        store.record_accepted(status(word, nid, 1_700_000_000_000 + ts), [])
    assert store.current_status(nid) == "clicked"
    assert [e.status for e in store.history(nid)] == ["sent", "delivered", "seen", "clicked"]  # by status time
    late = f"nid-{uuid.uuid4().hex}"
    store.record_accepted(status("seen", late, 1_700_000_000_005), [])
    store.record_accepted(status("delivered", late, 1_700_000_000_004), [])  # arrives after seen
    assert store.current_status(late) == "seen"
    assert len(store.history(late)) == 2  # recorded, but did not move it back
    failed = f"nid-{uuid.uuid4().hex}"
    store.record_accepted(status("failed", failed, 1_700_000_000_001), [])
    store.record_accepted(status("delivered", failed, 1_700_000_000_002), [])
    assert store.current_status(failed) == "failed"


def test_unknown_status_is_recorded_but_does_not_move(store):
    nid = f"nid-{uuid.uuid4().hex}"
    store.record_accepted(status("delivered", nid, 1), [])
    store.record_accepted(status("vendor_specific", nid, 2), [])
    assert store.current_status(nid) == "delivered"
    assert [e.status for e in store.history(nid)] == ["delivered", "vendor_specific"]


def test_claim_stale_takes_each_run_once(store):
    event = status("delivered")
    store.record_accepted(event, ["h1", "h2"])
    time.sleep(0.2)
    assert sorted(store.claim_stale(pending_after=0.1, failed_after=10)) == [(event.event_id, "h1"),
                                                                               (event.event_id, "h2")]
    assert store.claim_stale(pending_after=0.1, failed_after=10) == []  # a second sweeper gets nothing
    store.begin_run(event.event_id, "h1", 60)
    store.finish_run(event.event_id, "h1", "succeeded")
    time.sleep(0.2)
    assert store.claim_stale(pending_after=0.1, failed_after=10) == [(event.event_id, "h2")]


def test_claim_stale_reopens_a_failed_run_in_the_same_write(store):
    """The sweep sends a stale run's task right after claiming it: the claim itself makes it pending."""
    event = status("delivered", nid="nid-stale-failed")
    store.record_accepted(event, ["h"])
    attempt = store.begin_run(event.event_id, "h", 60)
    store.finish_run(event.event_id, "h", "failed", "boom", attempt=attempt)
    time.sleep(0.2)
    assert store.claim_stale(pending_after=10, failed_after=0.1) == [(event.event_id, "h")]
    assert store.select_runs(event_ids=[event.event_id])[0]["status"] == "pending"
    assert store.claim_stale(pending_after=10, failed_after=0.1) == []  # a second sweeper gets nothing
    assert store.begin_run(event.event_id, "h", 60) == attempt + 1


def _open_store(url: str, barrier) -> None:
    barrier.wait()
    EventStore(url)


def test_processes_starting_together_create_the_tables_once(tmp_path):
    """gunicorn -w 3 plus a worker on a fresh data dir: every process creates the store at once.
    Without the writer lock around create_all, 55 of 80 such processes failed with 'table
    suprhook_events already exists' (and gunicorn shut down: 'Worker failed to boot')."""
    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'race-{attempt}' / 'events.sqlite3'}"
        assert start_together(_open_store, [(url,)] * 4) == [0, 0, 0, 0]


def test_a_redelivered_event_gets_no_runs_for_handlers_added_since(store):
    """A handler deployed after an event was accepted never gets a run from that event's redelivery
    (the sender was answered `duplicate`; nothing would ever queue it)."""
    event = status("delivered", nid="nid-redelivered")
    store.record_accepted(event, ["h1"])
    store.record_accepted(event, ["h1", "h_new"])
    assert [r["handler"] for r in store.select_runs(event_ids=[event.event_id])] == ["h1"]


def test_reopen_never_undoes_a_success_or_a_live_lease(store):
    """The sweep re-sends a stale run; if its first task succeeded meanwhile, the reset must not turn
    `succeeded` back into `pending` (the re-sent task would run the handler again)."""
    event = status("delivered", nid="nid-reopen")
    store.record_accepted(event, ["done", "live", "failed"])
    attempt = store.begin_run(event.event_id, "done", 60)
    store.finish_run(event.event_id, "done", "succeeded", attempt=attempt)
    store.begin_run(event.event_id, "live", 60)
    attempt = store.begin_run(event.event_id, "failed", 60)
    store.finish_run(event.event_id, "failed", "failed", "boom", attempt=attempt)
    assert [store.reopen_run(event.event_id, h) for h in ("done", "live", "failed")] == [False, False, True]
    assert {r["handler"]: r["status"] for r in store.select_runs(event_ids=[event.event_id])} == \
        {"done": "succeeded", "live": "running", "failed": "pending"}
    assert store.begin_run(event.event_id, "done", 60) == 0


def test_in_memory_store_works():
    store = EventStore("sqlite://")
    event = status("delivered", nid="nid-memory")
    store.record_accepted(event, ["h"])
    attempt = store.begin_run(event.event_id, "h", 60)
    assert attempt == 1 and store.finish_run(event.event_id, "h", "succeeded", attempt=attempt)


def test_a_claim_racing_the_receivers_insert_claims_the_logged_row():
    """PostgreSQL: a task whose run row is still being inserted (uncommitted) by the receiver must end up
    owning that row, not report a claim it does not hold (which let a second task run it again)."""
    import threading

    schema = f"suprhook_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    receiver, worker = EventStore(url), EventStore(url)
    try:
        event = status("delivered", nid="nid-race")
        conn = receiver.engine.connect()
        tx = conn.begin()
        conn.execute(receiver._insert_run, [{"event_id": event.event_id, "handler": "h", "status": "pending",
                                             "attempts": 0, "updated_at": time.time()}])
        claimed: list[int] = []
        thread = threading.Thread(target=lambda: claimed.append(worker.begin_run(event.event_id, "h", 60)))
        thread.start()
        time.sleep(0.3)  # the worker's INSERT now waits on the receiver's uncommitted row
        tx.commit()
        conn.close()
        thread.join(10)
        assert claimed == [1]
        assert worker.finish_run(event.event_id, "h", "succeeded", attempt=1)
        assert worker.begin_run(event.event_id, "h", 60) == 0  # done: a second task skips it
    finally:
        receiver.dispose()
        worker.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _hold_the_lock_and_die(url: str) -> None:
    import signal
    import subprocess
    import sys

    store = EventStore(url)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # a child outliving its parent
    if os.fork() == 0:  # a forked child (a pool process) holding the parent's descriptors
        time.sleep(30)
        os._exit(0)
    with store.db.lock():
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_writer_killed_holding_the_lock_releases_it(tmp_path):
    """The writer lock belongs to the process: killed while holding it, it is released even though the
    forked children that inherited its descriptors live on (with flock they kept it held)."""
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    pid = os.fork()
    if pid == 0:
        try:
            _hold_the_lock_and_die(url)
        finally:
            os._exit(1)
    _, code = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(code) and os.WTERMSIG(code) == 9
    store = EventStore(url)
    started = time.monotonic()
    store.record_accepted(status("delivered", nid="nid-after-kill"), ["h"])
    assert time.monotonic() - started < 5
