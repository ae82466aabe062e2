"""The contract between the receiver and the worker: the message of a handler task, its deterministic task id,
and which inbound messages run no handler at all (our own sends echoed back). Both sides import it; it imports
neither."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from ..schemas import Event

from .observability.jsonlog import correlation_id as current_correlation_id

_TASK_NS = uuid.UUID("6f1f0d8e-5b0e-4c55-9f3c-2a4a1b7d9e10")


def task_message(event_id: str, payload: dict, correlation_id: str | None = None) -> dict:
    """The one argument of every handler task: the raw payload, so the worker loads it as received, and the
    correlation id (default: the current request's) that the worker's log lines for it carry."""
    return {"v": 1, "event_id": event_id, "payload": payload, "received_at": datetime.now(timezone.utc).isoformat(),
            "correlation_id": correlation_id or current_correlation_id.get()}


def task_id(event_id: str, handler_name: str) -> str:
    """Deterministic per (event, handler), so a run can be recognised however often it is sent."""
    return str(uuid.uuid5(_TASK_NS, f"{event_id}/{handler_name}"))


def _digits(number: str | None) -> str:
    return "".join(ch for ch in str(number or "") if ch.isdigit())


def is_echo(event: Event, own_numbers: tuple[str, ...] = ()) -> bool:
    """An inbound message that is one of our own sends coming back: sent from one of our numbers
    (SUPRHOOK_OWN_NUMBERS, compared by digits), or marked outbound/echo by the vendor."""
    message = event.message
    if message is None:
        return False
    sender = _digits(message.from_ or event.vendor.sender)
    if sender and sender in {_digits(n) for n in own_numbers}:
        return True
    raw = event.vendor.raw if isinstance(event.vendor.raw, dict) else {}
    direction = str(raw.get("direction") or raw.get("Direction") or "").lower()
    return direction.startswith("outbound") or bool(raw.get("is_echo"))
