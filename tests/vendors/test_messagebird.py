"""MessageBird / Bird: SMS status reports, Conversations API webhooks, Bird Channels webhooks, end to end."""
from __future__ import annotations


import pytest

from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



@pytest.mark.parametrize("vendor_name", ["messagebird", "bird"])
def test_sms_status_delivered(receive, vendor_name):
    case = fixture("messagebird", "sms_status_delivered")
    event = receive(vendor_name, case)
    assert_vendor(event.vendor, case["payload"], name="messagebird", message_id="e8077d803532c0b5937c639b60216938",
                  status="delivered", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2016, 5, 3, 8, 58, 10), recipient="31612345678", sender=None,
                  profile_name=None)


def test_sms_status_failed(receive):
    case = fixture("messagebird", "sms_status_failed")
    event = receive("messagebird", case)
    assert_vendor(event.vendor, case["payload"], name="messagebird", message_id="e8077d803532c0b5937c639b60216939",
                  status="delivery_failed", normalized_status=NormalizedStatus.FAILED, error_code="1",
                  error_message="unknown subscriber", timestamp=utc(2016, 5, 3, 8, 58, 12),
                  recipient="31612345678", sender=None, profile_name=None)


def test_conversations_status_delivered(receive):
    case = fixture("messagebird", "conversations_status_delivered")
    event = receive("messagebird", case)
    assert_vendor(event.vendor, case["payload"], name="messagebird", message_id="2b7a5ad1e2d84c27b4b8f8b7f4b3a3c1",
                  status="delivered", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2019, 3, 1, 10, 45, 3), recipient="+31612345678",
                  sender="+31201234567", profile_name=None)


def test_conversations_inbound_whatsapp_text(receive):
    case = fixture("messagebird", "conversations_inbound_text")
    event = receive("messagebird", case)
    ts = utc(2019, 3, 1, 10, 40, 2, 871436)
    assert_vendor(event.vendor, case["payload"], name="messagebird", message_id="ad3e5ddb1fa24f2a9d9bd2c4e6fe1bab",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="+31201234567", sender="+31612345678",
                  profile_name="Jane Doe")
    assert_message(event.message, type=MessageType.TEXT, text="Testing webhook functionality.", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_="+31612345678",
                   to="+31201234567", timestamp=ts)


def test_conversations_inbound_whatsapp_image(receive):
    case = fixture("messagebird", "conversations_inbound_media")
    event = receive("messagebird", case)
    ts = utc(2019, 3, 1, 11, 2, 10)
    assert_vendor(event.vendor, case["payload"], name="messagebird", message_id="5f2c8e9d0a1b4c3d8e7f6a5b4c3d2e1f",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="+31201234567", sender="+31612345678",
                  profile_name="Jane Doe")
    assert_message(event.message, type=MessageType.IMAGE, text=None, button_payload=None, button_text=None,
                   media=Media(kind="image", url="https://media.messagebird.com/v1/media/"
                               "4f0ba1cc-2b45-4c7c-8a4b-5e3d2a1b9c8d", caption="the receipt"),
                   location=None, reply_to=None, from_="+31612345678", to="+31201234567", timestamp=ts)


def test_bird_channels_inbound_whatsapp_text(receive):
    case = fixture("messagebird", "bird_channels_inbound_text")
    event = receive("bird", case)
    ts = utc(2023, 12, 13, 19, 34, 1, 858000)
    assert_vendor(event.vendor, case["payload"], name="bird", message_id="404544c5-9920-45f1-8990-0855634ab7ac",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender="+3511111111", profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="Test", button_payload=None, button_text=None,
                   media=None, location=None, reply_to=None, from_="+3511111111", to=None, timestamp=ts)


def test_unknown_status_word_is_unknown_and_drift(receive):
    case = fixture("messagebird", "sms_status_delivered")
    case["payload"] = {**case["payload"], "status": "teleported"}
    event = receive("messagebird", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.status == "teleported"
    assert event.vendor.drift == "status: undocumented word 'teleported'"


@pytest.mark.parametrize("vendor_name", ["messagebird", "bird"])
def test_drift_is_recorded_and_the_event_still_dispatched(receive, vendor_name):
    before = DRIFT[vendor_name]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive(vendor_name, case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift and event.vendor.raw == case["payload"]
    assert DRIFT[vendor_name] == before + 1
