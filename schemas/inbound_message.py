"""`suprsend_inbound_message`: a user's reply. Shapes follow the WhatsApp message object that
SuprSend mirrors (`type`, `text.body`, `context`, `button`, `interactive`, media objects)."""
from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, fields, post_load

from dataclasses import replace

from .fields import JSONObject, MillisTimestamp
from .model import MEDIA_KINDS, Button, InboundMessage, Media, MessageType
from .vendors.base import InboundParts


class TextBody(fields.Field):
    """`{"body": "..."}` (WhatsApp style) or a bare string (SMS style) -> the text."""

    default_error_messages = {"invalid": "Expected a string or an object with a string 'body'."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, dict):
            value = value.get("body")
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return value


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class ContextSchema(_Open):
    from_ = fields.String(data_key="from", allow_none=True)
    id = fields.String(allow_none=True)


class ButtonSchema(_Open):
    payload = fields.String(allow_none=True)
    text = fields.String(allow_none=True)


class ReplySchema(_Open):
    id = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    description = fields.String(allow_none=True)


class InteractiveSchema(_Open):
    type = fields.String(allow_none=True)
    button_reply = fields.Nested(ReplySchema, allow_none=True)
    list_reply = fields.Nested(ReplySchema, allow_none=True)


class MediaSchema(_Open):
    id = fields.String(allow_none=True)
    link = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    mime_type = fields.String(allow_none=True)
    caption = fields.String(allow_none=True)
    filename = fields.String(allow_none=True)
    sha256 = fields.String(allow_none=True)


class InboundMessageSchema(_Open):
    type = fields.String(allow_none=True)
    message_type = fields.String(allow_none=True)
    text = TextBody(allow_none=True)
    from_ = fields.String(data_key="from", allow_none=True)
    to = fields.String(allow_none=True)
    timestamp = MillisTimestamp(allow_none=True)
    context = JSONObject(allow_none=True)
    source_message_id = fields.String(allow_none=True)
    source_message_sent_via_suprsend = fields.Boolean(allow_none=True)
    button = fields.Nested(ButtonSchema, allow_none=True)
    interactive = fields.Nested(InteractiveSchema, allow_none=True)
    location = fields.Dict(allow_none=True)
    image = fields.Nested(MediaSchema, allow_none=True)
    video = fields.Nested(MediaSchema, allow_none=True)
    audio = fields.Nested(MediaSchema, allow_none=True)
    document = fields.Nested(MediaSchema, allow_none=True)
    sticker = fields.Nested(MediaSchema, allow_none=True)

    @post_load
    def make(self, data: dict, **kwargs) -> InboundMessage:
        button = _button(data.pop("button", None), data.pop("interactive", None))
        media = None
        for kind in MEDIA_KINDS:
            obj = data.pop(kind, None)
            if obj and media is None:
                media = Media(
                    kind=kind, id=obj.get("id"), url=obj.get("link") or obj.get("url"),
                    mime_type=obj.get("mime_type"), caption=obj.get("caption"),
                    filename=obj.get("filename"), sha256=obj.get("sha256"),
                )
        text = data.pop("text", None)
        if text is None and button is not None:
            text = button.text
        kind = MessageType.parse(data.pop("type", None))
        if kind is MessageType.UNKNOWN and button is not None:
            kind = MessageType.BUTTON
        context = data.get("context")
        known = {k: data.pop(k, None) for k in (
            "message_type", "from_", "to", "timestamp", "context",
            "source_message_id", "source_message_sent_via_suprsend", "location",
        )}
        return InboundMessage(type=kind, text=text, button=button, media=media, extra=data,
                              reply_to=(context or {}).get("id"), **known)


def _button(button: dict | None, interactive: dict | None) -> Button | None:
    if button:
        return Button(payload=button.get("payload"), text=button.get("text"))
    if interactive:
        reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
        return Button(payload=reply.get("id"), text=reply.get("title"))
    return None


def merge_vendor_parts(message: InboundMessage, parts: InboundParts | None,
                       workspace_uid: str | None) -> InboundMessage:
    """SuprSend's fields win; the vendor's callback fills the gaps. Resolves `reply_to_nid`."""
    p = parts or InboundParts()
    button = message.button
    if button is None and (p.button_payload or p.button_text):
        button = Button(payload=p.button_payload, text=p.button_text)
    kind = message.type if message.type is not MessageType.UNKNOWN else (p.type or MessageType.UNKNOWN)
    text = message.text or p.text or (button.text if button else None)
    return replace(
        message, type=kind, text=text, button=button, media=message.media or p.media,
        location=message.location or p.location, reply_to=message.reply_to or p.reply_to,
        from_=message.from_ or p.from_, to=message.to or p.to, timestamp=message.timestamp or p.timestamp,
        reply_to_nid=_nid(message.source_message_id, workspace_uid),
    )


def _nid(source_message_id: str | None, workspace_uid: str | None) -> str | None:
    """SuprSend's `source_message_id` is `<workspace_uid>-<supr_nid>`."""
    if not source_message_id:
        return None
    if workspace_uid and source_message_id.startswith(workspace_uid + "-"):
        return source_message_id[len(workspace_uid) + 1:] or None
    head, sep, tail = source_message_id.partition("-")
    return tail or None if sep else None
