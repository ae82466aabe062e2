"""The webhook's steps without Flask: `receiver.ingest.Ingest` driven with plain `WebhookRequest`s.

Real settings (`isolated_settings`), the real `RequestGuard` and routes; the dispatcher is a fake that
records what it was given, or raises what the real one raises (`InFlight`, `EnqueueError`). Over HTTP,
the same behaviours are covered by test_receiver, test_security, test_endpoints and test_metrics.
"""
from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any, Iterator

import pytest
from prometheus_client import REGISTRY

from suprhook.handlers import EnqueueError, InFlight
from suprhook.handlers.observability.jsonlog import FIELDS_ATTR
from suprhook.handlers.testing import isolated_settings
from suprhook.receiver.endpoints import Endpoint, Route, build_routes
from suprhook.receiver.ingest import COUNTED_REFUSALS, Answer, Headers, Ingest, Rejection, WebhookRequest
from suprhook.receiver.security import RequestGuard, TokenBucketLimiter

from .conftest import make_inbound, make_status

TOKEN = "tok-ingest-0123456789"
SECRET = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLWluZ2VzdC10ZXN0cw=="


@dataclass(frozen=True)
class Submitted:
    status: str
    event_id: str
    handlers: tuple[str, ...] = ()


class FakeDispatcher:
    """Accepts each event id once (then: duplicate), or raises `raises`; keeps every call."""

    def __init__(self, raises: BaseException | None = None) -> None:
        self.raises = raises
        self.calls: list[tuple[Any, bytes | None, dict[str, str]]] = []
        self.seen: set[str] = set()

    def submit(self, event: Any, body: bytes | None = None, headers: Any = None) -> Submitted:
        self.calls.append((event, body, dict(headers or {})))
        if self.raises is not None:
            raise self.raises
        if event.event_id in self.seen:
            return Submitted("duplicate", event.event_id)
        self.seen.add(event.event_id)
        return Submitted("accepted", event.event_id, ("noop", "other"))


def make_ingest(config: dict[str, str] | None = None, *, endpoints: tuple[Endpoint, ...] = (),
                dispatcher: FakeDispatcher | None = None, **guard: Any) -> tuple[Ingest, list[Route]]:
    settings = isolated_settings({"SUPRHOOK_AUTH_TOKENS": TOKEN, **(config or {})})
    request_guard = RequestGuard(settings, **guard)
    routes = build_routes(settings, {}, list(endpoints), default_verifier=request_guard.verifier)
    return Ingest(settings, request_guard, dispatcher or FakeDispatcher(), routes), routes


def webhook(payload: Any = None, *, body: bytes | None = None, headers: dict[str, str] | None = None,
            content_type: str | None = "application/json", length: int | None | str = "declared",
            remote_addr: str = "203.0.113.5", forwarded_for: tuple[str, ...] = ()) -> WebhookRequest:
    """A request as an adapter would build it; `length="declared"`: the body's own length."""
    raw = body if body is not None else json.dumps(payload if payload is not None else make_status()).encode()
    mimetype, _, params = (content_type or "").partition(";")
    charset = next((v.strip() for k, _, v in (p.partition("=") for p in params.split(";"))
                    if k.strip().lower() == "charset"), None)
    sent = {"Authorization": f"Bearer {TOKEN}", **({"Content-Type": content_type} if content_type else {})}
    return WebhookRequest(headers=Headers({**sent, **(headers or {})}),
                          read=io.BytesIO(raw).read, remote_addr=remote_addr, forwarded_for=forwarded_for,
                          content_length=len(raw) if length == "declared" else length, content_type=content_type,
                          mimetype=mimetype.strip().lower(), charset=charset)


def rejected_count(reason: str) -> float:
    return REGISTRY.get_sample_value("suprhook_webhooks_rejected_total", {"reason": reason}) or 0.0


