"""Karix (karix.io API v2, now part of Tanla): message status events and inbound messages (SMS, WhatsApp).

Karix posts its Message object to the `events_url` given when sending (status changes of outbound
messages) and to a number's webhook (inbound messages, `direction: "inbound"`).
Sources: the Message model of Karix's own SDKs, github.com/karixtech/karix-python docs/Message.md and
github.com/karixtech/karix-php docs/Model/Message.md (uid, account_uid, source, destination, status
queued|sent|failed|delivered|undelivered|rejected, text, queued_time, sent_time, updated_time, direction,
error{code, message}, ...); docs/MessageError.md; docs/MessageContent.md (content.text, content.location);
karix-php docs/Model/CreateMessage.md (`events_url`; a WhatsApp message may go straight to `read`).
Not found: the event envelope itself ("Karix Events" section of the API reference), Karix's error-code list,
WhatsApp media or button replies, and the callbacks of Karix's newer (Tanla) WhatsApp/RCM API.
"""
from __future__ import annotations

from typing import Any

from marshmallow import fields

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, names,
                   parse_timestamp, status_of)

NAMES = names("karix", "karix_sms", "karix_whatsapp")
STATUS_MAP = {
    "queued": S.QUEUED, "sent": S.SENT, "delivered": S.DELIVERED, "read": S.READ, "failed": S.FAILED,
    "undelivered": S.UNDELIVERED, "rejected": S.FAILED,
}
_s = Text(allow_none=True).deserialize  # one scalar as a string; raises on a dict/list


class MessageError(Open):
    code = Text(allow_none=True)
    message = Text(allow_none=True)


class KarixMessage(Open):
    uid = Text(required=True)
    status = Text(required=True)
    direction = Text(allow_none=True)
    source = Text(allow_none=True)
    destination = Text(allow_none=True)
    text = Text(allow_none=True)
    queued_time = Text(allow_none=True)
    sent_time = Text(allow_none=True)
    updated_time = Text(allow_none=True)
    error = fields.Nested(MessageError, allow_none=True)
    content = fields.Dict(allow_none=True)


def normalize(raw: Any, event_type: str) -> Normalized:
    msg = KarixMessage.parse(as_dict(raw))
    if msg.get("direction") == "inbound":
        return _inbound(msg)
    error = msg.get("error") or {}
    return Normalized(VendorInfo(
        name="karix", message_id=msg["uid"], status=msg["status"],
        normalized_status=status_of(STATUS_MAP, msg["status"]),
        error_code=error.get("code"), error_message=error.get("message"),
        # updated_time is the time of the current status (delivered/undelivered time included)
        timestamp=parse_timestamp(first(msg.get("updated_time"), msg.get("sent_time"), msg.get("queued_time"))),
        recipient=msg.get("destination"), sender=msg.get("source"),
    ))


def _inbound(msg: dict[str, Any]) -> Normalized:
    content = as_dict(msg.get("content"))
    text = first(msg.get("text"), _s(content.get("text")))
    location = as_dict(content.get("location")) or None
    parts = InboundParts(
        type=T.TEXT if text else T.LOCATION if location else T.UNKNOWN, text=text, location=location,
        from_=msg.get("source"), to=msg.get("destination"),
        timestamp=parse_timestamp(first(msg.get("queued_time"), msg.get("updated_time"))),
    )
    return Normalized(VendorInfo(
        name="karix", message_id=msg["uid"], status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=parts.to, sender=parts.from_,
    ), parts)
