"""Schemas: the seed payloads, every inbound message kind, unknown fields kept, errors by path."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from suprhook.schemas import ValidationError, derive_event_id, flatten_errors, load_event

from .conftest import SEED_INBOUND, SEED_STATUS, make_inbound, make_status


def test_seed_status_loads():
    event = load_event(copy.deepcopy(SEED_STATUS))
    assert (event.channel, event.event_type, event.status) == ("whatsapp", "status", "delivered")
    assert event.channel_value == "+15555555555" and event.distinct_id == "user@example.com"
    assert event.timestamp == datetime(2022, 12, 29, 10, 48, 43, tzinfo=timezone.utc)
    assert event.timestamp.tzinfo is timezone.utc
    assert event.reference.supr_nid == event.supr_nid == "01GNEQZ6F4JZF1BAK9CDXYD4T4"
    assert event.reference.workspace_uid == "lap5XXXXXXXXXXX"
    assert (event.workflow_name, event.template, event.vendor_name, event.version) == \
        ("Purchase Made", "purchase-made", "gupshup", "1.0")
    assert event.vendor_response["gupshup"]["response"][0]["eventType"] == "DELIVERED"
    assert event.message is None and event.is_status and not event.is_inbound
    assert event.raw == SEED_STATUS


def test_seed_inbound_quoted_reply_loads():
    event = load_event(copy.deepcopy(SEED_INBOUND))
    msg = event.message
    assert event.is_inbound and event.status is None
    assert (msg.type, msg.message_type, msg.text) == ("text", "quoted", "Hi")
    assert (msg.from_, msg.to) == ("+15555555555", "+14444444444")
    assert msg.context == {"from": "+14444444444", "id": "gBEGkZMmKUh5AglyguZOxeyE6Xc"}
    assert msg.reply_to == "gBEGkZMmKUh5AglyguZOxeyE6Xc"
    assert msg.source_message_id == "lap5XXXXXXXXXXX-01H08212QETNQ7J71B42V3XVKD"
    assert msg.source_message_sent_via_suprsend is True
    assert msg.timestamp == event.timestamp == datetime(2023, 5, 12, 13, 32, 57, tzinfo=timezone.utc)


# The shapes below are WhatsApp Cloud API message objects ("Webhooks > messages", developers.facebook.com/
# docs/whatsapp/cloud-api/webhooks/components), which suprsend_inbound_message mirrors
# (type, text.body, context.from/id); SuprSend's own page shows only the text sample.
@pytest.mark.parametrize("part, check", [
    ({"type": "button", "button": {"payload": "CONFIRM_ORDER", "text": "Yes"}},
     lambda m: (m.button_payload, m.button_text, m.text) == ("CONFIRM_ORDER", "Yes", "Yes")),
    ({"type": "interactive", "interactive": {"type": "button_reply",
                                             "button_reply": {"id": "btn-no", "title": "No"}}},
     lambda m: (m.button_payload, m.text) == ("btn-no", "No")),
    ({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {
        "id": "slot-2", "title": "Tuesday", "description": "10:00"}}},
     lambda m: (m.button_payload, m.text) == ("slot-2", "Tuesday")),
    ({"type": "image", "image": {"id": "media-1", "mime_type": "image/jpeg", "sha256": "abc",
                                 "caption": "the receipt"}},
     lambda m: (m.media.kind, m.media.id, m.media.caption, m.text) == ("image", "media-1", "the receipt", None)),
    ({"type": "document", "document": {"id": "d1", "filename": "invoice.pdf", "mime_type": "application/pdf"}},
     lambda m: (m.media.kind, m.media.filename) == ("document", "invoice.pdf")),
    ({"type": "audio", "audio": {"id": "a1", "mime_type": "audio/ogg; codecs=opus"}},
     lambda m: m.media.kind == "audio"),
    ({"type": "location", "location": {"latitude": 12.9, "longitude": 77.6, "name": "Office"}},
     lambda m: m.location["name"] == "Office"),
    ({"type": "text", "text": "plain SMS text"}, lambda m: m.text == "plain SMS text"),
    ({"type": "text", "text": {"body": "Hi"}, "context": '{"from": "+1", "id": "wamid.X"}'},
     lambda m: m.reply_to == "wamid.X"),
])
def test_inbound_message_kinds_load(part, check):
    payload = make_inbound(vendor_response=None)  # SuprSend's part alone, no vendor dict to fill gaps
    message = payload["suprsend_inbound_message"]
    for key in ("text", "context", "message_type"):
        message.pop(key, None)
    message.update(part)
    assert check(load_event(payload).message)


def test_unknown_fields_are_kept_not_rejected():
    payload = make_status(brand_new_field={"x": 1})
    payload["reference"]["tenant_id"] = "t-1"
    payload["suprsend_status"]["reason"] = "n/a"
    payload["suprsend_status"]["status"] = "dismissed_by_vendor"
    event = load_event(payload)
    assert event.extra == {"brand_new_field": {"x": 1}}
    assert event.reference.extra == {"tenant_id": "t-1"}
    assert event.status == "dismissed_by_vendor"
    assert event.raw["suprsend_status"]["reason"] == "n/a"


@pytest.mark.parametrize("channel", ["sms", "email", "androidpush", "iospush", "webpush", "slack",
                                     "ms_teams", "inbox", "carrier_pigeon"])
def test_every_channel_and_unknown_channels_load(channel):
    assert load_event(make_status(channel=channel)).channel == channel


def test_unknown_event_type_needs_only_the_envelope():
    payload = {"channel": "whatsapp", "event_type": "typing_indicator", "distinct_id": 42}
    event = load_event(payload)
    assert (event.event_type, event.distinct_id, event.status, event.message) == \
        ("typing_indicator", "42", None, None)


def test_numeric_string_timestamp_and_nulls():
    payload = make_status()
    payload["suprsend_status"]["timestamp"] = "1672310923000"
    payload.update(template=None, workflow_name=None, vendor_response=None, reference=None)
    event = load_event(payload)
    assert event.timestamp.year == 2022 and event.template is None
    assert event.reference.supr_nid is None  # an empty Reference, never None


def test_errors_flatten_to_dotted_paths():
    with pytest.raises(ValidationError) as info:
        load_event({"channel": "whatsapp", "event_type": "status",
                    "suprsend_status": {"timestamp": True}, "reference": {"supr_nid": []}})
    assert flatten_errors(info.value.messages) == {
        "reference.supr_nid": ["Not a valid string."],
        "suprsend_status.status": ["Missing data for required field."],
        "suprsend_status.timestamp": ["Not a valid millisecond timestamp."],
    }


def test_event_id_is_stable_and_tells_events_apart():
    status = make_status("sent", nid="n1")
    assert derive_event_id(status) == derive_event_id(copy.deepcopy(status))
    reordered = dict(reversed(list(status.items())))
    assert derive_event_id(reordered) == derive_event_id(status)
    assert derive_event_id(make_status("delivered", nid="n1")) != derive_event_id(status)
    assert derive_event_id(make_status("sent", nid="n2")) != derive_event_id(status)
    # Same idempotency_key (one notification), different status -> different events.
    a, b = make_status("sent", nid="n1"), make_status("seen", nid="n1")
    assert a["reference"]["idempotency_key"] == b["reference"]["idempotency_key"]
    assert derive_event_id(a) != derive_event_id(b)
    # Two replies to the same notification are two events; one reply redelivered is one.
    r1, r2 = make_inbound("yes", ts=1), make_inbound("yes", ts=2)
    assert derive_event_id(r1) != derive_event_id(r2)
    assert derive_event_id(r1) == derive_event_id(copy.deepcopy(r1))
    assert derive_event_id(make_inbound("no", ts=1)) != derive_event_id(r1)
    assert load_event(status).event_id == derive_event_id(status)
