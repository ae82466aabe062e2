"""Plivo SMS/MMS/WhatsApp: message status callbacks and inbound messages (form fields, forwarded as a dict).

Sources: plivo.com/docs/messaging/api/message/message-status-callbacks (MessageUUID, To, From, Type, Status
queued/sent/failed/delivered/undelivered/read, ErrorCode, MessageTime/QueuedTime/SentTime/DeliveryReportTime as
"YYYY-mm-dd HH:MM:SS.SSSSSS", Units, TotalRate, ...); plivo.com/docs/messaging/troubleshooting/error-codes
(error code reasons); plivo.com/docs/messaging/api/message/handling-incoming (inbound: MessageUUID, From, To,
Text (SMS), Body (MMS, WhatsApp), Type sms/mms/whatsapp, MediaCount and Media1..N (MMS), ContentType
text/media/button/unknown and MimeType (WhatsApp)). The inbound attributes carry no time and no profile name,
and the names of WhatsApp button-reply fields are not documented there: a button reply gives type and Body only.
"""
from __future__ import annotations

from typing import Any

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, media_kind, names,
                   parse_timestamp, status_of)

NAMES = names("plivo", "plivo_sms", "plivo_whatsapp")
STATUS_MAP = {
    "queued": S.QUEUED, "sent": S.SENT, "delivered": S.DELIVERED, "read": S.READ,
    "undelivered": S.UNDELIVERED, "failed": S.FAILED, "rejected": S.FAILED,
}
ERROR_REASONS = {  # the documented reasons for the codes quoted here; other codes keep error_message None
    "10": "Invalid Message", "20": "Network Error", "30": "Spam Detected", "40": "Invalid Source Number",
    "50": "Invalid Destination Number",
}
CONTENT_TYPES = {"text": T.TEXT, "button": T.BUTTON, "unknown": T.UNKNOWN}


class StatusCallback(Open):
    MessageUUID = Text(required=True)
    Status = Text(required=True)
    To = Text(allow_none=True)
    From = Text(allow_none=True)
    Type = Text(allow_none=True)
    ErrorCode = Text(allow_none=True)
    MessageTime = Text(allow_none=True)
    QueuedTime = Text(allow_none=True)
    SentTime = Text(allow_none=True)
    DeliveryReportTime = Text(allow_none=True)


class InboundMessage(Open):
    MessageUUID = Text(required=True)
    From = Text(required=True)
    To = Text(allow_none=True)
    Type = Text(allow_none=True)
    text = Text(data_key="Text", allow_none=True)
    Body = Text(allow_none=True)
    ContentType = Text(allow_none=True)
    MimeType = Text(allow_none=True)
    MediaCount = Text(allow_none=True)
    Media1 = Text(allow_none=True)


def normalize(raw: Any, event_type: str) -> Normalized:
    data = as_dict(raw)
    if "Status" in data or event_type == "status":
        return _status(data)
    return _inbound(data)


def _status(data: dict[str, Any]) -> Normalized:
    cb = StatusCallback.parse(data)
    word = cb["Status"]
    normalized = status_of(STATUS_MAP, word)
    code = cb.get("ErrorCode") if normalized in (S.FAILED, S.UNDELIVERED) else None
    code = None if code in (None, "", "0", "000") else code
    return Normalized(VendorInfo(
        name="plivo", message_id=cb["MessageUUID"], status=word, normalized_status=normalized,
        error_code=code, error_message=ERROR_REASONS.get(code or ""),
        timestamp=parse_timestamp(first(cb.get("DeliveryReportTime"), cb.get("SentTime"), cb.get("QueuedTime"),
                                        cb.get("MessageTime"))),
        recipient=cb.get("To"), sender=cb.get("From"),
    ))



def _inbound(data: dict[str, Any]) -> Normalized:
    msg = InboundMessage.parse(data)
    url = msg.get("Media1")
    is_media = msg.get("ContentType") == "media" or bool(url)
    content = msg.get("ContentType") or "text"
    kind = media_kind(msg.get("MimeType"), url) if is_media else CONTENT_TYPES.get(content, T.UNKNOWN)
    text = first(msg.get("Body"), msg.get("text"))
    parts = InboundParts(
        type=kind, text=None if is_media else text,
        button_text=text if kind is T.BUTTON else None,
        media=media(kind, url=url, mime_type=msg.get("MimeType"), caption=text) if is_media else None,
        from_=msg["From"], to=msg.get("To"),
    )
    return Normalized(VendorInfo(
        name="plivo", message_id=msg["MessageUUID"], status="received", normalized_status=S.REPLIED,
        recipient=msg.get("To"), sender=msg["From"],
    ), parts)
