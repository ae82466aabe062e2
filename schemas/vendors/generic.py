"""The fallback for vendors without a module: fills what it can find by common key names.

Never raises; `raw` always holds the vendor's dict untouched.
"""
from __future__ import annotations

from typing import Any, Iterable

from .base import Normalized, S, VendorInfo, as_dict, parse_timestamp, status_of

# Common delivery-report words across SMS/WhatsApp vendors (case-insensitive).
STATUS_MAP = {
    **{w: S.QUEUED for w in ("queued", "enqueued", "accepted", "pending", "scheduled", "submitted", "buffered")},
    **{w: S.SENT for w in ("sent", "sending", "dispatched", "submit", "sent_to_operator")},
    **{w: S.DELIVERED for w in ("delivered", "delivrd", "delivery", "success", "succeeded")},
    **{w: S.READ for w in ("read", "seen", "viewed", "opened")},
    **{w: S.FAILED for w in ("failed", "failure", "error", "rejected", "rejectd", "invalid", "blocked")},
    **{w: S.UNDELIVERED for w in ("undelivered", "undeliv", "undeliverable", "expired", "expird", "deleted")},
    **{w: S.CLICKED for w in ("clicked", "click")},
    **{w: S.REPLIED for w in ("replied", "received", "inbound", "reply")},
}
_KEYS = {
    "message_id": ("message_id", "messageId", "MessageSid", "SmsSid", "msgId", "messageUuid", "message_uuid",
                   "externalId", "request_id", "requestId", "id", "sid", "uuid"),
    "status": ("status", "MessageStatus", "SmsStatus", "eventType", "event", "state", "deliveryStatus",
               "status_description", "type"),
    "error_code": ("error_code", "errorCode", "ErrorCode", "err_code", "code"),
    "error_message": ("error_message", "errorMessage", "ErrorMessage", "error_description", "description",
                      "reason", "cause"),
    "timestamp": ("timestamp", "eventTs", "ts", "time", "date", "doneAt", "updated_at", "created_at"),
    "recipient": ("to", "To", "destination", "destAddr", "recipient", "msisdn", "mobile", "number", "phone"),
    "sender": ("from", "From", "source", "srcAddr", "sender", "senderId"),
}


def _find(obj: Any, keys: Iterable[str], depth: int = 0) -> Any:
    """First scalar value under any of `keys`, searching nested dicts/lists breadth-first (3 levels)."""
    if depth > 3:
        return None
    if isinstance(obj, list):
        obj = obj[0] if obj else None
    if not isinstance(obj, dict):
        return None
    for key in keys:
        value = obj.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            return value
    for value in obj.values():
        if isinstance(value, (dict, list)):
            found = _find(value, keys, depth + 1)
            if found is not None:
                return found
    return None


def normalize(raw: Any, event_type: str, name: str | None = None) -> Normalized:
    found = {field: _find(raw, keys) for field, keys in _KEYS.items()}
    text = {k: (None if v is None else str(v)) for k, v in found.items() if k != "timestamp"}
    status = text["status"]
    normalized = status_of(STATUS_MAP, status)
    return Normalized(VendorInfo(
        name=name, message_id=text["message_id"], status=status, normalized_status=normalized,
        error_code=text["error_code"] if normalized in (S.FAILED, S.UNDELIVERED) else None,
        error_message=text["error_message"] if normalized in (S.FAILED, S.UNDELIVERED) else None,
        timestamp=parse_timestamp(found["timestamp"]), recipient=text["recipient"], sender=text["sender"],
        raw=raw if raw is not None else {},
    ))


def safe_normalize(raw: Any, event_type: str, name: str | None = None) -> Normalized:
    try:
        return normalize(raw, event_type, name)
    except Exception:  # a fallback must never take the event down
        return Normalized(VendorInfo(name=name, raw=raw if raw is not None else {}))


__all__ = ["STATUS_MAP", "normalize", "safe_normalize", "as_dict"]
