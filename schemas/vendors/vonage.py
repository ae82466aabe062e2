"""Vonage (formerly Nexmo): Messages API v1 webhooks and the legacy SMS API webhooks.

Sources: developer.vonage.com/en/messages/concepts/messages-status-callbacks and
/en/messages/concepts/whatsapp/wa-status-callbacks (status: message_uuid, to, from, timestamp ISO 8601,
status submitted|delivered|read|rejected|undeliverable, channel, error {type, title, detail, instance},
profile.name); Vonage's Java SDK InboundMessage / MessageStatus and their tests (github.com/Vonage/
vonage-java-sdk, mapping "all known fields" of the Messages API webhook reference: message_type,
text, image/audio/video/sticker {url, caption}, file {url, caption, name} (InboundMessageTest.testFileOnly;
`name` is the media filename), reply {id, title, description}, button {payload, text, subtype},
location {lat, long, name, address}, profile.name, context {message_uuid, message_from});
developer.vonage.com/messaging/sms/guides/inbound-sms (legacy inbound: msisdn, to, messageId, text,
type, keyword, message-timestamp) and /messaging/sms/building-blocks/receive-a-delivery-receipt with
the SMS API spec's DeliveryReceipt (msisdn, to, network-code, messageId, price, status, scts, err-code,
message-timestamp; err-code labels from its error-code enum, github.com/Nexmo/api-specification
definitions/messages.yml). In a legacy DLR `msisdn` is the recipient and `to` the sender id.
"""
from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, names,
                   parse_timestamp, status_of)

NAMES = names("vonage", "nexmo", "vonage_whatsapp", "vonage_sms")
STATUS_MAP = {
    # Messages API
    "submitted": S.SENT, "delivered": S.DELIVERED, "read": S.READ, "rejected": S.FAILED,
    "undeliverable": S.UNDELIVERED,
    # legacy SMS API delivery receipts
    "accepted": S.SENT, "buffered": S.QUEUED, "expired": S.UNDELIVERED, "failed": S.FAILED,
}
DLR_ERRORS = {
    "1": "Unknown", "2": "Absent Subscriber Temporary", "3": "Absent Subscriber Permanent",
    "4": "Call barred by user", "5": "Portability Error", "6": "Anti-Spam Rejection", "7": "Handset Busy",
    "8": "Network Error", "9": "Illegal Number", "10": "Invalid Message", "11": "Unroutable",
    "12": "Destination unreachable", "13": "Subscriber Age Restriction", "14": "Number Blocked by Carrier",
    "15": "Pre-Paid - Insufficient funds", "99": "General Error",
}
_MEDIA = {"image": T.IMAGE, "video": T.VIDEO, "audio": T.AUDIO, "file": T.DOCUMENT, "sticker": T.STICKER}


class MessagesCallback(Open):
    message_uuid = Text(required=True)
    to = Text(allow_none=True)
    from_ = Text(data_key="from", allow_none=True)
    timestamp = Text(allow_none=True)
    channel = Text(allow_none=True)
    status = Text(allow_none=True)
    message_type = Text(allow_none=True)
    text = Text(allow_none=True)
    error = fields.Dict(allow_none=True)
    profile = fields.Dict(allow_none=True)
    context = fields.Dict(allow_none=True)


class SmsCallback(Open):
    messageId = Text(required=True)
    msisdn = Text(required=True)
    to = Text(allow_none=True)
    status = Text(allow_none=True)
    err_code = Text(data_key="err-code", allow_none=True)
    message_timestamp = Text(data_key="message-timestamp", allow_none=True)
    text = Text(allow_none=True)


def _s(value: Any) -> str | None:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return None if value is None or isinstance(value, list) else str(value)


def normalize(raw: Any, event_type: str) -> Normalized:
    data = as_dict(raw)
    if "messageId" in data and "message_uuid" not in data:
        sms = SmsCallback.parse(data)
        return _sms_dlr(sms, data) if sms.get("status") else _sms_inbound(sms, data)
    msg = MessagesCallback.parse(raw)
    if not msg.get("status") and not msg.get("message_type"):
        raise ValidationError({"status": ["neither a status nor a message_type"]})
    if msg.get("status") and (event_type != "inbound_message" or not msg.get("message_type")):
        return _status(msg, data)
    return _inbound(msg, data)


def _status(msg: dict[str, Any], raw: dict[str, Any]) -> Normalized:
    error = as_dict(msg.get("error"))
    code = str(error.get("type") or "").partition("#")[2] or _s(error.get("title"))
    return Normalized(VendorInfo(
        name="vonage", message_id=msg["message_uuid"], status=msg["status"],
        normalized_status=status_of(STATUS_MAP, msg["status"]), error_code=code if error else None,
        error_message=_s(first(error.get("detail"), error.get("title"))) if error else None,
        timestamp=parse_timestamp(msg.get("timestamp")), recipient=msg.get("to"), sender=msg.get("from_"),
        profile_name=_s(as_dict(msg.get("profile")).get("name")), raw=raw,
    ))


def _inbound(msg: dict[str, Any], raw: dict[str, Any]) -> Normalized:
    word = str(msg.get("message_type") or "")
    kind = _MEDIA.get(word) or {"reply": T.INTERACTIVE}.get(word) or T.parse(word)
    reply, button = as_dict(raw.get("reply")), as_dict(raw.get("button"))
    obj, loc = as_dict(raw.get(word)) if word in _MEDIA else {}, as_dict(raw.get("location"))
    parts = InboundParts(
        type=kind, text=first(msg.get("text"), _s(reply.get("title")), _s(button.get("text"))),
        button_payload=_s(first(reply.get("id"), button.get("payload"))),
        button_text=_s(first(reply.get("title"), button.get("text"))),
        media=media(kind, url=_s(obj.get("url")), caption=_s(obj.get("caption")), filename=_s(obj.get("name")))
        if obj else None,
        location={"latitude": loc.get("lat"), "longitude": loc.get("long"),
                  **{k: loc[k] for k in ("name", "address") if k in loc}} if loc else None,
        reply_to=_s(as_dict(msg.get("context")).get("message_uuid")), from_=msg.get("from_"), to=msg.get("to"),
        timestamp=parse_timestamp(msg.get("timestamp")),
    )
    return Normalized(VendorInfo(
        name="vonage", message_id=msg["message_uuid"], status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=parts.to, sender=parts.from_,
        profile_name=_s(as_dict(msg.get("profile")).get("name")), raw=raw,
    ), parts)


def _sms_dlr(sms: dict[str, Any], raw: dict[str, Any]) -> Normalized:
    failed = sms.get("err_code") not in (None, "", "0")
    return Normalized(VendorInfo(
        name="vonage", message_id=sms["messageId"], status=sms["status"],
        normalized_status=status_of(STATUS_MAP, sms["status"]), error_code=sms["err_code"] if failed else None,
        error_message=DLR_ERRORS.get(sms["err_code"]) if failed else None,
        timestamp=parse_timestamp(sms.get("message_timestamp")), recipient=sms["msisdn"], sender=sms.get("to"),
        raw=raw,
    ))


def _sms_inbound(sms: dict[str, Any], raw: dict[str, Any]) -> Normalized:
    parts = InboundParts(type=T.TEXT, text=sms.get("text"), from_=sms["msisdn"], to=sms.get("to"),
                         timestamp=parse_timestamp(sms.get("message_timestamp")))
    return Normalized(VendorInfo(
        name="vonage", message_id=sms["messageId"], status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=parts.to, sender=parts.from_, raw=raw,
    ), parts)
