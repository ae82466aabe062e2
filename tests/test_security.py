"""Source-IP allowlist, per-source rate limit and Standard Webhooks signatures, over real HTTP.

Every rejection asserts that nothing was enqueued (the embedded broker's queue depth); accepted
requests really enqueue one task through a registered handler. Signatures are made with the
`standardwebhooks` package itself, so these tests do not re-implement the scheme.
"""
from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

import pytest
import redis
import requests
from standardwebhooks import Webhook
from werkzeug.serving import make_server

from suprhook.handlers import ConfigError, Registry, Settings
from suprhook.handlers.stores.embedded import queue_depth
from suprhook.receiver import create_app
from suprhook.receiver.security import (
    IPAllowlist,
    RedisTokenBucketLimiter,
    RequestGuard,
    SignatureError,
    SignatureVerifier,
    TokenBucketLimiter,
    client_ip,
    parse_ip,
)

from .conftest import LiveServer, make_status, stack_config

SECRET_OLD = "whsec_" + base64.b64encode(b"old-secret-0123456789abcdef-0001").decode()
SECRET_NEW = "whsec_" + base64.b64encode(b"new-secret-0123456789abcdef-0002").decode()
SECRET_OTHER = "whsec_" + base64.b64encode(b"someone-elses-secret-0123456789").decode()
TOKEN = "tok-security-0123456789"
REDIS_URL = "redis://127.0.0.1:6379/0"


def noop_registry() -> Registry:
    registry = Registry()
    registry(event_type="status", name="noop")(lambda event: None)
    return registry


