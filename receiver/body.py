"""Reading and decoding a webhook body strictly: size cap first, UTF-8, JSON without surprises."""
from __future__ import annotations

import json
from typing import Any


class BodyError(ValueError):
    """The body cannot be a webhook; `str(exc)` says why, for the client."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BodyError(f"duplicate key {key!r} in a JSON object")
        obj[key] = value
    return obj


def _no_constants(name: str) -> Any:
    raise BodyError(f"{name} is not valid JSON")


def decode_json(body: bytes) -> Any:
    if not body:
        raise BodyError("empty body: expected a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not valid UTF-8 (at byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except RecursionError:
        raise BodyError("JSON is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
