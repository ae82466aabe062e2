"""The follow-up client against the fake SuprSend API over real HTTP: keys, validation, failures."""
from __future__ import annotations

import time

import pytest

from suprhook.handlers import Settings
from suprhook.handlers.integrations.followup import (Followup, FollowupError, FollowupLoopError, FollowupUnavailable,
                                                     depth_of)
from suprhook.schemas import load_event

from .conftest import make_inbound
from .fake_suprsend import FakeSuprsend


@pytest.fixture
def fake():
    server = FakeSuprsend().start()
    yield server
    server.stop()


def settings_for(fake: FakeSuprsend, **overrides) -> Settings:
    config = {"SUPRSEND_WORKSPACE_KEY": fake.workspace_key, "SUPRSEND_WORKSPACE_SECRET": fake.workspace_secret,
              "SUPRSEND_BASE_URL": fake.url, "SUPRSEND_TIMEOUT": "2", **overrides}
    return Settings.load(config, environ={})


def followup(fake, payload=None, handler="tests.h", **overrides) -> Followup:
    return Followup(load_event(payload or make_inbound("YES")), handler, settings_for(fake, **overrides))


def test_track_event_is_signed_and_keyed(fake):
    result = followup(fake).track_event("user-1", "order_confirmed", {"order": "A-1"})
    assert result == {"success": True, "status": "success", "status_code": 202,
                      "message": result["message"]}
    assert result["message"].startswith("msg-")
    request = fake.requests[-1]
    assert request.signature_ok and request.path == "/v2/event/"
    sent = request.body
    assert sent["event"] == "order_confirmed" and sent["distinct_id"] == "user-1"
    assert sent["$idempotency_key"].startswith("suprhook-d1-")
    assert sent["properties"]["order"] == "A-1"
    assert sent["properties"]["suprhook_causation"]["depth"] == 1


def test_wrong_secret_is_refused_by_the_fake(fake):
    bad = Followup(load_event(make_inbound()), "h", settings_for(fake, SUPRSEND_WORKSPACE_SECRET="wrong"))
    result = bad.track_event("user-1", "order_confirmed")
    assert result["success"] is False and result["status_code"] == 401 and not fake.requests[-1].signature_ok


def test_default_key_is_deterministic_per_event_handler_and_arguments(fake):
    payload = make_inbound("YES")
    keys = set()
    for _ in range(2):  # the same event processed twice (a retry, a redelivery)
        followup(fake, payload).track_event("user-1", "order_confirmed", {"order": "A-1"})
        keys.add(fake.requests[-1].body["$idempotency_key"])
    assert len(keys) == 1 and len(fake.processed) == 1
    followup(fake, payload).track_event("user-1", "order_confirmed", {"order": "A-2"})  # other arguments
    followup(fake, payload, handler="tests.other").track_event("user-1", "order_confirmed", {"order": "A-1"})
    followup(fake, make_inbound("YES")).track_event("user-1", "order_confirmed", {"order": "A-1"})  # other event
    assert len(fake.processed) == 4


def test_caller_key_is_trimmed_and_bounded(fake):
    client = followup(fake)
    client.track_event("user-1", "some_event", idempotency_key="  order-A-1  ")
    assert fake.requests[-1].body["$idempotency_key"] == "order-A-1"
    with pytest.raises(FollowupError, match="255"):
        client.track_event("user-1", "some_event", idempotency_key="k" * 256)
    with pytest.raises(FollowupError, match="255"):
        client.track_event("user-1", "some_event", idempotency_key="   ")


@pytest.mark.parametrize("call, message", [
    (lambda f: f.track_event("user-1", "$identify"), "reserves"),
    (lambda f: f.track_event("user-1", "ss_internal"), "reserves"),
    (lambda f: f.track_event("user-1", "SS_upper"), "reserves"),
    (lambda f: f.track_event("user-1", "ok", {"$time": 1}), "property name"),
    (lambda f: f.track_event("user-1", "ok", {"ss_flag": 1}), "property name"),
    (lambda f: f.track_event("", "ok"), "distinct_id"),
    (lambda f: f.track_event("user-1", "ok", attachments=["file:///etc/passwd"]), "http"),
    (lambda f: f.track_event("user-1", "ok", attachments=["/tmp/invoice.pdf"]), "http"),
    (lambda f: f.track_event("user-1", "ok", attachments=["http://127.0.0.1/x.pdf"]), "publicly"),
    (lambda f: f.track_event("user-1", "ok", attachments=["http://10.1.2.3/x.pdf"]), "publicly"),
    (lambda f: f.track_event("user-1", "ok", attachments=["https://localhost/x.pdf"]), "publicly"),
    (lambda f: f.track_event("user-1", "ok", {"blob": "x" * (100 * 1024)}), "limit is 102400"),
])
def test_validation_errors_are_raised_before_sending(fake, call, message):
    with pytest.raises(FollowupError, match=message):
        call(followup(fake))
    assert fake.requests == []


