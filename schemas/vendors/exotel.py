"""Exotel: the SMS StatusCallback (form fields) and the WhatsApp webhooks (JSON).

Sources: developer.exotel.com/api-console/send-sms-api-console (SMS StatusCallback, form-encoded: SmsSid,
To, Status, SmsUnits, DetailedStatus, DetailedStatusCode, DateSent, CustomField);
developer.exotel.com/docs/sms-support/sms-status-codes (statuses; 20000 DELIVERED_TO_HANDSET, ...);
developer.exotel.com/docs/whatsapp-support/webhooks (WhatsApp `message_status` payload);
developer.exotel.com/docs/whatsapp-api/api-reference/receive-messages (WhatsApp `incoming_message`).
`DateSent` is "YYYY-MM-DD HH:mm:ss" without a zone; Exotel's own "not sent yet" value
"1970-01-01 05:30:00" (npmjs.com/package/exotel) shows it is IST, so it is read as +05:30.
Not covered (not found in public docs): inbound SMS fields, WhatsApp button replies, WhatsApp failure
error fields, and the older `{"whatsapp": {"messages": [...]}}` callback format (developer.exotel.com/api).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, names,
                   parse_timestamp, status_of)

NAMES = names("exotel", "exotel_sms", "exotel_whatsapp")
STATUS_MAP = {
    "queued": S.QUEUED, "sending": S.QUEUED, "accepted": S.QUEUED, "submitted": S.SENT, "sent": S.SENT,
    "delivered": S.DELIVERED, "read": S.READ, "seen": S.READ, "failed": S.FAILED, "failed_dnd": S.FAILED,
    "expired": S.UNDELIVERED, "undelivered": S.UNDELIVERED,
}
DELIVERED_TO_HANDSET = "20000"  # DetailedStatusCode: the SMS reached the handset (Status may still say "sent")
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_IST = timedelta(hours=5, minutes=30)
_UNSET = datetime(1970, 1, 1, tzinfo=timezone.utc)
_s = Text(allow_none=True).deserialize  # one scalar as a string; raises on a dict/list


class SmsStatusCallback(Open):
    SmsSid = Text(required=True)
    Status = Text(required=True)
    To = Text(allow_none=True)
    DetailedStatus = Text(allow_none=True)
    DetailedStatusCode = Text(allow_none=True)
    DateSent = Text(allow_none=True)


class WhatsAppStatus(Open):
    message_sid = Text(required=True)
    status = Text(required=True)
    to = Text(allow_none=True)
    timestamp = Text(allow_none=True)


class WhatsAppInbound(Open):
    type = Text(required=True)
    id = Text(allow_none=True)
    to = Text(allow_none=True)
    timestamp = Text(allow_none=True)


def ist_timestamp(value: Any) -> datetime | None:
    """Exotel's zone-less date-times are IST; its unset DateSent (epoch 0 in IST) is None."""
    parsed = parse_timestamp(value)
    if parsed is not None and isinstance(value, str) and _NAIVE.match(value.strip()):
        parsed -= _IST
    return None if parsed == _UNSET else parsed


def normalize(raw: Any, event_type: str) -> Normalized:
    data = as_dict(raw)
    if isinstance(data.get("data"), dict):
        return _whatsapp_status(data)
    if isinstance(data.get("message"), dict):
        return _whatsapp_inbound(data)
    return _sms_status(data)


def _sms_status(data: dict[str, Any]) -> Normalized:
    dlr = SmsStatusCallback.parse(data)
    normalized = status_of(STATUS_MAP, dlr["Status"])
    if dlr.get("DetailedStatusCode") == DELIVERED_TO_HANDSET:
        normalized = S.DELIVERED
    failed = normalized in (S.FAILED, S.UNDELIVERED)
    return Normalized(VendorInfo(
        name="exotel", message_id=dlr["SmsSid"], status=dlr["Status"], normalized_status=normalized,
        error_code=dlr.get("DetailedStatusCode") if failed else None,
        error_message=dlr.get("DetailedStatus") if failed else None,
        timestamp=ist_timestamp(dlr.get("DateSent")), recipient=dlr.get("To"), raw=data,
    ))


def _whatsapp_status(data: dict[str, Any]) -> Normalized:
    body = data["data"]
    dlr = WhatsAppStatus.parse(body)
    return Normalized(VendorInfo(
        name="exotel", message_id=dlr["message_sid"], status=dlr["status"],
        normalized_status=status_of(STATUS_MAP, dlr["status"]),
        timestamp=parse_timestamp(first(dlr.get("timestamp"), data.get("timestamp"))),
        recipient=dlr.get("to"), sender=_s(body.get("from")), raw=data,
    ))


def _whatsapp_inbound(data: dict[str, Any]) -> Normalized:
    body = data["message"]
    msg = WhatsAppInbound.parse(body)
    sender = _s(body.get("from"))
    kind = T.parse(msg["type"])
    obj = as_dict(body.get(msg["type"]))
    parts = InboundParts(
        type=kind, text=_s(as_dict(body.get("text")).get("body")),
        media=media(kind, id=obj.get("id"), url=obj.get("url") or obj.get("link"), mime_type=obj.get("mime_type"),
                    caption=obj.get("caption"), filename=obj.get("filename"), sha256=obj.get("sha256"))
        if kind in (T.IMAGE, T.VIDEO, T.AUDIO, T.DOCUMENT, T.STICKER) else None,
        location=obj or None if kind is T.LOCATION else None,
        reply_to=_s(as_dict(body.get("context")).get("id")),
        from_=sender, to=msg.get("to"), timestamp=parse_timestamp(first(msg.get("timestamp"), data.get("timestamp"))),
    )
    profile = as_dict(as_dict(data.get("contact")).get("profile"))
    return Normalized(VendorInfo(
        name="exotel", message_id=msg.get("id"), status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=parts.to, sender=sender,
        profile_name=_s(profile.get("name")), raw=data,
    ), parts)
