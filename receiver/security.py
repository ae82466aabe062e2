"""Who may post webhooks: source-IP allowlist, refusal limit per source, Standard Webhooks signatures.

Everything here is framework-free; `receiver.ingest` (the webhook's steps) calls it in this order:

1. `RequestGuard.client_ip` — the client address (WSGI ``REMOTE_ADDR``, or the ``X-Forwarded-For``
   entry that exactly ``SUPRHOOK_TRUSTED_PROXIES`` hops from the right put there);
2. `RequestGuard.admit` — the allowlist (403), then the endpoint's ceiling when one is set (429; off
   by default: SuprSend sends all its webhooks from a few addresses and has its own rate limit);
3. `check_signature` — with the verifier of the endpoint posted to (`receiver.endpoints.Route`), over
   the raw body bytes, before any JSON parsing (401);
4. `RequestGuard.count_refusal` — for every refused request (bad token, signature or body): one
   token from the source's bucket; a source out of tokens has its refusals answered 429. Accepted
   requests take nothing, so SuprSend's authenticated traffic is never throttled by it.

Each check returns a `Rejection` (`receiver.ingest`'s one refusal type) or None; the ingest raises it
and answers with its JSON body. No secret is ever part of a message, a log line or a ``repr``.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Mapping, Protocol, Sequence, Union

from standardwebhooks import Webhook

from ..handlers import ConfigError, Settings

from .ingest import Rejection

log = logging.getLogger("suprhook.receiver.security")

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Clock = Callable[[], float]

ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
_SECRET_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")


# --------------------------------------------------------------------------------------------------
# Client address


def parse_ip(value: str) -> IPAddress | None:
    """An address from ``REMOTE_ADDR`` or one ``X-Forwarded-For`` entry, else None.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``, ``[2001:db8::1]:443``; IPv4-mapped IPv6
    addresses (``::ffff:1.2.3.4``, from dual-stack sockets) become the IPv4 address.
    """
    text = value.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_ip(remote_addr: str | None, forwarded_for: Sequence[str], trusted_proxies: int) -> IPAddress | None:
    """The client's address, or None when it cannot be determined.

    With no trusted proxies this is the socket peer (``REMOTE_ADDR``) and ``X-Forwarded-For`` is
    ignored. With ``n`` trusted proxies it is the ``n``-th ``X-Forwarded-For`` entry from the right:
    the address the outermost trusted proxy saw. Entries further left were written by the client and
    are never trusted; fewer than ``n`` entries (a proxy was bypassed) gives None.
    `forwarded_for` holds every ``X-Forwarded-For`` header in the order received.
    """
    if trusted_proxies <= 0:
        return parse_ip(remote_addr or "")
    entries = [part for header in forwarded_for for part in header.split(",")]
    if len(entries) < trusted_proxies:
        return None
    return parse_ip(entries[-trusted_proxies])


class IPAllowlist:
    """Networks (CIDRs or single addresses, IPv4 and IPv6) a client address must fall in."""

    def __init__(self, entries: Iterable[str]) -> None:
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ConfigError(f"SUPRHOOK_ALLOWED_IPS: {entry!r} is not an IP address or network") from None
        if not networks:
            raise ConfigError("SUPRHOOK_ALLOWED_IPS is empty")
        self._networks = tuple(networks)

    def allows(self, ip: IPAddress | None) -> bool:
        return ip is not None and any(ip in net for net in self._networks if net.version == ip.version)

    def __repr__(self) -> str:
        return f"IPAllowlist({len(self._networks)} networks)"


# --------------------------------------------------------------------------------------------------
# Rate limit


@dataclass(frozen=True)
class RateDecision:
    """The outcome of taking one token: allowed, or how long until a token is available."""

    allowed: bool
    retry_after: float = 0.0  # seconds

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class RateLimiter(Protocol):
    rate: float
    burst: int

    def hit(self, key: str) -> RateDecision:
        """Take one token from `key`'s bucket."""
        ...


