"""Vonage Messages API v1 webhooks and legacy SMS API webhooks, end to end."""
from __future__ import annotations


from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc

BUSINESS, USER = "447700900000", "447700900001"



def test_whatsapp_status_delivered(receive):
    case = fixture("vonage", "status_delivered")
    event = receive("vonage", case)
    assert_vendor(event.vendor, case["payload"], name="vonage", message_id="aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                  status="delivered", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2025, 2, 3, 12, 14, 25), recipient=BUSINESS, sender=USER,
                  profile_name="Jane Smith")


def test_status_rejected_with_error(receive):
    case = fixture("vonage", "status_failed")
    event = receive("nexmo", case)  # the old name is an alias
    assert_vendor(event.vendor, case["payload"], name="vonage", message_id="aaaaaaaa-bbbb-cccc-dddd-0123456789ac",
                  status="rejected", normalized_status=NormalizedStatus.FAILED, error_code="1000",
                  error_message="Throttled - You have exceeded the submission capacity allowed on this account. "
                                "Please wait and retry",
                  timestamp=utc(2025, 2, 3, 12, 14, 30), recipient=BUSINESS, sender=USER, profile_name=None)


def test_inbound_whatsapp_text(receive):
    case = fixture("vonage", "inbound_text")
    event = receive("vonage", case)
    ts = utc(2020, 1, 1, 15, 43, 21)
    assert_vendor(event.vendor, case["payload"], name="vonage", message_id="aaaaaaaa-bbbb-cccc-dddd-0123456789ad",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=BUSINESS, sender=USER, profile_name="Jane Smith")
    assert_message(event.message, type=MessageType.TEXT, text="Hello, world!", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_=USER, to=BUSINESS,
                   timestamp=ts)


def test_inbound_whatsapp_interactive_reply(receive):
    case = fixture("vonage", "inbound_button")
    event = receive("vonage", case)
    ts = utc(2020, 1, 1, 15, 44)
    assert_vendor(event.vendor, case["payload"], name="vonage", message_id="aaaaaaaa-bbbb-cccc-dddd-0123456789ae",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=BUSINESS, sender=USER, profile_name="Jane Smith")
    assert_message(event.message, type=MessageType.INTERACTIVE, text="9am", button_payload="row1",
                   button_text="9am", media=None, location=None, reply_to="aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                   from_=USER, to=BUSINESS, timestamp=ts)


def test_inbound_whatsapp_image(receive):
    case = fixture("vonage", "inbound_media")
    event = receive("vonage", case)
    ts = utc(2020, 1, 1, 15, 45)
    assert_vendor(event.vendor, case["payload"], name="vonage", message_id="aaaaaaaa-bbbb-cccc-dddd-0123456789af",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=BUSINESS, sender=USER, profile_name="Jane Smith")
    assert_message(event.message, type=MessageType.IMAGE, text=None, button_payload=None, button_text=None,
                   media=Media(kind="image", url=case["payload"]["image"]["url"],
                               caption="Alt text accompanying the image"),
                   location=None, reply_to=None, from_=USER, to=BUSINESS, timestamp=ts)


def test_legacy_sms_delivery_receipt_failed(receive):
    case = fixture("vonage", "sms_status_failed")
    event = receive("vonage", case)
    assert_vendor(event.vendor, case["payload"], name="vonage", message_id="0A0000001234567B", status="failed",
                  normalized_status=NormalizedStatus.FAILED, error_code="6", error_message="Anti-Spam Rejection",
                  timestamp=utc(2020, 1, 1, 12), recipient=BUSINESS, sender="AcmeInc", profile_name=None)


def test_legacy_inbound_sms(receive):
    case = fixture("vonage", "sms_inbound_text")
    event = receive("vonage", case)
    ts = utc(2020, 1, 1, 12)
    assert_vendor(event.vendor, case["payload"], name="vonage", message_id="0A0000000123ABCD1", status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=ts,
                  recipient=BUSINESS, sender=USER, profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="Hello world", button_payload=None, button_text=None,
                   media=None, location=None, reply_to=None, from_=USER, to=BUSINESS, timestamp=ts)


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["vonage"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}  # neither message_uuid nor messageId
    event = receive("vonage", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert isinstance(event.vendor.drift, str) and event.vendor.drift
    assert event.vendor.raw == case["payload"]
    assert DRIFT["vonage"] == before + 1


def test_inbound_file_keeps_its_name_as_the_filename(receive):
    """Found in review: Vonage's `file.name` was not mapped to `media.filename`."""
    case = fixture("vonage", "inbound_file")
    event = receive("vonage", case)
    ts = utc(2020, 1, 1, 15, 43, 21)
    assert_vendor(event.vendor, case["payload"], name="vonage", message_id="aaaaaaaa-bbbb-cccc-dddd-0123456789b0",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None,
                  timestamp=ts, recipient=BUSINESS, sender=USER, profile_name=None)
    assert_message(event.message, type=MessageType.DOCUMENT, text=None, button_payload=None, button_text=None,
                   media=Media(kind="document", url="https://www.example.org/path/to/attachment.zip",
                               caption="Here's your archive", filename="attachment.zip"),
                   location=None, reply_to=None, from_=USER, to=BUSINESS, timestamp=ts)


def test_messages_callback_with_neither_status_nor_message_type_drifts(receive):
    payload = {"message_uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789b2", "to": BUSINESS, "from": USER}
    for event_type in ("status", "inbound_message"):
        event = receive("vonage", {"event_type": event_type, "payload": payload})
        assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN and event.vendor.drift
