"""Infobip SMS and WhatsApp: delivery reports and inbound (MO) messages, each `{"results": [{...}]}`.

Sources: infobip.com/docs/api/channels/sms/sms-messaging/logs-and-status-reports/receive-outbound-sms-message-report
(delivery report: messageId, to, from, sentAt, doneAt, status{groupName,name,...}, error{id,name,...});
infobip.com/docs/essentials/response-status-and-error-codes (status groups PENDING/UNDELIVERABLE/DELIVERED/
EXPIRED/REJECTED, error objects); dev-old.infobip.com/whatsapp-business-messaging/incoming-whatsapp-messages
and infobip.com/docs/api/channels/whatsapp/whatsapp-inbound-messages (WhatsApp MO: from, to, receivedAt,
messageId, pairedMessageId, message{type,...}, contact{name}); the WhatsAppWebhook* models generated from
Infobip's OpenAPI spec in github.com/infobip/infobip-api-java-client (message types, BUTTON text/payload,
INTERACTIVE_BUTTON_REPLY id/title, IMAGE url/caption, context{id,from}); infobip.com/docs/api/channels/sms/
inbound-sms/receive-inbound-sms-messages (SMS MO: messageId, from, to, text, cleanText, keyword, receivedAt);
the same client's SmsApiTest (shouldParseOutboundSmsMessageReport, shouldParseInboundSmsMessages: real report and
MO bodies). WhatsApp seen reports (`{"results": [{messageId, from, to, sentAt, seenAt, applicationId, entityId}]}`,
no `status` object): that client's WhatsAppWebhookSeenReport model (`to` is the registered WhatsApp business
number, so `from` is the user who read the message) and ViberApiTest.shouldParseViberSeenReports (the same body
for Viber); a seen report is `read`, its time `seenAt`.
"""
from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from .base import (InboundParts, Normalized, Open, S, T, Text, VendorInfo, as_dict, first, media, names,
                   one, parse_timestamp, status_of)

NAMES = names("infobip", "infobip_whatsapp", "infobip_sms")
STATUS_MAP = {  # status.groupName
    "PENDING": S.SENT,  # processed and sent on to the operator, delivery report awaited
    "DELIVERED": S.DELIVERED, "UNDELIVERABLE": S.UNDELIVERED, "EXPIRED": S.UNDELIVERED, "REJECTED": S.FAILED,
    "SEEN": S.READ,  # a WhatsApp/Viber seen report (no status object), named here by this module
}
KINDS = {"BUTTON": T.BUTTON, "INTERACTIVE_BUTTON_REPLY": T.INTERACTIVE, "INTERACTIVE_LIST_REPLY": T.INTERACTIVE}
MEDIA_KINDS = (T.IMAGE, T.VIDEO, T.AUDIO, T.DOCUMENT, T.STICKER)


class Envelope(Open):
    results = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1))


class Status(Open):
    groupName = Text(required=True)
    name = Text(allow_none=True)
    description = Text(allow_none=True)


class Error(Open):
    id = Text(allow_none=True)
    name = Text(allow_none=True)
    description = Text(allow_none=True)
    groupName = Text(allow_none=True)


class Report(Open):
    messageId = Text(required=True)
    to = Text(allow_none=True)
    sender = Text(data_key="from", allow_none=True)
    sentAt = Text(allow_none=True)
    doneAt = Text(allow_none=True)
    status = fields.Nested(Status, required=True)
    error = fields.Nested(Error, allow_none=True)


class SeenReport(Open):
    messageId = Text(required=True)
    seenAt = Text(required=True)
    sender = Text(data_key="from", allow_none=True)
    to = Text(allow_none=True)
    sentAt = Text(allow_none=True)


class Message(Open):
    type = Text(required=True)
    text = Text(allow_none=True)
    caption = Text(allow_none=True)
    url = Text(allow_none=True)
    payload = Text(allow_none=True)
    id = Text(allow_none=True)
    title = Text(allow_none=True)
    context = fields.Dict(allow_none=True)


class Inbound(Open):
    messageId = Text(required=True)
    sender = Text(data_key="from", required=True)
    to = Text(allow_none=True)
    receivedAt = Text(allow_none=True)
    pairedMessageId = Text(allow_none=True)
    message = fields.Nested(Message, allow_none=True)  # WhatsApp
    text = Text(allow_none=True)  # SMS MO
    contact = fields.Dict(allow_none=True)


def normalize(raw: Any, event_type: str) -> Normalized:
    item = one(Envelope.parse(as_dict(raw))["results"])
    if "receivedAt" in item or "message" in item:
        return _inbound(item)
    if "seenAt" in item and "status" not in item:
        return _seen(item)
    return _report(item)


def _seen(item: dict[str, Any]) -> Normalized:
    seen = SeenReport.parse(item)
    return Normalized(VendorInfo(
        name="infobip", message_id=seen["messageId"], status="SEEN", normalized_status=status_of(STATUS_MAP, "SEEN"),
        timestamp=parse_timestamp(seen["seenAt"]), recipient=seen.get("sender"), sender=seen.get("to"),
    ))


def _report(item: dict[str, Any]) -> Normalized:
    dlr = Report.parse(item)
    word = dlr["status"]["groupName"]
    error = dlr.get("error") or {}
    ok = error.get("id") in (None, "", "0") or error.get("name") == "NO_ERROR"
    return Normalized(VendorInfo(
        name="infobip", message_id=dlr["messageId"], status=word, normalized_status=status_of(STATUS_MAP, word),
        error_code=None if ok else error.get("id"),
        error_message=None if ok else first(error.get("description"), error.get("name")),
        timestamp=parse_timestamp(first(dlr.get("doneAt"), dlr.get("sentAt"))),
        recipient=dlr.get("to"), sender=dlr.get("sender"),
    ))


def _inbound(item: dict[str, Any]) -> Normalized:
    mo = Inbound.parse(item)
    msg = mo.get("message") or {"type": "TEXT", "text": mo.get("text")}
    kind = KINDS.get(msg["type"].upper()) or T.parse(msg["type"])
    is_button = kind in (T.BUTTON, T.INTERACTIVE)
    parts = InboundParts(
        type=kind,
        text=first(msg.get("text"), msg.get("title")) if kind is T.TEXT or is_button else None,
        button_payload=first(msg.get("payload"), msg.get("id")) if is_button else None,
        button_text=first(msg.get("text"), msg.get("title")) if is_button else None,
        media=media(kind, url=msg.get("url"), caption=msg.get("caption")) if kind in MEDIA_KINDS else None,
        location={k: msg[k] for k in ("latitude", "longitude", "name", "address", "url") if k in msg}
        if kind is T.LOCATION else None,
        reply_to=first(as_dict(msg.get("context")).get("id"), mo.get("pairedMessageId")),
        from_=mo["sender"], to=mo.get("to"), timestamp=parse_timestamp(mo.get("receivedAt")),
    )
    return Normalized(VendorInfo(
        name="infobip", message_id=mo["messageId"], status="received", normalized_status=S.REPLIED,
        timestamp=parts.timestamp, recipient=mo.get("to"), sender=mo["sender"],
        profile_name=as_dict(mo.get("contact")).get("name"),
    ), parts)
