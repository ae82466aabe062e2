"""MessageBird / Bird: SMS status reports, Conversations API webhooks, Bird Channels API webhooks.

Sources: support.messagebird.com/hc/en-us/articles/360001869258 (SMS status report GET parameters id, reference,
recipient, status, statusDatetime); recipient fields statusReason/statusErrorCode as in github.com/messagebird/
php-rest-api message fixtures; developers.messagebird.com/docs/conversations/handle-inbound-messages-curl
(message.created payload: contact, conversation, message, type); message object in github.com/messagebird/
go-rest-api conversation/testdata/messageObject.json; content shapes in github.com/messagebird/messagebird-nodejs
types/conversations.d.ts; Bird Channels: docs.bird.com/api/channels-api/message-status-and-interactions
(<channel>.inbound / <channel>.outbound) and the whatsapp.inbound event in github.com/PipedreamHQ/pipedream
components/messagebird/sources/new-message-received/test-event.mjs.
"""
from __future__ import annotations

from typing import Any

from marshmallow import fields

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, names,
                   parse_timestamp, status_of)

NAMES = names("messagebird", "bird", "message_bird")
STATUS_MAP = {
    # SMS status reports
    "scheduled": S.QUEUED, "buffered": S.QUEUED, "sent": S.SENT, "delivered": S.DELIVERED,
    "expired": S.UNDELIVERED, "delivery_failed": S.FAILED,
    # Conversations API message statuses; Bird Channels lifecycle statuses
    "accepted": S.QUEUED, "pending": S.QUEUED, "processing": S.QUEUED, "read": S.READ, "rejected": S.FAILED,
    "failed": S.FAILED, "sending_failed": S.FAILED, "deleted": S.UNDELIVERED, "received": S.REPLIED,
}
_FAILED = (S.FAILED, S.UNDELIVERED)
_MEDIA = {"image": T.IMAGE, "video": T.VIDEO, "audio": T.AUDIO, "file": T.DOCUMENT}


class SmsStatusReport(Open):
    """The query parameters of the status report GET request, as a dict."""

    id = Text(required=True)
    recipient = Text(required=True)
    status = Text(required=True)
    reference = Text(allow_none=True)
    statusDatetime = Text(allow_none=True)
    statusReason = Text(allow_none=True)
    statusErrorCode = Text(allow_none=True)


class ConversationsWebhook(Open):
    type = Text(required=True)  # message.created | message.updated
    message = fields.Dict(required=True)
    contact = fields.Dict(load_default=None)


class ConversationsMessage(Open):
    id = Text(required=True)
    status = Text(allow_none=True)
    direction = Text(allow_none=True)  # sent | received
    type = Text(allow_none=True)
    to = Text(allow_none=True)
    from_ = Text(data_key="from", allow_none=True)
    createdDatetime = Text(allow_none=True)
    updatedDatetime = Text(allow_none=True)
    content = fields.Dict(load_default=None)


class ChannelsEvent(Open):
    event = Text(required=True)  # <channel>.inbound | <channel>.outbound
    payload = fields.Dict(required=True)


def normalize(raw: Any, event_type: str) -> Normalized:
    data = as_dict(raw)
    if "service" in data or "event" in data:
        return _channels(data)
    if "message" in data:
        return _conversations(data)
    return _sms_status(data)


def _sms_status(data: dict[str, Any]) -> Normalized:
    report = SmsStatusReport.parse(data)
    normalized = status_of(STATUS_MAP, report["status"])
    failed = normalized in _FAILED
    return Normalized(VendorInfo(
        name="messagebird", message_id=report["id"], status=report["status"], normalized_status=normalized,
        error_code=report.get("statusErrorCode") if failed else None,
        error_message=report.get("statusReason") if failed else None,
        timestamp=parse_timestamp(report.get("statusDatetime")), recipient=report["recipient"], raw=data,
    ))


def _conversations(data: dict[str, Any]) -> Normalized:
    hook = ConversationsWebhook.parse(data)
    msg = ConversationsMessage.parse(hook["message"])
    if msg.get("direction") != "received":
        normalized = status_of(STATUS_MAP, msg.get("status"))
        error = as_dict(hook["message"].get("error")) if normalized in _FAILED else {}
        return Normalized(VendorInfo(
            name="messagebird", message_id=msg["id"], status=msg.get("status"), normalized_status=normalized,
            error_code=None if error.get("code") is None else str(error["code"]),
            error_message=error.get("description"),
            timestamp=parse_timestamp(first(msg.get("updatedDatetime"), msg.get("createdDatetime"))),
            recipient=msg.get("to"), sender=msg.get("from_"), raw=data,
        ))
    content = as_dict(msg.get("content"))
    kind = _MEDIA.get(msg.get("type") or "") or T.parse(msg.get("type"))
    item = as_dict(content.get(msg.get("type") or ""))
    location = as_dict(content.get("location"))
    parts = InboundParts(
        type=kind, text=content.get("text") if isinstance(content.get("text"), str) else None,
        media=media(kind, url=item.get("url"), caption=item.get("caption")) if msg.get("type") in _MEDIA else None,
        location={k: location[k] for k in ("latitude", "longitude") if k in location} or None,
        from_=msg.get("from_"), to=msg.get("to"), timestamp=parse_timestamp(msg.get("createdDatetime")),
    )
    return Normalized(VendorInfo(
        name="messagebird", message_id=msg["id"], status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=parts.to, sender=parts.from_,
        profile_name=as_dict(hook.get("contact")).get("displayName"), raw=data,
    ), parts)


def _identifier(party: Any) -> str | None:
    """sender/receiver: {"contact": {...}} | {"contacts": [{...}]} | {"connector": {...}} -> identifierValue."""
    party = as_dict(party)
    contacts = party.get("contacts")
    found = as_dict(party.get("contact") or (contacts[0] if isinstance(contacts, list) and contacts else None)
                    or party.get("connector"))
    return first(found.get("identifierValue"))


def _channels(data: dict[str, Any]) -> Normalized:
    hook = ChannelsEvent.parse(data)
    msg = hook["payload"]
    if not hook["event"].endswith(".inbound"):
        normalized = status_of(STATUS_MAP, msg.get("status"))
        return Normalized(VendorInfo(
            name="bird", message_id=msg.get("id"), status=msg.get("status"), normalized_status=normalized,
            error_message=first(msg.get("reason")) if normalized in _FAILED else None,
            timestamp=parse_timestamp(first(msg.get("lastStatusAt"), msg.get("updatedAt"))),
            recipient=_identifier(msg.get("receiver")), sender=_identifier(msg.get("sender")), raw=data,
        ))
    body = as_dict(msg.get("body"))
    parts = InboundParts(
        type=T.parse(body.get("type")), text=as_dict(body.get("text")).get("text"),
        from_=_identifier(msg.get("sender")), to=_identifier(msg.get("receiver")),
        timestamp=parse_timestamp(msg.get("createdAt")),
    )
    return Normalized(VendorInfo(
        name="bird", message_id=msg.get("id"), status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=parts.to, sender=parts.from_, raw=data,
    ), parts)
