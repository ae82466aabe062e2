"""Gupshup: enterprise format (SuprSend's samples) and self-serve v2 format, end to end."""
from __future__ import annotations

import copy

import pytest

from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



def test_enterprise_status_delivered(receive):
    case = fixture("gupshup", "enterprise_status_delivered")
    event = receive("gupshup", case)
    assert_vendor(event.vendor, case["payload"], name="gupshup",
                  message_id="4804988740932718661-lap5NefpkeN4gKyi8CiM-01GNEQZ6F4JZF1BAK9CDXYD4T4",
                  status="DELIVERED", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2022, 12, 29, 10, 48, 43), recipient="15555555555",
                  sender="TESTSM", profile_name=None)


def test_enterprise_status_failed(receive):
    case = fixture("gupshup", "enterprise_status_failed")
    event = receive("gupshup", case)
    assert_vendor(event.vendor, case["payload"], name="gupshup",
                  message_id="4804988740932718662-lap5NefpkeN4gKyi8CiM-01GNEQZ6F4JZF1BAK9CDXYD4T5",
                  status="FAILED", normalized_status=NormalizedStatus.FAILED, error_code="005",
                  error_message="UNKNOWN_SUBSCRIBER", timestamp=utc(2022, 12, 29, 10, 48, 45),
                  recipient="15555555555", sender="TESTSM", profile_name=None)


def test_enterprise_inbound_text(receive):
    case = fixture("gupshup", "enterprise_inbound_text")
    event = receive("gupshup", case)
    ts = utc(2023, 5, 12, 13, 32, 57)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="4902186086570803293",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="+14444444444", sender="+15555555555",
                  profile_name="Joe")
    # `context` arrives as a JSON *string* in the vendor dict: still resolved to reply_to.
    assert_message(event.message, type=MessageType.TEXT, text="Hi", button_payload=None, button_text=None,
                   media=None, location=None, reply_to="gBEGkZMmKUh5AglyguZOxeyE6Xc", from_="+15555555555",
                   to="+14444444444", timestamp=ts)
    assert event.message.reply_to_nid == event.reference.supr_nid  # from source_message_id


def test_v2_status_read(receive):
    case = fixture("gupshup", "v2_status_read")
    event = receive("gupshup", case)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="ee4a68a0-1203-4c85-8dc3-49d0b3226a35",
                  status="read", normalized_status=NormalizedStatus.READ, error_code=None, error_message=None,
                  timestamp=utc(2020, 3, 27, 21, 27, 55), recipient="918x98xx21x4", sender=None,
                  profile_name=None)


def test_v2_status_failed(receive):
    case = fixture("gupshup", "v2_status_failed")
    event = receive("gupshup", case)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="59f8db90-c37e-4408-90ab-cc54ef8246ad",
                  status="failed", normalized_status=NormalizedStatus.FAILED, error_code="1002",
                  error_message="Number Does Not Exists On WhatsApp", timestamp=utc(2020, 2, 1, 8, 44, 37, 791000),
                  recipient="918x98xx21x4", sender=None, profile_name=None)


def test_v2_inbound_text_reply(receive):
    case = fixture("gupshup", "v2_inbound_text")
    event = receive("gupshup", case)
    ts = utc(2020, 5, 30, 16, 1, 4, 792000)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="ABEGkYaYVSEEAgo-sMx1DoUoQJRW",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender="918x98xx21x4", profile_name="Jacob")
    assert_message(event.message, type=MessageType.TEXT, text="hi", button_payload=None, button_text=None,
                   media=None, location=None, reply_to="gBEGkYaYVSEEAgnPFrOLcjkFjL8", from_="918x98xx21x4",
                   to=None, timestamp=ts)


def test_v2_inbound_quick_reply_button(receive):
    case = fixture("gupshup", "v2_inbound_button")
    event = receive("gupshup", case)
    ts = utc(2024, 4, 4, 11, 37, 44, 720000)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="ABEGkYaYVSEEAgo-sMx1DoUoQJRX",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender="918x98xx21x4", profile_name="Gerald")
    assert_message(event.message, type=MessageType.BUTTON, text="Yes, confirm", button_payload="CONFIRM_ORDER",
                   button_text="Yes, confirm", media=None, location=None, reply_to="gBEGkYaYVSEEAgnPFrOLcjkFjL9",
                   from_="918x98xx21x4", to=None, timestamp=ts)


