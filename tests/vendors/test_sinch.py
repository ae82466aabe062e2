"""Sinch: SMS REST API delivery reports and MO callbacks, Conversation API (WhatsApp) webhooks, end to end."""
from __future__ import annotations


from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



def test_sms_status_delivered(receive):
    case = fixture("sinch", "sms_status_delivered")
    event = receive("sinch", case)
    assert_vendor(event.vendor, case["payload"], name="sinch", message_id="01JB1J1M5BM5XQ8Q0ZWBM44E14",
                  status="Delivered", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2024, 10, 25, 10, 2), recipient="+44231235674", sender=None,
                  profile_name=None)


def test_sms_status_failed(receive):
    case = fixture("sinch", "sms_status_failed")
    event = receive("sinch", case)
    assert_vendor(event.vendor, case["payload"], name="sinch", message_id="01FC66621XXXXX119Z8PMV1QPQ",
                  status="Aborted", normalized_status=NormalizedStatus.FAILED, error_code="402",
                  error_message="Message unroutable", timestamp=utc(2022, 8, 30, 8, 16, 8, 930000),
                  recipient="+44231235674", sender="applied originator", profile_name=None)


def test_sms_inbound_text(receive):
    case = fixture("sinch", "sms_inbound_text")
    event = receive("sinch", case)
    ts = utc(2019, 8, 24, 14, 17, 22)
    assert_vendor(event.vendor, case["payload"], name="sinch", message_id="01FC66621XXXXX119Z8PMV1QPA",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="11203453453", sender="+11203494390",
                  profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="a body", button_payload=None, button_text=None,
                   media=None, location=None, reply_to=None, from_="+11203494390", to="11203453453", timestamp=ts)


def test_sms_inbound_mms_media(receive):
    case = fixture("sinch", "sms_inbound_media")
    event = receive("sinch", case)
    ts = utc(2019, 8, 24, 14, 17, 22)
    assert_vendor(event.vendor, case["payload"], name="sinch", message_id="01FC66621XXXXX119Z8PMV1QPA",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="11203453453", sender="+11203494390",
                  profile_name=None)
    assert_message(event.message, type=MessageType.IMAGE, text="my message", button_payload=None, button_text=None,
                   media=Media(kind="image", url="https://example.com/mms/01FC66621XXXXX119Z8PMV1QPA/image.jpg",
                               mime_type="image/jpeg"),
                   location=None, reply_to=None, from_="+11203494390", to="11203453453", timestamp=ts)


def test_conversation_status_read(receive):
    case = fixture("sinch", "conversation_status_read")
    event = receive("sinch", case)
    assert_vendor(event.vendor, case["payload"], name="sinch", message_id="01EBDV9EFP66ZA0GQJ9MCX1V9H",
                  status="READ", normalized_status=NormalizedStatus.READ, error_code=None, error_message=None,
                  timestamp=utc(2020, 6, 22, 11, 5, 53, 910000), recipient="+46702471483", sender=None,
                  profile_name=None)


def test_conversation_status_failed(receive):
    case = fixture("sinch", "conversation_status_failed")
    event = receive("sinch", case)
    assert_vendor(event.vendor, case["payload"], name="sinch", message_id="01EBDV9EFP66ZA0GQJ9MCX1V9J",
                  status="FAILED", normalized_status=NormalizedStatus.FAILED, error_code="RECIPIENT_NOT_REACHABLE",
                  error_message="The recipient is not reachable on WhatsApp.",
                  timestamp=utc(2020, 6, 22, 11, 5, 53, 503000), recipient="+46702471483", sender=None,
                  profile_name=None)


def test_conversation_inbound_whatsapp_text(receive):
    case = fixture("sinch", "conversation_inbound_text")
    event = receive("sinch", case)
    ts = utc(2020, 6, 22, 10, 55, 39, 521500)
    assert_vendor(event.vendor, case["payload"], name="sinch", message_id="01EBDTPPG3Q3EH14H7DY8X09MG",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender="46712312312", profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="Hi from contact", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_="46712312312", to=None,
                   timestamp=ts)


def test_conversation_inbound_whatsapp_quick_reply(receive):
    case = fixture("sinch", "conversation_inbound_button")
    event = receive("sinch", case)
    ts = utc(2020, 6, 22, 11, 0, 32, 852315)
    assert_vendor(event.vendor, case["payload"], name="sinch", message_id="01EBDTZMYPHM0G1D0AJFEZ0A4P",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender="46712312312", profile_name=None)
    # Sinch sends only the postback data of the chosen option, not its title.
    assert_message(event.message, type=MessageType.BUTTON, text=None, button_payload="email_postback",
                   button_text=None, media=None, location=None, reply_to="01EBDTZ9SN8HTW092K56PH1GDS",
                   from_="46712312312", to=None, timestamp=ts)


def test_conversation_inbound_media(receive):
    case = fixture("sinch", "conversation_inbound_media")
    event = receive("sinch", case)
    ts = utc(2020, 4, 24, 8, 2, 50, 179021)
    assert_vendor(event.vendor, case["payload"], name="sinch", message_id="01E6NKBV63YG6K01ENEW7S1N80",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender=None, profile_name=None)
    url = ("https://convapi-eu1tst.s3.eu-west-1.amazonaws.com/01EPRZJ0HXTDEH1BTYJT4417GE/"
           "01F2K124T4513Q0CCHQ5SN0DH6.png")
    assert_message(event.message, type=MessageType.IMAGE, text=None, button_payload=None, button_text=None,
                   media=Media(kind="image", url=url), location=None, reply_to=None, from_=None, to=None,
                   timestamp=ts)


def test_unknown_status_word_is_unknown_and_drift(receive):
    case = fixture("sinch", "sms_status_delivered")
    case["payload"] = {**case["payload"], "status": "Teleported"}
    event = receive("sinch", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.status == "Teleported"
    assert event.vendor.drift == "status: undocumented word 'Teleported'"


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["sinch"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive("sinch", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift and event.vendor.raw == case["payload"]
    assert DRIFT["sinch"] == before + 1
