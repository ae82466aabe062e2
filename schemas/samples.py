"""Realistic SuprSend webhook payloads, for tests, demos and `suprhook send-sample`.

    make_status_event("failed", vendor="meta")          # a dict, exactly what SuprSend would POST
    make_inbound_message("YES", vendor="twilio", button="CONFIRM")

The envelope (`reference`, `suprsend_status`, `suprsend_inbound_message`, ...) follows SuprSend's
"Outbound Webhook" samples (https://docs.suprsend.com/docs/outbound-webhook, as in
examples/payloads/). `vendor_response` holds the vendor's own callback in the shape its public
documentation gives; each builder below names its source, the same documents the vendor fixtures in
tests/fixtures/vendors/ cite. Ids, numbers and times are generated (fresh per call, so every payload is
a new event); status words, field names and formats are the documented ones.

Every payload is checked before it is returned: it must load with the real schemas and normalize to
the requested vendor and status (`load_event`), else `ValueError` says why. A status or a button the
vendor's documented callbacks cannot express (MSG91 reports no "read") is a `ValueError` too, never a
made-up shape. Pure functions: nothing here imports `receiver` or `handlers`.
"""
from __future__ import annotations

import copy
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from .model import NormalizedStatus
from .vendors import VENDORS

S = NormalizedStatus
__all__ = ["DEFAULT_BUSINESS_NUMBER", "DEFAULT_DISTINCT_ID", "DEFAULT_USER_NUMBER", "STATUS_TO_VENDOR",
           "VENDOR_SAMPLES", "make_inbound_message", "make_status_event", "supported_statuses", "vendor_module"]

DEFAULT_DISTINCT_ID = "user@example.com"
DEFAULT_USER_NUMBER = "+15555555555"  # channel_value of SuprSend's samples
DEFAULT_BUSINESS_NUMBER = "+14444444444"  # the business number of SuprSend's reply sample
WORKSPACE_UID = "lap5XXXXXXXXXXX"  # SuprSend's samples mask the workspace like this
WORKSPACE_NAME = "staging"

# SuprSend's status (suprsend_status.status) -> the vendor status that reports the same thing.
# `clicked` and `dismissed` are SuprSend's own tracking: such a webhook gets no vendor callback.
STATUS_TO_VENDOR: dict[str, NormalizedStatus | None] = {
    "triggered": S.QUEUED, "sent": S.SENT, "delivered": S.DELIVERED, "seen": S.READ, "read": S.READ,
    "failed": S.FAILED, "undelivered": S.UNDELIVERED, "clicked": None, "dismissed": None,
}
_FAILURES = (S.FAILED, S.UNDELIVERED)


# --------------------------------------------------------------------------------------------------
# Small helpers


def _ulid() -> str:
    """A ULID-shaped id (26 Crockford base32 characters, time-ordered), like SuprSend's supr_nid."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(alphabet[(value >> shift) & 31] for shift in range(125, -1, -5))


def _hex(n: int) -> str:
    return os.urandom((n + 1) // 2).hex()[:n]


def _num(n: int) -> str:
    return str(int.from_bytes(os.urandom(8), "big"))[:n].rjust(n, "1")


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _code(value: str | None, default: str) -> int | str:
    """An error code as the vendor writes it: a number when it is all digits."""
    value = value or default
    return int(value) if value.isdigit() else value


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _secs(at: datetime) -> str:
    return str(int(at.timestamp()))


def _iso_z(at: datetime, ms: bool = True) -> str:
    text = at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{at.microsecond // 1000:03d}Z" if ms else f"{text}Z"


def _infobip_time(at: datetime) -> str:  # 2024-03-05T10:15:32.123+0000
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def _space_time(at: datetime, micro: bool = False) -> str:  # 2024-03-05 10:15:30[.123456], UTC
    text = at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{at.microsecond:06d}" if micro else text


@dataclass(frozen=True)
class Ctx:
    """What a vendor builder gets: numbers in E.164 (`+1555...`), ids, the time, the reply's parts."""

    channel: str
    user: str
    business: str
    at: datetime
    nid: str
    text: str | None = None
    button: tuple[str, str] | None = None  # (payload, title)
    reply_to: str | None = None  # the vendor's id of the message replied to
    code: str | None = None
    reason: str | None = None
    profile_name: str = "Joe"


Builder = Callable[[str, NormalizedStatus, Ctx], Any]


@dataclass(frozen=True)
class VendorSamples:
    """How to build one vendor's callbacks. `words(channel)` maps a normalized status to the vendor's
    own status word; `inbound` returns None where the vendor documents no inbound callback."""

    name: str
    status: Builder
    inbound: Callable[[Ctx], Any]
    words: Callable[[str], Mapping[NormalizedStatus, str]]
    buttons: Callable[[str], bool]


def _fixed(words: Mapping[NormalizedStatus, str]) -> Callable[[str], Mapping[NormalizedStatus, str]]:
    return lambda channel: words


def _whatsapp_read(words: Mapping[NormalizedStatus, str]) -> Callable[[str], Mapping[NormalizedStatus, str]]:
    """Read receipts exist on WhatsApp only (Twilio, Vonage document "read" for it alone)."""
    return lambda channel: {**words, S.READ: "read"} if channel == "whatsapp" else words


def _always(value: bool) -> Callable[[str], bool]:
    return lambda channel: value


# --------------------------------------------------------------------------------------------------
# Gupshup. Status: SuprSend's own sample (enterprise DLR, `vendor_response.gupshup`, docs.suprsend.com
# "Outbound Webhook"); the words are docs.gupshup.io/docs/message-events (enqueued/sent/delivered/read/failed),
# upper-cased as the enterprise sample writes DELIVERED; the failure code/cause are illustrative (the
# enterprise error list is not public). Inbound text: SuprSend's reply sample (enterprise). Button: the
# self-serve v2 quick reply (docs.gupshup.io/docs/inbound-messages, /reference/postback-text-support).


