"""Custom marshmallow fields shared by the payload schemas."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from marshmallow import ValidationError, fields

# 1970-01-01 .. 9999-12-31 in milliseconds: outside this a value is not a timestamp.
MAX_MILLIS = 253402300799999


class MillisTimestamp(fields.Field):
    """Epoch milliseconds (int, float or digit string) -> timezone-aware UTC datetime."""

    default_error_messages = {
        "invalid": "Not a valid millisecond timestamp.",
        "range": "Millisecond timestamp out of range.",
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, str):
            value = value.strip()
            if not (value.isascii() and value.isdigit()):
                raise self.make_error("invalid")
            value = int(value)
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise self.make_error("invalid")
        if not 0 <= value <= MAX_MILLIS:
            raise self.make_error("range")
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> int | None:
        return None if value is None else int(value.timestamp() * 1000)


class Identifier(fields.Field):
    """A string or integer id (SuprSend's distinct_id may be either); loaded as str."""

    default_error_messages = {"invalid": "Not a valid identifier: expected a string or an integer."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.make_error("invalid")
        return str(value)


class JSONObject(fields.Dict):
    """A JSON object, also accepted when a vendor sends it as a JSON-encoded string."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise ValidationError("Not a valid JSON object (string did not parse as JSON).") from exc
        return super()._deserialize(value, attr, data, **kwargs)


def stored_text(max_length: int) -> Any:
    """A validator for a value the event log keeps in a column: at most `max_length` characters and no NUL
    (PostgreSQL text cannot hold one). A longer value is refused with a 400, never accepted and then lost."""
    def check(value: Any) -> None:
        if isinstance(value, str):
            if len(value) > max_length:
                raise ValidationError(f"Longer than {max_length} characters.")
            if "\x00" in value:
                raise ValidationError("Contains a NUL character.")
    return check
