"""MSG91 SMS delivery reports (the SMS panel's Webhook, versions v2, v3 and v4).

Source: msg91.com/help/how-can-i-get-the-delivery-reports-on-my-webhook-url (samples of all three versions and the
status codes 1 Delivered, 2 Failed, 9 NDNC, 16 & 25 Rejected, 17 Blocked number); msg91.com/help/webhooks.
v2 is form-encoded with one field `data`, a JSON string `[{senderId, requestId, report: [{date, number, status,
desc, failedReason, ...}], userId, campaignName}]`; v3 is one flat JSON object per number; v4 is
`[{"data": [{"meta", "INMSID", "description", "ts"}], "event": "delivered"}]`. `date` carries no zone in the
docs and is read as UTC. MSG91's WhatsApp "Webhook (New)" is documented only as a template of user-chosen
placeholders, so WhatsApp statuses and inbound replies are not modelled here (they are recorded as drift).
"""
from __future__ import annotations

import json
from typing import Any

from marshmallow import fields, validate

from .base import Normalized, Open, S, Text, VendorInfo, as_dict, first, names, one, parse_timestamp, status_of

NAMES = names("msg91", "msg91_sms")
CODES = {"1": S.DELIVERED, "2": S.FAILED, "9": S.FAILED, "16": S.FAILED, "25": S.FAILED, "17": S.FAILED}
REASONS = {"2": "Failed", "9": "NDNC (In case of Promotional SMS only)", "16": "Rejected", "25": "Rejected",
           "17": "Blocked number"}
STATUS_MAP = {"delivered": S.DELIVERED, "failed": S.FAILED, "rejected": S.FAILED, "ndnc": S.FAILED,
              "blocked": S.FAILED}  # the `desc` / v4 `event` words


class Report(Open):
    status = Text(required=True)
    number = Text(allow_none=True)
    date = Text(allow_none=True)
    desc = Text(allow_none=True)
    failedReason = Text(allow_none=True)
    senderId = Text(allow_none=True)
    requestId = Text(allow_none=True)


class Request(Open):  # one item of v2's `data`
    requestId = Text(required=True)
    senderId = Text(allow_none=True)
    report = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1))


class V4Event(Open):
    event = Text(required=True)
    data = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1))


class V4Item(Open):
    description = Text(allow_none=True)
    ts = Text(allow_none=True)


def normalize(raw: Any, event_type: str) -> Normalized:
    if isinstance(raw, list):
        return _v4(V4Event.parse(one(raw)))
    data = as_dict(raw)
    if "data" in data:  # v2: the form field `data` holds a JSON string
        request = Request.parse(one(json.loads(data["data"]) if isinstance(data["data"], str) else data["data"]))
        report = Report.parse({"requestId": request["requestId"], "senderId": request.get("senderId"),
                                **one(request["report"])})
    else:  # v3
        report = Report.parse(data)
    return _report(report)


def _report(r: dict[str, Any]) -> Normalized:
    code = r["status"]
    normalized = CODES.get(code) or status_of(STATUS_MAP, r.get("desc"))
    failed = normalized is S.FAILED
    return Normalized(VendorInfo(
        name="msg91", message_id=r.get("requestId"), status=first(r.get("desc"), code), normalized_status=normalized,
        error_code=code if failed else None,
        error_message=first(r.get("failedReason"), REASONS.get(code), r.get("desc")) if failed else None,
        timestamp=parse_timestamp(r.get("date")), recipient=r.get("number"), sender=r.get("senderId"),
    ))


def _v4(event: dict[str, Any]) -> Normalized:
    item = V4Item.parse(one(event["data"]))
    normalized = status_of(STATUS_MAP, event["event"])
    failed = normalized is S.FAILED
    return Normalized(VendorInfo(
        name="msg91", status=event["event"], normalized_status=normalized,
        error_message=item.get("description") if failed else None, timestamp=parse_timestamp(item.get("ts")),
    ))
