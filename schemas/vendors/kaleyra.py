"""Kaleyra (kaleyra.io, Tata Communications) WhatsApp callbacks.

Two shapes. API V2 webhooks wrap Meta's own `value` object: `{"meta_object": {"value": {...statuses or
messages...}, "field": "messages"}, "extra_info": {...}}` (status callbacks also carry top-level `status`
and `message_id`). Sources: developers.kaleyra.io/docs/wa-status-update-webhooks-payload-v2-sent,
/docs/whatsapp-status (SENT, DELIVERED, READ, FAILED, NOT-SENT), /docs/whatsapp-incoming-message-webhook-payload-
reply-media-message (extra_info.media_url), /docs/whatsapp-incoming-message-webhook-payloads-interactive-template-
message (`button`), /docs/whatsapp-incoming-message-webhook-payloads-interactive-list-reply-message.
The flat "Callback Profile for Incoming WhatsApp Messages" (body, mime_type, media_url, from, name, type,
created_at, reply_to, wanumber, mobile, ...): /docs/create-callback-profile-for-incoming-whatsapp-messages.
The flat "Callback Profile for Outgoing WhatsApp Messages" (status updates): the account picks which of
id, status, timestamp, mobile, phone_number, message, error, error_code, ref, ref1, ref2, price,
custom_response it receives, so `id` and `status` alone is a complete callback:
/docs/create-callback-profile-for-outgoing-whatsapp-messages (sample: id "<uuid>:0", status delivered,
message "Message delivered", mobile, phone_number, price, custom_response).
A V2 failure's `statuses[].errors[]` is read as Meta documents it (code, title, message, error_data.details);
no Kaleyra failed sample was found. Kaleyra's SMS callbacks are not covered (not found).
"""
from __future__ import annotations

from typing import Any

from marshmallow import fields

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, names, one,
                   parse_timestamp, status_of)

NAMES = names("kaleyra", "kaleyra_whatsapp", "kaleyra_io")
STATUS_MAP = {"sent": S.SENT, "delivered": S.DELIVERED, "read": S.READ, "failed": S.FAILED, "not-sent": S.FAILED}
MEDIA_KINDS = (T.IMAGE, T.VIDEO, T.AUDIO, T.DOCUMENT, T.STICKER)
_s = Text(allow_none=True).deserialize  # one scalar as a string; raises on a dict/list


class MetaObject(Open):
    value = fields.Dict(required=True)


class MetaStatus(Open):
    status = Text(required=True)
    id = Text(allow_none=True)
    timestamp = Text(allow_none=True)
    recipient_id = Text(allow_none=True)


class MetaMessage(Open):
    type = Text(required=True)
    id = Text(allow_none=True)
    from_ = Text(data_key="from", allow_none=True)
    timestamp = Text(allow_none=True)


class ProfileStatus(Open):
    id = Text(required=True)
    status = Text(required=True)
    timestamp = Text(allow_none=True)
    mobile = Text(allow_none=True)
    phone_number = Text(allow_none=True)
    message = Text(allow_none=True)
    error = Text(allow_none=True)
    error_code = Text(allow_none=True)


class ProfileIncoming(Open):
    type = Text(required=True)
    from_ = Text(data_key="from", required=True)
    body = Text(allow_none=True)
    name = Text(allow_none=True)
    wanumber = Text(allow_none=True)
    created_at = Text(allow_none=True)
    media_url = Text(allow_none=True)
    mime_type = Text(allow_none=True)
    reply_to = Text(allow_none=True)


def normalize(raw: Any, event_type: str) -> Normalized:
    data = as_dict(raw)
    if "meta_object" not in data:
        if "status" in data and "type" not in data:
            return _profile_status(data)
        return _profile_incoming(data)
    value = MetaObject.parse(as_dict(data["meta_object"]))["value"]
    extra = as_dict(data.get("extra_info"))
    business = _s(as_dict(value.get("metadata")).get("display_phone_number"))
    if "statuses" in value:
        return _v2_status(data, one(value["statuses"]), extra, business)
    return _v2_message(value, one(value["messages"]), extra, business)


