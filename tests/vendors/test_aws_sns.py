"""AWS SNS SMS delivery logs, AWS End User Messaging SMS events and two-way SMS inbound, end to end."""
from __future__ import annotations


import pytest

from suprhook.schemas import MessageType, NormalizedStatus
from suprhook.schemas.vendors import DRIFT

from .conftest import assert_message, assert_vendor, fixture, utc



@pytest.mark.parametrize("vendor_name", ["aws_sns", "sns", "amazon_sns", "aws"])
def test_sns_delivery_log_success(receive, vendor_name):
    case = fixture("aws_sns", "sns_status_delivered")
    event = receive(vendor_name, case)
    assert_vendor(event.vendor, case["payload"], name="aws_sns", message_id="34d9b400-c6dd-5444-820d-fbeb0f1f54cf",
                  status="SUCCESS", normalized_status=NormalizedStatus.DELIVERED, error_code=None,
                  error_message=None, timestamp=utc(2016, 6, 28, 0, 40, 34, 558000), recipient="+1XXX5550100",
                  sender=None, profile_name=None)


def test_sns_delivery_log_failure(receive):
    case = fixture("aws_sns", "sns_status_failed")
    event = receive("aws_sns", case)
    # SNS delivery logs have no error code: the provider's response is the only reason given.
    assert_vendor(event.vendor, case["payload"], name="aws_sns", message_id="1077257a-92f3-5ca3-bc97-6a915b310625",
                  status="FAILURE", normalized_status=NormalizedStatus.FAILED, error_code=None,
                  error_message="Unknown error attempting to reach phone",
                  timestamp=utc(2016, 6, 28, 0, 40, 34, 559000), recipient="+1XXX5550100", sender=None,
                  profile_name=None)


def test_end_user_messaging_text_successful(receive):
    case = fixture("aws_sns", "sms_event_successful")
    event = receive("aws", case)
    assert_vendor(event.vendor, case["payload"], name="aws_sns", message_id="862a8790-60c0-4430-9b2b-658bdexample",
                  status="TEXT_SUCCESSFUL", normalized_status=NormalizedStatus.SENT, error_code=None,
                  error_message=None, timestamp=utc(2023, 6, 17, 4, 11, 43, 470000), recipient="+14255550156",
                  sender="+12065550152", profile_name=None)


def test_end_user_messaging_text_blocked(receive):
    case = fixture("aws_sns", "sms_event_blocked")
    event = receive("aws", case)
    assert_vendor(event.vendor, case["payload"], name="aws_sns", message_id="862a8790-60c0-4430-9b2b-658bdexample",
                  status="TEXT_BLOCKED", normalized_status=NormalizedStatus.FAILED, error_code="BLOCKED",
                  error_message="The recipient's device or carrier blocked the message",
                  timestamp=utc(2023, 6, 17, 4, 11, 44, 470000), recipient="+14255550156", sender="+12065550152",
                  profile_name=None)


def test_two_way_sms_inbound(receive):
    case = fixture("aws_sns", "inbound_text")
    event = receive("aws_sns", case)
    # The two-way payload has no timestamp of its own.
    assert_vendor(event.vendor, case["payload"], name="aws_sns", message_id="cae173d2-66b9-564c-8309-21f858e9fb84",
                  status="received", normalized_status=NormalizedStatus.REPLIED, error_code=None,
                  error_message=None, timestamp=None, recipient="+12125550101", sender="+14255550182",
                  profile_name=None)
    assert_message(event.message, type=MessageType.TEXT, text="EXAMPLE", button_payload=None, button_text=None,
                   media=None, location=None, reply_to="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                   from_="+14255550182", to="+12125550101", timestamp=None)


def test_unknown_status_word_is_unknown_and_drift(receive):
    case = fixture("aws_sns", "sms_event_successful")
    case["payload"] = {**case["payload"], "eventType": "TEXT_TELEPORTED", "messageStatus": "TELEPORTED"}
    event = receive("aws", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.status == "TEXT_TELEPORTED"  # every field read is kept
    assert event.vendor.drift == "status: undocumented word 'TEXT_TELEPORTED'"


@pytest.mark.parametrize("payload", [{"unexpected": 1}, [1, 2]])
def test_drift_is_recorded_and_the_event_still_dispatched(receive, payload):
    before = DRIFT["aws_sns"]
    case = {"event_type": "status", "payload": payload}
    event = receive("aws_sns", case)
    assert event.vendor.normalized_status is NormalizedStatus.UNKNOWN
    assert event.vendor.drift and event.vendor.raw == case["payload"]
    assert DRIFT["aws_sns"] == before + 1
