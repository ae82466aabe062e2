"""The contract between the receiver and the worker: the message of a handler task, its deterministic task id,
which inbound messages run no handler at all (our own sends echoed back), and the entries of the event-log
stream. Both sides import it; it imports neither."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import urlparse

from kombu import Queue

from ..schemas import Event, load_event
from ..schemas.wire import from_wire, to_wire

from .observability.jsonlog import correlation_id as current_correlation_id

_TASK_NS = uuid.UUID("6f1f0d8e-5b0e-4c55-9f3c-2a4a1b7d9e10")


def task_message(event_id: str, payload: dict, correlation_id: str | None = None,
                 event: Event | None = None) -> dict:
    """The one argument of every handler task: the raw payload, so the worker has it as received; the normalized
    `event` when the sender has it (the receiver does), so the worker need not validate the payload again
    (`schemas.wire`); and the correlation id (default: the current request's) its log lines carry."""
    message = {"v": 1, "event_id": event_id, "payload": payload,
               "received_at": datetime.now(timezone.utc).isoformat(),
               "correlation_id": correlation_id or current_correlation_id.get()}
    if event is not None:
        message["event"] = to_wire(event)
    return message


def message_event(message: Mapping[str, Any]) -> Event:
    """The event of a task message: rebuilt from its wire form when it has one of this model version, else
    loaded (validated and normalized) from its raw payload. KeyError or marshmallow's ValidationError when
    the message carries no loadable event."""
    wire, event_id = message.get("event"), message.get("event_id")
    if wire is not None:
        try:
            event = from_wire(wire, message["payload"])
            if event.event_id == event_id:
                return event
        except ValueError:  # another model version (a rolling deploy): load it as received
            pass
    return load_event(message["payload"], event_id=event_id)


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


# --------------------------------------------------------------------------------------------------
# The event-log stream: on Redis the receiver's one durable write appends the event here, in the same
# atomic call that dedups and enqueues it; the worker's log writer drains it into the event log in batches.


def same_redis(broker_url: str, dedup_url: str) -> bool:
    """True when both URLs name one Redis server and database (one script then touches both key sets)."""
    a, b = urlparse(broker_url), urlparse(dedup_url)
    if a.scheme not in ("redis", "rediss") or a.scheme != b.scheme:
        return False
    return (a.hostname, a.port or 6379, (a.path or "/0").strip("/") or "0") == \
        (b.hostname, b.port or 6379, (b.path or "/0").strip("/") or "0")


def queue_first(settings: Any) -> bool:
    """Does the receiver write only to the broker (Redis for both broker and dedup, the fast path on)? Then
    the event log is written off the request path, from the log stream."""
    return bool(settings.redis_fastpath) and same_redis(settings.broker_url, settings.dedup_url)


def log_stream_key(settings: Any) -> str:
    """The Redis stream of accepted events not yet in the event log (one per deployment's default queue)."""
    return f"suprhook:eventlog:{settings.default_queue}"


def log_entry(event: Event, handlers: Iterable[str], body: bytes | str | None,
              headers: Mapping[str, str] | None) -> dict[str, bytes]:
    """The stream entry of an accepted event: what `EventStore.record_logged` writes, without re-validating."""
    meta = {"type": event.event_type, "channel": event.channel, "status": event.status,
            "nid": event.reference.supr_nid, "distinct_id": event.distinct_id, "is_status": event.is_status,
            "status_at": event.timestamp.isoformat() if event.timestamp else None, "handlers": list(handlers),
            "received_at": time.time()}
    raw = body if body is not None else json.dumps(event.raw)
    return {"id": event.event_id.encode(), "meta": json.dumps(meta).encode(),
            "body": raw if isinstance(raw, bytes) else raw.encode(),
            "headers": json.dumps(dict(headers or {})).encode()}


def run_key(settings: Any, event_id: str) -> str:
    """The Redis hash of an event's handler runs (field: handler name, value: `status|attempts|lease_until`),
    on the broker's Redis: created pending by the receiver in the call that queues the event's tasks, claimed
    and finished there by workers (`stores.runs.RunBook`), and deleted once the event log has the outcome."""
    return f"suprhook:runs:{settings.default_queue}:{event_id}"


RUN_TTL = 2 * 86400  # an event's run hash outlives any retry schedule; finished runs are deleted long before
FIRST = "pending|0|0"  # a run's state as the receiver creates it


@dataclass(frozen=True)
class RunTransition:
    """A handler run's change of state (claimed, lease renewed, finished) as a worker made it on Redis, on its way
    to the event log's run table through the event-log stream (an entry with a `run` field)."""

    event_id: str
    handler: str
    attempts: int
    status: str
    lease_until: float | None
    error: str | None
    at: float
    followups: tuple[dict[str, Any], ...] = ()  # with an outcome: what the run sent (`Followup.sent`)

    @classmethod
    def from_entry(cls, fields: Mapping[bytes, bytes]) -> "RunTransition":
        r = json.loads(fields[b"run"])
        sent = json.loads(r["f"]) if r.get("f") else []
        return cls(str(r["e"]), str(r["h"]), int(r["a"]), str(r["s"]), None if r.get("l") is None else float(r["l"]),
                   r.get("err"), float(r["t"]), tuple(f for f in sent if isinstance(f, dict)))

    @property
    def final(self) -> bool:
        """Never run again unless replayed: the Redis state can be dropped once the event log has it."""
        return self.status in ("succeeded", "skipped", "dead")


@dataclass(frozen=True)
class LoggedEvent:
    """An accepted event as the event log records it (from a stream entry, or from an `Event` directly)."""

    event_id: str
    received_at: datetime
    event_type: str
    channel: str
    status: str | None
    supr_nid: str | None
    distinct_id: str | None
    is_status: bool
    status_at: datetime | None
    handlers: tuple[str, ...]
    body: str
    headers: str

    @classmethod
    def from_entry(cls, fields: Mapping[bytes, bytes]) -> "LoggedEvent":
        meta = json.loads(fields[b"meta"])
        return cls(fields[b"id"].decode(), datetime.fromtimestamp(meta["received_at"], timezone.utc), meta["type"],
                   meta["channel"], meta["status"], meta["nid"], meta["distinct_id"], bool(meta["is_status"]),
                   datetime.fromisoformat(meta["status_at"]) if meta["status_at"] else None,
                   tuple(meta["handlers"]), fields[b"body"].decode("utf-8", "surrogateescape"),
                   fields[b"headers"].decode())

    @classmethod
    def from_message(cls, message: Mapping[str, str]) -> "LoggedEvent":
        """From a log queue message (`log_message`)."""
        return cls.from_entry({k.encode(): str(v).encode("utf-8", "surrogateescape") for k, v in message.items()})

    @classmethod
    def from_event(cls, event: Event, handlers: Iterable[str], body: bytes | str | None,
                   headers: Mapping[str, str] | None) -> "LoggedEvent":
        text = body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body or json.dumps(event.raw)
        return cls(event.event_id, datetime.now(timezone.utc), event.event_type, event.channel, event.status,
                   event.reference.supr_nid, event.distinct_id, event.is_status, event.timestamp, tuple(handlers),
                   text, json.dumps(dict(headers or {})))


def log_mode(settings: Any) -> str:
    """How accepted events reach the event log: "stream" (a Redis broker: the log stream on the broker's
    Redis, appended by the receiver's one script when dedup is on the same Redis, else right after the
    tasks), "queue" (RabbitMQ and other remote brokers: a publisher-confirmed message on the log queue, after
    the tasks), or "sync" (the embedded broker: the receiver writes the log itself).

    Not the log queue on Redis: kombu's Redis transport loses a message taken by BRPOP but not yet recorded
    as unacked when its consumer dies, and nothing would sweep a lost log message."""
    if urlparse(settings.broker_url).scheme in ("redis", "rediss"):  # queue-first or not
        return "stream"
    return "sync" if settings.embedded_broker else "queue"


def log_queue(settings: Any) -> Queue:
    """The broker queue of accepted events not yet in the event log ("queue" mode). Receivers publish to it and
    writers consume it: one declaration, so the two can never disagree on its arguments (PRECONDITION_FAILED)."""
    name = f"suprhook.eventlog.{settings.default_queue}"
    return Queue(name, routing_key=name, durable=True)


def log_message(event: Event, handlers: Iterable[str], body: bytes | str | None,
                headers: Mapping[str, str] | None) -> dict[str, str]:
    """The log queue's message of an accepted event: the stream entry's fields, as JSON-safe text."""
    return {k: v.decode("utf-8", "surrogateescape") for k, v in log_entry(event, handlers, body, headers).items()}
