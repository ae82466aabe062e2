"""Two-way flows end to end: reply over HTTP -> handler in a real worker -> follow-up at the fake SuprSend."""
from __future__ import annotations

import copy
import threading
import time

import pytest
from freezegun import freeze_time

from suprhook.handlers import Settings
from suprhook.handlers.stores.conversation import SQLiteConversations, conversation_key, open_conversations
from suprhook.handlers.stores.store import EventStore
from suprhook.receiver import create_app

from .conftest import LiveServer, Worker, make_inbound, stack_config, wait_until
from .fake_suprsend import FakeSuprsend


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    import tests.probe_flows  # noqa: F401  (registers the flow handlers in this receiver process)

    fake = FakeSuprsend().start()
    data_dir = tmp_path_factory.mktemp("flows")
    config = stack_config(data_dir, None, SUPRHOOK_HANDLERS="tests.probe_flows",
                          SUPRHOOK_PROBE_DIR=str(data_dir / "probe"), SUPRHOOK_DEDUP_TTL="0",
                          SUPRSEND_WORKSPACE_KEY=fake.workspace_key, SUPRSEND_WORKSPACE_SECRET=fake.workspace_secret,
                          SUPRSEND_BASE_URL=fake.url, SUPRSEND_TIMEOUT="2", SUPRHOOK_OWN_NUMBERS="+1 444 444 4444")
    server = LiveServer(create_app(config))
    worker = Worker(config, data_dir / "probe", concurrency=2)
    yield server, worker, fake, config
    worker.stop()
    server.stop()
    fake.stop()


def reply(text: str, workflow: str, user: str = "+15550000001", **extra) -> dict:
    payload = make_inbound(text, workflow_name=workflow, channel_value=user, **extra)
    payload["suprsend_inbound_message"]["from"] = user
    return payload


def test_yes_reply_triggers_one_signed_followup_even_after_a_503_and_a_redelivery(flow):
    server, worker, fake, config = flow
    fake.fail_next = [503]  # the first attempt fails: the task retries with backoff
    payload = reply("Yes, confirm", "Order Flow")
    first = server.post(payload)
    assert first.status_code == 202
    event_id = first.json()["event_id"]
    runs = worker.wait_runs(event_id, 1, "confirm_order", timeout=30)
    assert runs[0]["result"] is True
    # SUPRHOOK_DEDUP_TTL=0 here, so the same webhook delivered again is enqueued again: the worker's
    # run bookkeeping sees the handler already succeeded for this event and does not run it twice.
    again = server.post(copy.deepcopy(payload))
    assert again.status_code == 202 and again.json()["event_id"] == event_id
    store = EventStore(Settings.load(config, environ={}).store_url)
    assert wait_until(lambda: store.select_runs(event_ids=[event_id]) and all(
        r["status"] == "succeeded" for r in store.select_runs(event_ids=[event_id])), 20)
    time.sleep(1.0)
    assert len(worker.runs(event_id, "confirm_order")) == 1
    run = next(r for r in store.select_runs(event_ids=[event_id]) if r["handler"].endswith("confirm_order"))
    assert run["attempts"] == 2  # the 503, then the retry that succeeded
    sent = [r for r in fake.requests if r.body and r.body.get("event") == "order_confirmed"]
    keys = {r.body["$idempotency_key"] for r in sent}
    assert len(sent) == 2 and len(keys) == 1  # 503, retry: one key throughout
    assert all(r.signature_ok for r in sent)
    assert len(fake.events_named("order_confirmed")) == 1  # exactly one accepted follow-up
    event = fake.events_named("order_confirmed")[0]
    assert event["distinct_id"] == "user@example.com"
    assert event["properties"]["order_nid"] == payload["reference"]["supr_nid"]
    assert event["properties"]["suprhook_causation"]["event_id"] == event_id
    assert next(iter(keys)).startswith("suprhook-d1-")
    # The event log keeps what each attempt sent and SuprSend's answer (the console's event page shows it).
    recorded = [(f["attempt"], f["event_name"], f["idempotency_key"], f["ok"], f["status_code"])
                for f in store.followups_of(event_id)]
    assert recorded == [(1, "order_confirmed", next(iter(keys)), False, 503),
                        (2, "order_confirmed", next(iter(keys)), True, 202)]


def test_no_reply_cancels(flow):
    server, worker, fake, _ = flow
    r = server.post(reply(" no thanks", "Order Flow", user="+15550000002"))
    worker.wait_runs(r.json()["event_id"], 1, "cancel_order")
    assert wait_until(lambda: fake.events_named("order_cancelled"), 10)


def test_three_step_conversation(flow):
    server, worker, fake, _ = flow
    user = "+15550000003"
    steps = [("hello", "survey_start", "asked_size"), ("l", "survey_size", "asked_address"),
             ("221B Baker Street", "survey_done", None)]
    for text, handler, state in steps:
        r = server.post(reply(text, "Survey", user=user))
        run = worker.wait_runs(r.json()["event_id"], 1, handler)[0]
        assert run.get("state") == state
        time.sleep(0.2)
        # exactly one step ran for this reply, though all three handlers were enqueued for it
        steps_run = [x["handler"] for x in worker.runs(r.json()["event_id"]) if x["handler"].startswith("survey")]
        assert steps_run == [handler]
    done = fake.events_named("survey_completed")[0]["properties"]
    assert (done["started_by"], done["size"], done["address"]) == ("hello", "L", "221B Baker Street")
    r = server.post(reply("again", "Survey", user=user))  # cleared: a new reply starts over
    assert worker.wait_runs(r.json()["event_id"], 1, "survey_start")


