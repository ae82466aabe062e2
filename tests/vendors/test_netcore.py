"""Netcore Cloud (Pepipost) WhatsApp: delivery-status and incoming-message webhooks, end to end."""
from __future__ import annotations

import copy

from suprhook.schemas import Media, MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



def test_status_read(receive):
    case = fixture("netcore", "status_read")
    event = receive("netcore", case)
    assert_vendor(event.vendor, case["payload"], name="netcore", message_id="fa9d647a-c8d7-423e-bd27-7d2ca2875d12",
                  status="read", normalized_status=NormalizedStatus.READ, error_code=None, error_message=None,
                  timestamp=utc(2019, 5, 16, 15, 36, 58), recipient="919999999999", sender=None,
                  profile_name=None)


def test_status_failed_keeps_the_remark(receive):
    case = fixture("netcore", "status_failed")
    event = receive("netcore", case)
    assert_vendor(event.vendor, case["payload"], name="netcore", message_id="3b1f7c2e-5d4a-4f7e-9a51-0c2d8e6b7a10",
                  status="failed", normalized_status=NormalizedStatus.FAILED, error_code=None,
                  error_message="Message failed to send because the recipient phone number is not a WhatsApp user",
                  timestamp=utc(2024, 8, 5, 5, 11, 5), recipient="919999999999", sender="918000000000",
                  profile_name=None)


def test_inbound_text(receive):
    case = fixture("netcore", "inbound_text")
    event = receive("netcore", case)
    ts = utc(2019, 8, 29, 15, 0, 35)
    assert_vendor(event.vendor, case["payload"], name="netcore", message_id="ABEGkZlgQyWAAgo-sDVSUOa9jH0z",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender="919960432580", profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="hello", button_payload=None, button_text=None,
                   media=None, location=None, reply_to=None, from_="919960432580", to=None, timestamp=ts)


def test_inbound_text_replying_to_a_sent_message(receive):
    case = copy.deepcopy(fixture("netcore", "inbound_text"))
    # Illustrative ids: `context` is documented to be filled when the user replies to a previous message.
    case["payload"]["incoming_message"][0]["context"] = {"ncmessage_id": "fa9d647a-c8d7-423e-bd27-7d2ca2875d12",
                                                         "message_id": "gBEGkZlgQyWAAgm3BoJPqfmSRWE"}
    event = receive("netcore", case)
    assert event.message.reply_to == "fa9d647a-c8d7-423e-bd27-7d2ca2875d12"  # Netcore's own id comes first
    assert event.vendor.drift is None


def test_inbound_image(receive):
    case = fixture("netcore", "inbound_media")
    event = receive("netcore", case)
    ts = utc(2019, 8, 29, 15, 14, 30)
    assert_vendor(event.vendor, case["payload"], name="netcore", message_id="ABEGkZlgQyWAAgo-sOme7WUxlHHq",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient=None, sender="919960432580", profile_name=None)
    assert_message(event.message, type=MessageType.IMAGE, text=None, button_payload=None, button_text=None,
                   media=Media(kind="image", id="aa41ac0d-2eb4-4d4a-a212-03f3c0e2001d", mime_type="image/jpeg",
                               sha256="dd04cf3f58d890729201bbfa100c22ba02ab2a9353de793eddaf9fbbfdac9cbb"),
                   location=None, reply_to=None, from_="919960432580", to=None, timestamp=ts)


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["netcore"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive("netcore", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert isinstance(event.vendor.drift, str) and event.vendor.drift
    assert event.vendor.raw == case["payload"]
    assert DRIFT["netcore"] == before + 1
