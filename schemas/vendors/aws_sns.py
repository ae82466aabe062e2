"""AWS SNS SMS and AWS End User Messaging SMS (formerly Pinpoint SMS): delivery logs, events, two-way inbound.

Sources: repost.aws/knowledge-center/monitor-sns-texts-cloudwatch (SNS DirectPublishToPhoneNumber delivery
status logs, SUCCESS and FAILURE examples); docs.aws.amazon.com/end-user-messaging/latest/userguide/
nx-features-messaging-events.html and docs.aws.amazon.com/sms-voice/latest/userguide/
configuration-sets-event-format.html (SMS event record: eventType TEXT_*, messageStatus,
messageStatusDescription, eventTimestamp in ms) and
.../sms-voice/latest/userguide/configuration-sets-event-types.html (the TEXT_* event types);
docs.aws.amazon.com/sms-voice/latest/userguide/two-way-sms-payload.html (two-way SMS inbound payload).
"""
from __future__ import annotations

from typing import Any

from marshmallow import fields

from .base import InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, names, parse_timestamp, status_of

NAMES = names("aws_sns", "sns", "amazon_sns", "aws", "aws_end_user_messaging", "aws_sms")
STATUS_MAP = {
    # SNS delivery status log `status`; SUCCESS is SNS's only success state ("accepted by phone carrier")
    "SUCCESS": S.DELIVERED, "FAILURE": S.FAILED,
    # End User Messaging SMS `messageStatus` (the eventType is TEXT_<messageStatus>); SUCCESSFUL means "accepted
    # by the recipient's carrier" (AWS: interchangeable with DELIVERED in some countries), so it stays SENT
    "PENDING": S.QUEUED, "QUEUED": S.QUEUED, "SUCCESSFUL": S.SENT, "DELIVERED": S.DELIVERED,
    "INVALID": S.FAILED, "INVALID_MESSAGE": S.FAILED, "BLOCKED": S.FAILED, "CARRIER_BLOCKED": S.FAILED,
    "SPAM": S.FAILED, "PROTECT_BLOCKED": S.FAILED,
    "UNREACHABLE": S.UNDELIVERED, "CARRIER_UNREACHABLE": S.UNDELIVERED, "TTL_EXPIRED": S.UNDELIVERED,
    "UNKNOWN": S.UNKNOWN, "TEXT_UNKNOWN": S.UNKNOWN,  # AWS's own "unknown" (also as the TEXT_UNKNOWN event type)
}
_FAILED = (S.FAILED, S.UNDELIVERED)


class SnsDeliveryLog(Open):
    notification = fields.Dict(required=True)  # {messageId, timestamp}
    delivery = fields.Dict(required=True)  # {destination, providerResponse, phoneCarrier, priceInUSD, ...}
    status = Text(required=True)  # SUCCESS | FAILURE


class SmsEvent(Open):
    eventType = Text(required=True)  # TEXT_SUCCESSFUL, TEXT_DELIVERED, TEXT_BLOCKED, ...
    messageId = Text(required=True)
    messageStatus = Text(allow_none=True)
    messageStatusDescription = Text(allow_none=True)
    eventTimestamp = Text(allow_none=True)
    originationPhoneNumber = Text(allow_none=True)
    destinationPhoneNumber = Text(allow_none=True)


class TwoWayInbound(Open):
    inboundMessageId = Text(required=True)
    originationNumber = Text(required=True)
    destinationNumber = Text(allow_none=True)
    messageBody = Text(allow_none=True)
    messageKeyword = Text(allow_none=True)
    previousPublishedMessageId = Text(allow_none=True)


def normalize(raw: Any, event_type: str) -> Normalized:
    data = as_dict(raw)
    if "inboundMessageId" in data or "originationNumber" in data:
        return _inbound(data)
    if "eventType" in data:
        return _event(data)
    return _delivery_log(data)


def _delivery_log(data: dict[str, Any]) -> Normalized:
    log = SnsDeliveryLog.parse(data)
    notification, delivery = log["notification"], log["delivery"]
    normalized = status_of(STATUS_MAP, log["status"])
    return Normalized(VendorInfo(
        name="aws_sns", message_id=_text(notification.get("messageId")), status=log["status"],
        normalized_status=normalized,
        error_message=_text(delivery.get("providerResponse")) if normalized in _FAILED else None,
        timestamp=parse_timestamp(notification.get("timestamp")), recipient=_text(delivery.get("destination")),
        raw=data,
    ))


def _event(data: dict[str, Any]) -> Normalized:
    event = SmsEvent.parse(data)
    word = event.get("messageStatus") or event["eventType"].removeprefix("TEXT_")
    normalized = status_of(STATUS_MAP, word)
    failed = normalized in _FAILED
    return Normalized(VendorInfo(
        name="aws_sns", message_id=event["messageId"], status=event["eventType"], normalized_status=normalized,
        error_code=word if failed else None,
        error_message=event.get("messageStatusDescription") if failed else None,
        timestamp=parse_timestamp(event.get("eventTimestamp")), recipient=event.get("destinationPhoneNumber"),
        sender=event.get("originationPhoneNumber"), raw=data,
    ))


def _inbound(data: dict[str, Any]) -> Normalized:
    msg = TwoWayInbound.parse(data)
    parts = InboundParts(type=T.TEXT, text=msg.get("messageBody"), reply_to=msg.get("previousPublishedMessageId"),
                         from_=msg["originationNumber"], to=msg.get("destinationNumber"))
    return Normalized(VendorInfo(
        name="aws_sns", message_id=msg["inboundMessageId"], status="received", normalized_status=S.REPLIED,
        recipient=parts.to, sender=parts.from_, raw=data,
    ), parts)


def _text(value: Any) -> str | None:
    return None if value is None or isinstance(value, (dict, list)) else str(value)
