"""Karix (karix.io v2): the Message object posted on status changes and for inbound messages, end to end."""
from __future__ import annotations


from suprhook.schemas import MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



def test_status_delivered(receive):
    case = fixture("karix", "status_delivered")
    event = receive("karix", case)
    assert_vendor(event.vendor, case["payload"], name="karix", message_id="7f6c7a4e-4e0d-4a3c-9f57-2b0c1d9a8e11",
                  status="delivered", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2019, 3, 14, 9, 26, 53, 870552), recipient="+919876543210",
                  sender="+13253077759", profile_name=None)


def test_status_undelivered_with_error(receive):
    case = fixture("karix", "status_failed")
    event = receive("karix", case)
    assert_vendor(event.vendor, case["payload"], name="karix", message_id="0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
                  status="undelivered", normalized_status=NormalizedStatus.UNDELIVERED, error_code="3002",
                  error_message="Destination handset unreachable", timestamp=utc(2019, 3, 14, 9, 27, 41, 112903),
                  recipient="+919876543211", sender="+13253077759", profile_name=None)


def test_inbound_text(receive):
    case = fixture("karix", "inbound_text")
    event = receive("karix", case)
    ts = utc(2019, 3, 14, 10, 2, 17, 660218)
    assert_vendor(event.vendor, case["payload"], name="karix", message_id="5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=ts, recipient="+13253077759", sender="+919876543210",
                  profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="Where is my order?", button_payload=None,
                   button_text=None, media=None, location=None, reply_to=None, from_="+919876543210",
                   to="+13253077759", timestamp=ts)


def test_unknown_status_word_is_unknown_and_drift(receive):
    case = fixture("karix", "status_delivered")
    event = receive("karix", {**case, "payload": {**case["payload"], "status": "held_for_review"}})
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.status == "held_for_review"
    assert event.vendor.drift == "status: undocumented word 'held_for_review'"


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["karix"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive("karix", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert isinstance(event.vendor.drift, str) and event.vendor.drift
    assert event.vendor.raw == case["payload"]
    assert DRIFT["karix"] == before + 1
