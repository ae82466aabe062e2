"""WhatsApp Cloud API (Meta): the `whatsapp_business_account` messages webhook.

Sources: developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
(common structure: object/entry[]/changes[]/value with metadata, contacts[], messages[] or statuses[]);
.../reference/messages/status (statuses[]: id, status sent|delivered|read|failed|played, timestamp in
epoch seconds as a string, recipient_id, errors[]); .../reference/messages/errors (errors[]: code,
title, message, error_data.details, href); .../reference/messages/button, .../interactive, .../image
(button.payload/text, interactive.button_reply|list_reply.id/title, image.id/mime_type/sha256/caption/url).
A bare `value` object (`{"statuses": [...]}` / `{"messages": [...]}`) is read the same way.
"""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, names,
                   one, parse_timestamp, status_of)

NAMES = names("meta", "whatsapp_cloud", "whatsapp_cloud_api", "whatsapp_meta", "facebook")
STATUS_MAP = {"sent": S.SENT, "delivered": S.DELIVERED, "read": S.READ, "played": S.READ, "failed": S.FAILED}
_MEDIA = (T.IMAGE, T.VIDEO, T.AUDIO, T.DOCUMENT, T.STICKER)
# The titles of Meta's error codes (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes, as
# mirrored at developers.kaleyra.io/docs/cloud-api-error-codes); a failed status carries the title as
# errors[].title and errors[].message. 470 is the On-Premises API's code for the closed 24-hour window (its
# text as Gupshup relays it in a v2 failed message-event); the Cloud API reports that as 131047.
ERROR_TITLES = {
    "0": "AuthException", "3": "API Method", "4": "API Too Many Calls", "10": "Permission Denied",
    "190": "Access token has expired", "200": "API Permission", "368": "Temporarily blocked for policies violations",
    "470": "Message failed to send because more than 24 hours have passed since the customer last replied to "
           "this number",
    "80007": "Rate limit issues", "130429": "Rate limit hit", "130472": "User's number is part of an experiment",
    "131000": "Something went wrong", "131005": "Access denied", "131008": "Required parameter is missing",
    "131009": "Parameter value is not valid", "131016": "Service unavailable", "131021": "Recipient cannot be sender",
    "131026": "Message undeliverable", "131031": "Account has been locked",
    "131042": "Business eligibility payment issue", "131045": "Incorrect certificate",
    "131047": "Re-engagement message", "131048": "Spam rate limit hit", "131051": "Unsupported message type",
    "131052": "Media download error", "131053": "Media upload error",
    "131056": "(Business Account, Consumer Account) pair rate limit hit", "131057": "Account in maintenance mode",
    "132000": "Template Param Count Mismatch", "132001": "Template does not exist",
    "132005": "Template Hydrated Text Too Long", "132007": "Template Format Character Policy Violated",
    "132012": "Template Parameter Format Mismatch", "132015": "Template is Paused", "132016": "Template is Disabled",
    "133010": "Phone number Not Registered",
}


class Envelope(Open):
    object = Text(allow_none=True)
    entry = fields.List(fields.Dict(), required=True)


class Change(Open):
    value = fields.Dict(required=True)
    field = Text(allow_none=True)


class Value(Open):
    metadata = fields.Dict(allow_none=True)
    contacts = fields.List(fields.Dict(), allow_none=True)
    messages = fields.List(fields.Dict(), allow_none=True)
    statuses = fields.List(fields.Dict(), allow_none=True)


class Status(Open):
    id = Text(required=True)
    status = Text(required=True)
    timestamp = Text(allow_none=True)
    recipient_id = Text(allow_none=True)
    errors = fields.List(fields.Dict(), allow_none=True)


class Message(Open):
    id = Text(required=True)
    type = Text(required=True)
    from_ = Text(data_key="from", allow_none=True)
    timestamp = Text(allow_none=True)
    context = fields.Dict(allow_none=True)


def _s(value: Any) -> str | None:
    """A scalar as a string (nested vendor values may be anything); None otherwise."""
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def _value(data: Any) -> dict[str, Any]:
    """The `value` of the first change of the first entry (or a bare `value` object)."""
    if isinstance(data, dict) and "entry" not in data and ("statuses" in data or "messages" in data):
        return Value.parse(data)
    entry = one(Envelope.parse(data)["entry"])
    return Value.parse(Change.parse(one(entry.get("changes")))["value"])


def normalize(raw: Any, event_type: str) -> Normalized:
    value = _value(raw)
    meta = as_dict(value.get("metadata"))
    if value.get("messages") and (event_type == "inbound_message" or not value.get("statuses")):
        return _inbound(value, meta, as_dict(raw))
    if value.get("statuses"):
        return _status(value, meta, as_dict(raw))
    raise ValidationError({"value": ["neither statuses nor messages"]})


def _status(value: dict[str, Any], meta: dict[str, Any], raw: dict[str, Any]) -> Normalized:
    st = Status.parse(one(value["statuses"]))
    err = one(st.get("errors"))
    return Normalized(VendorInfo(
        name="meta", message_id=st["id"], status=st["status"],
        normalized_status=status_of(STATUS_MAP, st["status"]),
        error_code=_s(err.get("code")), error_message=_s(first(err.get("message"), err.get("title"))),
        timestamp=parse_timestamp(st.get("timestamp")), recipient=st.get("recipient_id"),
        sender=_s(meta.get("display_phone_number")), raw=raw,
    ))


def _inbound(value: dict[str, Any], meta: dict[str, Any], raw: dict[str, Any]) -> Normalized:
    msg = Message.parse(one(value["messages"]))
    body = one(value["messages"])
    kind = T.parse(msg["type"])
    button = as_dict(body.get("button"))
    interactive = as_dict(body.get("interactive"))
    reply = as_dict(interactive.get("button_reply") or interactive.get("list_reply"))
    obj = as_dict(body.get(kind.value)) if kind in _MEDIA else {}
    loc = as_dict(body.get("location"))
    reaction = as_dict(body.get("reaction"))
    to = _s(meta.get("display_phone_number"))
    parts = InboundParts(
        type=kind,
        text=_s(first(as_dict(body.get("text")).get("body"), button.get("text"), reply.get("title"),
                      reaction.get("emoji"))),
        button_payload=_s(first(button.get("payload"), reply.get("id"))),
        button_text=_s(first(button.get("text"), reply.get("title"))),
        media=media(kind, id=_s(obj.get("id")), url=_s(obj.get("url")), mime_type=_s(obj.get("mime_type")),
                    caption=_s(obj.get("caption")), filename=_s(obj.get("filename")), sha256=_s(obj.get("sha256")))
        if kind in _MEDIA else None,
        location={k: loc[k] for k in ("latitude", "longitude", "name", "address") if k in loc} or None,
        reply_to=_s(first(as_dict(msg.get("context")).get("id"), reaction.get("message_id"))),
        from_=msg.get("from_"), to=to, timestamp=parse_timestamp(msg.get("timestamp")),
    )
    contact = one(value.get("contacts"))
    return Normalized(VendorInfo(
        name="meta", message_id=msg["id"], status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=to, sender=msg.get("from_"),
        profile_name=_s(as_dict(contact.get("profile")).get("name")), raw=raw,
    ), parts)
