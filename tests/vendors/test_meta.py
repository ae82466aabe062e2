"""WhatsApp Cloud API (Meta) `whatsapp_business_account` webhooks, end to end."""
from __future__ import annotations

import pytest

from suprhook.schemas import Media, MessageType, NormalizedStatus, load_event
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc

BUSINESS, USER = "15550783881", "16505551234"
CONTEXT_ID = "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="



def test_status_delivered(receive):
    case = fixture("meta", "status_delivered")
    event = receive("meta", case)
    assert_vendor(event.vendor, case["payload"], name="meta",
                  message_id="wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA", status="delivered",
                  normalized_status=NormalizedStatus.DELIVERED, error_code=None, error_message=None,
                  timestamp=utc(2025, 6, 18, 16, 22, 53), recipient=USER, sender=BUSINESS, profile_name=None)


def test_status_failed(receive):
    case = fixture("meta", "status_failed")
    event = receive("whatsapp_cloud_api", case)  # an alias of the same module
    assert_vendor(event.vendor, case["payload"], name="meta",
                  message_id="wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTgA", status="failed",
                  normalized_status=NormalizedStatus.FAILED, error_code="130429", error_message="Rate limit hit",
                  timestamp=utc(2025, 6, 18, 16, 23), recipient=USER, sender=BUSINESS, profile_name=None)


def test_inbound_text(receive):
    case = fixture("meta", "inbound_text")
    event = receive("meta", case)
    ts = utc(2025, 6, 8, 20, 59, 43)
    assert_vendor(event.vendor, case["payload"], name="meta",
                  message_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=ts,
                  recipient=BUSINESS, sender=USER, profile_name="Sheena Nelson")
    assert_message(event.message, type=MessageType.TEXT, text="Does it come in another color?", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_=USER, to=BUSINESS, timestamp=ts)


def test_inbound_interactive_button_reply(receive):
    case = fixture("meta", "inbound_button")
    event = receive("meta", case)
    ts = utc(2025, 6, 8, 21, 1, 40)
    assert_vendor(event.vendor, case["payload"], name="meta",
                  message_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RwA=", status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=ts,
                  recipient=BUSINESS, sender=USER, profile_name="Sheena Nelson")
    assert_message(event.message, type=MessageType.INTERACTIVE, text="Cancel", button_payload="cancel-button",
                   button_text="Cancel", media=None, location=None, reply_to=CONTEXT_ID, from_=USER, to=BUSINESS,
                   timestamp=ts)


def test_inbound_template_quick_reply_button(receive):
    case = fixture("meta", "inbound_template_button")
    event = receive("facebook", case)
    ts = utc(2025, 6, 8, 21, 3, 20)
    assert_vendor(event.vendor, case["payload"], name="meta",
                  message_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0SAA=", status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=ts,
                  recipient=BUSINESS, sender=USER, profile_name="Sheena Nelson")
    assert_message(event.message, type=MessageType.BUTTON, text="Stop promotions", button_payload="STOP_PROMOS",
                   button_text="Stop promotions", media=None, location=None, reply_to=CONTEXT_ID, from_=USER,
                   to=BUSINESS, timestamp=ts)


def test_inbound_image(receive):
    case = fixture("meta", "inbound_media")
    event = receive("meta", case)
    ts = utc(2025, 6, 8, 21, 5)
    image = case["payload"]["entry"][0]["changes"][0]["value"]["messages"][0]["image"]
    assert_vendor(event.vendor, case["payload"], name="meta",
                  message_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0SQA=", status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None, timestamp=ts,
                  recipient=BUSINESS, sender=USER, profile_name="Sheena Nelson")
    assert_message(event.message, type=MessageType.IMAGE, text=None, button_payload=None, button_text=None,
                   media=Media(kind="image", id="1003383421387256", url=image["url"], mime_type="image/jpeg",
                               caption="This one, in blue", sha256=image["sha256"]),
                   location=None, reply_to=None, from_=USER, to=BUSINESS, timestamp=ts)


def test_bare_value_object_is_read_too(receive):
    case = fixture("meta", "status_delivered")
    value = case["payload"]["entry"][0]["changes"][0]["value"]
    event = receive("meta", {"event_type": "status", "payload": value})
    assert event.vendor.drift is None
    assert (event.vendor.status, event.vendor.normalized_status) == ("delivered", NormalizedStatus.DELIVERED)
    assert event.vendor.recipient == USER and event.vendor.raw == value


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["meta"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive("meta", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert isinstance(event.vendor.drift, str) and event.vendor.drift
    assert event.vendor.raw == case["payload"]
    assert DRIFT["meta"] == before + 1


@pytest.mark.parametrize("code,title", [
    ("131026", "Message undeliverable"), ("130429", "Rate limit hit"), ("131047", "Re-engagement message"),
    ("131051", "Unsupported message type"), ("131053", "Media upload error"), ("131000", "Something went wrong"),
    ("131048", "Spam rate limit hit"),
    ("470", "Message failed to send because more than 24 hours have passed since the customer last replied to "
            "this number"),
])
def test_failed_sample_says_the_title_of_the_code_given(code, title):
    """Found in review: `send-sample --vendor meta --error 131026` said "Rate limit hit" whatever the code."""
    from suprhook.receiver.cli import build_parser, build_sample

    args = build_parser().parse_args(["send-sample", "--vendor", "meta", "--status", "failed", "--error", code])
    event = load_event(build_sample(args))
    error = event.vendor_response["meta"]["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]
    assert (str(error["code"]), error["title"], error["message"]) == (code, title, title)
    assert (event.vendor.error_code, event.vendor.error_message, event.vendor.drift) == (code, title, None)


def test_an_error_alone_makes_the_sample_a_failed_status():
    """As the issue typed it: `send-sample --vendor meta --error 131026`, no --status."""
    from suprhook.receiver.cli import build_parser, build_sample

    args = build_parser().parse_args(["send-sample", "--vendor", "meta", "--error", "131026"])
    event = load_event(build_sample(args))
    assert (event.status, event.vendor.error_code) == ("failed", "131026")
    plain = load_event(build_sample(build_parser().parse_args(["send-sample"])))
    assert plain.status == "delivered"


def test_failed_sample_keeps_a_given_message_and_names_an_unlisted_code():
    from suprhook.schemas.samples import make_status_event

    given = load_event(make_status_event("failed", vendor="meta", error=("131026", "Not on WhatsApp")))
    assert (given.vendor.error_code, given.vendor.error_message) == ("131026", "Not on WhatsApp")
    unlisted = load_event(make_status_event("failed", vendor="meta", error="139999"))
    assert (unlisted.vendor.error_code, unlisted.vendor.error_message) == ("139999", "Error 139999")
