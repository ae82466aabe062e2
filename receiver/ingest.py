"""What happens to one webhook request, without Flask: a `WebhookRequest` in, an `Answer` out.

In the spirit of gidgethub's ``sansio``: the HTTP adapter (`receiver.blueprint`) only builds the request
view and turns the answer into a response; every check lives here and is testable with plain objects.
`Ingest.handle` runs these steps in order, each returning its value or raising a `Rejection`:

1. `Ingest.admit` — the source-IP allowlist (403 ``ip``), then the endpoint's ceiling (429 ``rate_limited``);
2. `Ingest.authenticate` — the endpoint's token in ``SUPRHOOK_AUTH_HEADER`` (401 ``auth``);
3. `Ingest.check_length` — the declared ``Content-Length``, before reading anything (413 ``size``);
4. `Ingest.check_content_type` — ``application/json``, UTF-8 (415 ``content_type``);
5. `Ingest.read_body` — at most the limit, whatever was declared (413 ``size``);
6. `Ingest.verify_signature` — Standard Webhooks, over the raw bytes (401 ``signature``);
7. `Ingest.parse` — strict JSON (400 ``body``), then the schema (400 ``schema``, by dotted field path);
8. `Ingest.check_endpoint` — the endpoint accepts this event type and channel (422 ``wrong_endpoint``);
9. `Ingest.enqueue` — logged and queued once per event id: 202 accepted, 200 duplicate; 409 ``in_progress``
   while another request is accepting it, 503 ``unavailable`` when it cannot be logged or queued.

A refusal of what the request carried (`COUNTED_REFUSALS`) also costs its source a token of the refusal
budget (`RequestGuard.count_refusal`): a source out of tokens is answered 429 instead. Every request gets
its metrics and its one log line (logger ``suprhook.receiver``) here, and its correlation id back as
``X-Request-Id``. This module imports neither Flask nor werkzeug.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from ..handlers import EnqueueError, Event, InFlight, Settings
from ..handlers.observability import metrics
from ..handlers.observability.jsonlog import FIELDS_ATTR, event_fields, new_correlation_id
from ..schemas import ValidationError, flatten_errors, load_event

from .auth import check_token
from .body import BodyError, decode_json

if TYPE_CHECKING:  # receiver.security and receiver.endpoints import this module: no cycle at run time
    from .endpoints import Route
    from .security import IPAddress, RequestGuard

log = logging.getLogger("suprhook.receiver")

RETRY_AFTER_SECONDS = 5  # the Retry-After of a 503: the event could not be logged or queued
# Refusals of what a request carried (its credentials, its body): counted per source by the guard.
# Not counted: the allowlist and the endpoint ceiling (already source-wide), a wrong endpoint (a
# SuprSend setting), and our own trouble (503, 409).
COUNTED_REFUSALS = frozenset({"auth", "signature", "size", "content_type", "body", "schema"})
# Headers kept with each event in the log: enough to trace a delivery, never credentials or signatures.
LOGGED_HEADERS = ("Content-Type", "User-Agent", "X-Forwarded-For", "X-Request-Id", "webhook-id", "webhook-timestamp")


def logged_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in LOGGED_HEADERS if name in headers}


@dataclass(eq=False)
class Rejection(Exception):
    """Why a request is refused, for every refusal: the HTTP status, the JSON body's fields, extra headers,
    and `detail` for the log line. The checks of `receiver.security` return one; `Ingest`'s steps raise it.

    Bodies: ``{"status": "rejected", "errors": {field: [messages]}}``; any other `status` (``rate_limited``,
    ``in_progress``, ``unavailable``) is ``{"status", "event_id" (when set), "error" (when there are errors)}``.
    """

    code: int
    errors: dict[str, list[str]]
    reason: str  # a short word for the log line and the rejected metric: ip, rate_limited, signature
    headers: dict[str, str] = field(default_factory=dict)
    status: str = "rejected"
    event_id: str | None = None  # the event a 409 or 503 is about
    detail: str | None = None  # the log line's `detail`: never a secret, never the body

    def body(self) -> dict[str, object]:
        if self.status == "rejected":
            return {"status": self.status, "errors": self.errors}
        body: dict[str, object] = {"status": self.status}
        if self.event_id is not None:
            body["event_id"] = self.event_id
        if self.errors:
            body["error"] = "; ".join(m if key.startswith("$") else f"{key}: {m}"
                                      for key, ms in self.errors.items() for m in ms)
        return body

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.errors}"


class Headers(Mapping[str, str]):
    """Request headers looked up case-insensitively; of a repeated name, the first value counts."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            self._items.setdefault(name.lower(), (name, value))

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:  # names only: values hold tokens and signatures
        return f"Headers({list(self)})"


