"""Sinch: the SMS REST API callbacks and the Conversation API (WhatsApp, ...) webhooks.

Sources: developers.sinch.com/docs/sms/api-reference/sms/tag/Delivery-reports/ (statuses; codes 0/400-418,
names from github.com/sinch/docs docs/sms/sms-rest/sms-rest-delivery-reports.md) and the SDK contracts in
github.com/sinch/sinch-sdk-java openapi-contracts/src/test/resources/domains/sms/v1/ (DeliveryReportRecipientSMSDto,
inbounds/MOTextDto, inbounds/InboundMediaDto); Conversation API: github.com/sinch/docs
docs/conversation/conversation-channel-support/conversation-whatsapp.md (MESSAGE_INBOUND / MESSAGE_DELIVERY),
.../conversation-mms.md (media_message) and sinch-sdk-java .../conversation/v1/webhooks/events/ (reason object).
"""
from __future__ import annotations

from typing import Any

from marshmallow import fields

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, media_kind, names,
                   parse_timestamp, status_of)

NAMES = names("sinch", "sinch_sms", "sinch_conversation", "sinch_whatsapp")
STATUS_MAP = {
    # SMS REST API delivery report statuses
    "Queued": S.QUEUED, "Dispatched": S.SENT, "Delivered": S.DELIVERED, "Aborted": S.FAILED,
    "Cancelled": S.FAILED, "Rejected": S.FAILED, "Failed": S.FAILED, "Deleted": S.UNDELIVERED,
    "Expired": S.UNDELIVERED, "Unknown": S.UNKNOWN,
    # Conversation API message_delivery_report statuses (DELIVERED/FAILED shared with the above)
    "QUEUED_ON_CHANNEL": S.QUEUED, "READ": S.READ, "SWITCHING_CHANNEL": S.QUEUED,  # retried on next channel
}
SMS_CODES = {  # the REST API's own delivery report codes (sms-rest-delivery-reports.md)
    "402": "Message unroutable", "403": "Internal error", "404": "Temporary delivery failure",
    "405": "Unmatched Parameter", "406": "Internal Expiry", "407": "Canceled", "408": "Internal Reject",
    "410": "Unmatched default originator", "411": "Exceeded parts limit", "412": "Unprovisioned region",
    "413": "Blocked",
}
_FAILED = (S.FAILED, S.UNDELIVERED)


class SmsDeliveryReport(Open):
    type = Text(required=True)  # recipient_delivery_report_sms | recipient_delivery_report_mms
    batch_id = Text(required=True)
    status = Text(required=True)
    recipient = Text(allow_none=True)
    code = Text(allow_none=True)
    at = Text(allow_none=True)
    operator_status_at = Text(allow_none=True)
    applied_originator = Text(allow_none=True)


class SmsInbound(Open):
    type = Text(required=True)  # mo_text | mo_binary | mo_media
    id = Text(required=True)
    body = fields.Raw(allow_none=True)  # a string, or {subject, message, media: [...]} for mo_media
    to = Text(allow_none=True)
    received_at = Text(allow_none=True)
    from_ = Text(data_key="from", allow_none=True)


class ConversationEvent(Open):
    app_id = Text(allow_none=True)
    accepted_time = Text(allow_none=True)
    event_time = Text(allow_none=True)
    message_delivery_report = fields.Dict(load_default=None)
    message = fields.Dict(load_default=None)


def normalize(raw: Any, event_type: str) -> Normalized:
    data = as_dict(raw)
    kind = data.get("type")
    if isinstance(kind, str) and kind.startswith("recipient_delivery_report"):
        return _sms_status(data)
    if kind in ("mo_text", "mo_binary", "mo_media"):
        return _sms_inbound(data)
    event = ConversationEvent.parse(data)
    if event["message_delivery_report"] is not None:
        return _conversation_status(event, data)
    if event["message"] is not None and "contact_message" in event["message"]:
        return _conversation_inbound(event, data)
    raise ValueError("not a Sinch SMS or Conversation API callback")


