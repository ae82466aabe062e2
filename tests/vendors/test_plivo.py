"""Plivo: status callbacks and inbound SMS/MMS/WhatsApp messages (form fields as a dict), end to end."""
from __future__ import annotations


from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



def test_status_delivered(receive):
    case = fixture("plivo", "status_delivered")
    event = receive("plivo", case)
    assert_vendor(event.vendor, case["payload"], name="plivo", message_id="3a1f7b3c-6f2e-11ee-9a6b-0242ac110004",
                  status="delivered", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2024, 3, 5, 10, 15, 35, 456789), recipient="14155550100",
                  sender="14155550199", profile_name=None)
    assert event.message is None


def test_status_read_whatsapp(receive):
    case = fixture("plivo", "status_read")
    event = receive("plivo_whatsapp", case)
    assert_vendor(event.vendor, case["payload"], name="plivo", message_id="5b2e8c4d-6f2e-11ee-9a6b-0242ac110005",
                  status="read", normalized_status=NormalizedStatus.READ, error_code=None, error_message=None,
                  timestamp=utc(2024, 3, 5, 10, 20, 1), recipient="14155550100", sender="14155550199",
                  profile_name=None)


def test_status_undelivered_with_error_code(receive):
    case = fixture("plivo", "status_failed")
    event = receive("plivo", case)
    assert_vendor(event.vendor, case["payload"], name="plivo", message_id="6c3f9d5e-6f2e-11ee-9a6b-0242ac110006",
                  status="undelivered", normalized_status=NormalizedStatus.UNDELIVERED, error_code="30",
                  error_message="Spam Detected", timestamp=utc(2024, 3, 5, 10, 30, 9, 500000),
                  recipient="14155550101", sender="14155550199", profile_name=None)


def test_inbound_whatsapp_text(receive):
    case = fixture("plivo", "inbound_text")
    event = receive("plivo", case)
    assert_vendor(event.vendor, case["payload"], name="plivo", message_id="7d4a0e6f-6f2e-11ee-9a6b-0242ac110007",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=None, recipient="14155550199", sender="14155550101",
                  profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="Hi, is my order shipped?", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_="14155550101",
                   to="14155550199", timestamp=None)


def test_inbound_sms_text(receive):
    case = fixture("plivo", "inbound_sms_text")
    event = receive("plivo_sms", case)
    assert_vendor(event.vendor, case["payload"], name="plivo", message_id="8e5b1f70-6f2e-11ee-9a6b-0242ac110008",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=None, recipient="14155550199", sender="14155550101",
                  profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="STATUS 42", button_payload=None, button_text=None,
                   media=None, location=None, reply_to=None, from_="14155550101", to="14155550199", timestamp=None)


def test_inbound_mms_media(receive):
    case = fixture("plivo", "inbound_media")
    event = receive("plivo", case)
    url = case["payload"]["Media1"]
    assert_vendor(event.vendor, case["payload"], name="plivo", message_id="9f6c2081-6f2e-11ee-9a6b-0242ac110009",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=None, recipient="14155550199", sender="14155550101",
                  profile_name=None)
    # MMS attributes state no media type and this URL has no extension: a file of unstated type.
    assert_message(event.message, type=MessageType.DOCUMENT, text=None, button_payload=None, button_text=None,
                   media=Media(kind="document", url=url, caption="the receipt"), location=None, reply_to=None,
                   from_="14155550101", to="14155550199", timestamp=None)


def test_inbound_media_kind_from_mime_type_or_extension(receive):
    case = fixture("plivo", "inbound_media")
    case["payload"]["Media1"] = "https://example.com/receipt.jpg"
    assert receive("plivo", case).message.media.kind == "image"
    case["payload"].update(Type="whatsapp", ContentType="media", MimeType="video/mp4")
    assert receive("plivo", case).message.type == MessageType.VIDEO


def test_unknown_status_word_is_unknown_and_drift(receive):
    case = fixture("plivo", "status_delivered")
    case["payload"]["Status"] = "something_new"
    event = receive("plivo", case)
    assert (event.vendor.status, event.vendor.normalized_status) == ("something_new", NormalizedStatus.UNKNOWN)
    assert event.vendor.drift == "status: undocumented word 'something_new'"


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["plivo"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive("plivo", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift and event.vendor.raw == case["payload"]
    assert DRIFT["plivo"] == before + 1