@dataclass(frozen=True)
class WebhookRequest:
    """One webhook request as the steps see it, whatever server received it.

    `headers` must look names up case-insensitively (werkzeug's headers, `Headers`); a plain dict is
    wrapped in `Headers`. `read(n)` returns up to `n` bytes of the body. `mimetype` (lower case) and
    `charset` (None when the Content-Type has no charset parameter) are the parsed `content_type`.
    """

    headers: Mapping[str, str] = field(repr=False)
    read: Callable[[int], bytes] = field(repr=False)
    remote_addr: str | None = None  # the socket peer (WSGI ``REMOTE_ADDR``)
    forwarded_for: tuple[str, ...] = ()  # every X-Forwarded-For header, in the order received
    content_length: int | None = None
    content_type: str | None = None
    mimetype: str = ""
    charset: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.headers, dict):
            object.__setattr__(self, "headers", Headers(self.headers))
        object.__setattr__(self, "forwarded_for", tuple(self.forwarded_for))

    @property
    def request_id(self) -> str | None:
        """The sender's ``X-Request-Id``, if any (`new_correlation_id` decides whether to keep it)."""
        return self.headers.get("X-Request-Id")


class Submitted(Protocol):
    """What `Dispatcher.submit` returns (`handlers.web.dispatch.Outcome`)."""

    @property
    def status(self) -> str: ...  # "accepted" | "duplicate"

    @property
    def event_id(self) -> str: ...

    @property
    def handlers(self) -> Sequence[str]: ...


class Observer(Protocol):
    """Told each answer: outcome, reason, code, client, declared size (`handlers.web.traffic.TrafficRecorder`)."""

    def __call__(self, outcome: str, reason: str | None, code: int, client: str | None,
                 size: int | None) -> None: ...


class Submitter(Protocol):
    """The one thing the ingest asks of a `handlers.web.dispatch.Dispatcher`."""

    def submit(self, event: Event, body: bytes | None = None,
               headers: Mapping[str, str] | None = None) -> Submitted: ...


@dataclass(frozen=True)
class Answer:
    """The answer to one webhook request, and what its metrics and its log line say."""

    code: int
    body: dict[str, object]
    headers: dict[str, str] = field(default_factory=dict)
    outcome: str = "rejected"  # accepted | duplicate | rejected: the log line's outcome, the ingest_seconds label
    reason: str | None = None  # None, or why it was refused (the rejected metric's label)
    event: Event | None = field(default=None, repr=False)  # once parsed
    detail: str | None = None
    client: str | None = None  # the client address, logged with refusals of what the request carried
    handlers: int | None = None  # how many handlers an accepted event was queued for

    @classmethod
    def refusal(cls, refused: Rejection, event: Event | None = None, client: IPAddress | None = None) -> Answer:
        return cls(refused.code, refused.body(), dict(refused.headers), "rejected", refused.reason, event,
                   refused.detail, None if client is None else str(client))

    @classmethod
    def accepted(cls, submitted: Submitted, event: Event) -> Answer:
        """202 for a new event, 200 for a redelivery of one already accepted."""
        new = submitted.status == "accepted"
        return cls(202 if new else 200, {"status": submitted.status, "event_id": submitted.event_id}, {},
                   "accepted" if new else "duplicate", event=event, handlers=len(submitted.handlers))