def test_concurrent_replies_from_one_user_do_not_lose_an_update(flow):
    server, worker, _, _ = flow
    user = "+15550000004"
    bodies = [reply(f"tap {i}", "Counter", user=user) for i in range(2)]
    responses = []
    threads = [threading.Thread(target=lambda b=b: responses.append(server.post(b))) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r.json()["event_id"] for r in responses]
    runs = [worker.wait_runs(i, 1, "count_replies", timeout=30)[0] for i in ids]
    assert sorted(run["count"] for run in runs) == [1, 2]  # without the lock both would read 0
    assert len({run["pid"] for run in runs}) == 2  # two worker processes took them at the same time


def test_stop_goes_only_to_the_keyword_handler(flow):
    server, worker, fake, _ = flow
    r = server.post(reply("STOP", "Order Flow", user="+15550000005"))
    assert r.status_code == 202
    assert wait_until(lambda: fake.events_named("unsubscribe_requested"), 15)
    time.sleep(0.5)
    assert worker.runs(r.json()["event_id"]) == []  # no probe handler (confirm/cancel) saw it


def test_echo_of_our_own_send_is_not_dispatched(flow):
    server, worker, _, config = flow
    payload = reply("yes", "Order Flow", user="+14444444444")  # sent from our own number (digits match)
    payload["suprsend_inbound_message"]["to"] = "+15550000006"
    r = server.post(payload)
    assert r.status_code == 202
    time.sleep(1.0)
    assert worker.runs(r.json()["event_id"]) == []
    vendor_echo = reply("yes", "Order Flow", user="+15550000007")  # a vendor marking its own echo
    vendor_echo["vendor_response"]["gupshup"]["direction"] = "outbound-api"
    r = server.post(vendor_echo)
    time.sleep(1.0)
    assert r.status_code == 202 and worker.runs(r.json()["event_id"]) == []


def test_conversation_state_expires(tmp_path):
    """State older than the TTL is gone: the next reply starts the flow over (freezegun, in-process)."""
    from suprhook.handlers.stores.conversation import Snapshot
    from suprhook.schemas import load_event

    store = SQLiteConversations(tmp_path / "c.sqlite3", ttl=3600)
    key = conversation_key(load_event(reply("hello", "Survey")))
    with freeze_time("2026-01-01 10:00:00") as clock:
        with store.locked(key) as token:
            store.save(key, Snapshot("asked_size", {"started_by": "hello"}), token)
        clock.tick(3599)
        assert store.load(key).state == "asked_size"
        clock.tick(2)
        assert store.load(key) == Snapshot()


def test_expired_state_routes_the_next_reply_to_the_first_step(tmp_path):
    """The worker's own code path (run_handler), in-process so freezegun can move the clock."""
    import tests.probe_flows as flows
    from suprhook.handlers import on
    from suprhook.compose import worker_runtime
    from suprhook.handlers.worker.tasks import run_handler
    from suprhook.schemas import load_event

    settings = Settings.load(stack_config(tmp_path, None, SUPRHOOK_CONVERSATION_TTL="600",
                                          SUPRHOOK_PROBE_DIR=str(tmp_path)), environ={})
    (tmp_path / "runs.jsonl").touch()
    flows.record.__globals__["PROBE_DIR"] = tmp_path
    handlers = [on.get(f"tests.probe_flows.{n}") for n in ("survey_start", "survey_size", "survey_done")]
    with freeze_time("2026-01-01 10:00:00") as clock:
        first = load_event(reply("hello", "Survey", user="+15550000009"))
        runtime = worker_runtime(settings)
        assert [run_handler(h, first, runtime) for h in handlers] == [True, False, False]
        clock.tick(601)  # the user comes back after the TTL
        late = load_event(reply("M", "Survey", user="+15550000009"))
        assert [run_handler(h, late, runtime) for h in handlers] == [True, False, False]


def test_conversation_data_that_cannot_be_stored_fails_once_and_keeps_the_state(tmp_path):
    """Found in review: data assigned directly (not via set) failed at save, after the handler, and
    the handler re-ran on every retry. Now the run fails permanently and the state is untouched."""
    from suprhook.handlers import PermanentError, Registry
    from suprhook.handlers.stores.conversation import Snapshot
    from suprhook.compose import worker_runtime
    from suprhook.handlers.worker.tasks import run_handler
    from suprhook.schemas import load_event

    def stash(event, conversation):
        conversation.data["when"] = object()

    registry = Registry()
    registry.reply(name="tests.stash")(stash)
    settings = Settings.load(stack_config(tmp_path, None), environ={})
    event = load_event(reply("hi", "Stash"))
    with pytest.raises(PermanentError, match="JSON"):
        run_handler(registry.get("tests.stash"), event, worker_runtime(settings))
    store = open_conversations(settings.conversation_url, 60)
    assert store.load(conversation_key(event)) == Snapshot(None, {}, {event.event_id: None})
