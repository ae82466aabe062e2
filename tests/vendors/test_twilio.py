"""Twilio status callbacks and incoming-message webhooks (form fields forwarded as a JSON object), end to end.

Twilio's messaging callbacks carry no event time, so every vendor/message timestamp here is None.
"""
from __future__ import annotations

from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture

TWILIO_WA, USER = "+14155238886", "+15558675310"


def test_whatsapp_status_delivered(receive):
    case = fixture("twilio", "status_delivered")
    event = receive("twilio", case)
    assert_vendor(event.vendor, case["payload"], name="twilio", message_id="SM" + "3f" * 16, status="delivered",
                  normalized_status=NormalizedStatus.DELIVERED, error_code=None, error_message=None, timestamp=None,
                  recipient=USER, sender=TWILIO_WA, profile_name=None)  # `whatsapp:` channel prefix dropped


def test_sms_status_undelivered_with_error_code(receive):
    case = fixture("twilio", "status_failed")
    event = receive("twilio", case)
    assert_vendor(event.vendor, case["payload"], name="twilio", message_id="SM" + "7e" * 16, status="undelivered",
                  normalized_status=NormalizedStatus.UNDELIVERED, error_code="30003",
                  error_message="Unreachable destination handset", timestamp=None, recipient=USER,
                  sender="+15017122661", profile_name=None)


def test_inbound_sms_text(receive):
    case = fixture("twilio", "inbound_text")
    event = receive("twilio", case)
    assert_vendor(event.vendor, case["payload"], name="twilio", message_id="SM" + "9a" * 16, status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=None,
                  recipient="+15017122661", sender=USER, profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="Yes, see you at 5", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_=USER, to="+15017122661",
                   timestamp=None)


def test_inbound_whatsapp_quick_reply_button(receive):
    case = fixture("twilio", "inbound_button")
    event = receive("twilio_whatsapp", case)
    assert_vendor(event.vendor, case["payload"], name="twilio", message_id="SM" + "c4" * 16, status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=None,
                  recipient=TWILIO_WA, sender=USER, profile_name="Maria")
    assert_message(event.message, type=MessageType.BUTTON, text="Confirm", button_payload="confirm_booking_42",
                   button_text="Confirm", media=None, location=None, reply_to="SM" + "3f" * 16, from_=USER,
                   to=TWILIO_WA, timestamp=None)


def test_inbound_whatsapp_image(receive):
    case = fixture("twilio", "inbound_media")
    event = receive("twilio", case)
    assert_vendor(event.vendor, case["payload"], name="twilio", message_id="MM" + "d2" * 16, status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=None,
                  recipient=TWILIO_WA, sender=USER, profile_name="Maria")
    assert_message(event.message, type=MessageType.IMAGE, text=None, button_payload=None, button_text=None,
                   media=Media(kind="image", url=case["payload"]["MediaUrl0"], mime_type="image/jpeg",
                               caption="Here is the receipt"),
                   location=None, reply_to=None, from_=USER, to=TWILIO_WA, timestamp=None)


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["twilio"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}  # no MessageSid / SmsSid
    event = receive("twilio", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert isinstance(event.vendor.drift, str) and event.vendor.drift
    assert event.vendor.raw == case["payload"]
    assert DRIFT["twilio"] == before + 1