@pytest.fixture
def lines() -> Iterator[list[logging.LogRecord]]:
    """The receiver's log records (its one line per webhook), whatever configured logging before."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger, handler = logging.getLogger("suprhook.receiver"), Keep()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def assert_refused(answer: Answer, code: int, reason: str, field: str) -> None:
    assert (answer.code, answer.reason, answer.outcome) == (code, reason, "rejected"), answer
    assert answer.body["status"] == "rejected"
    assert field in answer.body["errors"], answer.body


# --------------------------------------------------------------------------------------------------
# The core stays framework-free


def test_ingest_imports_neither_flask_nor_werkzeug():
    code = ("import suprhook.receiver.ingest, sys; "
            "assert not any(m.split('.')[0] in ('flask', 'werkzeug') for m in sys.modules), "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------------
# Accepted


def test_an_accepted_event_is_submitted_once_and_logged(lines):
    dispatcher = FakeDispatcher()
    ingest, routes = make_ingest(dispatcher=dispatcher)
    payload = make_status()
    request = webhook(payload, headers={"X-Request-Id": "req-ingest-1", "User-Agent": "SuprSend"})
    answer = ingest.handle(request, routes[0])
    assert answer.code == 202 and answer.outcome == "accepted" and answer.reason is None
    assert answer.body == {"status": "accepted", "event_id": answer.event.event_id}
    assert answer.headers == {"X-Request-Id": "req-ingest-1"} and answer.handlers == 2
    (event, body, headers), = dispatcher.calls
    assert body == json.dumps(payload).encode() and event.event_id == answer.event.event_id
    assert headers == {"Content-Type": "application/json", "User-Agent": "SuprSend", "X-Request-Id": "req-ingest-1"}
    fields = getattr(lines[-1], FIELDS_ATTR)
    assert lines[-1].getMessage() == "webhook accepted" and lines[-1].levelno == logging.INFO
    assert (fields["outcome"], fields["code"], fields["handlers"], fields["event_id"]) == (
        "accepted", 202, 2, answer.event.event_id)
    assert "client" not in fields and "endpoint" not in fields

    again = ingest.handle(webhook(payload), routes[0])
    assert (again.code, again.outcome, again.body["status"]) == (200, "duplicate", "duplicate")
    assert len(again.headers["X-Request-Id"]) == 32  # none sent: a new one


# --------------------------------------------------------------------------------------------------
# One refusal per step, in order


def test_admit_refuses_a_source_outside_the_allowlist(lines):
    ingest, routes = make_ingest({"SUPRHOOK_ALLOWED_IPS": "10.0.0.0/8"})
    before = rejected_count("ip")
    answer = ingest.handle(webhook(remote_addr="192.0.2.7"), routes[0])
    assert_refused(answer, 403, "ip", "$")
    assert answer.client == "192.0.2.7" and answer.detail == "$"
    assert rejected_count("ip") == before + 1
    fields = getattr(lines[-1], FIELDS_ATTR)
    assert (fields["reason"], fields["client"], fields["code"]) == ("ip", "192.0.2.7", 403)


def test_admit_applies_the_endpoint_ceiling():
    ingest, routes = make_ingest(limiter=TokenBucketLimiter(0.001, 1, clock=lambda: 0.0))
    assert ingest.handle(webhook(), routes[0]).code == 202
    answer = ingest.handle(webhook(), routes[0])
    assert (answer.code, answer.reason, answer.body["status"]) == (429, "rate_limited", "rate_limited")
    assert answer.headers["Retry-After"] == "1000" and "SUPRHOOK_RATE_LIMIT" in answer.body["error"]


def test_authenticate_refuses_a_wrong_token_with_a_bearer_challenge():
    ingest, routes = make_ingest()
    answer = ingest.handle(webhook(headers={"Authorization": "Bearer wrong"}), routes[0])
    assert_refused(answer, 401, "auth", "Authorization")
    assert answer.headers["WWW-Authenticate"] == "Bearer" and answer.detail == "invalid token"


def test_authenticate_with_a_custom_header_sends_no_challenge():
    ingest, routes = make_ingest({"SUPRHOOK_AUTH_HEADER": "X-Suprhook-Token"})
    answer = ingest.handle(webhook(), routes[0])  # the token went in Authorization, not X-Suprhook-Token
    assert_refused(answer, 401, "auth", "X-Suprhook-Token")
    assert "WWW-Authenticate" not in answer.headers
    assert ingest.handle(webhook(headers={"x-suprhook-token": TOKEN}), routes[0]).code == 202  # any case


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    ingest, routes = make_ingest({"SUPRHOOK_MAX_BODY_BYTES": "1024"})

    def never(n: int) -> bytes:
        raise AssertionError("the body was read")

    answer = ingest.handle(replace(webhook(length=4096), read=never), routes[0])
    assert_refused(answer, 413, "size", "$")
    assert answer.body["errors"]["$"] == ["body of 4096 bytes exceeds the 1024-byte limit"]


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/json; charset=latin-1"])
def test_content_type_must_be_utf8_json(content_type):
    ingest, routes = make_ingest()
    answer = ingest.handle(webhook(content_type=content_type), routes[0])
    assert_refused(answer, 415, "content_type", "Content-Type")
    assert repr(content_type or "nothing") in answer.body["errors"]["Content-Type"][0]


def test_an_undeclared_body_over_the_limit_is_refused_when_read():
    ingest, routes = make_ingest({"SUPRHOOK_MAX_BODY_BYTES": "1024"})
    answer = ingest.handle(webhook(body=b"x" * 2000, length=None), routes[0])  # chunked: no Content-Length
    assert_refused(answer, 413, "size", "$")
    assert answer.body["errors"]["$"] == ["body exceeds the 1024-byte limit"]


def test_signature_is_checked_over_the_raw_body():
    ingest, routes = make_ingest({"SUPRHOOK_SIGNING_SECRET": SECRET})
    answer = ingest.handle(webhook(), routes[0])
    assert_refused(answer, 401, "signature", "webhook-signature")
    assert answer.detail == "webhook-id,webhook-timestamp,webhook-signature"
    assert "WWW-Authenticate" not in answer.headers


def test_a_body_that_is_not_json_is_refused():
    ingest, routes = make_ingest()
    answer = ingest.handle(webhook(body=b'{"a": 1, "a": 2}'), routes[0])
    assert_refused(answer, 400, "body", "$")
    assert "duplicate key" in answer.detail and answer.event is None


def test_a_body_that_fails_the_schema_is_refused_by_field():
    ingest, routes = make_ingest()
    payload = make_status()
    del payload["channel"]
    answer = ingest.handle(webhook(payload), routes[0])
    assert_refused(answer, 400, "schema", "channel")
    assert answer.detail == "channel"


def test_an_endpoint_refuses_events_it_does_not_take(lines):
    dispatcher = FakeDispatcher()
    ingest, routes = make_ingest(endpoints=(Endpoint("status", "/hooks/status", event_types="status"),),
                                 dispatcher=dispatcher)
    answer = ingest.handle(webhook(make_inbound()), routes[1])
    assert_refused(answer, 422, "wrong_endpoint", "event_type")
    assert "/webhooks/suprsend" in answer.body["errors"]["event_type"][0]  # where it should point
    assert answer.event is not None and answer.detail == "status accepts event_type=status"
    assert not dispatcher.calls
    fields = getattr(lines[-1], FIELDS_ATTR)
    assert (fields["endpoint"], fields["type"], fields["reason"]) == ("status", "inbound_message", "wrong_endpoint")
    assert ingest.handle(webhook(make_status()), routes[1]).code == 202


# --------------------------------------------------------------------------------------------------
# The refusal budget, and our own trouble


def test_refusals_turn_into_429_once_the_source_is_out_of_budget():
    ingest, routes = make_ingest(refusals=TokenBucketLimiter(0.001, 2, clock=lambda: 0.0))
    bad_token = {"Authorization": "Bearer wrong"}
    assert ingest.handle(webhook(headers=bad_token), routes[0]).code == 401
    assert ingest.handle(webhook(body=b"{"), routes[0]).code == 400
    answer = ingest.handle(webhook(headers=bad_token), routes[0])
    assert (answer.code, answer.reason, answer.body["status"]) == (429, "rate_limited", "rate_limited")
    assert answer.body["error"].startswith("Authorization: invalid token; too many refused requests")
    assert answer.headers["Retry-After"] == "1000" and "WWW-Authenticate" not in answer.headers
    assert answer.detail == "invalid token" and answer.client == "203.0.113.5"  # the refusal's own
    assert ingest.handle(webhook(), routes[0]).code == 202  # accepted requests are never throttled by it


def test_only_refusals_of_what_the_request_carried_are_counted():
    assert COUNTED_REFUSALS == {"auth", "signature", "size", "content_type", "body", "schema"}
    ingest, routes = make_ingest({"SUPRHOOK_ALLOWED_IPS": "10.0.0.0/8"},
                                 refusals=TokenBucketLimiter(0.001, 1, clock=lambda: 0.0))
    for _ in range(3):
        assert ingest.handle(webhook(remote_addr="192.0.2.7"), routes[0]).reason == "ip"


def test_an_event_in_flight_is_a_409_to_retry_in_a_second(lines):
    ingest, routes = make_ingest(dispatcher=FakeDispatcher(InFlight("busy")),
                                 refusals=TokenBucketLimiter(0.001, 1, clock=lambda: 0.0))
    for _ in range(2):  # not counted against the source
        answer = ingest.handle(webhook(), routes[0])
        assert (answer.code, answer.reason) == (409, "in_progress")
        assert answer.body == {"status": "in_progress", "event_id": answer.event.event_id}
        assert answer.headers["Retry-After"] == "1" and answer.client is None
    fields = getattr(lines[-1], FIELDS_ATTR)
    assert lines[-1].levelno == logging.INFO and fields["client"] is None and fields["detail"] is None


def test_an_event_that_cannot_be_queued_is_a_503(lines):
    ingest, routes = make_ingest(dispatcher=FakeDispatcher(EnqueueError("broker down")))
    before = rejected_count("unavailable")
    answer = ingest.handle(webhook(), routes[0])
    assert (answer.code, answer.reason, answer.outcome) == (503, "unavailable", "rejected")
    assert answer.body == {"status": "unavailable", "event_id": answer.event.event_id,
                           "error": "the event could not be queued; retry later"}
    assert answer.headers["Retry-After"] == "5"
    assert rejected_count("unavailable") == before + 1
    assert lines[-1].levelno == logging.WARNING and lines[-1].getMessage() == "webhook rejected"


# --------------------------------------------------------------------------------------------------
# The one refusal type


def test_rejection_bodies_keep_their_shapes():
    refused = Rejection(401, {"Authorization": ["invalid token"]}, "auth")
    assert refused.body() == {"status": "rejected", "errors": {"Authorization": ["invalid token"]}}
    limited = Rejection(429, {"$": ["slow down"], "$limit": ["too many"], "Content-Type": ["json"]},
                        "rate_limited", {"Retry-After": "3"}, status="rate_limited")
    assert limited.body() == {"status": "rate_limited", "error": "slow down; too many; Content-Type: json"}
    with pytest.raises(Rejection) as caught:
        raise refused
    assert caught.value is refused and "401 auth" in str(refused)


def test_request_headers_are_case_insensitive_and_never_shown():
    request = webhook(headers={"X-Request-Id": "abc"})
    assert request.headers["authorization"] == f"Bearer {TOKEN}" and request.request_id == "abc"
    assert TOKEN not in repr(request)
    plain = WebhookRequest(headers={"X-Token": "secret-value"}, read=io.BytesIO(b"").read)
    assert plain.headers.get("x-token") == "secret-value" and "secret-value" not in repr(plain)
