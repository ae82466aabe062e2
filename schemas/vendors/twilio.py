"""Twilio Programmable Messaging (SMS, MMS, WhatsApp): status callbacks and incoming-message webhooks.

Twilio POSTs form fields; SuprSend forwards them as a JSON object of those fields.
Sources: twilio.com/docs/messaging/guides/track-outbound-message-status and
/docs/messaging/guides/outbound-message-status-in-status-callbacks (status callback: MessageSid, SmsSid,
MessageStatus, SmsStatus, ErrorCode, From, To, AccountSid, ApiVersion; WhatsApp adds ChannelPrefix,
ChannelToAddress, ChannelInstallSid); twilio.com/docs/messaging/api/message-resource (status values);
twilio.com/docs/messaging/guides/webhook-request (incoming: MessageSid, From, To, Body, NumMedia,
MediaUrl{N}, MediaContentType{N}, Latitude/Longitude/Address/Label; WhatsApp: ProfileName, WaId,
ButtonText, ButtonPayload, MessageType, OriginalRepliedMessageSid). Twilio's messaging callbacks carry
no event time (RawDlrDoneDate is YYMMDDhhmm without a time zone) and no error text, only ErrorCode:
the text of the common delivery codes comes from Twilio's error dictionary (twilio.com/docs/api/errors/300NN).
Channel addresses (`whatsapp:+1415...`) are normalized to the bare number.
"""
from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, validates_schema

from .base import InboundParts, Normalized, Open, S, T, Text, VendorInfo, first, media, media_kind, names, status_of

NAMES = names("twilio", "twilio_sms", "twilio_whatsapp")
STATUS_MAP = {
    "accepted": S.QUEUED, "scheduled": S.QUEUED, "queued": S.QUEUED, "sending": S.QUEUED, "sent": S.SENT,
    "delivered": S.DELIVERED, "read": S.READ, "failed": S.FAILED, "undelivered": S.UNDELIVERED,
    "canceled": S.UNDELIVERED, "receiving": S.REPLIED, "received": S.REPLIED,
}
_INBOUND_WORDS = ("received", "receiving")
ERROR_TEXT = {  # twilio.com/docs/api/errors/<code>
    "30001": "Queue overflow", "30002": "Account suspended", "30003": "Unreachable destination handset",
    "30004": "Message blocked", "30005": "Unknown destination handset", "30006": "Landline or unreachable carrier",
    "30007": "Message filtered", "30008": "Unknown error", "30009": "Missing segment",
    "30010": "Message price exceeds max price",
}


class Callback(Open):
    """The fields both callbacks share; a dict without a message SID is not a Twilio callback."""

    MessageSid = Text(allow_none=True)
    SmsSid = Text(allow_none=True)
    MessageStatus = Text(allow_none=True)
    SmsStatus = Text(allow_none=True)
    ErrorCode = Text(allow_none=True)
    ErrorMessage = Text(allow_none=True)
    From = Text(allow_none=True)
    To = Text(allow_none=True)
    Body = Text(allow_none=True)
    NumMedia = Text(allow_none=True)
    MediaUrl0 = Text(allow_none=True)
    MediaContentType0 = Text(allow_none=True)
    MessageType = Text(allow_none=True)
    ButtonPayload = Text(allow_none=True)
    ButtonText = Text(allow_none=True)
    ProfileName = Text(allow_none=True)
    OriginalRepliedMessageSid = Text(allow_none=True)

    @validates_schema
    def _has_sid(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not first(data.get("MessageSid"), data.get("SmsSid")):
            raise ValidationError("MessageSid or SmsSid is required.", "MessageSid")


def _address(value: str | None) -> str | None:
    """`whatsapp:+14155238886` -> `+14155238886`; plain numbers unchanged."""
    return re.sub(r"^[a-z]+:", "", value) if value else value


def normalize(raw: Any, event_type: str) -> Normalized:
    cb = Callback.parse(raw)
    sid = first(cb.get("MessageSid"), cb.get("SmsSid"))
    word = first(cb.get("MessageStatus"), cb.get("SmsStatus"))
    if event_type == "inbound_message" or (not cb.get("MessageStatus") and word in _INBOUND_WORDS):
        return _inbound(cb, sid, raw)
    code = cb.get("ErrorCode") if cb.get("ErrorCode") not in (None, "", "0") else None
    return Normalized(VendorInfo(
        name="twilio", message_id=sid, status=word, normalized_status=status_of(STATUS_MAP, word),
        error_code=code, error_message=first(cb.get("ErrorMessage"), ERROR_TEXT.get(code)) if code else None,
        recipient=_address(cb.get("To")), sender=_address(cb.get("From")), raw=raw,
    ))


def _kind(cb: dict[str, Any], has_media: bool) -> T:
    if cb.get("MessageType"):
        return T.parse(cb["MessageType"])
    if cb.get("ButtonPayload") or cb.get("ButtonText"):
        return T.BUTTON
    if has_media:
        return media_kind(cb.get("MediaContentType0"))
    return T.LOCATION if cb.get("Latitude") else T.TEXT


def _inbound(cb: dict[str, Any], sid: str | None, raw: Any) -> Normalized:
    has_media = bool(cb.get("MediaUrl0")) and cb.get("NumMedia") not in (None, "", "0")
    kind = _kind(cb, has_media)
    is_media = kind in (T.IMAGE, T.VIDEO, T.AUDIO, T.DOCUMENT, T.STICKER)
    is_button = kind in (T.BUTTON, T.INTERACTIVE)
    location = {k.lower(): cb[k] for k in ("Latitude", "Longitude", "Address", "Label")
                if cb.get(k) not in (None, "")}
    parts = InboundParts(
        type=kind, text=None if is_media else cb.get("Body"),
        button_payload=cb.get("ButtonPayload") if is_button else None,
        button_text=first(cb.get("ButtonText"), cb.get("Body")) if is_button else None,
        media=media(kind, url=cb.get("MediaUrl0"), mime_type=cb.get("MediaContentType0"),
                    caption=cb.get("Body") or None) if is_media else None,
        location=location if kind is T.LOCATION and location else None,
        reply_to=cb.get("OriginalRepliedMessageSid"), from_=_address(cb.get("From")), to=_address(cb.get("To")),
    )
    return Normalized(VendorInfo(
        name="twilio", message_id=sid, status="received", normalized_status=S.REPLIED,
        recipient=parts.to, sender=parts.from_, profile_name=cb.get("ProfileName"), raw=raw,
    ), parts)
