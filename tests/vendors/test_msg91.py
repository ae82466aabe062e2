"""MSG91: SMS delivery reports in webhook versions v2, v3 and v4, end to end."""
from __future__ import annotations


from suprhook.schemas import NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_vendor, fixture, utc



def test_status_delivered_v3(receive):
    case = fixture("msg91", "status_delivered")
    event = receive("msg91", case)
    assert_vendor(event.vendor, case["payload"], name="msg91", message_id="346XXXXXXXXXXXX130", status="DELIVERED",
                  normalized_status=NormalizedStatus.DELIVERED, error_code=None, error_message=None,
                  timestamp=utc(2024, 5, 22, 9, 58, 16), recipient="9195XXXX6558", sender="uXXXXm",
                  profile_name=None)
    assert event.message is None


def test_status_delivered_v2_form_field_holding_json(receive):
    case = fixture("msg91", "status_delivered_v2")
    event = receive("msg91", case)
    assert_vendor(event.vendor, case["payload"], name="msg91", message_id="346XXXXXXXXXXXX130", status="DELIVERED",
                  normalized_status=NormalizedStatus.DELIVERED, error_code=None, error_message=None,
                  timestamp=utc(2024, 5, 22, 10, 6, 20), recipient="9195XXXX6558", sender="uXXXXm",
                  profile_name=None)


def test_status_delivered_v4_list(receive):
    case = fixture("msg91", "status_delivered_v4")
    event = receive("msg91_sms", case)
    assert_vendor(event.vendor, case["payload"], name="msg91", message_id=None, status="delivered",
                  normalized_status=NormalizedStatus.DELIVERED, error_code=None, error_message=None,
                  timestamp=utc(2024, 9, 19, 7, 5), recipient=None, sender=None, profile_name=None)


def test_status_failed(receive):
    case = fixture("msg91", "status_failed")
    event = receive("msg91", case)
    assert_vendor(event.vendor, case["payload"], name="msg91", message_id="346XXXXXXXXXXXX131", status="REJECTED",
                  normalized_status=NormalizedStatus.FAILED, error_code="16", error_message="Template not matched",
                  timestamp=utc(2024, 5, 22, 10, 7, 45), recipient="9195XXXX6559", sender="uXXXXm",
                  profile_name=None)


def test_failure_without_reason_uses_the_documented_description(receive):
    case = fixture("msg91", "status_delivered")
    case["payload"].update(status="17", desc="BLOCKED")
    event = receive("msg91", case)
    assert (event.vendor.normalized_status, event.vendor.error_code, event.vendor.error_message) == (
        NormalizedStatus.FAILED, "17", "Blocked number")


def test_unknown_status_is_unknown_and_drift(receive):
    case = fixture("msg91", "status_delivered")
    case["payload"].update(status="42", desc="SOMETHING_NEW")
    event = receive("msg91", case)
    assert (event.vendor.status, event.vendor.normalized_status) == ("SOMETHING_NEW", NormalizedStatus.UNKNOWN)
    assert event.vendor.drift == "status: undocumented word 'SOMETHING_NEW'"


def test_drift_is_recorded_and_the_event_still_dispatched(receive):
    before = DRIFT["msg91"]
    case = {"event_type": "status", "payload": {"unexpected": 1}}
    event = receive("msg91", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift and event.vendor.raw == case["payload"]
    assert DRIFT["msg91"] == before + 1
