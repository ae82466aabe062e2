"""Reading and decoding a webhook body strictly: size cap first, UTF-8, JSON without surprises."""
from __future__ import annotations

import json
import re
from typing import Any

# A lone surrogate can only come from a \u escape (the UTF-8 decode already refused raw ones).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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


MAX_DEPTH = 64  # SuprSend payloads nest 5 deep; anything near this is not a webhook


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BodyError(f"number {text[:20]} is out of range")
    return value


def _check(value: Any, depth: int = 0) -> None:
    """Reject what json.loads lets through but nothing downstream can store: deep nesting, lone surrogates."""
    if depth > MAX_DEPTH:
        raise BodyError(f"JSON is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            _check(key, depth + 1)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BodyError("a string holds an unpaired surrogate (\\ud800-\\udfff escape)") from None


def decode_json(body: bytes) -> Any:
    if not body:
        raise BodyError("empty body: expected a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not valid UTF-8 (at byte {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants,
                           parse_float=_finite)
    except RecursionError:
        raise BodyError("JSON is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise BodyError(f"invalid JSON: {str(exc)[:120]}") from None
    # The walk is only needed when the text could nest too deep or hold a surrogate escape; a
    # SuprSend payload has a dozen brackets and no such escapes, so it is skipped for almost all.
    if text.count("{") + text.count("[") > MAX_DEPTH or _SURROGATE_ESCAPE.search(text):
        _check(value)
    return value
