"""Gupshup WhatsApp: the enterprise API format and the self-serve (gupshup.io) v2 format.

Sources: SuprSend "Outbound Webhook" samples (enterprise status and inbound, seed 003);
docs.gupshup.io/docs/message-events (v2 status: enqueued/failed/sent/delivered/read, `ts` in s);
docs.gupshup.io/docs/inbound-messages and /docs/text (v2 inbound: text, quick_reply, image, ...); the tests
of github.com/jaimey/Whatsapp-Gupshup-Library-PHP (tests/InboundMessageEventTest.php, InboundMesageTest.php,
InboundUserEventTest.php: real v2 message-events, inbound messages, and a template quick-reply button that
arrives as `type: "text"` with `payload.type: "button"`).
Anything else drifts: a dict of neither enterprise shape, a v2 envelope whose `type` is not `message-event`
or `message` (`user-event`, `billing-event`, ...), a v2 event or message without its `type`.
"""
from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, names,
                   one, parse_timestamp, status_of)

NAMES = names("gupshup", "gupshup_enterprise", "gupshup_whatsapp")
STATUS_MAP = {
    "enqueued": S.QUEUED, "sent": S.SENT, "delivered": S.DELIVERED, "read": S.READ,
    "failed": S.FAILED, "deleted": S.UNKNOWN,
}


class EnterpriseDLR(Open):
    """One item of `response` in an enterprise delivery report (the SuprSend sample)."""

    eventType = Text(required=True)
    externalId = Text(allow_none=True)
    destAddr = Text(allow_none=True)
    srcAddr = Text(allow_none=True)
    eventTs = Text(allow_none=True)
    errorCode = Text(allow_none=True)
    cause = Text(allow_none=True)


class EnterpriseInbound(Open):
    type = Text(required=True)
    mobile = Text(required=True)
    waNumber = Text(allow_none=True)
    replyId = Text(allow_none=True)
    messageId = Text(allow_none=True)
    timestamp = Text(allow_none=True)
    name = Text(allow_none=True)
    text = Text(allow_none=True)


class V2Envelope(Open):
    type = fields.String(required=True)  # "message-event" | "message" | "user-event" | ...
    payload = fields.Dict(required=True)
    timestamp = Text(allow_none=True)
    version = Text(allow_none=True)


class V2Body(Open):
    """The inner `payload` of a v2 message-event (type: the status word) or message (type: the message kind)."""

    type = Text(required=True)
    id = Text(allow_none=True)
    gsId = Text(allow_none=True)
    destination = Text(allow_none=True)
    source = Text(allow_none=True)


def _json_obj(value: Any) -> dict[str, Any]:
    """Enterprise sends nested objects (context, image, button) as JSON strings."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return as_dict(value)


def normalize(raw: Any, event_type: str) -> Normalized:
    data = as_dict(raw)
    if "app" in data or data.get("version") in (2, "2") and isinstance(data.get("payload"), dict):
        return _v2(data)
    if "response" in data:
        return _enterprise_status(data)
    return _enterprise_inbound(data)


def _enterprise_status(data: dict[str, Any]) -> Normalized:
    dlr = EnterpriseDLR.parse(one(data["response"]))
    ok = dlr.get("errorCode") in (None, "", "000", "0")
    return Normalized(VendorInfo(
        name="gupshup", message_id=dlr.get("externalId"), status=dlr["eventType"],
        normalized_status=status_of(STATUS_MAP, dlr["eventType"]),
        error_code=None if ok else dlr.get("errorCode"), error_message=None if ok else dlr.get("cause"),
        timestamp=parse_timestamp(dlr.get("eventTs")), recipient=dlr.get("destAddr"),
        sender=dlr.get("srcAddr"), raw=data,
    ))


def _enterprise_inbound(data: dict[str, Any]) -> Normalized:
    msg = EnterpriseInbound.parse(data)
    kind = T.parse(msg.get("type"))
    button = _json_obj(data.get("button"))
    interactive = _json_obj(data.get("interactive"))
    reply = as_dict(interactive.get("button_reply") or interactive.get("list_reply"))
    media_obj = _json_obj(data.get(kind.value)) if kind in (T.IMAGE, T.VIDEO, T.AUDIO, T.DOCUMENT, T.STICKER) else {}
    parts = InboundParts(
        type=kind, text=msg.get("text"),
        button_payload=first(button.get("payload"), reply.get("id")),
        button_text=first(button.get("text"), reply.get("title")),
        media=media(kind, url=media_obj.get("url"), id=media_obj.get("id"),
                    mime_type=media_obj.get("mime_type"), caption=media_obj.get("caption"),
                    filename=media_obj.get("filename")),
        reply_to=_json_obj(data.get("context")).get("id"),
        from_=msg.get("mobile"), to=msg.get("waNumber"), timestamp=parse_timestamp(msg.get("timestamp")),
    )
    return Normalized(VendorInfo(
        name="gupshup", message_id=first(msg.get("replyId"), msg.get("messageId")), status="received",
        normalized_status=S.REPLIED, timestamp=parts.timestamp, recipient=msg.get("waNumber"),
        sender=msg.get("mobile"), profile_name=msg.get("name"), raw=data,
    ), parts)


def _v2(data: dict[str, Any]) -> Normalized:
    env = V2Envelope.parse(data)
    if env["type"] not in ("message-event", "message"):
        raise ValidationError({"type": [f"not a message or message-event: {env['type'][:40]!r}"]})
    body = V2Body.parse(env["payload"])
    inner = as_dict(body.get("payload"))
    if env["type"] == "message-event":
        word = body["type"]
        failed = word == "failed"
        return Normalized(VendorInfo(
            name="gupshup", message_id=first(body.get("gsId"), body.get("id")), status=word,
            normalized_status=status_of(STATUS_MAP, word),
            error_code=str(inner["code"]) if failed and inner.get("code") is not None else None,
            error_message=inner.get("reason") if failed else None,
            timestamp=parse_timestamp(first(inner.get("ts"), env.get("timestamp"))),
            recipient=body.get("destination"), raw=data,
        ))
    # type == "message": an inbound message
    kind_word = body["type"]
    kind = {"quick_reply": T.BUTTON, "button_reply": T.INTERACTIVE, "list_reply": T.INTERACTIVE,
            "file": T.DOCUMENT, "contact": T.CONTACTS}.get(kind_word) or T.parse(kind_word)
    if kind is T.TEXT and inner.get("type") == "button":  # a template quick reply sent as text
        kind = T.BUTTON
    sender = as_dict(body.get("sender"))
    is_button = kind in (T.BUTTON, T.INTERACTIVE)
    parts = InboundParts(
        type=kind,
        text=first(inner.get("text"), inner.get("title")) if kind in (T.TEXT, T.BUTTON, T.INTERACTIVE) else None,
        button_payload=first(inner.get("postbackText"), inner.get("id"), inner.get("payload")) if is_button else None,
        button_text=first(inner.get("title"), inner.get("text"), inner.get("reply")) if is_button else None,
        media=media(kind, url=inner.get("url"), mime_type=inner.get("contentType"),
                    caption=inner.get("caption"), filename=inner.get("name")),
        location={k: inner[k] for k in ("latitude", "longitude", "name", "address") if k in inner}
        if kind is T.LOCATION else None,
        reply_to=as_dict(body.get("context")).get("id"),
        from_=first(sender.get("phone"), body.get("source")),
        timestamp=parse_timestamp(env.get("timestamp")),
    )
    return Normalized(VendorInfo(
        name="gupshup", message_id=body.get("id"), status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, sender=parts.from_, profile_name=sender.get("name"), raw=data,
    ), parts)