def _sms_status(data: dict[str, Any]) -> Normalized:
    dlr = SmsDeliveryReport.parse(data)
    normalized = status_of(STATUS_MAP, dlr["status"])
    failed = normalized in _FAILED
    return Normalized(VendorInfo(
        name="sinch", message_id=dlr["batch_id"], status=dlr["status"], normalized_status=normalized,
        error_code=dlr.get("code") if failed else None,
        error_message=SMS_CODES.get(dlr.get("code") or "") if failed else None,
        timestamp=parse_timestamp(first(dlr.get("operator_status_at"), dlr.get("at"))),
        recipient=dlr.get("recipient"), sender=dlr.get("applied_originator"), raw=data,
    ))



def _sms_inbound(data: dict[str, Any]) -> Normalized:
    msg = SmsInbound.parse(data)
    body, kind, found = msg.get("body"), T.TEXT, None
    if isinstance(body, dict):  # mo_media: {subject, message, media: [{url, contentType, status, code}]}
        item = as_dict((body.get("media") or [None])[0])
        kind = media_kind(item.get("contentType"), item.get("url")) if item else T.TEXT
        found = media(kind, url=item.get("url"), mime_type=item.get("contentType")) if item else None
        body = body.get("message")
    parts = InboundParts(type=kind, text=body if isinstance(body, str) else None, media=found,
                         from_=msg.get("from_"), to=msg.get("to"), timestamp=parse_timestamp(msg.get("received_at")))
    return Normalized(VendorInfo(
        name="sinch", message_id=msg["id"], status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=parts.to, sender=parts.from_, raw=data,
    ), parts)


def _conversation_status(event: dict[str, Any], data: dict[str, Any]) -> Normalized:
    report = event["message_delivery_report"]
    word = report.get("status")
    normalized = status_of(STATUS_MAP, word)
    reason = as_dict(report.get("reason")) if normalized in _FAILED else {}
    return Normalized(VendorInfo(
        name="sinch", message_id=report.get("message_id"), status=word, normalized_status=normalized,
        error_code=reason.get("code"), error_message=reason.get("description"),
        timestamp=parse_timestamp(first(event.get("event_time"), event.get("accepted_time"))),
        recipient=as_dict(report.get("channel_identity")).get("identity"), raw=data,
    ))


def _conversation_inbound(event: dict[str, Any], data: dict[str, Any]) -> Normalized:
    msg = event["message"]
    content = as_dict(msg.get("contact_message"))
    choice, found, kind = as_dict(content.get("choice_response_message")), None, T.UNKNOWN
    location = as_dict(content.get("location_message"))
    if "text_message" in content:
        kind = T.TEXT
    elif choice:
        kind = T.BUTTON
    elif location:
        kind = T.LOCATION
    for key in ("media_message", "media_card_message"):
        item = as_dict(content.get(key))
        if item:
            kind = media_kind(None, item.get("url"))
            found = media(kind, url=item.get("url"), caption=item.get("caption"))
    coordinates = as_dict(location.get("coordinates"))
    parts = InboundParts(
        type=kind, text=as_dict(content.get("text_message")).get("text"),
        button_payload=choice.get("postback_data"), media=found,
        location={"latitude": coordinates.get("latitude"), "longitude": coordinates.get("longitude"),
                  "name": location.get("title"), "address": location.get("label")} if location else None,
        reply_to=first(as_dict(content.get("reply_to")).get("message_id"), choice.get("message_id")),
        from_=as_dict(msg.get("channel_identity")).get("identity"),
        timestamp=parse_timestamp(first(msg.get("accept_time"), event.get("event_time"), event.get("accepted_time"))),
    )
    return Normalized(VendorInfo(
        name="sinch", message_id=msg.get("id"), status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, sender=parts.from_, raw=data,
    ), parts)
