"""Follow-up events into SuprSend from a handler, on the official SDK (which signs each request).

A handler that declares `followup` gets a `Followup` bound to its event. Every call has a timeout;
transient failures (connection errors, timeouts, 5xx, 429) raise `FollowupUnavailable`, which Celery
retries with backoff; the default idempotency key is derived from the triggering event, the handler
and the call's own arguments, so a retry or a redelivered webhook never triggers a follow-up twice.
The key also carries the chain depth (`suprhook-d<depth>-<hash>`): SuprSend echoes it back as
`reference.idempotency_key` in webhooks about the notification it caused, which is how a reply to a
follow-up knows its depth, and a chain stops at SUPRHOOK_FOLLOWUP_MAX_DEPTH.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import threading
import time
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlparse

import requests
from suprsend import Event as SuprsendEvent
from suprsend import Suprsend
from suprsend.exception import InputValueError, SuprsendValidationError
from suprsend.utils import get_apparent_event_size

from ...schemas import Event

from ..errors import ConfigError, PermanentError
from ..observability import metrics
from ..settings import Settings

log = logging.getLogger("suprhook.followup")
RESERVED_PREFIXES = ("$", "ss_")
KEY_PATTERN = re.compile(r"^suprhook-d(\d+)-[0-9a-f]+$")
MAX_KEY_LENGTH = 255


class FollowupError(PermanentError):
    """A follow-up that can never succeed as given (bad name, URL, size, key, or a loop)."""


class FollowupLoopError(FollowupError):
    """The follow-up chain reached SUPRHOOK_FOLLOWUP_MAX_DEPTH."""


class FollowupUnavailable(Exception):
    """SuprSend could not be reached or answered 5xx/429: the handler's task retries with backoff."""

    def __init__(self, message: str, result: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.result = dict(result)


class TimedSuprsend(Suprsend):
    """The SDK client with a timeout and a kept-alive session on every request (the SDK sets neither)."""

    def __init__(self, *args: Any, timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout = timeout
        self._local = threading.local()

    def request(self, method: str, url: str, body: Any = None) -> requests.Response:
        headers, content_txt = self.prepare_request(method, url, body)  # the SDK signs here
        session = getattr(self._local, "session", None) or requests.Session()
        self._local.session = session
        data = content_txt.encode("utf-8") if method.upper() not in ("GET", "HEAD") else None
        response = session.request(method.upper(), url, headers=headers, data=data, timeout=self.timeout)
        if response.status_code // 100 != 2:
            # The SDK parses error bodies blindly (a proxy's HTML page, or its bulk path reading
            # `records` before checking the status): hand it the JSON error shape it expects.
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                body = {"error": {"message": f"HTTP {response.status_code}: {response.text[:200]}"}}
            body.setdefault("records", [])
            body.setdefault("error", {"message": f"HTTP {response.status_code}"})
            return JsonResponse(response.status_code, body, response.headers)
        return response


class JsonResponse(requests.Response):
    """A `requests.Response` carrying a JSON body we give it (requests has no public way to set one on a
    received response): what the SDK reads after a non-2xx answer, and what a recording client answers."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.status_code = status
        self.headers.update(headers or {})
        self.headers["Content-Type"] = "application/json"
        self.body = json.dumps(body).encode()

    @property
    def content(self) -> bytes:  # type: ignore[override]
        return self.body


def connect(settings: Settings) -> TimedSuprsend:
    """A SuprSend SDK client for the settings' workspace (the worker keeps one per process: WorkerRuntime)."""
    if not (settings.suprsend_workspace_key and settings.suprsend_workspace_secret):
        raise ConfigError("follow-ups need SUPRSEND_WORKSPACE_KEY and SUPRSEND_WORKSPACE_SECRET")
    return TimedSuprsend(settings.suprsend_workspace_key, settings.suprsend_workspace_secret,
                         base_url=settings.suprsend_base_url or None, timeout=settings.followup_timeout)


def depth_of(event: Event) -> int:
    """How many follow-ups deep this webhook is (0 unless its notification came from a follow-up)."""
    match = KEY_PATTERN.match(event.reference.idempotency_key or "")
    return int(match.group(1)) if match else 0


def _transient(status_code: int) -> bool:
    return status_code >= 500 or status_code == 429


class Followup:
    """`track_event` / `bulk` bound to the event (and handler) that triggers them."""

    def __init__(self, event: Event, handler_name: str, settings: Settings,
                 client: Suprsend | Callable[[], Suprsend] | None = None):
        """`client`: the SDK client to send with, or a callable giving it on first use (the worker passes
        its process's client); default: one made from `settings` on first use."""
        self.event, self.handler_name, self.settings = event, handler_name, settings
        self._client = client
        self.depth = depth_of(event) + 1
        # What this run sent and what SuprSend answered: the worker records it with the run's outcome.
        self.sent: list[dict[str, Any]] = []

    def _sent(self, event_name: str, key: str | None, ok: bool | None, code: Any, answer: Any) -> None:
        self.sent.append({"name": event_name, "key": key, "ok": ok,
                          "code": int(code) if isinstance(code, (int, str)) and str(code).isdigit() else None,
                          "answer": str(answer)[:500] if answer is not None else None, "at": time.time()})

    @property
    def client(self) -> Suprsend:
        if not isinstance(self._client, Suprsend):
            self._client = connect(self.settings) if self._client is None else self._client()
        return self._client

    def track_event(self, distinct_id: str, event_name: str, properties: Mapping[str, Any] | None = None, *,
                    idempotency_key: str | None = None, tenant_id: str | None = None,
                    brand_id: str | None = None, attachments: Iterable[str] = ()) -> dict[str, Any]:
        """Send one event; returns `{success, status, status_code, message}` (message: SuprSend's id)."""
        try:
            sdk_event = self._build(distinct_id, event_name, properties, idempotency_key, tenant_id, brand_id,
                                    attachments)
        except FollowupError:
            metrics.followups_failed["invalid"].inc()
            raise
        result = self.client.track_event(sdk_event)
        shaped = {k: result.get(k) for k in ("success", "status", "status_code", "message")}
        self._sent(event_name, sdk_event.idempotency_key, bool(shaped["success"]), shaped["status_code"],
                   shaped["message"])
        if not shaped["success"] and _transient(int(shaped["status_code"] or 500)):
            metrics.followups_failed["unavailable"].inc()
            raise FollowupUnavailable(f"SuprSend answered {shaped['status_code']}: {shaped['message']}", shaped)
        if not shaped["success"]:
            log.warning("follow-up rejected event=%s key=%s status=%s message=%s", event_name,
                        sdk_event.idempotency_key, shaped["status_code"], shaped["message"])
        (metrics.FOLLOWUPS_SENT if shaped["success"] else metrics.followups_failed["rejected"]).inc()
        return shaped

    def bulk(self, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Send many events (dicts with track_event's arguments); returns SuprSend's bulk summary.

        Raises FollowupUnavailable if any record failed transiently: the retry re-sends all of them,
        and the records that already succeeded are skipped by SuprSend on their idempotency keys.
        """
        instance = self.client.bulk_events.new_instance()
        built: list[tuple[str, str | None]] = []
        try:
            for spec in events:
                spec = dict(spec)
                name = spec.pop("event_name")
                sdk_event = self._build(spec.pop("distinct_id"), name, spec.pop("properties", None),
                                        spec.pop("idempotency_key", None), spec.pop("tenant_id", None),
                                        spec.pop("brand_id", None), spec.pop("attachments", ()), **spec)
                instance.append(sdk_event)
                built.append((name, sdk_event.idempotency_key))
        except FollowupError:
            metrics.followups_failed["invalid"].inc()
            raise
        response = instance.trigger()
        for name, key in built:
            self._sent(name, key, None if response.failure else True, None,
                       f"bulk: {response.success or 0} of {response.total or len(built)} accepted ({response.status})")
        metrics.FOLLOWUPS_SENT.inc(response.success or 0)
        for record in response.failed_records:
            metrics.followups_failed["unavailable" if _transient(int(record.get("code") or 500)) else "rejected"].inc()
        result = {"status": response.status, "total": response.total, "success": response.success,
                  "failure": response.failure, "failed_records": response.failed_records,
                  "warnings": response.warnings}
        if any(_transient(int(r.get("code") or 500)) for r in response.failed_records):
            raise FollowupUnavailable(f"bulk: {response.failure} of {response.total} failed transiently", result)
        return result

    # -- validation and keys -------------------------------------------------------------------
    def _build(self, distinct_id: str, event_name: str, properties: Mapping[str, Any] | None,
               idempotency_key: str | None, tenant_id: str | None, brand_id: str | None,
               attachments: Iterable[str], **unexpected: Any) -> SuprsendEvent:
        if unexpected:
            raise FollowupError(f"unknown follow-up fields: {', '.join(sorted(unexpected))}")
        if self.depth > self.settings.followup_max_depth:
            raise FollowupLoopError(
                f"follow-up {event_name!r} would be {self.depth} deep (triggered by {self.event.event_id}); "
                f"SUPRHOOK_FOLLOWUP_MAX_DEPTH is {self.settings.followup_max_depth}")
        if not isinstance(distinct_id, str) or not distinct_id.strip():
            raise FollowupError("distinct_id must be a non-empty string")
        _check_name("event name", event_name)
        properties = dict(properties or {})
        for name in properties:
            _check_name("property name", name)
        urls = [_check_attachment(url) for url in attachments]
        try:
            json.dumps(properties, allow_nan=False)
            key = self._key(idempotency_key, distinct_id, event_name, properties, tenant_id, brand_id, urls)
        except (TypeError, ValueError) as exc:
            raise FollowupError(f"properties must be plain JSON (str, number, bool, None, list, dict "
                                f"with str keys): {exc}") from None
        properties["suprhook_causation"] = {"event_id": self.event.event_id, "depth": self.depth,
                                            "handler": self.handler_name}
        sdk_event = SuprsendEvent(distinct_id, event_name, properties, idempotency_key=key,
                                  tenant_id=tenant_id, brand_id=brand_id)
        for url in urls:
            sdk_event.add_attachment(url)
        try:
            size = get_apparent_event_size(sdk_event.get_final_json(self.client)[0], False)
        except (InputValueError, SuprsendValidationError) as exc:  # the SDK's own checks (its schema, 800 KB)
            raise FollowupError(str(exc)) from None
        if size > self.settings.followup_max_bytes:
            raise FollowupError(f"event {event_name!r} is {size} bytes with its attachments; the limit is "
                                f"{self.settings.followup_max_bytes} (SUPRHOOK_FOLLOWUP_MAX_BYTES)")
        return sdk_event

    def _key(self, given: str | None, *args: Any) -> str:
        if given is not None:
            key = str(given).strip()
            if not key or len(key) > MAX_KEY_LENGTH:
                raise FollowupError(f"idempotency_key must be 1..{MAX_KEY_LENGTH} characters after trimming")
            return key
        digest = hashlib.sha256(json.dumps([self.event.event_id, self.handler_name, *args], sort_keys=True,
                                           separators=(",", ":"), ensure_ascii=False).encode())
        return f"suprhook-d{self.depth}-{digest.hexdigest()[:48]}"


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise FollowupError(f"{kind} must be a non-empty string")
    if name.strip().lower().startswith(RESERVED_PREFIXES):
        raise FollowupError(f"{kind} {name!r} starts with '$' or 'ss_', which SuprSend reserves")


def _check_attachment(url: Any) -> str:
    parsed = urlparse(str(url))
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise FollowupError(f"attachment {url!r} must be a public http(s) URL (SuprSend fetches it)")
    host = parsed.hostname
    try:
        address = ipaddress.ip_address(host)
        private = not address.is_global
    except ValueError:
        private = host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
    if private:
        raise FollowupError(f"attachment {url!r} is not publicly reachable, so SuprSend cannot fetch it")
    return str(url)