def _gupshup_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    failed = normalized in _FAILURES
    return {"event_type": "status", "response": [{
        "cause": (c.reason or "UNKNOWN_SUBSCRIBER") if failed else "SUCCESS", "channel": c.channel.upper(),
        "destAddr": _digits(c.user), "errorCode": (c.code or "005") if failed else "000", "eventTs": _ms(c.at),
        "eventType": word, "externalId": f"{_num(19)}-{WORKSPACE_UID[:4]}{_hex(16)}-{c.nid}", "extra": "",
        "srcAddr": "TESTSM",
    }]}


def _gupshup_inbound(c: Ctx) -> dict[str, Any]:
    if c.button:
        payload, title = c.button
        return {"app": "DemoApp", "timestamp": _ms(c.at), "version": 2, "type": "message", "payload": {
            "id": f"ABEGk{_hex(23)}", "source": _digits(c.user), "type": "quick_reply",
            "payload": {"text": title, "type": "button", "postbackText": payload},
            "sender": {"phone": _digits(c.user), "name": c.profile_name, "country_code": "1",
                       "dial_code": _digits(c.user)[1:]},
            "context": {"id": c.reply_to, "forwarded": False, "frequently_forwarded": False}}}
    return {
        "context": f'{{"from":"{c.business}","id":"{c.reply_to}"}}', "messageId": f"{WORKSPACE_UID}-{c.nid}",
        "mobile": c.user, "name": c.profile_name, "replyId": _num(19), "text": c.text,
        "timestamp": str(_ms(c.at)), "type": "text", "waNumber": c.business,
    }


# --------------------------------------------------------------------------------------------------
# Meta (WhatsApp Cloud API): developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/
# reference/messages (text), .../messages/status (statuses[], errors[] on failed; default error: the
# errors page's example 130429 "Rate limit hit"; any other code gets its own title from vendors/meta.py
# ERROR_TITLES), .../messages/button (template quick-reply button).


def _meta_value(c: Ctx, **value: Any) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": _digits(c.business), "phone_number_id": "106540352242922"},
                  **value}, "field": "messages"}]}]}


def _wamid() -> str:
    return "wamid.HBgL" + _hex(40).upper()


