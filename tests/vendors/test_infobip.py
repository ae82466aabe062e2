"""Infobip: SMS delivery reports, WhatsApp and SMS inbound messages, end to end."""
from __future__ import annotations


from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



def test_status_delivered(receive):
    case = fixture("infobip", "status_delivered")
    event = receive("infobip", case)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="4150891451474323487",
                  status="DELIVERED", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2024, 3, 5, 10, 15, 32, 123000), recipient="41793026727",
                  sender="InfoSMS", profile_name=None)
    assert event.message is None


def test_status_failed(receive):
    case = fixture("infobip", "status_failed")
    event = receive("infobip", case)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="4150891451474323488",
                  status="UNDELIVERABLE", normalized_status=NormalizedStatus.UNDELIVERED, error_code="1",
                  error_message="Unknown Subscriber", timestamp=utc(2024, 3, 5, 10, 16, 1, 500000),
                  recipient="41793026728", sender="InfoSMS", profile_name=None)


def test_inbound_whatsapp_text(receive):
    case = fixture("infobip", "inbound_text")
    event = receive("infobip", case)
    ts = utc(2019, 7, 19, 11, 23, 26, 998000)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="ABEGOFl3VCQoAhBalbc6rTQT6mgS29EmGZ7a",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="1234", sender="385919998888", profile_name="Frank")
    assert_message(event.message, type=MessageType.TEXT, text="Support hello", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_="385919998888", to="1234",
                   timestamp=ts)


def test_inbound_sms_text(receive):
    case = fixture("infobip", "inbound_sms_text")
    event = receive("infobip_sms", case)
    ts = utc(2024, 3, 5, 11, 0, 0)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="817790313235066447",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="385921004026", sender="385916242493",
                  profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="QUIZ Correct answer is Paris", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_="385916242493",
                   to="385921004026", timestamp=ts)


def test_inbound_quick_reply_button(receive):
    case = fixture("infobip", "inbound_button")
    event = receive("infobip", case)
    ts = utc(2024, 3, 5, 12, 0, 5)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="wamid.HBgLMzg1OTE5OTk4ODg4FQIAEhgUM0E",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="447860099299", sender="385919998888",
                  profile_name="Frank")
    assert_message(event.message, type=MessageType.BUTTON, text="Yes, confirm", button_payload="CONFIRM_ORDER",
                   button_text="Yes, confirm", media=None, location=None,
                   reply_to="a28dd97c-1ffb-4fcf-99f1-0b557ed381da", from_="385919998888", to="447860099299",
                   timestamp=ts)


def test_inbound_interactive_button_reply(receive):
    case = fixture("infobip", "inbound_interactive_button")
    event = receive("infobip_whatsapp", case)
    ts = utc(2024, 3, 5, 12, 1, 0)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="wamid.HBgLMzg1OTE5OTk4ODg4FQIAEhgUM0F",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="447860099299", sender="385919998888",
                  profile_name="Frank")
    assert_message(event.message, type=MessageType.INTERACTIVE, text="Reschedule", button_payload="btn-reschedule",
                   button_text="Reschedule", media=None, location=None,
                   reply_to="b38dd97c-1ffb-4fcf-99f1-0b557ed381db", from_="385919998888", to="447860099299",
                   timestamp=ts)


def test_inbound_image(receive):
    case = fixture("infobip", "inbound_media")
    event = receive("infobip", case)
    ts = utc(2024, 3, 5, 12, 2, 10)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="wamid.HBgLMzg1OTE5OTk4ODg4FQIAEhgUM0G",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="447860099299", sender="385919998888",
                  profile_name="Frank")
    assert_message(event.message, type=MessageType.IMAGE, text=None, button_payload=None, button_text=None,
                   media=Media(kind="image", url="https://api.infobip.com/whatsapp/1/senders/447860099299/media/"
                               "1234567890abcdef", caption="the receipt"),
                   location=None, reply_to=None, from_="385919998888", to="447860099299", timestamp=ts)


def test_unknown_status_group_is_unknown_and_drift(receive):
    case = fixture("infobip", "status_delivered")
    case["payload"]["results"][0]["status"]["groupName"] = "SOMETHING_NEW"
    event = receive("infobip", case)
    assert event.vendor.status == "SOMETHING_NEW"
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift == "status: undocumented word 'SOMETHING_NEW'"


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["infobip"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive("infobip", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift and event.vendor.raw == case["payload"]
    assert DRIFT["infobip"] == before + 1


# -- issue 11: WhatsApp seen reports; real bodies from Infobip's Java client tests --


def test_whatsapp_seen_report_is_read(receive):
    """Found in review: a seen report (`seenAt`, no `status` object) drifted instead of mapping to read."""
    case = fixture("infobip", "whatsapp_seen_report")
    event = receive("infobip", case)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="1215f543ab19-345f-adbd-12ad31451ed25f35",
                  status="SEEN", normalized_status=NormalizedStatus.READ, error_code=None, error_message=None,
                  timestamp=utc(2023, 4, 5, 11, 22, 10, 251000), recipient="385919998888", sender="41793026731",
                  profile_name=None)
    assert event.message is None


def test_seen_report_without_its_time_drifts(receive):
    case = fixture("infobip", "whatsapp_seen_report")
    payload = {"results": [{**case["payload"]["results"][0], "seenAt": None}]}
    event = receive("infobip", {**case, "payload": payload})
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN and event.vendor.drift


def test_sdk_test_delivery_report(receive):
    case = fixture("infobip", "status_delivered_sdk_test")
    event = receive("infobip", case)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="MESSAGE-ID-123-xyz", status="DELIVERED",
                  normalized_status=NormalizedStatus.DELIVERED, error_code=None, error_message=None,
                  timestamp=utc(2019, 11, 9, 16), recipient="41793026727", sender=None, profile_name=None)


def test_sdk_test_inbound_sms(receive):
    case = fixture("infobip", "inbound_sms_sdk_test")
    event = receive("infobip", case)
    ts = utc(2016, 10, 6, 9, 28, 39, 220000)
    assert_vendor(event.vendor, case["payload"], name="infobip", message_id="817790313235066447", status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=ts,
                  recipient="385921004026", sender="385916242493", profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="QUIZ Correct answer is Paris", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_="385916242493",
                   to="385921004026", timestamp=ts)
