"""The task message's wire event: the worker rebuilds exactly the `Event` the receiver validated, or loads the
raw payload when it cannot (another model version, a damaged message)."""
from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings

from suprhook.handlers.messages import message_event, task_message
from suprhook.schemas import Event, ValidationError, load_event
from suprhook.schemas.samples import VENDOR_SAMPLES, make_inbound_message, make_status_event, supported_statuses
from suprhook.schemas.wire import WIRE_VERSION, from_wire, to_wire

from suprhook.receiver.body import BodyError, decode_json

from .test_fuzz import VENDOR_FIXTURES, mutated_payloads
from .vendors.conftest import webhook


def through_broker(event: Event) -> Event:
    """As a worker gets it: the message through JSON (Celery's serializer), then `message_event`."""
    message = json.loads(json.dumps(task_message(event.event_id, event.raw, event=event)))
    assert message["event"]["w"] == WIRE_VERSION
    return message_event(message)


def samples() -> list[dict]:
    out = []
    for vendor in VENDOR_SAMPLES:
        for channel in ("whatsapp", "sms"):
            out += [make_status_event(status, channel, vendor) for status in supported_statuses(vendor, channel)]
            try:
                out += [make_inbound_message("YES", channel, vendor),
                        make_inbound_message("ok", channel, vendor, button=("CONFIRM", "Confirm"),
                                             in_reply_to="01HZX0000000000000000000")]
            except ValueError:  # this vendor documents no inbound callback on this channel
                pass
    return out + [make_status_event(vendor=None), make_inbound_message(vendor=None)]


@pytest.mark.parametrize("payload", samples() + [webhook(v, p, t) for v, t, p in VENDOR_FIXTURES])
def test_every_sample_and_vendor_fixture_comes_back_equal(payload):
    event = load_event(payload)
    again = through_broker(event)
    assert again == event
    assert again.raw is not None and again.raw == event.raw
    # Equal field by field, types too (an enum stays an enum, a time stays an aware datetime).
    for field in dataclasses.fields(Event):
        assert type(getattr(again, field.name)) is type(getattr(event, field.name)), field.name


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=mutated_payloads())
def test_any_payload_the_receiver_accepts_comes_back_equal(payload):
    try:  # as the receiver parses it
        event = load_event(decode_json(json.dumps(payload).encode("utf-8", "surrogatepass")))
    except (BodyError, ValidationError):
        return  # refused with a 400: never reaches a worker
    assert through_broker(event) == event


def test_another_model_version_is_loaded_from_the_raw_payload():
    event = load_event(make_inbound_message("YES"))
    message = task_message(event.event_id, event.raw, event=event)
    message["event"] = {**message["event"], "w": "an-older-model", "channel": "sms"}
    assert message_event(message) == event  # loaded as received: the stale wire form is ignored


@pytest.mark.parametrize("damage", [
    lambda w: {**w, "vendor": "not a dict"},
    lambda w: {**w, "reference": ["x"]},
    lambda w: {**w, "message": {**w["message"], "type": "no-such-type"}},
    lambda w: {k: v for k, v in w.items() if k != "channel"},
    lambda w: {**w, "timestamp": "yesterday"},
    lambda w: {**w, "event_id": "evt_someone_else"},
])
def test_a_damaged_wire_event_falls_back_to_the_payload(damage):
    event = load_event(make_inbound_message("YES"))
    message = task_message(event.event_id, event.raw, event=event)
    message["event"] = damage(message["event"])
    assert message_event(message) == event


def test_a_message_without_a_wire_event_is_loaded_as_before():
    event = load_event(make_status_event("delivered"))
    assert message_event(task_message(event.event_id, event.raw)) == event  # replay and the sweep send these


def test_from_wire_refuses_what_is_not_a_wire_event():
    with pytest.raises(ValueError):
        from_wire({"event_id": "x"}, {})
    with pytest.raises(ValueError):
        from_wire("nope", {})  # type: ignore[arg-type]


def test_the_wire_form_leaves_out_the_raw_payload_and_the_timeline():
    event = load_event(make_inbound_message("YES"))
    wire = to_wire(event)
    assert "raw" not in wire and "timeline" not in wire
    assert json.loads(json.dumps(wire)) == wire  # JSON types only