def _meta_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    status: dict[str, Any] = {"id": _wamid(), "status": word, "timestamp": _secs(c.at), "recipient_id": _digits(c.user)}
    if normalized in _FAILURES:
        from .vendors.meta import ERROR_TITLES  # Meta's titles, by code

        code = _code(c.code, "130429")
        title = c.reason or ERROR_TITLES.get(str(code), f"Error {code}")  # the title of the code given
        status["errors"] = [{"code": code, "title": title, "message": title,
                             "href": "/documentation/business-messaging/whatsapp/support/error-codes"}]
    else:
        status["conversation"] = {"id": _hex(32), "origin": {"type": "utility"}}
        status["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}
    return _meta_value(c, statuses=[status])


def _meta_message(c: Ctx) -> dict[str, Any]:
    message: dict[str, Any] = {"context": {"from": _digits(c.business), "id": c.reply_to}, "from": _digits(c.user),
                               "id": _wamid(), "timestamp": _secs(c.at)}
    if c.button:
        message.update(type="button", button={"payload": c.button[0], "text": c.button[1]})
    else:
        message.update(type="text", text={"body": c.text})
    return message


def _meta_inbound(c: Ctx) -> dict[str, Any]:
    return _meta_value(c, contacts=[{"profile": {"name": c.profile_name}, "wa_id": _digits(c.user)}],
                       messages=[_meta_message(c)])


# --------------------------------------------------------------------------------------------------
# Twilio (form fields, forwarded as a JSON object of them): twilio.com/docs/messaging/guides/
# track-outbound-message-status and outbound-message-status-in-status-callbacks (MessageStatus, ErrorCode;
# default 30003, twilio.com/docs/api/errors/30003); .../guides/webhook-request (inbound; WhatsApp adds
# ProfileName, WaId, MessageType, ButtonText, ButtonPayload, OriginalRepliedMessageSid). No event time.


def _twilio_address(c: Ctx, number: str) -> str:
    return f"whatsapp:{number}" if c.channel == "whatsapp" else number


def _twilio_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    sid = f"SM{_hex(32)}"
    data = {"ApiVersion": "2010-04-01", "MessageStatus": word, "SmsSid": sid, "SmsStatus": word,
            "To": _twilio_address(c, c.user), "From": _twilio_address(c, c.business), "MessageSid": sid,
            "AccountSid": f"AC{_hex(32)}"}
    if c.channel == "whatsapp":
        data.update(ChannelPrefix="whatsapp", ChannelInstallSid=f"XE{_hex(32)}", ChannelToAddress=c.user)
    if normalized in _FAILURES:
        data["ErrorCode"] = c.code or "30003"
        if c.reason:
            data["ErrorMessage"] = c.reason
    return data


def _twilio_inbound(c: Ctx) -> dict[str, Any]:
    sid = f"SM{_hex(32)}"
    data = {"SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received", "Body": c.text,
            "To": _twilio_address(c, c.business), "NumSegments": "1", "MessageSid": sid,
            "AccountSid": f"AC{_hex(32)}", "From": _twilio_address(c, c.user), "ApiVersion": "2010-04-01"}
    if c.channel == "whatsapp":
        data.update(ProfileName=c.profile_name, WaId=_digits(c.user), MessageType="text", ReferralNumMedia="0")
        if c.button:
            data.update(MessageType="button", ButtonPayload=c.button[0], ButtonText=c.button[1], Body=c.button[1],
                        OriginalRepliedMessageSender=_twilio_address(c, c.business))
        if c.reply_to:
            data["OriginalRepliedMessageSid"] = c.reply_to
    return data


# --------------------------------------------------------------------------------------------------
# Vonage Messages API: developer.vonage.com/en/messages/concepts/messages-status-callbacks and
# .../whatsapp/wa-status-callbacks (status words; `error` {type, title, detail} on rejected/undeliverable,
# default: messages-olympus#1000 "Throttled", as in vonage-java-sdk MessageStatusTest). Inbound: the
# Messages API inbound webhook as mapped by vonage-java-sdk InboundMessage(Test): text, and `reply`
# {id, title} for an interactive button reply.


def _vonage_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    data: dict[str, Any] = {"message_uuid": str(uuid.uuid4()), "to": _digits(c.user), "from": _digits(c.business),
                            "channel": c.channel, "timestamp": _iso_z(c.at, ms=False), "status": word}
    if normalized in _FAILURES:
        data["error"] = {"type": f"https://developer.nexmo.com/api-errors/messages-olympus#{c.code or '1000'}",
                         "title": _code(c.code, "1000"),
                         "detail": c.reason or "Throttled - You have exceeded the submission capacity allowed on "
                                               "this account. Please wait and retry",
                         "instance": _hex(32)}
    else:
        data["usage"] = {"currency": "EUR", "price": "0.0333"}
    return data


def _vonage_inbound(c: Ctx) -> dict[str, Any]:
    data: dict[str, Any] = {"channel": c.channel, "message_uuid": str(uuid.uuid4()), "to": _digits(c.business),
                            "from": _digits(c.user), "timestamp": _iso_z(c.at, ms=False),
                            "profile": {"name": c.profile_name}, "context_status": "none"}
    if c.reply_to:
        data.update(context_status="available",
                    context={"message_uuid": c.reply_to, "message_from": _digits(c.business)})
    if c.button:
        data.update(message_type="reply", reply={"id": c.button[0], "title": c.button[1]})
    else:
        data.update(message_type="text", text=c.text)
    return data


# --------------------------------------------------------------------------------------------------
# Infobip. Status: infobip.com/docs/api/channels/sms/sms-messaging/logs-and-status-reports/
# receive-outbound-sms-message-report (results[]) with the status/error objects of
# infobip.com/docs/essentials/response-status-and-error-codes (groups PENDING 1, UNDELIVERABLE 2,
# DELIVERED 3, EXPIRED 4, REJECTED 5, `groupName` being what SuprSend's receiver reads; the status ids,
# names and descriptions besides DELIVERED_TO_HANDSET and UNDELIVERABLE_NOT_DELIVERED are illustrative;
# default error EC_UNKNOWN_SUBSCRIBER, as in the fixture). WhatsApp inbound:
# infobip.com/docs/api/channels/whatsapp/whatsapp-inbound-messages (TEXT, BUTTON {text, payload});
# SMS inbound: .../inbound-sms/receive-inbound-sms-messages (MO_JSON_2).
_INFOBIP_STATUS = {
    "PENDING": (1, 7, "PENDING_ENROUTE", "Message sent to next instance"),
    "DELIVERED": (3, 5, "DELIVERED_TO_HANDSET", "Message delivered to handset"),
    "UNDELIVERABLE": (2, 9, "UNDELIVERABLE_NOT_DELIVERED", "Message sent not delivered"),
    "EXPIRED": (4, 15, "EXPIRED_EXPIRED", "Message expired"),
    "REJECTED": (5, 6, "REJECTED_NETWORK", "Network is forbidden"),
}


def _infobip_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    group_id, status_id, name, description = _INFOBIP_STATUS[word]
    error = {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error",
             "permanent": False}
    if normalized in _FAILURES:
        error = {"groupId": 1, "groupName": "HANDSET_ERRORS", "id": _code(c.code, "1"),
                 "name": "EC_UNKNOWN_SUBSCRIBER" if c.code is None else "ERROR",
                 "description": c.reason or "Unknown Subscriber", "permanent": True}
    return {"results": [{
        "bulkId": f"BULK-ID-{_hex(8)}", "messageId": _num(19), "to": _digits(c.user), "from": "InfoSMS",
        "sentAt": _infobip_time(c.at), "doneAt": _infobip_time(c.at), "smsCount": 1,
        "price": {"pricePerMessage": 0.01, "currency": "EUR"},
        "status": {"groupId": group_id, "groupName": word, "id": status_id, "name": name, "description": description},
        "error": error}]}


def _infobip_inbound(c: Ctx) -> dict[str, Any]:
    if c.channel != "whatsapp":
        return {"results": [{"messageId": _num(18), "from": _digits(c.user), "to": _digits(c.business),
                             "text": c.text, "cleanText": c.text, "keyword": "", "receivedAt": _infobip_time(c.at),
                             "smsCount": 1, "price": {"pricePerMessage": 0, "currency": "EUR"},
                             "callbackData": None}], "messageCount": 1, "pendingMessageCount": 0}
    message: dict[str, Any] = {"type": "TEXT", "text": c.text}
    if c.button:
        message = {"type": "BUTTON", "text": c.button[1], "payload": c.button[0]}
    if c.reply_to:
        message["context"] = {"id": c.reply_to, "from": _digits(c.business)}
    return {"results": [{
        "from": _digits(c.user), "to": _digits(c.business), "integrationType": "WHATSAPP",
        "receivedAt": _infobip_time(c.at), "messageId": _wamid(), "pairedMessageId": None, "callbackData": None,
        "message": message, "contact": {"name": c.profile_name}, "price": {"pricePerMessage": 0, "currency": "EUR"},
    }], "messageCount": 1, "pendingMessageCount": 0}


# --------------------------------------------------------------------------------------------------
# Sinch. WhatsApp = Conversation API: github.com/sinch/docs conversation-whatsapp.md (MESSAGE_DELIVERY with
# QUEUED_ON_CHANNEL / DELIVERED / READ / FAILED + reason {code, description}; text reply; quick reply =
# choice_response_message, payload only). SMS = REST API: developers.sinch.com delivery reports
# (recipient_delivery_report_sms; codes 400 Queued, 401 Dispatched, 0 Delivered, 402 Aborted "Message
# unroutable", 406 Expired "Internal Expiry") and sinch-sdk-java MOTextDto (mo_text).
_SINCH_SMS_CODES = {"Queued": 400, "Dispatched": 401, "Delivered": 0, "Aborted": 402, "Expired": 406}


def _sinch_words(channel: str) -> Mapping[NormalizedStatus, str]:
    if channel == "whatsapp":
        return {S.QUEUED: "QUEUED_ON_CHANNEL", S.DELIVERED: "DELIVERED", S.READ: "READ", S.FAILED: "FAILED"}
    return {S.QUEUED: "Queued", S.SENT: "Dispatched", S.DELIVERED: "Delivered", S.FAILED: "Aborted",
            S.UNDELIVERED: "Expired"}


def _sinch_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    if c.channel != "whatsapp":
        code = _code(c.code if normalized in _FAILURES else None, str(_SINCH_SMS_CODES[word]))
        return {"type": "recipient_delivery_report_sms", "batch_id": _ulid(), "recipient": c.user.lstrip("+"),
                "code": code, "status": word, "at": _iso_z(c.at),
                "operator_status_at": _iso_z(c.at, ms=False), "client_reference": c.nid}
    report: dict[str, Any] = {
        "message_id": _ulid(), "conversation_id": _ulid(), "status": word,
        "channel_identity": {"channel": "WHATSAPP", "identity": c.user, "app_id": ""}, "contact_id": _ulid(),
        "metadata": ""}
    if normalized in _FAILURES:
        report["reason"] = {"code": c.code or "RECIPIENT_NOT_REACHABLE",
                            "description": c.reason or "The recipient is not reachable on WhatsApp.",
                            "sub_code": "UNSPECIFIED_SUB_CODE"}
    return {"app_id": _ulid(), "accepted_time": _iso_z(c.at), "event_time": _iso_z(c.at),
            "message_delivery_report": report}


def _sinch_inbound(c: Ctx) -> dict[str, Any]:
    if c.channel != "whatsapp":
        return {"body": c.text, "client_reference": c.nid, "from": c.user, "id": _ulid(), "operator_id": "35000",
                "received_at": _iso_z(c.at, ms=False), "sent_at": _iso_z(c.at, ms=False), "to": _digits(c.business),
                "type": "mo_text"}
    content: dict[str, Any] = {"text_message": {"text": c.text}}
    if c.button:
        content = {"choice_response_message": {"message_id": c.reply_to or _ulid(), "postback_data": c.button[0]}}
    return {"app_id": _ulid(), "accepted_time": _iso_z(c.at), "message": {
        "id": _ulid(), "direction": "TO_APP", "contact_message": content,
        "channel_identity": {"channel": "WHATSAPP", "identity": _digits(c.user), "app_id": ""},
        "conversation_id": _ulid(), "contact_id": _ulid(), "metadata": "", "accept_time": _iso_z(c.at)}}


# --------------------------------------------------------------------------------------------------
# Plivo (form fields, forwarded as a JSON object, every value a string): plivo.com/docs/messaging/api/message/
# message-status-callbacks (Status words; ErrorCode on failed/undelivered, default 30 "Spam Detected" from
# .../troubleshooting/error-codes; read is WhatsApp only) and .../handling-incoming (SMS: Type sms, Text;
# WhatsApp: Type whatsapp, ContentType text, Body).


def _plivo_words(channel: str) -> Mapping[NormalizedStatus, str]:
    words = {S.QUEUED: "queued", S.SENT: "sent", S.DELIVERED: "delivered", S.UNDELIVERED: "undelivered",
             S.FAILED: "failed"}
    return {**words, S.READ: "read"} if channel == "whatsapp" else words


def _plivo_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    message_uuid = str(uuid.uuid4())
    data = {"MessageUUID": message_uuid, "ParentMessageUUID": message_uuid, "To": _digits(c.user),
            "From": _digits(c.business), "Type": "whatsapp" if c.channel == "whatsapp" else "sms", "Status": word,
            "Units": "1", "TotalRate": "0.00500", "TotalAmount": "0.00500", "PartInfo": "1 of 1", "Sequence": "3",
            "MessageTime": _space_time(c.at, micro=True), "QueuedTime": _space_time(c.at, micro=True),
            "SentTime": _space_time(c.at, micro=True), "DeliveryReportTime": _space_time(c.at, micro=True),
            "PowerpackUUID": ""}
    if normalized in _FAILURES:
        data["ErrorCode"] = c.code or "30"
    return data


def _plivo_inbound(c: Ctx) -> dict[str, Any]:
    common = {"MessageUUID": str(uuid.uuid4()), "From": _digits(c.user), "To": _digits(c.business), "Units": "1",
              "TotalRate": "0.00000", "TotalAmount": "0.00000"}
    if c.channel == "whatsapp":
        return {**common, "Type": "whatsapp", "ContentType": "text", "Body": c.text}
    return {**common, "Type": "sms", "Text": c.text, "MessageIntent": "", "PowerpackUUID": ""}


# --------------------------------------------------------------------------------------------------
# Exotel. WhatsApp status: developer.exotel.com/docs/whatsapp-support/webhooks (message_status, data{...}).
# SMS status: developer.exotel.com/api-console/send-sms-api-console (StatusCallback fields; Status queued,
# sending, submitted, sent, failed_dnd, failed) and .../sms-support/sms-status-codes (20000
# DELIVERED_TO_HANDSET; 30001 as the default DLT failure, its name illustrative). Inbound:
# developer.exotel.com/docs/whatsapp-api/api-reference/receive-messages (incoming_message, text).


def _exotel_words(channel: str) -> Mapping[NormalizedStatus, str]:
    if channel == "whatsapp":
        return {S.SENT: "sent", S.DELIVERED: "delivered", S.READ: "read", S.FAILED: "failed"}
    # delivered = Status "sent" + DetailedStatusCode 20000 (delivered to handset)
    return {S.QUEUED: "queued", S.SENT: "submitted", S.DELIVERED: "sent", S.FAILED: "failed"}


def _exotel_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    if c.channel == "whatsapp":
        return {"type": "message_status", "timestamp": _iso_z(c.at), "account_sid": "your_account_sid",
                "data": {"message_sid": f"msg_{_hex(12)}", "from": c.business, "to": c.user, "status": word,
                         "timestamp": _iso_z(c.at)}}
    ist = datetime.fromtimestamp(c.at.timestamp() + 5.5 * 3600, tz=timezone.utc)  # Exotel writes IST, zone-less
    data = {"SmsSid": _hex(32), "To": c.user, "Status": word, "SmsUnits": "1", "DateSent": _space_time(ist)}
    if normalized is S.DELIVERED:
        data.update(DetailedStatus="DELIVERED_TO_HANDSET", DetailedStatusCode="20000")
    elif normalized in _FAILURES:
        data.update(DetailedStatus=c.reason or "DLT_ENTITY_NOT_REGISTERED", DetailedStatusCode=c.code or "30001")
    return data


def _exotel_inbound(c: Ctx) -> dict[str, Any]:
    message: dict[str, Any] = {"id": f"msg_in_{_hex(8)}", "from": c.user, "to": c.business, "timestamp": _iso_z(c.at),
                               "type": "text", "text": {"body": c.text}}
    if c.reply_to:
        message["context"] = {"id": c.reply_to}
    return {"event": "incoming_message", "timestamp": _iso_z(c.at), "account_sid": "your_account_sid",
            "message": message, "contact": {"wa_id": _digits(c.user), "profile": {"name": c.profile_name}}}


# --------------------------------------------------------------------------------------------------
# Kaleyra. Status: developers.kaleyra.io/docs/wa-status-update-webhooks-payload-v2-sent (v2: meta_object
# with Meta's statuses[], extra_info, status, message_id; words: developers.kaleyra.io/docs/whatsapp-status).
# A failed status carries Meta's errors[] (Kaleyra relays Meta's status object; its own failed sample is
# not public). Inbound text: .../create-callback-profile-for-incoming-whatsapp-messages (flat profile:
# body, from, name, type); button: .../whatsapp-incoming-message-webhook-payloads-interactive-template-message.


def _kaleyra_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    status: dict[str, Any] = {"id": _hex(32), "status": word, "timestamp": _secs(c.at), "recipient_id": _digits(c.user),
                              "conversation": {"id": _hex(32), "origin": {"type": "utility"}}}
    if normalized in _FAILURES:
        from .vendors.meta import ERROR_TITLES  # Kaleyra relays Meta's errors: Meta's title of the code given

        code = _code(c.code, "131026")
        reason = c.reason or ERROR_TITLES.get(str(code), f"Error {code}")
        status["errors"] = [{"code": code, "title": reason, "message": reason}]
    message_id = _wamid()
    return {"meta_object": {"value": {"messaging_product": "whatsapp", "metadata": {
        "display_phone_number": _digits(c.business), "phone_number_id": _num(15)}, "statuses": [status]},
        "field": "messages"},
        "extra_info": {"trace_id": str(uuid.uuid4()), "message_id": message_id, "waba_id": _num(15), "ref": c.nid},
        "status": word, "message_id": message_id}


def _kaleyra_inbound(c: Ctx) -> dict[str, Any]:
    if not c.button:
        return {"body": c.text, "from": _digits(c.user), "name": c.profile_name, "type": "text",
                "wanumber": _digits(c.business), "created_at": _secs(c.at)}
    return {"meta_object": {"value": {"messaging_product": "whatsapp", "metadata": {
        "display_phone_number": _digits(c.business), "phone_number_id": _num(15)},
        "contacts": [{"profile": {"name": c.profile_name}, "wa_id": _digits(c.user)}],
        "messages": [{"context": {"from": _digits(c.business), "id": c.reply_to}, "from": _digits(c.user),
                      "id": _wamid(), "timestamp": _secs(c.at), "type": "button",
                      "button": {"payload": c.button[0], "text": c.button[1]}}]}, "field": "messages"},
        "extra_info": {"media_url": "", "ref": c.nid, "trace_id": str(uuid.uuid4()), "waba_id": _num(15)}}


# --------------------------------------------------------------------------------------------------
# Karix: the Message object of github.com/karixtech/karix-python docs/Message.md (and docs/MessageError.md:
# error {code, message}, default 3002 "Destination handset unreachable"), posted to `events_url`; an
# inbound message is the same object with direction "inbound".


def _karix_message(c: Ctx, **fields: Any) -> dict[str, Any]:
    return {"uid": str(uuid.uuid4()), "account_uid": "2e6b9f1c-0d57-4b8e-a4c1-5c3f1e7d9b22",
            "queued_time": _iso_z(c.at), "sent_time": _iso_z(c.at), "updated_time": _iso_z(c.at), "error": None,
            "rate": "0.0035", "refund": None, "total_cost": "0.0035", "parts": 1, "message_type": "text",
            "mobile_country_code": None, "mobile_network_code": None, **fields}


def _karix_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    error = {"code": _code(c.code, "3002"),
             "message": c.reason or "Destination handset unreachable"} if normalized in _FAILURES else None
    return _karix_message(c, source=c.business, destination=c.user, status=word, text="Your order has shipped",
                          direction="outbound", error=error)


def _karix_inbound(c: Ctx) -> dict[str, Any]:
    return _karix_message(c, source=c.user, destination=c.business, status="queued", text=c.text,
                          direction="inbound", sent_time=None, rate="0", total_cost="0")


# --------------------------------------------------------------------------------------------------
# MessageBird. WhatsApp: the Conversations API webhook (developers.messagebird.com/docs/conversations/
# handle-inbound-messages-curl: message.created / message.updated with contact, conversation, message).
# SMS status: the status report of support.messagebird.com/hc/en-us/articles/360001869258 (id, reference,
# recipient, status, statusDatetime; statusReason/statusErrorCode on failures, default "unknown
# subscriber" / 1); SMS inbound goes through the Conversations webhook as well (platform "sms").


def _messagebird_words(channel: str) -> Mapping[NormalizedStatus, str]:
    if channel == "whatsapp":
        return {S.QUEUED: "pending", S.SENT: "sent", S.DELIVERED: "delivered", S.READ: "read", S.FAILED: "failed",
                S.UNDELIVERED: "deleted"}
    return {S.QUEUED: "buffered", S.SENT: "sent", S.DELIVERED: "delivered", S.FAILED: "delivery_failed",
            S.UNDELIVERED: "expired"}


def _messagebird_hook(c: Ctx, kind: str, message: dict[str, Any]) -> dict[str, Any]:
    contact_id, conversation_id = _hex(32), _hex(32)
    return {"contact": {"id": contact_id, "msisdn": int(_digits(c.user)), "displayName": c.profile_name},
            "conversation": {"contactId": contact_id, "id": conversation_id, "status": "active"},
            "message": {"channelId": _hex(32), "conversationId": conversation_id, "id": _hex(32),
                        "platform": c.channel, "type": "text", "createdDatetime": _iso_z(c.at, ms=False),
                        "updatedDatetime": _iso_z(c.at, ms=False), **message},
            "type": kind}


def _messagebird_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    if c.channel == "whatsapp":
        return _messagebird_hook(c, "message.updated", {"content": {"text": "Your order has shipped."},
                                                        "direction": "sent", "from": c.business, "to": c.user,
                                                        "status": word})
    data = {"id": _hex(32), "reference": c.nid, "recipient": _digits(c.user), "status": word,
            "statusDatetime": c.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")}
    if normalized in _FAILURES:
        data.update(statusReason=c.reason or "unknown subscriber", statusErrorCode=c.code or "1")
    return data


def _messagebird_inbound(c: Ctx) -> dict[str, Any]:
    return _messagebird_hook(c, "message.created", {"content": {"text": c.text}, "direction": "received",
                                                    "from": c.user, "to": c.business, "status": "received"})


# --------------------------------------------------------------------------------------------------
# Netcore (Pepipost) WhatsApp: wadocs.pepipost.com/webhooks/delivery-notification (delivery_status[]; a
# failure has only status_remark, no code) and .../webhooks/overview/incoming-message (incoming_message[],
# TEXT, text_type).


def _netcore_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    remark = (c.reason or "Message failed to send because the recipient phone number is not a WhatsApp user") \
        if normalized in _FAILURES else ""
    return {"delivery_status": [{"ncmessage_id": str(uuid.uuid4()), "recipient": _digits(c.user), "status": word,
                                 "status_remark": remark, "received_at": _space_time(c.at),
                                 "source": str(uuid.uuid4())}]}


def _netcore_inbound(c: Ctx) -> dict[str, Any]:
    return {"incoming_message": [{"message_id": f"ABEGk{_hex(23)}", "from": _digits(c.user), "received_at": _secs(c.at),
                                  "context": {"ncmessage_id": None, "message_id": c.reply_to},
                                  "message_type": "TEXT", "text_type": {"text": c.text}}]}


# --------------------------------------------------------------------------------------------------
# MSG91 SMS: msg91.com/help/how-can-i-get-the-delivery-reports-on-my-webhook-url, "Sample response v3"
# (status codes 1 Delivered, 2 Failed, 16 Rejected, ...). MSG91 documents no inbound or WhatsApp callback:
# a reply carries no vendor_response (event.vendor has the name only, normalized_status unknown).


def _msg91_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    code = {"delivered": "1", "failed": c.code or "2"}[word]
    return {"date": _space_time(c.at), "number": _digits(c.user), "senderId": "SPRSND", "amount": "0.01",
            "requestId": _hex(24), "INMSID": "0", "CRQID": "0", "credit": "1", "userId": _num(6),
            "campaignName": "Sendhttp", "status": code, "desc": word.upper()}


# --------------------------------------------------------------------------------------------------
# AWS. Status: End User Messaging SMS events (docs.aws.amazon.com/end-user-messaging/latest/userguide/
# nx-features-messaging-events.html; event types TEXT_<messageStatus>, .../sms-voice/latest/userguide/
# configuration-sets-event-types.html); a failure's code is its messageStatus (default BLOCKED).
# Inbound: the two-way SMS payload (docs.aws.amazon.com/sms-voice/latest/userguide/two-way-sms-payload.html).
_AWS_DESCRIPTIONS = {
    "PENDING": "Message is pending", "SUCCESSFUL": "Message has been accepted by phone carrier",
    "DELIVERED": "Message has been delivered to the recipient's device",
    "BLOCKED": "The recipient's device or carrier blocked the message",
    "UNREACHABLE": "The recipient's device is unreachable",
}


def _aws_status(word: str, normalized: NormalizedStatus, c: Ctx) -> dict[str, Any]:
    word = (c.code or word) if normalized in _FAILURES else word
    return {"eventType": f"TEXT_{word}", "eventVersion": "1.0", "eventTimestamp": _ms(c.at), "isFinal": True,
            "originationPhoneNumber": c.business, "destinationPhoneNumber": c.user, "isInternationalSend": False,
            "messageId": str(uuid.uuid4()), "messageRequestTimestamp": _ms(c.at), "messageEncoding": "GSM",
            "messageType": "TRANSACTIONAL", "messageStatus": word,
            "messageStatusDescription": c.reason or _AWS_DESCRIPTIONS.get(word, word), "totalMessageParts": 1}


def _aws_inbound(c: Ctx) -> dict[str, Any]:
    return {"originationNumber": c.user, "destinationNumber": c.business, "messageKeyword": "",
            "messageBody": c.text, "inboundMessageId": str(uuid.uuid4()),
            "previousPublishedMessageId": c.reply_to}


# --------------------------------------------------------------------------------------------------

VENDOR_SAMPLES: dict[str, VendorSamples] = {
    "aws_sns": VendorSamples(
        "aws_sns", _aws_status, _aws_inbound,
        _fixed({S.QUEUED: "PENDING", S.SENT: "SUCCESSFUL", S.DELIVERED: "DELIVERED", S.FAILED: "BLOCKED",
                S.UNDELIVERED: "UNREACHABLE"}), _always(False)),
    "exotel": VendorSamples("exotel", _exotel_status, _exotel_inbound, _exotel_words, _always(False)),
    "gupshup": VendorSamples(
        "gupshup", _gupshup_status, _gupshup_inbound,
        _fixed({S.QUEUED: "ENQUEUED", S.SENT: "SENT", S.DELIVERED: "DELIVERED", S.READ: "READ", S.FAILED: "FAILED"}),
        _always(True)),
    "infobip": VendorSamples(
        "infobip", _infobip_status, _infobip_inbound,
        _fixed({S.SENT: "PENDING", S.DELIVERED: "DELIVERED", S.UNDELIVERED: "UNDELIVERABLE", S.FAILED: "REJECTED"}),
        lambda channel: channel == "whatsapp"),
    "kaleyra": VendorSamples(
        "kaleyra", _kaleyra_status, _kaleyra_inbound,
        _fixed({S.SENT: "sent", S.DELIVERED: "delivered", S.READ: "read", S.FAILED: "failed"}), _always(True)),
    "karix": VendorSamples(
        "karix", _karix_status, _karix_inbound,
        _fixed({S.QUEUED: "queued", S.SENT: "sent", S.DELIVERED: "delivered", S.READ: "read", S.FAILED: "failed",
                S.UNDELIVERED: "undelivered"}), _always(False)),
    "messagebird": VendorSamples("messagebird", _messagebird_status, _messagebird_inbound, _messagebird_words,
                                 _always(False)),
    "meta": VendorSamples(
        "meta", _meta_status, _meta_inbound,
        _fixed({S.SENT: "sent", S.DELIVERED: "delivered", S.READ: "read", S.FAILED: "failed"}), _always(True)),
    "msg91": VendorSamples("msg91", _msg91_status, lambda c: None,
                           _fixed({S.DELIVERED: "delivered", S.FAILED: "failed"}), _always(False)),
    "netcore": VendorSamples(
        "netcore", _netcore_status, _netcore_inbound,
        _fixed({S.SENT: "sent", S.DELIVERED: "delivered", S.READ: "read", S.FAILED: "failed"}), _always(False)),
    "plivo": VendorSamples("plivo", _plivo_status, _plivo_inbound, _plivo_words, _always(False)),
    "sinch": VendorSamples("sinch", _sinch_status, _sinch_inbound, _sinch_words,
                           lambda channel: channel == "whatsapp"),
    "twilio": VendorSamples(
        "twilio", _twilio_status, _twilio_inbound,
        _whatsapp_read({S.QUEUED: "queued", S.SENT: "sent", S.DELIVERED: "delivered", S.FAILED: "failed",
                        S.UNDELIVERED: "undelivered"}), lambda channel: channel == "whatsapp"),
    "vonage": VendorSamples(
        "vonage", _vonage_status, _vonage_inbound,
        _whatsapp_read({S.QUEUED: "buffered", S.SENT: "submitted", S.DELIVERED: "delivered", S.FAILED: "rejected",
                        S.UNDELIVERED: "undeliverable"}), lambda channel: channel == "whatsapp"),
}


def vendor_module(vendor: str) -> str:
    """The vendor module that handles `vendor` (any of its `vendor_name` aliases): "whatsapp_cloud" -> "meta"."""
    normalizer = VENDORS.get(vendor.strip().lower())
    module = getattr(normalizer, "__module__", "").rpartition(".")[2]
    if module not in VENDOR_SAMPLES:
        raise ValueError(f"no samples for vendor {vendor!r}; known: {', '.join(sorted(VENDOR_SAMPLES))} "
                         "(or their aliases), or pass vendor_response=... yourself")
    return module


def supported_statuses(vendor: str, channel: str = "whatsapp") -> list[str]:
    """SuprSend statuses `make_status_event` can build for `vendor` on `channel`."""
    words = VENDOR_SAMPLES[vendor_module(vendor)].words(channel)
    return [s for s, n in STATUS_TO_VENDOR.items() if n is None or n in words]


# --------------------------------------------------------------------------------------------------
# The envelope


def _reference(nid: str) -> dict[str, str]:
    return {"idempotency_key": str(uuid.uuid4()), "supr_execution_id": _ulid(), "supr_ngid": _ulid(), "supr_nid": nid,
            "vendor_ack_id": f"{_num(19)}-{WORKSPACE_UID[:4]}{_hex(16)}-{nid}", "workspace_name": WORKSPACE_NAME,
            "workspace_uid": WORKSPACE_UID}


def _merge(payload: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys replace; a dict given for a dict merges one level (reference={"workspace_uid": ...})."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(payload.get(key), dict) and key != "vendor_response":
            payload[key] = {**payload[key], **copy.deepcopy(dict(value))}
        else:
            payload[key] = copy.deepcopy(value)
    return payload


def _when(at: datetime | None) -> datetime:
    at = at or datetime.now(timezone.utc)
    if at.tzinfo is None:
        raise ValueError("at= must be timezone-aware (datetime(..., tzinfo=timezone.utc))")
    return at.astimezone(timezone.utc).replace(microsecond=at.microsecond // 1000 * 1000)


def _error(error: str | tuple[str | None, str | None] | None) -> tuple[str | None, str | None]:
    if error is None:
        return None, None
    if isinstance(error, str):
        return error, None
    code, reason = error
    return (None if code is None else str(code)), reason


def _check(payload: dict[str, Any], vendor_status: NormalizedStatus | None, module: str | None,
           text: str | None = None) -> dict[str, Any]:
    """The payload must load with the real schemas and normalize as asked; raise ValueError otherwise."""
    from . import ValidationError, load_event

    try:
        event = load_event(copy.deepcopy(payload))
    except ValidationError as exc:
        raise ValueError(f"the sample does not validate: {exc.messages}") from None
    if module is not None and payload.get("vendor_response") and event.vendor.drift:
        raise ValueError(f"the {module} sample drifted from its schema: {event.vendor.drift}")
    if vendor_status is not None and event.vendor.normalized_status is not vendor_status:
        raise ValueError(f"the {module} sample normalizes to {event.vendor.normalized_status.value}, "
                         f"not {vendor_status.value}")
    if text is not None and (event.message is None or event.message.text != text):
        raise ValueError(f"the {module} sample's reply text is {event.message and event.message.text!r}")
    return payload


def make_status_event(status: str = "delivered", channel: str = "whatsapp", vendor: str | None = "gupshup", *,
                      distinct_id: str = DEFAULT_DISTINCT_ID, workflow: str = "Order Placed",
                      template: str = "order-placed", error: str | tuple[str | None, str | None] | None = None,
                      at: datetime | None = None, nid: str | None = None, phone: str = DEFAULT_USER_NUMBER,
                      **overrides: Any) -> dict[str, Any]:
    """A SuprSend status webhook (a dict, as posted) for a fresh notification.

    `status` is SuprSend's (`sent`, `delivered`, `seen`, `failed`, ...); `vendor_response` carries
    `vendor`'s own callback for the matching vendor status (`seen` -> the vendor's "read"), so
    `load_event(...)` gives `event.vendor.name == <vendor module>` and that `normalized_status`.
    `error` for failed/undelivered: an error code, or `(code, message)`; default: a documented example
    of the vendor. `nid` pins `reference.supr_nid` (default: a new one); `at` the status time (default
    now). Any other keyword replaces that top-level field (a dict merges: `reference={...}`).
    """
    if not isinstance(status, str) or not status:
        raise ValueError("status must be a non-empty string (sent, delivered, seen, failed, ...)")
    at, nid = _when(at), nid or _ulid()
    code, reason = _error(error)
    payload: dict[str, Any] = {
        "channel": channel, "channel_value": phone, "distinct_id": distinct_id, "event_type": "status",
        "reference": _reference(nid), "suprsend_status": {"status": status, "timestamp": _ms(at)},
        "template": template, "vendor_name": vendor, "version": "1.0", "workflow_name": workflow,
    }
    wanted = STATUS_TO_VENDOR.get(status.lower())
    module = vendor_module(vendor) if vendor else None
    if error is not None and wanted not in _FAILURES:
        raise ValueError(f"error= describes a failure; status {status!r} is not failed or undelivered")
    if module and wanted is not None and "vendor_response" not in overrides:
        samples = VENDOR_SAMPLES[module]
        words = samples.words(channel)
        if wanted not in words:
            raise ValueError(f"{module} on {channel} reports no {wanted.value!r} status (SuprSend {status!r}); "
                             f"it can report: {', '.join(supported_statuses(module, channel))}")
        ctx = Ctx(channel=channel, user=phone if phone.startswith("+") else f"+{_digits(phone)}",
                  business=DEFAULT_BUSINESS_NUMBER, at=at, nid=nid, code=code, reason=reason)
        payload["vendor_response"] = {vendor: samples.status(words[wanted], wanted, ctx)}
    elif not vendor:
        payload.pop("vendor_name")
    _merge(payload, overrides)
    return _check(payload, wanted if module and "vendor_response" not in overrides else None, module)


def make_inbound_message(text: str = "YES", channel: str = "whatsapp", vendor: str | None = "gupshup", *,
                         button: str | tuple[str, str] | None = None, distinct_id: str = DEFAULT_DISTINCT_ID,
                         in_reply_to: str | Mapping[str, Any] | None = None, workflow: str = "Order Placed",
                         template: str = "order-placed", at: datetime | None = None,
                         phone: str = DEFAULT_USER_NUMBER, profile_name: str = "Joe",
                         **overrides: Any) -> dict[str, Any]:
    """A SuprSend inbound-message webhook: the user `phone` replied `text` to a notification.

    `button="CONFIRM"` makes it a tapped quick-reply button with that payload and `text` as its title
    (`("CONFIRM", "Yes, confirm")` sets both); `event.message.text` is the title either way.
    `in_reply_to` is the `supr_nid` replied to, or a status payload from `make_status_event` (default:
    a new notification); it becomes `reference.supr_nid` and `event.message.reply_to_nid`.
    `vendor_response` carries `vendor`'s own inbound callback. Other keywords replace top-level fields.
    """
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    at = _when(at)
    if isinstance(in_reply_to, Mapping):
        in_reply_to = (in_reply_to.get("reference") or {}).get("supr_nid")
    nid = in_reply_to or _ulid()
    pair = None
    if button is not None:
        pair = (button, text) if isinstance(button, str) else (str(button[0]), str(button[1]))
        text = pair[1]
    vendor_reply_id = f"gBEGk{_hex(23)}"
    message: dict[str, Any] = {
        "context": {"from": DEFAULT_BUSINESS_NUMBER, "id": vendor_reply_id}, "from": phone,
        "message_type": "quoted", "source_message_id": f"{WORKSPACE_UID}-{nid}",
        "source_message_sent_via_suprsend": True, "text": {"body": text}, "timestamp": _ms(at),
        "to": DEFAULT_BUSINESS_NUMBER, "type": "button" if pair else "text",
    }
    if pair:
        message["button"] = {"payload": pair[0], "text": pair[1]}
    payload: dict[str, Any] = {
        "channel": channel, "channel_value": phone, "distinct_id": distinct_id, "event_type": "inbound_message",
        "reference": _reference(nid), "suprsend_inbound_message": message, "template": template,
        "vendor_name": vendor, "version": "1.0", "workflow_name": workflow,
    }
    module = vendor_module(vendor) if vendor else None
    if module and "vendor_response" not in overrides:
        samples = VENDOR_SAMPLES[module]
        if pair and not samples.buttons(channel):
            with_buttons = sorted(m for m, s in VENDOR_SAMPLES.items() if s.buttons(channel))
            raise ValueError(f"{module} documents no button reply on {channel}; vendors that do: "
                             f"{', '.join(with_buttons)}")
        ctx = Ctx(channel=channel, user=phone if phone.startswith("+") else f"+{_digits(phone)}",
                  business=DEFAULT_BUSINESS_NUMBER, at=at, nid=nid, text=text, button=pair,
                  reply_to=vendor_reply_id, profile_name=profile_name)
        vendor_dict = samples.inbound(ctx)
        if vendor_dict is not None:
            payload["vendor_response"] = {vendor: vendor_dict}
    elif not vendor:
        payload.pop("vendor_name")
    _merge(payload, overrides)
    expected = S.REPLIED if "vendor_response" in payload and "vendor_response" not in overrides else None
    return _check(payload, expected, module, text if "suprsend_inbound_message" not in overrides else None)