def _v2_status(data: dict[str, Any], item: dict[str, Any], extra: dict[str, Any], business: str | None) -> Normalized:
    st = MetaStatus.parse(item)
    error = one(item.get("errors"))
    return Normalized(VendorInfo(
        name="kaleyra", message_id=_s(first(data.get("message_id"), extra.get("message_id"), st.get("id"))),
        status=st["status"], normalized_status=status_of(STATUS_MAP, st["status"]),
        error_code=_s(error.get("code")),
        error_message=_s(first(as_dict(error.get("error_data")).get("details"), error.get("message"),
                               error.get("title"))),
        timestamp=parse_timestamp(st.get("timestamp")), recipient=st.get("recipient_id"), sender=business,
    ))


def _v2_message(value: dict[str, Any], item: dict[str, Any], extra: dict[str, Any], business: str | None) -> Normalized:
    msg = MetaMessage.parse(item)
    kind = T.parse(msg["type"])
    button = as_dict(item.get("button"))
    interactive = as_dict(item.get("interactive"))
    reply = as_dict(interactive.get("button_reply") or interactive.get("list_reply"))
    obj = as_dict(item.get(msg["type"]))
    parts = InboundParts(
        type=kind, text=_s(as_dict(item.get("text")).get("body")),
        button_payload=_s(first(button.get("payload"), reply.get("id"))),
        button_text=_s(first(button.get("text"), reply.get("title"))),
        media=media(kind, id=obj.get("id"), url=extra.get("media_url") or None, mime_type=obj.get("mime_type"),
                    caption=obj.get("caption"), filename=obj.get("filename"), sha256=obj.get("sha256"))
        if kind in MEDIA_KINDS else None,
        location=obj or None if kind is T.LOCATION else None,
        reply_to=_s(first(as_dict(item.get("context")).get("id"), extra.get("reply_to"))),
        from_=msg.get("from_"), to=business, timestamp=parse_timestamp(msg.get("timestamp")),
    )
    profile = as_dict(one(value.get("contacts")).get("profile"))
    return Normalized(VendorInfo(
        name="kaleyra", message_id=msg.get("id"), status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=business, sender=parts.from_, profile_name=_s(profile.get("name")),
    ), parts)


def _profile_status(data: dict[str, Any]) -> Normalized:
    cb = ProfileStatus.parse(data)
    normalized = status_of(STATUS_MAP, cb["status"])
    failed = normalized in (S.FAILED, S.UNDELIVERED)
    return Normalized(VendorInfo(
        name="kaleyra", message_id=cb["id"], status=cb["status"], normalized_status=normalized,
        error_code=(cb.get("error_code") or None) if failed else None,
        error_message=first(cb.get("error"), cb.get("message")) if failed else None,
        timestamp=parse_timestamp(cb.get("timestamp")), recipient=first(cb.get("mobile"), cb.get("phone_number")),
    ))


def _profile_incoming(data: dict[str, Any]) -> Normalized:
    msg = ProfileIncoming.parse(data)
    kind = T.parse(msg["type"])
    parts = InboundParts(
        type=kind, text=msg.get("body") if kind is T.TEXT else None,
        media=media(kind, url=msg.get("media_url"), mime_type=msg.get("mime_type")) if kind in MEDIA_KINDS else None,
        reply_to=msg.get("reply_to") or None, from_=msg["from_"], to=msg.get("wanumber"),
        timestamp=parse_timestamp(msg.get("created_at")),
    )
    return Normalized(VendorInfo(
        name="kaleyra", status="received", normalized_status=S.REPLIED, timestamp=parts.timestamp,
        recipient=parts.to, sender=parts.from_, profile_name=msg.get("name"),
    ), parts)