class TokenBucketLimiter:
    """In-process, thread-safe token buckets: `rate` tokens per second, at most `burst` stored.

    A bucket that has refilled completely is the same as no bucket, so full buckets are dropped
    (amortized) and memory follows the sources active within the last ``burst / rate`` seconds.
    `clock` is injectable for tests; it must be monotonic.
    """

    _MIN_SWEEP = 1024

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError("a rate limit needs SUPRHOOK_RATE_LIMIT > 0 and SUPRHOOK_RATE_LIMIT_BURST >= 1")
        self.rate, self.burst = float(rate), int(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._next_sweep = self._MIN_SWEEP

    def hit(self, key: str) -> RateDecision:
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                decision = RateDecision(True)
            else:
                self._buckets[key] = (tokens, now)
                decision = RateDecision(False, (1.0 - tokens) / self.rate)
            if len(self._buckets) >= self._next_sweep:
                self._sweep(now)
            return decision

    def _sweep(self, now: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        self._next_sweep = max(self._MIN_SWEEP, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)

    def __repr__(self) -> str:
        return f"TokenBucketLimiter(rate={self.rate:g}/s, burst={self.burst})"


# One atomic step of a token bucket stored as a hash {tokens, ts}. Time is the Redis server's (TIME),
# so receivers on different hosts share one clock, unless ARGV[3] passes one (tests).
_REDIS_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] ~= "" then
  now = tonumber(ARGV[3])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call("HMGET", KEYS[1], "tokens", "ts")
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call("HSET", KEYS[1], "tokens", string.format("%.9f", tokens), "ts", string.format("%.6f", now))
redis.call("PEXPIRE", KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, string.format("%.6f", wait)}
"""


class RedisTokenBucketLimiter:
    """Token buckets in Redis, shared by every receiver process using the same URL and prefix.

    Each hit is one Lua script call (atomic). Keys expire once the bucket would be full again. If
    Redis is unreachable the limiter does not fail requests: it logs a warning and falls back to an
    in-process bucket, retrying Redis after `retry_redis_after` seconds.
    """

    def __init__(self, url_or_client: object, rate: float, burst: int, *, prefix: str = "suprhook:ratelimit:",
                 clock: Clock | None = None, retry_redis_after: float = 5.0) -> None:
        import redis

        self._fallback = TokenBucketLimiter(rate, burst)  # validates rate and burst
        self.rate, self.burst = float(rate), int(burst)
        if isinstance(url_or_client, str):
            url_or_client = redis.Redis.from_url(url_or_client, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._redis = url_or_client
        self._script = self._redis.register_script(_REDIS_BUCKET)  # type: ignore[attr-defined]
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.prefix = prefix
        self._clock = clock
        self._retry_after = retry_redis_after
        self._down_until = 0.0

    def hit(self, key: str) -> RateDecision:
        if self._down_until and time.monotonic() < self._down_until:
            return self._fallback.hit(key)
        now = "" if self._clock is None else f"{self._clock():.6f}"
        try:
            allowed, wait = self._script(keys=[self.prefix + key], args=[repr(self.rate), self.burst, now])
        except self._errors as exc:
            log.warning("rate limit: Redis unavailable (%s); using an in-process limit for %g s",
                        type(exc).__name__, self._retry_after)
            self._down_until = time.monotonic() + self._retry_after
            return self._fallback.hit(key)
        if self._down_until:
            log.info("rate limit: Redis is back")
            self._down_until = 0.0
        return RateDecision(bool(int(allowed)), float(wait))

    def __repr__(self) -> str:
        return f"RedisTokenBucketLimiter(rate={self.rate:g}/s, burst={self.burst}, prefix={self.prefix!r})"


def open_rate_limiter(settings: Settings, kind: str = "rate") -> RateLimiter | None:
    """A limiter `settings` ask for, `kind` "rate" (the endpoint ceiling, ``SUPRHOOK_RATE_LIMIT``) or
    "refusal" (``SUPRHOOK_REFUSAL_LIMIT``): None when its rate is 0, in Redis when a URL is set."""
    rate, burst = ((settings.rate_limit, settings.rate_limit_burst) if kind == "rate"
                   else (settings.refusal_limit, settings.refusal_burst))
    if rate <= 0:
        return None
    if burst < 1:
        name = "SUPRHOOK_RATE_LIMIT_BURST" if kind == "rate" else "SUPRHOOK_REFUSAL_BURST"
        raise ConfigError(f"{name} must be at least 1 when its limit is on, got {burst}")
    if settings.rate_limit_url:
        if not settings.rate_limit_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("SUPRHOOK_RATE_LIMIT_URL must be a redis://, rediss:// or unix:// URL")
        return RedisTokenBucketLimiter(settings.rate_limit_url, rate, burst, prefix=f"suprhook:{kind}limit:")
    return TokenBucketLimiter(rate, burst)


# --------------------------------------------------------------------------------------------------
# Signatures


class SignatureError(Exception):
    """A request whose Standard Webhooks signature does not verify; `errors` maps header -> problems."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{h}: {', '.join(ms)}" for h, ms in errors.items()))
        self.errors = errors


