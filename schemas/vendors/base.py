"""What every vendor module builds on: the result types, timestamp parsing, status-word lookup.

A vendor module exposes `NAMES` (the vendor_name values it handles), `STATUS_MAP` (the vendor's
status words -> NormalizedStatus), and `normalize(raw, event_type) -> Normalized`, using marshmallow
schemas to read the vendor's dict. It must raise (marshmallow.ValidationError, KeyError, ...) when
the dict does not match one of its documented shapes, rather than guess (a dict of no known shape is
never "a reply"): the registry turns that into recorded drift. A result with `normalized_status=unknown`
is drift too, unless STATUS_MAP maps that very status word to UNKNOWN (a word the vendor documents as
telling nothing about delivery).
"""
from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from marshmallow import INCLUDE, Schema, fields

from ..model import Media, MessageType, NormalizedStatus, VendorInfo

S = NormalizedStatus
T = MessageType


@dataclass(frozen=True, slots=True)
class InboundParts:
    """What a vendor's inbound callback says about the reply; None means "not given"."""

    type: MessageType | None = None
    text: str | None = None
    button_payload: str | None = None
    button_text: str | None = None
    media: Media | None = None
    location: dict[str, Any] | None = None
    reply_to: str | None = None
    from_: str | None = None
    to: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class Normalized:
    vendor: VendorInfo
    message: InboundParts | None = None


Normalizer = Callable[[Any, str], Normalized]


class Open(Schema):
    """Vendor schemas keep fields they do not name (vendors add fields too)."""

    class Meta:
        unknown = INCLUDE

    @classmethod
    def parse(cls, data: Any) -> dict[str, Any]:
        """`cls().load(data)` on one shared instance: building a schema deep-copies its fields (~0.1 ms)."""
        schema = cls.__dict__.get("_shared")
        if schema is None:
            schema = cls()
            cls._shared = schema
        return schema.load(data)


class Text(fields.Field):
    """Any scalar as a string (vendors send ids and codes as numbers or strings); None stays None."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise self.make_error("invalid")
        return str(value)

    default_error_messages = {"invalid": "Expected a scalar value."}


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def parse_timestamp(value: Any) -> datetime | None:
    """Epoch seconds/ms/µs (number or digit string) or ISO 8601 -> aware UTC datetime; else None."""
    try:
        if isinstance(value, bool) or value is None or value == "":
            return None
        if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*", value):
            value = float(value)
        if isinstance(value, (int, float)):
            seconds = float(value)
            for _ in range(3):  # ms and µs epochs
                if seconds > 1e11:
                    seconds /= 1000
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        if isinstance(value, str) and _ISO.match(value.strip()):
            text = value.strip().replace(" ", "T", 1)
            text = re.sub(r"Z$", "+00:00", text)
            text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)  # +0000 -> +00:00
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def status_of(table: Mapping[str, NormalizedStatus], word: Any) -> NormalizedStatus:
    """Look a vendor's status word up case-insensitively; unknown words are UNKNOWN."""
    if word is None:
        return S.UNKNOWN
    key = str(word).strip().lower()
    return next((v for k, v in table.items() if k.lower() == key), S.UNKNOWN)


def first(*values: Any) -> Any:
    """The first value that is not None or empty."""
    return next((v for v in values if v not in (None, "", [], {})), None)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def one(value: Any) -> dict[str, Any]:
    """A vendor that wraps one callback in a list (`[{...}]`, `{"results": [{...}]}`): its first item."""
    if isinstance(value, list):
        return as_dict(value[0]) if value else {}
    return as_dict(value)


def media_kind(mime: str | None, url: str | None = None) -> MessageType:
    """image/video/audio from a MIME type (or guessed from the URL's extension); anything else a document."""
    major = (mime or (mimetypes.guess_type(url)[0] if url else None) or "").split("/")[0]
    return MessageType.parse(major) if major in ("image", "video", "audio") else MessageType.DOCUMENT


def names(*aliases: str) -> tuple[str, ...]:
    return tuple(a.lower() for a in aliases)


def media(kind: MessageType | str, **values: Any) -> Media | None:
    """A Media if any of url/id was given."""
    if not (values.get("url") or values.get("id")):
        return None
    kind = kind.value if isinstance(kind, MessageType) else str(kind)
    return Media(kind=kind, **{k: (None if v is None else str(v)) for k, v in values.items()})


__all__: Iterable[str] = (
    "InboundParts", "Normalized", "Normalizer", "Open", "S", "T", "Text", "as_dict", "first", "media", "media_kind",
    "names", "one", "parse_timestamp", "status_of", "Media", "MessageType", "NormalizedStatus", "VendorInfo",
)
