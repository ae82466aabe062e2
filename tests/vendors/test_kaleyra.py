"""Kaleyra WhatsApp: API V2 webhooks (meta_object + extra_info) and the flat incoming callback profile."""
from __future__ import annotations

import copy

import pytest

from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



def test_v2_status_sent(receive):
    case = fixture("kaleyra", "status_sent")
    event = receive("kaleyra", case)
    assert_vendor(event.vendor, case["payload"], name="kaleyra",
                  message_id="wamid.HBgMOTE5NDAXXXXXX3MDFQIAERgSMEYxMEM1QjQ3QjXXXXXXQ2N0YA", status="sent",
                  normalized_status=NormalizedStatus.SENT, error_code=None, error_message=None,
                  timestamp=utc(2024, 8, 5, 5, 11, 5), recipient="919407XXXXXX", sender="91XXXXXXXXXX",
                  profile_name=None)


def test_v2_status_not_sent_is_a_failure(receive):
    case = copy.deepcopy(fixture("kaleyra", "status_sent"))
    case["payload"]["meta_object"]["value"]["statuses"][0]["status"] = "NOT-SENT"  # word from /docs/whatsapp-status
    event = receive("kaleyra", case)
    assert (event.vendor.status, event.vendor.normalized_status) == ("NOT-SENT", NormalizedStatus.FAILED)


def test_flat_profile_inbound_text(receive):
    case = fixture("kaleyra", "inbound_text")
    event = receive("kaleyra", case)
    assert_vendor(event.vendor, case["payload"], name="kaleyra", message_id=None, status="received",
                  normalized_status=NormalizedStatus.REPLIED, error_code=None, error_message=None,
                  timestamp=None, recipient=None, sender="919xxxxxxxx8", profile_name="John")
    assert_message(event.message, type=MessageType.TEXT, text="Hi", button_payload=None, button_text=None,
                   media=None, location=None, reply_to=None, from_="919xxxxxxxx8", to=None, timestamp=None)


def test_v2_inbound_template_button(receive):
    case = fixture("kaleyra", "inbound_button")
    event = receive("kaleyra", case)
    # The documented sample masks its timestamp ("17XXXXXXXX"): it does not parse, so it stays None.
    assert_vendor(event.vendor, case["payload"], name="kaleyra",
                  message_id="wamid.HBgMOTE5NzQwNzc2NTA1FQIAEhggXXXXXXXXXXRDI1Q0Y5OTcxBENzlCNjRFMDkzNkIxRjMA",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=None, recipient="91XXXXXXXXXX", sender="91XXXXXXXXXX",
                  profile_name="Sam")
    assert_message(event.message, type=MessageType.BUTTON, text="message", button_payload="button0",
                   button_text="message", media=None, location=None,
                   reply_to="wamid.HBgMOTE5NzQwNzc2NXXXXXXXXXXTA1FQIAEFQjQxMjEyNjZBQTdGAA==",
                   from_="91XXXXXXXXXX", to="91XXXXXXXXXX", timestamp=None)


def test_v2_inbound_list_reply(receive):
    case = fixture("kaleyra", "inbound_list_reply")
    event = receive("kaleyra", case)
    title = "1st sec 1 Row \u0c85\u0ca4\u0cc1\u0cb2\u0ccd"
    assert_vendor(event.vendor, case["payload"], name="kaleyra",
                  message_id="wamid.HBgMOTE5NzQwNzc2NTA1FQIAEhggQkZGNDcyQkZjIyMjAzNjkzODlBRENGQjgA",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=None, recipient="91XXXXXXXXXX", sender="919740776505",
                  profile_name="Sam")
    assert_message(event.message, type=MessageType.INTERACTIVE, text=title, button_payload="1", button_text=title,
                   media=None, location=None,
                   reply_to="wamid.HBgMOTE5NzQwNzc2NTAXXXXXXXXXX1FQIAERgSQjgxMzQyOUJFNURCOTMzRjBGAA==",
                   from_="919740776505", to="91XXXXXXXXXX", timestamp=None)