class SignatureVerifier:
    """Verifies Standard Webhooks signatures (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).

    The signed content and the secret format are the `standardwebhooks` package's (`Webhook.sign`).
    Its own `Webhook.verify` is not used because it fixes the timestamp window at 5 minutes against
    the wall clock and raises non-verification errors on malformed headers: here the window is
    `tolerance` seconds either side of `clock()`, and every problem is a `SignatureError`.
    Several secrets (rotation): a request is accepted when any of them produced a ``v1`` signature.
    """

    def __init__(self, secrets: Iterable[str], tolerance: int, *, clock: Clock = time.time,
                 setting: str = "SUPRHOOK_SIGNING_SECRET") -> None:
        hooks: list[Webhook] = []
        for index, secret in enumerate(secrets, 1):
            raw = secret.strip()
            raw = raw[len("whsec_"):] if raw.startswith("whsec_") else raw
            # The secret itself is never part of the message; `setting` names where it came from.
            if not _SECRET_RE.match(raw):
                raise ConfigError(f"{setting}: secret #{index} is not 'whsec_' + base64")
            try:
                hooks.append(Webhook(raw))
            except Exception:  # binascii.Error, EmptyWebhookSecretError
                raise ConfigError(f"{setting}: secret #{index} is not 'whsec_' + base64") from None
        if not hooks:
            raise ConfigError(f"{setting} is empty")
        if tolerance < 1:
            raise ConfigError("SUPRHOOK_SIGNATURE_TOLERANCE must be at least 1 second")
        self._hooks = tuple(hooks)
        self.tolerance = int(tolerance)
        self._clock = clock

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Return when `body` (the raw request bytes) is signed by one of the secrets, else raise."""
        lowered = {k.lower(): v for k, v in headers.items()}
        msg_id = lowered.get(ID_HEADER, "").strip()
        stamp = lowered.get(TIMESTAMP_HEADER, "").strip()
        signatures = lowered.get(SIGNATURE_HEADER, "").strip()
        missing = {h: ["missing: the request must be signed (Standard Webhooks)"]
                   for h, v in ((ID_HEADER, msg_id), (TIMESTAMP_HEADER, stamp), (SIGNATURE_HEADER, signatures))
                   if not v}
        if missing:
            raise SignatureError(missing)
        if not _TIMESTAMP_RE.match(stamp):
            raise SignatureError({TIMESTAMP_HEADER: ["not a Unix timestamp in whole seconds"]})
        timestamp = int(stamp)
        skew = self._clock() - timestamp
        if skew > self.tolerance:
            raise SignatureError({TIMESTAMP_HEADER: [
                f"too old: signed {int(skew)} s ago, the tolerance is {self.tolerance} s (replayed?)"]})
        if -skew > self.tolerance:
            raise SignatureError({TIMESTAMP_HEADER: [
                f"too new: signed {int(-skew)} s in the future, the tolerance is {self.tolerance} s"]})
        presented = self._presented_v1(signatures)
        if not presented:
            raise SignatureError({SIGNATURE_HEADER: ["no valid 'v1,<base64>' signature"]})
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureError({SIGNATURE_HEADER: ["cannot verify: the body is not UTF-8"]}) from None
        signed_at = datetime.fromtimestamp(timestamp, tz=timezone.utc)
        for hook in self._hooks:
            expected = base64.b64decode(hook.sign(msg_id, signed_at, text).partition(",")[2])
            if any(hmac.compare_digest(expected, candidate) for candidate in presented):
                return
        raise SignatureError({SIGNATURE_HEADER: [
            "no signature matches: the body was changed after signing, or it was signed with another secret"]})

    @staticmethod
    def _presented_v1(header: str) -> list[bytes]:
        """The decoded ``v1`` signatures of a space-separated ``webhook-signature`` header."""
        found = []
        for item in header.split():
            version, _, value = item.partition(",")
            if version != "v1" or not value:
                continue  # other schemes (v1a: asymmetric) are not configured here
            try:
                found.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
        return found

    def __repr__(self) -> str:
        return f"SignatureVerifier({len(self._hooks)} secrets, tolerance={self.tolerance} s)"


def check_signature(verifier: SignatureVerifier | None, body: bytes, headers: Mapping[str, str]) -> Rejection | None:
    """`verifier`'s verdict on a request as a `Rejection` (401), or None (verified, or no secrets configured)."""
    if verifier is None:
        return None
    try:
        verifier.verify(body, headers)
    except SignatureError as exc:
        return Rejection(401, exc.errors, "signature")
    return None


