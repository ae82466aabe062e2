"""The normalized `Event` as plain JSON, so a worker rebuilds what the receiver validated without validating again.

The receiver has already loaded and normalized every accepted payload; a handler task used to load it a second
time (marshmallow, ~150 µs of a no-op task's ~500 µs body). `to_wire(event)` turns the `Event` into JSON types
(once per event, whatever its number of handlers) and `from_wire(data, raw)` rebuilds an equal `Event` from it
(about a tenth of a load). The raw payload is not repeated: it travels beside, as the task message's `payload`.

`WIRE_VERSION` is derived from the model's field names: a message written by a receiver whose model differs
from the worker's (a rolling deploy) does not match, and the worker loads its raw payload instead.
"""
from __future__ import annotations

import hashlib
from dataclasses import fields
from datetime import datetime
from typing import Any

from .model import Button, Event, InboundMessage, Media, MessageType, NormalizedStatus, Reference, VendorInfo

_MODEL = (Event, Reference, VendorInfo, InboundMessage, Button, Media)
WIRE_VERSION = hashlib.sha1(";".join(f"{cls.__name__}:{','.join(f.name for f in fields(cls))}"
                                     for cls in _MODEL).encode()).hexdigest()[:12]

_EVENT_PLAIN = ("event_id", "channel", "event_type", "channel_value", "distinct_id", "status", "workflow_name",
                "template", "vendor_name", "vendor_response", "version", "extra")
_VENDOR_PLAIN = ("name", "message_id", "status", "error_code", "error_message", "recipient", "sender",
                 "profile_name", "raw", "drift")
_MESSAGE_PLAIN = ("text", "from_", "to", "message_type", "context", "source_message_id",
                  "source_message_sent_via_suprsend", "location", "reply_to", "reply_to_nid", "extra")
_MEDIA = tuple(f.name for f in fields(Media))


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def to_wire(event: Event) -> dict[str, Any]:
    """The event as JSON types (its `raw` payload and `timeline` left out)."""
    vendor, message = event.vendor, event.message
    data: dict[str, Any] = {k: getattr(event, k) for k in _EVENT_PLAIN}
    data["w"] = WIRE_VERSION
    data["timestamp"] = _time(event.timestamp)
    data["reference"] = {**{k: getattr(event.reference, k) for k in Reference.FIELDS},
                         "extra": event.reference.extra}
    data["vendor"] = {**{k: getattr(vendor, k) for k in _VENDOR_PLAIN},
                      "normalized_status": vendor.normalized_status.value, "timestamp": _time(vendor.timestamp)}
    if message is not None:
        data["message"] = {
            **{k: getattr(message, k) for k in _MESSAGE_PLAIN}, "type": message.type.value,
            "timestamp": _time(message.timestamp),
            "button": None if message.button is None else [message.button.payload, message.button.text],
            "media": None if message.media is None else [getattr(message.media, k) for k in _MEDIA],
        }
    return data


def from_wire(data: dict[str, Any], raw: dict[str, Any]) -> Event:
    """The `Event` that `to_wire` was given, with `raw` as its payload. ValueError when `data` is of another
    model version (or not a wire event at all): then load the raw payload instead."""
    if not isinstance(data, dict) or data.get("w") != WIRE_VERSION:
        raise ValueError("not a wire event of this model version")
    try:
        v, m = data["vendor"], data.get("message")
        message = None
        if m is not None:
            button, media = m["button"], m["media"]
            message = InboundMessage(
                type=MessageType(m["type"]), timestamp=_parse_time(m["timestamp"]),
                button=None if button is None else Button(*button),
                media=None if media is None else Media(*media),
                **{k: m[k] for k in _MESSAGE_PLAIN})
        return Event(
            **{k: data[k] for k in _EVENT_PLAIN}, timestamp=_parse_time(data["timestamp"]),
            reference=Reference(**data["reference"]), message=message, raw=raw,
            vendor=VendorInfo(normalized_status=NormalizedStatus(v["normalized_status"]),
                              timestamp=_parse_time(v["timestamp"]), **{k: v[k] for k in _VENDOR_PLAIN}))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed wire event: {exc!r}") from None
