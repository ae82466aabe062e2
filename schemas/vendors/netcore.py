"""Netcore Cloud (Pepipost) WhatsApp Business API: delivery-status and incoming-message webhooks.

Sources: wadocs.pepipost.com/webhooks/delivery-notification (`delivery_status` batch: ncmessage_id,
recipient, status, status_remark, received_at, source); emaildocs.netcorecloud.com/reference/webhooks-v2
(same batch, adds phoneNumber, pricing, x-apiheader; received_at in epoch seconds);
wadocs.pepipost.com/webhooks/overview/incoming-message (`incoming_message` batch, text: `text_type`) and
/incoming-message-media (`image_type`: id, mime_type, sha256, caption).
A status batch may hold several events; the first one is normalized. Zone-less `received_at` date-times
(the older sample) are read as UTC: the zone is not documented. No error code is documented (only the free
text `status_remark`), nor any button-reply or SMS callback.
"""
from __future__ import annotations

from typing import Any

from marshmallow import fields

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, names, one,
                   parse_timestamp, status_of)

NAMES = names("netcore", "netcore_whatsapp", "netcorecloud", "pepipost")
STATUS_MAP = {"sent": S.SENT, "delivered": S.DELIVERED, "read": S.READ, "failed": S.FAILED}
_s = Text(allow_none=True).deserialize  # one scalar as a string; raises on a dict/list


class DeliveryStatus(Open):
    ncmessage_id = Text(required=True)
    status = Text(required=True)
    recipient = Text(allow_none=True)
    phoneNumber = Text(allow_none=True)
    status_remark = Text(allow_none=True)
    received_at = Text(allow_none=True)


class IncomingMessage(Open):
    message_type = Text(required=True)
    message_id = Text(allow_none=True)
    from_ = Text(data_key="from", allow_none=True)
    received_at = Text(allow_none=True)
    context = fields.Dict(allow_none=True)


def normalize(raw: Any, event_type: str) -> Normalized:
    data = as_dict(raw)
    if "incoming_message" in data:
        return _incoming(one(data["incoming_message"]))
    return _status(one(data["delivery_status"]), data)


def _status(item: dict[str, Any], data: dict[str, Any]) -> Normalized:
    dlr = DeliveryStatus.parse(item)
    normalized = status_of(STATUS_MAP, dlr["status"])
    failed = normalized in (S.FAILED, S.UNDELIVERED)
    return Normalized(VendorInfo(
        name="netcore", message_id=dlr["ncmessage_id"], status=dlr["status"], normalized_status=normalized,
        error_message=(dlr.get("status_remark") or None) if failed else None,
        timestamp=parse_timestamp(dlr.get("received_at")), recipient=dlr.get("recipient"),
        sender=dlr.get("phoneNumber"), raw=data,
    ))


def _incoming(item: dict[str, Any]) -> Normalized:
    msg = IncomingMessage.parse(item)
    kind = T.parse(msg["message_type"])
    body = as_dict(item.get(f"{msg['message_type'].lower()}_type"))  # text_type, image_type, ...
    context = as_dict(msg.get("context"))
    parts = InboundParts(
        type=kind, text=_s(body.get("text")) if kind is T.TEXT else None,
        media=media(kind, id=body.get("id"), url=body.get("url"), mime_type=body.get("mime_type"),
                    caption=body.get("caption"), sha256=body.get("sha256"))
        if kind in (T.IMAGE, T.VIDEO, T.AUDIO, T.DOCUMENT, T.STICKER) else None,
        reply_to=_s(first(context.get("ncmessage_id"), context.get("message_id"))),
        from_=msg.get("from_"), timestamp=parse_timestamp(msg.get("received_at")),
    )
    return Normalized(VendorInfo(
        name="netcore", message_id=msg.get("message_id"), status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, sender=parts.from_,
    ), parts)