# --------------------------------------------------------------------------------------------------
# Everything together


class RequestGuard:
    """The source and signature checks for one receiver, built once from its settings."""

    def __init__(self, settings: Settings, *, limiter: RateLimiter | None = None,
                 refusals: RateLimiter | None = None, verifier: SignatureVerifier | None = None) -> None:
        self.trusted_proxies = settings.trusted_proxies
        self.allowlist = IPAllowlist(settings.allowed_ips) if settings.allowed_ips else None
        self.limiter = limiter if limiter is not None else open_rate_limiter(settings, "rate")
        self.refusals = refusals if refusals is not None else open_rate_limiter(settings, "refusal")
        if verifier is None and settings.signing_secrets:
            verifier = SignatureVerifier(settings.signing_secrets, settings.signature_tolerance)
        self.verifier = verifier

    def client_ip(self, remote_addr: str | None, forwarded_for: Sequence[str]) -> IPAddress | None:
        return client_ip(remote_addr, forwarded_for, self.trusted_proxies)

    def admit(self, ip: IPAddress | None, remote_addr: str | None = None,
              endpoint: str = "default") -> Rejection | None:
        """The allowlist for `ip` (None: not determinable from the headers), then `endpoint`'s ceiling."""
        if self.allowlist is not None and not self.allowlist.allows(ip):
            if ip is None:
                problem = "cannot determine the client address: X-Forwarded-For is missing, malformed or " \
                          "has fewer entries than the trusted proxies in front of this service"
            else:
                problem = f"source address {ip} is not allowed"
            return Rejection(403, {"$": [problem]}, "ip")
        if self.limiter is not None:
            decision = self.limiter.hit(f"endpoint:{endpoint}")
            if not decision.allowed:
                seconds = decision.retry_after_header
                return Rejection(429, {"$": [f"this endpoint takes at most {self.limiter.rate:g} requests/s "
                                             f"(SUPRHOOK_RATE_LIMIT); retry after {seconds} s"]},
                                 "rate_limited", {"Retry-After": seconds}, status="rate_limited")
        return None

    def count_refusal(self, ip: IPAddress | None, remote_addr: str | None,
                      errors: Mapping[str, Sequence[str]]) -> Rejection | None:
        """Count one refused request of this source; a 429 to answer instead once its refusals exceed
        ``SUPRHOOK_REFUSAL_LIMIT`` per second (burst ``SUPRHOOK_REFUSAL_BURST``). The 429 keeps the
        refusal's own errors, so a misconfigured sender still learns what is wrong."""
        if self.refusals is None:
            return None
        decision = self.refusals.hit(str(ip) if ip is not None else f"peer:{remote_addr or '-'}")
        if decision.allowed:
            return None
        seconds = decision.retry_after_header
        return Rejection(429, {**{k: list(v) for k, v in errors.items()}, "$limit": [
            f"too many refused requests from this source; retry after {seconds} s"]},
            "rate_limited", {"Retry-After": seconds}, status="rate_limited")

    def __repr__(self) -> str:
        return (f"RequestGuard(allowlist={self.allowlist!r}, limiter={self.limiter!r}, refusals={self.refusals!r}, "
                f"verifier={self.verifier!r}, trusted_proxies={self.trusted_proxies})")