def test_v2_inbound_image(receive):
    case = fixture("gupshup", "v2_inbound_media")
    event = receive("gupshup", case)
    ts = utc(2020, 1, 28, 16, 9, 26, 370000)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="ABEGkYaYVSEEAhAL3SLAWwHKeKrt6s3FKB0d",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender="918x98xx21x4", profile_name="Andy")
    assert_message(event.message, type=MessageType.IMAGE, text=None, button_payload=None, button_text=None,
                   media=Media(kind="image", url="https://filemanager.gupshup.io/fm/wamedia/demobot1/"
                               "36623b99-5844-4195-b3a8-3e4f6d2b8e8b", mime_type="image/jpeg",
                               caption="the receipt"),
                   location=None, reply_to=None, from_="918x98xx21x4", to=None, timestamp=ts)


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["gupshup"]
    case = {"event_type": "status", "payload": {"response": "not a list of reports"}}
    event = receive("gupshup", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift and event.vendor.raw == case["payload"]
    assert DRIFT["gupshup"] == before + 1


# -- issue 11: no dict of an unknown shape is ever a reply; real v2 payloads from an open-source client's tests --


@pytest.mark.parametrize("payload", [{}, {"foo": "bar"}, {"status": "delivered", "id": "x"},
                                     {"messageId": "abc", "timestamp": "1683898377000"}, [], "text"])
def test_status_of_no_documented_shape_drifts_instead_of_being_a_reply(receive, payload):
    """Found in review: a status whose vendor_response matched no shape was normalized as `replied`."""
    before = DRIFT["gupshup"]
    event = receive("gupshup", {"event_type": "status", "payload": payload})
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift and event.vendor.raw == payload
    assert DRIFT["gupshup"] == before + 1


def test_v2_user_event_drifts_instead_of_being_a_reply(receive):
    case = fixture("gupshup", "v2_user_event_opted_in")
    event = receive("gupshup", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift == "fields: type" and event.vendor.raw == case["payload"]


def test_v2_message_event_without_its_status_word_drifts(receive):
    case = fixture("gupshup", "v2_status_delivered")
    payload = copy.deepcopy(case["payload"])
    del payload["payload"]["type"]
    event = receive("gupshup", {**case, "payload": payload})
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN and event.vendor.drift


def test_v2_status_enqueued_real_payload(receive):
    case = fixture("gupshup", "v2_status_enqueued")
    event = receive("gupshup", case)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="59f8db90-c37e-4408-90ab-cc54ef8246ad",
                  status="enqueued", normalized_status=NormalizedStatus.QUEUED, error_code=None, error_message=None,
                  timestamp=utc(2020, 2, 1, 8, 44, 37, 791000), recipient="123456789", sender=None,
                  profile_name=None)


def test_v2_status_delivered_real_payload(receive):
    case = fixture("gupshup", "v2_status_delivered")
    event = receive("gupshup", case)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="ee4a68a0-1203-4c85-8dc3-49d0b3226a35",
                  status="delivered", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2020, 3, 27, 21, 27, 56), recipient="123456789", sender=None,
                  profile_name=None)


def test_v2_status_failed_real_payload(receive):
    case = fixture("gupshup", "v2_status_failed_not_opted_in")
    event = receive("gupshup", case)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="ee4a68a0-1203-4c85-8dc3-49d0b3226a35",
                  status="failed", normalized_status=NormalizedStatus.FAILED, error_code="1008",
                  error_message="User is not Opted in and Inactive", timestamp=utc(2020, 1, 29, 15, 18, 56, 40000),
                  recipient="123456789", sender=None, profile_name=None)


def test_v2_template_quick_reply_sent_as_text_is_a_button(receive):
    """A real v2 template quick-reply tap: `type: "text"` with `payload.type: "button"` (no postbackText)."""
    case = fixture("gupshup", "v2_inbound_template_button_as_text")
    event = receive("gupshup", case)
    ts = utc(2020, 5, 30, 16, 1, 4, 792000)
    assert_vendor(event.vendor, case["payload"], name="gupshup", message_id="ABEGkYaYVSEEAgo-sMx1DoUoQJRW",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender="57123456789", profile_name="Smit")
    assert_message(event.message, type=MessageType.BUTTON, text="View Account Balance", button_payload=None,
                   button_text="View Account Balance", media=None, location=None,
                   reply_to="gBEGkYaYVSEEAgnPFrOLcjkFjL8", from_="57123456789", to=None, timestamp=ts)
