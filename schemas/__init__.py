"""Marshmallow schemas for SuprSend outbound webhooks and the normalized `Event` they load into.

`load_event(payload)` is the one entry point: it validates, normalizes and returns an `Event`,
or raises `marshmallow.ValidationError` whose `.messages` name each bad field.
"""
from __future__ import annotations
if __name__ != "suprhook.schemas":  # one module, one name: a second copy would be a second registry
    raise ImportError(f"import suprhook.schemas, not {__name__} (see src/suprhook/__init__.py)")

from typing import Any

from marshmallow import ValidationError

from .envelope import EnvelopeSchema, reference_or_empty
from .identity import canonical_json, derive_event_id
from .inbound_message import merge_vendor_parts
from .model import (INBOUND_MESSAGE, KNOWN_CHANNELS, KNOWN_EVENT_TYPES, STATUS, Button, Event,
                    InboundMessage, Media, MessageType, NormalizedStatus, Reference, VendorInfo)
from .vendors import normalize_vendor

__all__ = [
    "Button", "Event", "EnvelopeSchema", "INBOUND_MESSAGE", "InboundMessage", "KNOWN_CHANNELS",
    "KNOWN_EVENT_TYPES", "Media", "MessageType", "NormalizedStatus", "Reference", "STATUS",
    "ValidationError", "VendorInfo", "canonical_json", "derive_event_id", "flatten_errors", "load_event",
]

_schema = EnvelopeSchema()
_KNOWN = set(EnvelopeSchema().fields)


def load_event(payload: Any, event_id: str | None = None) -> Event:
    """Validate a decoded webhook body and return the normalized event."""
    if not isinstance(payload, dict):
        raise ValidationError({"$": ["Expected a JSON object."]})
    data = _schema.load(payload)
    status = data.get("suprsend_status")
    reference = reference_or_empty(data.get("reference"))
    vendor = normalize_vendor(data.get("vendor_name"), data.get("vendor_response"), data["event_type"])
    message = data.get("suprsend_inbound_message")
    if message is not None:
        message = merge_vendor_parts(message, vendor.message, reference.workspace_uid)
    return Event(
        event_id=event_id or derive_event_id(payload),
        channel=data["channel"],
        event_type=data["event_type"],
        channel_value=data.get("channel_value"),
        distinct_id=data.get("distinct_id"),
        status=status["status"] if status else None,
        timestamp=(status or {}).get("timestamp") or (message.timestamp if message else None)
        or vendor.vendor.timestamp,
        workflow_name=data.get("workflow_name"),
        template=data.get("template"),
        vendor_name=data.get("vendor_name"),
        vendor_response=data.get("vendor_response"),
        version=None if data.get("version") is None else str(data["version"]),
        reference=reference,
        message=message,
        vendor=vendor.vendor,
        raw=payload,
        extra={k: v for k, v in data.items() if k not in _KNOWN},
    )


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict -> {"suprsend_status.status": ["..."]}."""
    if isinstance(messages, list):
        return {prefix or "$": [str(m) for m in messages]}
    if not isinstance(messages, dict):
        return {prefix or "$": [str(messages)]}
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = "$" if key == "_schema" and not prefix else (prefix if key == "_schema" else
                                                            f"{prefix}.{key}" if prefix else str(key))
        for path, errs in flatten_errors(value, name).items():
            flat.setdefault(path, []).extend(errs)
    return flat