def test_v2_inbound_image(receive):
    case = fixture("kaleyra", "inbound_media")
    event = receive("kaleyra", case)
    assert_vendor(event.vendor, case["payload"], name="kaleyra",
                  message_id="wamid.HBgMOTE5NzQwNzc2NTA1FQIXXXXXXXXXXAEhggMEJFNkVDE4MzFCOTFDQTQ1MEM2RDJFQkMA",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=None, recipient="918XXXXXXXXX", sender="919XXXXXXXXX",
                  profile_name="Samuel")
    assert_message(event.message, type=MessageType.IMAGE, text=None, button_payload=None, button_text=None,
                   media=Media(kind="image", id="4621XXXXXXXXXXX", url="https://example.com/images/product123.jpg",
                               mime_type="image/jpeg", sha256="hYeiE5iZTCUKVSRXXXXXXXXXXtP4CwWZIq5j3e3SqnU="),
                   location=None,
                   reply_to="wamid.HBgMOTE5NzQwNzc2NTXXXXXXXXXXA1FQIAEhggRUQxMzMUQ4QzFGREQ5NzI3OUFBNTEwQTkA",
                   from_="919XXXXXXXXX", to="918XXXXXXXXX", timestamp=None)


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["kaleyra"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive("kaleyra", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert isinstance(event.vendor.drift, str) and event.vendor.drift
    assert event.vendor.raw == case["payload"]
    assert DRIFT["kaleyra"] == before + 1


def test_v2_envelope_without_statuses_or_messages_is_drift(receive):
    before = DRIFT["kaleyra"]
    case = {"event_type": "status", "payload": {"meta_object": {"value": {"messaging_product": "whatsapp"}}}}
    event = receive("kaleyra", case)
    assert event.vendor.drift and DRIFT["kaleyra"] == before + 1


# -- issue 11: the flat outgoing-status callback profile (the account picks its variables) --


def test_flat_status_callback_with_only_id_and_status_is_accepted(receive):
    """Found in review: a status callback carrying only `id` and `status` drifted."""
    case = fixture("kaleyra", "profile_status_minimal")
    event = receive("kaleyra", case)
    assert_vendor(event.vendor, case["payload"], name="kaleyra", message_id="c9e113f0-6fc2-4bd7-979c-ebdb2f600f38:0",
                  status="read", normalized_status=NormalizedStatus.READ, error_code=None, error_message=None,
                  timestamp=None, recipient=None, sender=None, profile_name=None)
    assert event.message is None


def test_flat_status_callback_sample(receive):
    case = fixture("kaleyra", "profile_status_delivered")
    event = receive("kaleyra", case)
    assert_vendor(event.vendor, case["payload"], name="kaleyra", message_id="ad97eXXX-c923-4XXX-b3a3-0b1XXXXXXd97:0",
                  status="delivered", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=None, recipient="91XXXXXXXX83", sender=None, profile_name=None)


def test_flat_status_callback_failure_keeps_code_and_reason(receive):
    case = copy.deepcopy(fixture("kaleyra", "profile_status_minimal"))
    # Illustrative values in the documented variables error_code / error / timestamp.
    case["payload"].update(status="failed", error_code="131026", error="Message undeliverable",
                           timestamp="1722834665", mobile="919407000000")
    event = receive("kaleyra", case)
    assert (event.vendor.normalized_status, event.vendor.error_code, event.vendor.error_message) == (
        NormalizedStatus.FAILED, "131026", "Message undeliverable")
    assert (event.vendor.timestamp, event.vendor.recipient) == (utc(2024, 8, 5, 5, 11, 5), "919407000000")


@pytest.mark.parametrize("payload", [{"id": "x"}, {"status": "delivered"}, {"status": "teleported", "id": "x"}])
def test_flat_status_callback_missing_or_unknown_parts_drift(receive, payload):
    event = receive("kaleyra", {"event_type": "status", "payload": payload})
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN and event.vendor.drift


def test_failed_sample_says_the_title_of_the_code_given():
    """Found in review: the Kaleyra sample said "Message undeliverable" whatever the code."""
    from suprhook.schemas import load_event
    from suprhook.schemas.samples import make_status_event

    event = load_event(make_status_event("failed", vendor="kaleyra", error=("130429", None)))
    vendor = event.vendor
    assert (vendor.error_code, vendor.error_message, vendor.drift) == ("130429", "Rate limit hit", None)