def sign(body: bytes, secret: str, *, at: float | None = None, msg_id: str | None = None) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed by `secret` at `at` (default: now)."""
    stamp = int(time.time() if at is None else at)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, tz=timezone.utc), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def body_of(payload: dict[str, Any] | None = None) -> bytes:
    return json.dumps(payload or make_status()).encode()


@pytest.fixture
def serve(tmp_path) -> Callable[..., LiveServer]:
    """`serve(**settings)`: a live receiver with a one-handler registry on its own embedded broker."""
    servers: list[LiveServer] = []

    def start(**extra: str) -> LiveServer:
        data_dir = tmp_path / f"stack{len(servers)}"
        app = create_app(stack_config(data_dir, None, **extra), registry=noop_registry())
        server = LiveServer(app)
        server.app = app
        server.state = app.extensions["suprhook"]
        server.depth = lambda: queue_depth(app.extensions["suprhook"].settings.broker_url)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def assert_refused(response, code: int, field: str, fragment: str, server: LiveServer, before: int = 0) -> None:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["status"] == "rejected", body
    assert field in body["errors"], body
    assert any(fragment in message for message in body["errors"][field]), body
    assert server.depth() == before  # nothing was enqueued


def accepted(response) -> bool:
    return response.status_code == 202 and response.json()["status"] == "accepted"


# --------------------------------------------------------------------------------------------------
# Authentication matrix


def test_token_only_needs_no_signature(serve):
    server = serve(SUPRHOOK_AUTH_TOKENS=TOKEN)
    assert server.state.guard.verifier is None
    assert accepted(server.post(make_status(), token=TOKEN))
    assert server.depth() == 1
    assert server.post(make_status()).status_code == 401


def test_signature_only(serve):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD, SUPRHOOK_ENV="production",  # a secret is enough to start
                   SUPRHOOK_METRICS="off")
    body = body_of()
    assert accepted(server.post(data=body, headers=sign(body, SECRET_OLD)))
    assert server.depth() == 1
    r = server.post(data=body_of())
    assert r.status_code == 401
    assert set(r.json()["errors"]) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert all("missing" in m[0] for m in r.json()["errors"].values())
    assert server.depth() == 1


def test_token_and_signature_are_both_required(serve):
    server = serve(SUPRHOOK_AUTH_TOKENS=TOKEN, SUPRHOOK_SIGNING_SECRET=SECRET_OLD)
    body = body_of()
    assert_refused(server.post(data=body, token=TOKEN), 401, "webhook-signature", "missing", server)
    assert_refused(server.post(data=body, headers=sign(body, SECRET_OLD)), 401, "Authorization", "missing", server)
    assert_refused(server.post(data=body, token="tok-wrong", headers=sign(body, SECRET_OLD)), 401, "Authorization",
                   "invalid token", server)
    assert accepted(server.post(data=body, token=TOKEN, headers=sign(body, SECRET_OLD)))
    assert server.depth() == 1


def test_secret_rotation_accepts_old_and_new(serve):
    server = serve(SUPRHOOK_SIGNING_SECRET=f"{SECRET_OLD}, {SECRET_NEW}")
    for secret in (SECRET_OLD, SECRET_NEW):
        body = body_of()
        assert accepted(server.post(data=body, headers=sign(body, secret)))
    assert server.depth() == 2
    body = body_of()
    assert_refused(server.post(data=body, headers=sign(body, SECRET_OTHER)), 401, "webhook-signature",
                   "no signature matches", server, before=2)


def test_secret_without_whsec_prefix_is_accepted(serve):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_NEW.removeprefix("whsec_"))
    body = body_of()
    assert accepted(server.post(data=body, headers=sign(body, SECRET_NEW)))


@pytest.mark.parametrize("signature, fragment", [
    (lambda good: sign(b"{}", SECRET_OTHER)["webhook-signature"], "no signature matches"),
    (lambda good: "v1," + base64.b64encode(b"x" * 32).decode(), "no signature matches"),
    (lambda good: "v1,!!not-base64!!", "no valid 'v1,<base64>' signature"),
    (lambda good: "v1", "no valid 'v1,<base64>' signature"),
    (lambda good: good.replace("v1,", "v2,"), "no valid 'v1,<base64>' signature"),
    (lambda good: good.replace("v1,", "v1a,"), "no valid 'v1,<base64>' signature"),
])
def test_wrong_or_malformed_signature(serve, signature, fragment):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD)
    body = body_of()
    headers = sign(body, SECRET_OLD)
    headers["webhook-signature"] = signature(headers["webhook-signature"])
    assert_refused(server.post(data=body, headers=headers), 401, "webhook-signature", fragment, server)


def test_one_matching_signature_among_several_is_enough(serve):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD)
    body = body_of()
    headers = sign(body, SECRET_OLD)
    bogus = "v1," + base64.b64encode(b"y" * 32).decode()
    headers["webhook-signature"] = f"v1a,abc {bogus} {headers['webhook-signature']}"
    assert accepted(server.post(data=body, headers=headers))


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_signature_header_is_named(serve, header):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD)
    body = body_of()
    headers = sign(body, SECRET_OLD)
    del headers[header]
    r = server.post(data=body, headers=headers)
    assert_refused(r, 401, header, "missing", server)
    assert list(r.json()["errors"]) == [header]


def test_replayed_old_timestamp_is_refused(serve):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD)
    body = body_of()
    old = sign(body, SECRET_OLD, at=time.time() - 301)  # a genuine signature, 5 min + 1 s ago
    assert_refused(server.post(data=body, headers=old), 401, "webhook-timestamp", "too old", server)


def test_future_timestamp_is_refused(serve):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD)
    body = body_of()
    ahead = sign(body, SECRET_OLD, at=time.time() + 400)
    assert_refused(server.post(data=body, headers=ahead), 401, "webhook-timestamp", "too new", server)


@pytest.mark.parametrize("stamp", ["yesterday", "1700000000.5", "-5", "", "9" * 20])
def test_malformed_timestamp(serve, stamp):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD)
    body = body_of()
    headers = {**sign(body, SECRET_OLD), "webhook-timestamp": stamp}
    field, fragment = ("webhook-timestamp", "missing") if not stamp else ("webhook-timestamp", "Unix timestamp")
    assert_refused(server.post(data=body, headers=headers), 401, field, fragment, server)


def test_tolerance_is_configurable(serve):
    wide = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD, SUPRHOOK_SIGNATURE_TOLERANCE="900")
    body = body_of()
    assert accepted(wide.post(data=body, headers=sign(body, SECRET_OLD, at=time.time() - 600)))
    body = body_of()
    assert accepted(wide.post(data=body, headers=sign(body, SECRET_OLD, at=time.time() + 600)))
    narrow = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD, SUPRHOOK_SIGNATURE_TOLERANCE="30")
    body = body_of()
    r = narrow.post(data=body, headers=sign(body, SECRET_OLD, at=time.time() - 60))
    assert_refused(r, 401, "webhook-timestamp", "the tolerance is 30 s", narrow)


def test_body_altered_after_signing_is_refused(serve):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD)
    payload = make_status()
    body = body_of(payload)
    headers = sign(body, SECRET_OLD)
    altered = json.dumps({**payload, "channel": "sms"}).encode()
    assert_refused(server.post(data=altered, headers=headers), 401, "webhook-signature", "body was changed", server)
    # The same JSON, re-serialized: the signature covers the raw bytes, not the parsed document.
    respaced = json.dumps(payload, indent=1).encode()
    assert json.loads(respaced) == json.loads(body)
    assert_refused(server.post(data=respaced, headers=headers), 401, "webhook-signature", "no signature", server)
    assert accepted(server.post(data=body, headers=headers))


def test_signature_is_checked_before_json(serve):
    server = serve(SUPRHOOK_SIGNING_SECRET=SECRET_OLD)
    garbage = b'{"channel": '
    assert_refused(server.post(data=garbage), 401, "webhook-signature", "missing", server)
    assert_refused(server.post(data=garbage, headers=sign(garbage, SECRET_OLD)), 400, "$", "invalid JSON", server)


def test_secrets_are_never_echoed_logged_or_printed(serve, caplog):
    caplog.set_level(logging.DEBUG)
    server = serve(SUPRHOOK_AUTH_TOKENS=TOKEN, SUPRHOOK_SIGNING_SECRET=f"{SECRET_OLD},{SECRET_NEW}")
    body = body_of()
    texts = [server.post(data=body, token=TOKEN, headers=sign(body, SECRET_OTHER)).text,
             server.post(data=body, token=TOKEN, headers=sign(body, SECRET_OLD, at=1)).text,
             server.post(data=body, token=TOKEN, headers=sign(body, SECRET_OLD)).text,
             repr(server.state), repr(server.state.guard), str(server.state.guard.verifier), caplog.text]
    for secret in (SECRET_OLD, SECRET_NEW, SECRET_OLD.removeprefix("whsec_"), SECRET_NEW.removeprefix("whsec_")):
        assert not any(secret in text for text in texts)
    assert "2 secrets" in repr(server.state.guard)


@pytest.mark.parametrize("value", ["not-a-secret!", "whsec_", "whsec_%%%%"])
def test_malformed_secret_refuses_to_start_without_printing_it(tmp_path, value):
    with pytest.raises(ConfigError, match="SUPRHOOK_SIGNING_SECRET") as info:
        create_app(stack_config(tmp_path, None, SUPRHOOK_SIGNING_SECRET=f"{SECRET_OLD},{value}"))
    assert "#2" in str(info.value) and SECRET_OLD not in str(info.value)
    if value != "whsec_":
        assert value not in str(info.value)


def test_zero_tolerance_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="SUPRHOOK_SIGNATURE_TOLERANCE"):
        create_app(stack_config(tmp_path, None, SUPRHOOK_SIGNING_SECRET=SECRET_OLD, SUPRHOOK_SIGNATURE_TOLERANCE="0"))


def test_verifier_window_edges_with_an_injected_clock():
    now = [1_700_000_000.0]
    verifier = SignatureVerifier([SECRET_OLD], 300, clock=lambda: now[0])
    body = b'{"a": 1}'
    headers = sign(body, SECRET_OLD, at=now[0] - 300)
    verifier.verify(body, headers)  # exactly at the edge: accepted
    now[0] += 1
    with pytest.raises(SignatureError, match="too old"):
        verifier.verify(body, headers)
    headers = sign(body, SECRET_OLD, at=now[0] + 300)
    verifier.verify(body, headers)
    now[0] -= 1
    with pytest.raises(SignatureError, match="too new"):
        verifier.verify(body, headers)


def test_verifier_refuses_a_body_that_is_not_utf8():
    verifier = SignatureVerifier([SECRET_OLD], 300)
    headers = sign(b"{}", SECRET_OLD)
    with pytest.raises(SignatureError, match="not UTF-8") as info:
        verifier.verify(b"\xff\xfe{}", headers)
    assert list(info.value.errors) == ["webhook-signature"]


def test_verifier_header_names_are_case_insensitive():
    verifier = SignatureVerifier([SECRET_OLD], 300)
    body = b"{}"
    verifier.verify(body, {k.title(): v for k, v in sign(body, SECRET_OLD).items()})


# --------------------------------------------------------------------------------------------------
# Source-IP allowlist


def test_allowlisted_source_is_accepted(serve):
    server = serve(SUPRHOOK_ALLOWED_IPS="192.0.2.0/24, 127.0.0.1")
    assert accepted(server.post(make_status()))
    server = serve(SUPRHOOK_ALLOWED_IPS="127.0.0.0/8")
    assert accepted(server.post(make_status()))


def test_other_source_is_forbidden_without_revealing_the_allowlist(serve):
    server = serve(SUPRHOOK_ALLOWED_IPS="10.0.0.0/8,2001:db8::/32")
    r = server.post(make_status())
    assert_refused(r, 403, "$", "source address 127.0.0.1 is not allowed", server)
    assert "10.0.0" not in r.text and "2001:db8" not in r.text


def test_allowlist_is_checked_before_auth_and_before_the_body(serve):
    server = serve(SUPRHOOK_ALLOWED_IPS="10.0.0.0/8", SUPRHOOK_AUTH_TOKENS=TOKEN, SUPRHOOK_SIGNING_SECRET=SECRET_OLD,
                   SUPRHOOK_MAX_BODY_BYTES="100")
    assert_refused(server.post(make_status()), 403, "$", "not allowed", server)  # not 401
    assert_refused(server.post(make_status(padding="x" * 500), token=TOKEN), 403, "$", "not allowed", server)  # not 413
    assert_refused(server.post(data=b"x", headers={"Content-Type": "text/plain"}), 403, "$", "not allowed", server)


def test_ipv6_source_over_a_real_ipv6_socket(tmp_path):
    def post_over_v6(allowed: str) -> tuple[int, int]:
        app = create_app(stack_config(tmp_path / allowed.replace(":", "_").replace("/", "_"), None,
                                      SUPRHOOK_ALLOWED_IPS=allowed), registry=noop_registry())
        server = make_server("::1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            import requests

            r = requests.post(f"http://[::1]:{server.server_port}/webhooks/suprsend", json=make_status(), timeout=10)
            return r.status_code, queue_depth(app.extensions["suprhook"].settings.broker_url)
        finally:
            server.shutdown()

    assert post_over_v6("::1") == (202, 1)
    assert post_over_v6("::/127") == (202, 1)  # CIDR
    assert post_over_v6("2001:db8::/32,127.0.0.1") == (403, 0)


def test_forwarded_for_is_ignored_without_trusted_proxies(serve):
    server = serve(SUPRHOOK_ALLOWED_IPS="198.51.100.0/24")
    r = server.post(make_status(), headers={"X-Forwarded-For": "198.51.100.7"})
    assert_refused(r, 403, "$", "127.0.0.1 is not allowed", server)
    server = serve(SUPRHOOK_ALLOWED_IPS="127.0.0.1")
    assert accepted(server.post(make_status(), headers={"X-Forwarded-For": "203.0.113.9"}))


def test_one_trusted_proxy(serve):
    server = serve(SUPRHOOK_ALLOWED_IPS="198.51.100.0/24,2001:db8::/32", SUPRHOOK_TRUSTED_PROXIES="1")
    assert accepted(server.post(make_status(), headers={"X-Forwarded-For": "198.51.100.7"}))
    assert accepted(server.post(make_status(), headers={"X-Forwarded-For": "2001:db8::5"}))
    # The client put an allowed address first; our proxy appended the real one.
    r = server.post(make_status(), headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
    assert_refused(r, 403, "$", "203.0.113.9 is not allowed", server, before=2)
    # The peer (127.0.0.1) is the proxy, never the client: no header means no known client.
    r = server.post(make_status())
    assert_refused(r, 403, "$", "cannot determine the client address", server, before=2)
    r = server.post(make_status(), headers={"X-Forwarded-For": "unknown"})
    assert_refused(r, 403, "$", "cannot determine the client address", server, before=2)


def test_two_trusted_proxies(serve):
    server = serve(SUPRHOOK_ALLOWED_IPS="198.51.100.0/24", SUPRHOOK_TRUSTED_PROXIES="2")
    assert accepted(server.post(make_status(), headers={"X-Forwarded-For": "198.51.100.7, 10.0.0.2"}))
    r = server.post(make_status(), headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9, 10.0.0.2"})
    assert_refused(r, 403, "$", "203.0.113.9 is not allowed", server, before=1)
    # Only one hop recorded: the outer proxy was bypassed, and the one entry is not trusted as the client.
    r = server.post(make_status(), headers={"X-Forwarded-For": "198.51.100.7"})
    assert_refused(r, 403, "$", "cannot determine", server, before=1)


@pytest.mark.parametrize("remote, xff, proxies, expected", [
    ("192.0.2.1", [], 0, "192.0.2.1"),
    ("192.0.2.1", ["198.51.100.7"], 0, "192.0.2.1"),
    ("::ffff:192.0.2.1", [], 0, "192.0.2.1"),  # dual-stack socket
    ("2001:db8::1", [], 0, "2001:db8::1"),
    ("10.0.0.1", ["198.51.100.7"], 1, "198.51.100.7"),
    ("10.0.0.1", ["1.1.1.1, 198.51.100.7"], 1, "198.51.100.7"),
    ("10.0.0.1", ["1.1.1.1", "198.51.100.7"], 1, "198.51.100.7"),  # two headers = one list
    ("10.0.0.1", ["1.1.1.1, 198.51.100.7", "10.0.0.9"], 2, "198.51.100.7"),
    ("10.0.0.1", ["198.51.100.7:4711"], 1, "198.51.100.7"),
    ("10.0.0.1", ["[2001:db8::7]:443"], 1, "2001:db8::7"),
    ("10.0.0.1", [" 2001:db8::7 "], 1, "2001:db8::7"),
    ("10.0.0.1", [], 1, None),
    ("10.0.0.1", ["198.51.100.7"], 2, None),
    ("10.0.0.1", ["_hidden"], 1, None),
    (None, [], 0, None),
])
def test_client_ip_resolution(remote, xff, proxies, expected):
    ip = client_ip(remote, xff, proxies)
    assert (str(ip) if ip is not None else None) == expected


def test_allowlist_unit():
    allow = IPAllowlist(["10.0.0.0/8", "2001:db8::/32", "192.0.2.5", "10.1.2.3/16"])  # host bits tolerated
    assert allow.allows(parse_ip("10.200.0.1")) and allow.allows(parse_ip("2001:db8:1::1"))
    assert allow.allows(parse_ip("192.0.2.5")) and not allow.allows(parse_ip("192.0.2.6"))
    assert not allow.allows(None) and not allow.allows(parse_ip("::ffff:11.0.0.1"))
    assert allow.allows(parse_ip("::ffff:10.0.0.1"))
    assert "10.0.0.0" not in repr(allow)


def test_invalid_allowlist_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="SUPRHOOK_ALLOWED_IPS: 'example.com'"):
        create_app(stack_config(tmp_path, None, SUPRHOOK_ALLOWED_IPS="10.0.0.0/8,example.com"))


# --------------------------------------------------------------------------------------------------
# Rate limit


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_authenticated_traffic_from_one_source_is_never_throttled_on_defaults(serve):
    """SuprSend sends every webhook from a few addresses (behind a proxy: one). Default settings."""
    from concurrent.futures import ThreadPoolExecutor

    server = serve(SUPRHOOK_AUTH_TOKENS=TOKEN)  # only the token: every limit at its default
    assert server.state.guard.limiter is None  # the endpoint ceiling is off by default

    def send(n: int) -> list[int]:  # one keep-alive connection each, as fast as it goes
        session = requests.Session()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        return [session.post(server.url + "/webhooks/suprsend", data=json.dumps(make_status()), headers=headers,
                             timeout=30).status_code for _ in range(n)]

    with ThreadPoolExecutor(8) as pool:  # 2,000 events over 8 connections from one address
        codes = [code for codes in pool.map(send, [250] * 8) for code in codes]
    assert codes.count(429) == 0 and codes.count(202) == 2000, sorted(set(codes))
    assert server.depth() == 2000


def test_refusals_past_the_burst_become_429_with_retry_after(serve):
    server = serve(SUPRHOOK_AUTH_TOKENS=TOKEN, SUPRHOOK_REFUSAL_LIMIT="1", SUPRHOOK_REFUSAL_BURST="3")
    assert [server.post(make_status()).status_code for _ in range(3)] == [401, 401, 401]
    r = server.post(make_status(), token="wrong-token-0123456789")
    assert r.status_code == 429, r.text
    assert r.headers["Retry-After"] == "1"
    body = r.json()
    assert body["status"] == "rate_limited" and "too many refused requests" in body["error"]
    assert "Authorization: " in body["error"]  # the refusal's own reason is still told
    # ...while the same source's authenticated requests go through: only refusals are counted
    assert [server.post(make_status(), token=TOKEN).status_code for _ in range(5)] == [202] * 5
    assert server.post(data="{not json", token=TOKEN).status_code == 429  # a bad body is a refusal too
    assert server.depth() == 5


def test_refusal_limit_recovers_as_time_passes_over_http(serve):
    server = serve(SUPRHOOK_REFUSAL_LIMIT="2", SUPRHOOK_REFUSAL_BURST="2", SUPRHOOK_AUTH_TOKENS=TOKEN)
    clock = FakeClock()
    server.state.guard.refusals = TokenBucketLimiter(2, 2, clock=clock)
    assert [server.post(make_status()).status_code for _ in range(3)] == [401, 401, 429]
    clock.now += 0.49
    assert server.post(make_status()).status_code == 429
    clock.now += 0.02  # 0.51 s after the bucket ran dry: one token
    assert server.post(make_status()).status_code == 401
    assert server.post(make_status()).status_code == 429
    clock.now += 60  # a long pause refills to the burst, never beyond
    assert [server.post(make_status()).status_code for _ in range(3)] == [401, 401, 429]
    assert server.depth() == 0


def test_separate_sources_have_separate_refusal_buckets(serve):
    server = serve(SUPRHOOK_REFUSAL_LIMIT="0.1", SUPRHOOK_REFUSAL_BURST="1", SUPRHOOK_TRUSTED_PROXIES="1",
                   SUPRHOOK_AUTH_TOKENS=TOKEN)
    a, b = {"X-Forwarded-For": "198.51.100.1"}, {"X-Forwarded-For": "198.51.100.2"}
    assert server.post(make_status(), headers=a).status_code == 401
    r = server.post(make_status(), headers=a)
    assert r.status_code == 429 and r.headers["Retry-After"] == "10"
    assert server.post(make_status(), headers=b).status_code == 401
    # A spoofed leftmost entry does not buy a fresh bucket.
    assert server.post(make_status(), headers={"X-Forwarded-For": "1.2.3.4, 198.51.100.1"}).status_code == 429
    assert server.depth() == 0


def test_endpoint_ceiling_is_opt_in_and_counts_every_request(serve):
    server = serve(SUPRHOOK_RATE_LIMIT="1", SUPRHOOK_RATE_LIMIT_BURST="3")
    assert all(accepted(server.post(make_status())) for _ in range(3))
    r = server.post(make_status())
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json()["status"] == "rate_limited" and "SUPRHOOK_RATE_LIMIT" in r.json()["error"]
    assert server.depth() == 3  # nothing enqueued by the refused request


def test_limits_at_zero_are_off(serve):
    server = serve(SUPRHOOK_RATE_LIMIT="0", SUPRHOOK_RATE_LIMIT_BURST="0", SUPRHOOK_REFUSAL_LIMIT="0",
                   SUPRHOOK_REFUSAL_BURST="0", SUPRHOOK_AUTH_TOKENS=TOKEN)
    assert server.state.guard.limiter is None and server.state.guard.refusals is None
    assert [server.post(make_status()).status_code for _ in range(60)] == [401] * 60


def test_default_refusal_limit_is_in_process(serve):
    server = serve()
    limiter = server.state.guard.refusals
    assert isinstance(limiter, TokenBucketLimiter) and (limiter.rate, limiter.burst) == (1.0, 50)


def test_token_bucket_unit():
    clock = FakeClock()
    limiter = TokenBucketLimiter(2, 3, clock=clock)
    assert [limiter.hit("a").allowed for _ in range(4)] == [True, True, True, False]
    denied = limiter.hit("a")
    assert not denied.allowed and denied.retry_after == pytest.approx(0.5) and denied.retry_after_header == "1"
    clock.now += 0.5
    assert limiter.hit("a").allowed and not limiter.hit("a").allowed
    slow = TokenBucketLimiter(0.25, 1, clock=clock)
    slow.hit("x")
    assert slow.hit("x").retry_after_header == "4"
    clock.now += 3.9
    assert slow.hit("x").retry_after_header == "1"  # never 0


def test_token_bucket_is_thread_safe():
    limiter = TokenBucketLimiter(1, 100, clock=FakeClock())
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [limiter.hit("same").allowed for _ in range(50)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 100 and len(results) == 400


def test_token_bucket_forgets_refilled_sources():
    clock = FakeClock()
    limiter = TokenBucketLimiter(10, 2, clock=clock)
    for i in range(5000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}")
        clock.now += 0.01
    assert len(limiter) < 2100  # only sources seen in the last burst/rate = 0.2 s (plus sweep slack)


def test_token_bucket_with_freezegun():
    from freezegun import freeze_time

    with freeze_time("2026-01-01 00:00:00") as frozen:
        limiter = TokenBucketLimiter(1, 1, clock=lambda: time.monotonic())
        assert limiter.hit("k").allowed and not limiter.hit("k").allowed
        frozen.tick(1.0)
        assert limiter.hit("k").allowed


def test_invalid_rate_limit_settings_refuse_to_start(tmp_path):
    with pytest.raises(ConfigError, match="SUPRHOOK_RATE_LIMIT_BURST"):
        create_app(stack_config(tmp_path, None, SUPRHOOK_RATE_LIMIT="5", SUPRHOOK_RATE_LIMIT_BURST="0"))
    with pytest.raises(ConfigError, match="SUPRHOOK_REFUSAL_BURST"):
        create_app(stack_config(tmp_path, None, SUPRHOOK_REFUSAL_BURST="0"))
    with pytest.raises(ConfigError, match="SUPRHOOK_RATE_LIMIT_URL"):
        create_app(stack_config(tmp_path, None, SUPRHOOK_RATE_LIMIT_URL="http://127.0.0.1:6379"))


# --- Redis-backed: the shared server on 127.0.0.1:6379, a unique key prefix per test -------------


@pytest.fixture
def redis_prefix():
    prefix = f"suprhook-test:ratelimit:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


def test_redis_limiter_is_shared_by_two_instances(redis_prefix):
    clock = FakeClock(1_700_000_000.0)
    one = RedisTokenBucketLimiter(REDIS_URL, 2, 3, prefix=redis_prefix, clock=clock)
    two = RedisTokenBucketLimiter(redis.Redis.from_url(REDIS_URL), 2, 3, prefix=redis_prefix, clock=clock)
    assert [one.hit("203.0.113.9").allowed, two.hit("203.0.113.9").allowed, one.hit("203.0.113.9").allowed] \
        == [True, True, True]
    denied = two.hit("203.0.113.9")
    assert not denied.allowed and denied.retry_after == pytest.approx(0.5) and denied.retry_after_header == "1"
    assert one.hit("198.51.100.1").allowed  # another source, another bucket
    clock.now += 0.5
    assert one.hit("203.0.113.9").allowed and not two.hit("203.0.113.9").allowed
    ttl = redis.Redis.from_url(REDIS_URL).pttl(redis_prefix + "203.0.113.9")
    assert 0 < ttl <= 2500  # gone once the bucket would be full again (3 / 2 s, plus 1 s)


def test_redis_limiter_uses_the_server_clock(redis_prefix):
    one = RedisTokenBucketLimiter(REDIS_URL, 5, 1, prefix=redis_prefix)
    two = RedisTokenBucketLimiter(REDIS_URL, 5, 1, prefix=redis_prefix)
    assert one.hit("k").allowed
    assert not two.hit("k").allowed
    time.sleep(0.25)
    assert two.hit("k").allowed and not one.hit("k").allowed


def test_redis_limiter_shared_by_two_receivers_over_http(serve, redis_prefix):
    source = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"
    config = dict(SUPRHOOK_REFUSAL_LIMIT="0.1", SUPRHOOK_REFUSAL_BURST="2", SUPRHOOK_RATE_LIMIT_URL=REDIS_URL,
                  SUPRHOOK_TRUSTED_PROXIES="1", SUPRHOOK_AUTH_TOKENS=TOKEN)
    first, second = serve(**config), serve(**config)
    for server in (first, second):  # a test prefix instead of the default, so the shared Redis stays clean
        server.state.guard.refusals.prefix = redis_prefix
    headers = {"X-Forwarded-For": source}
    assert first.post(make_status(), headers=headers).status_code == 401
    assert second.post(make_status(), headers=headers).status_code == 401
    r = first.post(make_status(), headers=headers)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert second.post(make_status(), headers=headers).status_code == 429
    assert accepted(second.post(make_status(), headers=headers, token=TOKEN))
    assert first.depth() == 0 and second.depth() == 1


def test_redis_down_falls_back_to_an_in_process_limit(caplog):
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limiter = RedisTokenBucketLimiter(f"redis://127.0.0.1:{port}/0", 1, 2, prefix="unused:")
    started = time.monotonic()
    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]
    assert time.monotonic() - started < 2.0  # one failed connect, then the fallback without retrying Redis
    assert "Redis unavailable" in caplog.text


def test_guard_repr_names_no_secret_or_network():
    settings = Settings.load({"SUPRHOOK_SIGNING_SECRET": SECRET_OLD, "SUPRHOOK_ALLOWED_IPS": "10.9.8.0/24"},
                             environ={})
    text = repr(RequestGuard(settings))
    assert SECRET_OLD.removeprefix("whsec_") not in text and "10.9.8" not in text
    assert "1 secrets" in text and "1 networks" in text


def test_a_forbidden_source_does_not_spend_tokens():
    settings = Settings.load({"SUPRHOOK_ALLOWED_IPS": "198.51.100.0/24", "SUPRHOOK_TRUSTED_PROXIES": "1"}, environ={})
    limiter = TokenBucketLimiter(1, 1, clock=FakeClock())
    guard = RequestGuard(settings, limiter=limiter)
    assert guard.admit(guard.client_ip("10.0.0.1", ["203.0.113.9"])).code == 403
    assert len(limiter) == 0
    allowed = guard.client_ip("10.0.0.1", ["198.51.100.7"])
    assert guard.admit(allowed) is None and guard.admit(allowed).code == 429