def test_public_attachment_and_size_limit_is_configurable(fake):
    client = followup(fake, SUPRHOOK_FOLLOWUP_MAX_BYTES="200000")
    client.track_event("user-1", "invoice_generated", {"blob": "x" * (100 * 1024)},
                       attachments=["https://www.example.com/sample_file.pdf"])
    attachment = fake.requests[-1].body["properties"]["$attachments"][0]
    assert attachment["url"] == "https://www.example.com/sample_file.pdf"


def test_5xx_and_429_are_transient_4xx_is_returned(fake):
    client = followup(fake)
    for status in (503, 500, 429):
        fake.fail_next = [status]
        with pytest.raises(FollowupUnavailable) as info:
            client.track_event("user-1", "some_event", {"n": status})
        assert info.value.result["status_code"] == status
    fake.fail_next = [400]
    result = client.track_event("user-1", "some_event", {"n": 400})
    assert result == {"success": False, "status": "fail", "status_code": 400, "message": "planned 400"}


def test_a_slow_suprsend_hits_the_timeout(fake):
    fake.delay = 1.5
    client = followup(fake, SUPRSEND_TIMEOUT="0.3")
    started = time.monotonic()
    with pytest.raises(FollowupUnavailable, match="500"):  # the SDK reports a transport error as 500
        client.track_event("user-1", "some_event")
    assert time.monotonic() - started < 1.2


def test_unreachable_suprsend_is_transient():
    settings = Settings.load({"SUPRSEND_WORKSPACE_KEY": "unreachableWorkspace", "SUPRSEND_WORKSPACE_SECRET": "secret",
                              "SUPRSEND_BASE_URL": "http://127.0.0.1:9/"}, environ={})
    with pytest.raises(FollowupUnavailable):
        Followup(load_event(make_inbound()), "h", settings).track_event("user-1", "some_event")


def test_bulk_partial_failure(fake):
    fake.reject_event_names = {"refused_event"}
    result = followup(fake).bulk([
        {"distinct_id": "u1", "event_name": "order_confirmed", "properties": {"n": 1}},
        {"distinct_id": "u2", "event_name": "refused_event"},
        {"distinct_id": "u3", "event_name": "order_confirmed", "properties": {"n": 3}},
    ])
    assert (result["status"], result["total"], result["success"], result["failure"]) == ("partial", 3, 2, 1)
    assert result["failed_records"][0]["code"] == 400 and "refused" in result["failed_records"][0]["error"]
    assert result["warnings"] == []
    assert fake.requests[-1].path == "/v2/bulk/event/" and fake.requests[-1].signature_ok
    keys = [e["$idempotency_key"] for e in fake.requests[-1].body]
    assert len(set(keys)) == 3 and all(k.startswith("suprhook-d1-") for k in keys)


def test_bulk_with_a_transient_failure_raises_for_retry(fake):
    fake.fail_next = [503]
    with pytest.raises(FollowupUnavailable):
        followup(fake).bulk([{"distinct_id": "u1", "event_name": "order_confirmed"}])


def test_bulk_validates_every_record(fake):
    with pytest.raises(FollowupError, match="reserves"):
        followup(fake).bulk([{"distinct_id": "u1", "event_name": "ok"}, {"distinct_id": "u2", "event_name": "$x"}])
    with pytest.raises(FollowupError, match="unknown follow-up fields"):
        followup(fake).bulk([{"distinct_id": "u1", "event_name": "ok", "propertys": {}}])
    assert fake.requests == []


def test_chain_depth_comes_back_through_the_idempotency_key_and_stops(fake):
    client = followup(fake)
    client.track_event("user-1", "order_confirmed")
    key = fake.requests[-1].body["$idempotency_key"]
    # SuprSend's webhook about the notification that follow-up caused carries our key as reference.
    reply = make_inbound("YES")
    reply["reference"]["idempotency_key"] = key
    assert depth_of(load_event(reply)) == 1
    second = Followup(load_event(reply), "tests.h", settings_for(fake, SUPRHOOK_FOLLOWUP_MAX_DEPTH="2"))
    second.track_event("user-1", "again")
    assert fake.requests[-1].body["$idempotency_key"].startswith("suprhook-d2-")
    third_reply = make_inbound("YES")
    third_reply["reference"]["idempotency_key"] = fake.requests[-1].body["$idempotency_key"]
    third = Followup(load_event(third_reply), "tests.h", settings_for(fake, SUPRHOOK_FOLLOWUP_MAX_DEPTH="2"))
    with pytest.raises(FollowupLoopError, match="3 deep"):
        third.track_event("user-1", "and_again")


@pytest.mark.parametrize("properties", [{"at": __import__("datetime").datetime(2026, 1, 1)}, {"tags": {1, 2}},
                                        {1: "int key", "a": "str key"}, {"x": float("nan")}])
def test_properties_that_are_not_json_are_a_followup_error_not_a_retry(fake, properties):
    with pytest.raises(FollowupError, match="plain JSON|property name must be"):
        followup(fake).track_event("user-1", "order_confirmed", properties)
    assert fake.requests == []
