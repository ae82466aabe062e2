"""Exotel: SMS StatusCallback (form fields) and WhatsApp webhooks, end to end."""
from __future__ import annotations


from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



def test_sms_status_delivered_to_handset(receive):
    case = fixture("exotel", "sms_status_delivered")
    event = receive("exotel", case)
    # Status says "sent"; DetailedStatusCode 20000 (DELIVERED_TO_HANDSET) makes it delivered.
    # DateSent is IST: 14:30:45 +05:30 == 09:00:45 UTC.
    assert_vendor(event.vendor, case["payload"], name="exotel", message_id="0b6c6a98f32682862ce6edf1bdab3526",
                  status="sent", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2024, 1, 15, 9, 0, 45), recipient="+919876543210",
                  sender=None, profile_name=None)


def test_sms_status_failed(receive):
    case = fixture("exotel", "sms_status_failed")
    event = receive("exotel", case)
    assert_vendor(event.vendor, case["payload"], name="exotel", message_id="1c7d7b09a43793973df7fee2cebc4637",
                  status="failed", normalized_status=NormalizedStatus.FAILED, error_code="30001",
                  error_message="DLT_ENTITY_NOT_REGISTERED", timestamp=utc(2024, 1, 15, 9, 1, 2),
                  recipient="+919876543210", sender=None, profile_name=None)


def test_sms_unset_date_sent_and_unknown_status_word(receive):
    case = fixture("exotel", "sms_status_failed")
    payload = {**case["payload"], "Status": "some_new_state", "DateSent": "1970-01-01 05:30:00"}
    event = receive("exotel", {**case, "payload": payload})
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.status == "some_new_state"
    assert event.vendor.drift == "status: undocumented word 'some_new_state'"
    assert event.vendor.timestamp is None  # Exotel's "not sent yet" value, epoch 0 in IST


def test_whatsapp_status_delivered(receive):
    case = fixture("exotel", "whatsapp_status_delivered")
    event = receive("exotel", case)
    assert_vendor(event.vendor, case["payload"], name="exotel", message_id="msg_abc123", status="delivered",
                  normalized_status=NormalizedStatus.DELIVERED, error_code=None, error_message=None,
                  timestamp=utc(2025, 1, 15, 10, 30, 5), recipient="+919876543210", sender="+919876500001",
                  profile_name=None)


def test_whatsapp_inbound_text(receive):
    case = fixture("exotel", "whatsapp_inbound_text")
    event = receive("exotel", case)
    ts = utc(2024, 6, 15, 10, 30)
    assert_vendor(event.vendor, case["payload"], name="exotel", message_id="msg_in_001", status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=ts,
                  recipient="your_waba_number", sender="+919876543210", profile_name="John Doe")
    assert_message(event.message, type=MessageType.TEXT, text="Hello, I need help with my order",
                   button_payload=None, button_text=None, media=None, location=None, reply_to=None,
                   from_="+919876543210", to="your_waba_number", timestamp=ts)


def test_whatsapp_inbound_image(receive):
    case = fixture("exotel", "whatsapp_inbound_media")
    event = receive("exotel", case)
    assert_vendor(event.vendor, case["payload"], name="exotel", message_id="msg_in_002", status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None,
                  timestamp=None, recipient=None, sender="+919876543210", profile_name=None)
    assert_message(event.message, type=MessageType.IMAGE, text=None,
                   button_payload=None, button_text=None,
                   media=Media(kind="image", id="media_abc123", mime_type="image/jpeg",
                               caption="Screenshot of the issue", sha256="abc123..."),
                   location=None, reply_to=None, from_="+919876543210", to=None, timestamp=None)


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["exotel"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive("exotel", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert isinstance(event.vendor.drift, str) and event.vendor.drift
    assert event.vendor.raw == case["payload"]
    assert DRIFT["exotel"] == before + 1