class Ingest:
    """The webhook checks of one receiver, in order; `handle` answers one request."""

    def __init__(self, settings: Settings, guard: RequestGuard, dispatcher: Submitter,
                 routes: Iterable[Route], observer: Observer | None = None) -> None:
        self.settings, self.guard, self.dispatcher = settings, guard, dispatcher
        self.routes = tuple(routes)  # every endpoint: a 422 names the one that would take the event
        self.observer = observer  # told every outcome (the console's overview counts): it must not block

    def handle(self, request: WebhookRequest, route: Route) -> Answer:
        """Run every step for `request`, posted to `route`; count, time and log the outcome."""
        answer = self._handle(request, route)
        if self.observer is not None:
            self.observer(answer.outcome, answer.reason, answer.code, answer.client or request.remote_addr,
                          request.content_length)
        return answer

    def _handle(self, request: WebhookRequest, route: Route) -> Answer:
        started = time.perf_counter()
        metrics.RECEIVED.inc()
        cid = new_correlation_id(request.request_id)
        client = self.client(request)
        event: Event | None = None
        try:
            self.admit(request, route, client)
            self.authenticate(request, route)
            self.check_length(request)
            self.check_content_type(request)
            body = self.read_body(request)
            self.verify_signature(request, route, body)
            event = self.parse(body)
            self.check_endpoint(route, event)
        except Rejection as refused:
            return self.finish(Answer.refusal(self.counted(refused, request, client), event, client),
                               route, started, cid)
        try:
            submitted = self.enqueue(request, event, body)
        except Rejection as refused:  # our own trouble, not the request's: not counted, logged without the client
            return self.finish(Answer.refusal(refused, event), route, started, cid)
        return self.finish(Answer.accepted(submitted, event), route, started, cid)

    # -- the steps -----------------------------------------------------------------------------------

    def client(self, request: WebhookRequest) -> IPAddress | None:
        """The client address (``REMOTE_ADDR``, or X-Forwarded-For behind trusted proxies); None: unknown."""
        return self.guard.client_ip(request.remote_addr, request.forwarded_for)

    def admit(self, request: WebhookRequest, route: Route, client: IPAddress | None) -> None:
        """The source-IP allowlist (403), then the endpoint's ceiling (429)."""
        refused = self.guard.admit(client, request.remote_addr, route.name)
        if refused is not None:
            raise replace(refused, detail=",".join(refused.errors))

    def authenticate(self, request: WebhookRequest, route: Route) -> None:
        """The endpoint's token (401; ``WWW-Authenticate: Bearer`` when the header is Authorization)."""
        problem = check_token(self.settings, request.headers, route.tokens)
        if problem:
            header = self.settings.auth_header
            extra = {"WWW-Authenticate": "Bearer"} if header.lower() == "authorization" else {}
            raise Rejection(401, {header: [problem]}, "auth", extra, detail=problem)

    def check_length(self, request: WebhookRequest) -> None:
        """A declared ``Content-Length`` over the limit (413), before reading anything."""
        limit, length = self.settings.max_body_bytes, request.content_length
        if length is not None and length > limit:
            raise Rejection(413, {"$": [f"body of {length} bytes exceeds the {limit}-byte limit"]}, "size")

    def check_content_type(self, request: WebhookRequest) -> None:
        """``application/json``, without a charset or with UTF-8 (415)."""
        charset = "utf-8" if request.charset is None else request.charset
        if request.mimetype != "application/json" or charset.lower() not in ("utf-8", "utf8"):
            raise Rejection(415, {"Content-Type": [
                f"expected application/json (UTF-8), got {request.content_type or 'nothing'!r}"]}, "content_type")

    def read_body(self, request: WebhookRequest) -> bytes:
        """The raw body; longer than the limit (whatever was declared) is a 413."""
        limit = self.settings.max_body_bytes
        body = request.read(limit + 1)
        if len(body) > limit:
            raise Rejection(413, {"$": [f"body exceeds the {limit}-byte limit"]}, "size")
        return body

    def verify_signature(self, request: WebhookRequest, route: Route, body: bytes) -> None:
        """The endpoint's Standard Webhooks signature over the raw bytes, when it has secrets (401)."""
        refused = route.verify_signature(body, request.headers)
        if refused is not None:
            raise replace(refused, detail=",".join(refused.errors))

    def parse(self, body: bytes) -> Event:
        """Strict JSON (400 ``body``), then the schema (400 ``schema``, errors by dotted field path)."""
        try:
            return load_event(decode_json(body))
        except BodyError as exc:
            raise Rejection(400, {"$": [str(exc)]}, "body", detail=str(exc)) from None
        except ValidationError as exc:
            errors = flatten_errors(exc.messages)
            raise Rejection(400, errors, "schema", detail=",".join(sorted(errors))) from None

    def check_endpoint(self, route: Route, event: Event) -> None:
        """The endpoint takes this event type and channel (422: SuprSend's webhook points at the wrong URL)."""
        wrong = route.refusal(event.event_type, event.channel, self.routes)
        if wrong:
            raise Rejection(422, wrong, "wrong_endpoint", detail=f"{route.name} accepts {route.endpoint.describe()}")

    def enqueue(self, request: WebhookRequest, event: Event, body: bytes) -> Submitted:
        """Log and queue the event once per event id (409 while another request does, 503 when it cannot)."""
        try:
            return self.dispatcher.submit(event, body, logged_headers(request.headers))
        except InFlight:
            raise Rejection(409, {}, "in_progress", {"Retry-After": "1"}, status="in_progress",
                            event_id=event.event_id) from None
        except EnqueueError:
            raise Rejection(503, {"$": ["the event could not be queued; retry later"]}, "unavailable",
                            {"Retry-After": str(RETRY_AFTER_SECONDS)}, status="unavailable",
                            event_id=event.event_id) from None

    # -- after the steps -----------------------------------------------------------------------------

    def counted(self, refused: Rejection, request: WebhookRequest, client: IPAddress | None) -> Rejection:
        """`refused`, or a 429 in its place once its source has had too many refusals (same detail)."""
        if refused.reason not in COUNTED_REFUSALS:
            return refused
        limited = self.guard.count_refusal(client, request.remote_addr, refused.errors)
        return refused if limited is None else replace(limited, detail=refused.detail)

    def finish(self, answer: Answer, route: Route, started: float, cid: str) -> Answer:
        """Count the outcome, time it, log its one line, and return `answer` with the request id."""
        seconds = time.perf_counter() - started
        if answer.reason is None:
            (metrics.ACCEPTED if answer.outcome == "accepted" else metrics.DUPLICATE).inc()
        else:
            metrics.rejected[answer.reason].inc()
        metrics.ingest_seconds[answer.outcome].observe(seconds)
        level = logging.WARNING if answer.reason == "unavailable" else logging.INFO
        if log.isEnabledFor(level):
            fields = event_fields(answer.event, self.settings.log_distinct_id) if answer.event is not None else {}
            fields["outcome"], fields["reason"], fields["code"] = answer.outcome, answer.reason, answer.code
            if not route.is_default:
                fields["endpoint"] = route.name
            fields["handlers"], fields["latency_ms"] = answer.handlers, round(seconds * 1000, 2)
            if answer.reason is not None:
                fields["client"], fields["detail"] = answer.client, answer.detail
            log.log(level, "webhook %s", answer.outcome, extra={FIELDS_ATTR: fields})
        return replace(answer, headers={**answer.headers, "X-Request-Id": cid})

    def __repr__(self) -> str:
        return f"Ingest({len(self.routes)} endpoints, {self.guard!r})"
