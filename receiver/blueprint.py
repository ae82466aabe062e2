"""The webhook endpoint, as a blueprint you can mount in your own Flask app via `init_app`.

Order of checks: source-IP allowlist -> rate limit -> token -> size (before reading) -> content type
-> signature (raw body) -> JSON -> schema -> enqueue. The source and signature checks live in
`receiver.security`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from handlers import EnqueueError, InFlight, Registry, Settings, on
from handlers.dedup import open_dedup
from handlers.dispatch import Dispatcher
from handlers.loader import load_handler_modules
from handlers.store import EventStore
from schemas import ValidationError, flatten_errors, load_event

from .auth import check_token
from .body import BodyError, decode_json
from .security import Rejection, RequestGuard

log = logging.getLogger("suprhook.receiver")
bp = Blueprint("suprhook", __name__)
RETRY_AFTER_SECONDS = 5


@dataclass
class ReceiverState:
    settings: Settings
    dispatcher: Dispatcher
    guard: RequestGuard


def init_app(app: Flask, config: Mapping[str, Any] | None = None, *, registry: Registry | None = None,
             url_prefix: str | None = None) -> ReceiverState:
    """Configure suprhook on `app` and mount its routes (`/webhooks/suprsend`, `/healthz`, `/readyz`)."""
    from handlers.celery_app import create_celery

    settings = Settings.load(config)
    settings.require_auth()
    settings.validate()
    load_handler_modules(settings.handler_modules)
    registry = registry if registry is not None else on
    celery = create_celery(settings, registry, role="producer")
    dispatcher = Dispatcher(settings, registry, celery, open_dedup(settings.dedup_url, settings.dedup_ttl),
                            EventStore(settings.store_url))
    guard = RequestGuard(settings)
    state = app.extensions["suprhook"] = ReceiverState(settings, dispatcher, guard)
    app.register_blueprint(bp, url_prefix=url_prefix)
    if not settings.auth_tokens and not settings.signing_secrets:
        log.warning("suprhook: neither SUPRHOOK_AUTH_TOKENS nor SUPRHOOK_SIGNING_SECRET set; "
                    "the webhook endpoint is unauthenticated")
    return state


# Headers kept with each event in the log: enough to trace a delivery, never credentials or signatures.
LOGGED_HEADERS = ("Content-Type", "User-Agent", "X-Forwarded-For", "X-Request-Id", "webhook-id", "webhook-timestamp")


def logged_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in LOGGED_HEADERS if name in headers}


def _state() -> ReceiverState:
    return current_app.extensions["suprhook"]


def reject(code: int, errors: Mapping[str, list[str]], **headers: str) -> Response:
    response = jsonify(status="rejected", errors=dict(errors))
    response.status_code = code
    response.headers.update(headers)
    return response


def refuse(rejection: Rejection, client: object = None) -> Response:
    log.info("rejected reason=%s code=%d client=%s fields=%s", rejection.reason, rejection.code, client or "-",
             ",".join(rejection.errors))
    response = jsonify(rejection.body())
    response.status_code = rejection.code
    response.headers.update(rejection.headers)
    return response


@bp.post("/webhooks/suprsend")
def receive_webhook() -> Response:
    started = time.perf_counter()
    state = _state()
    settings = state.settings
    remote_addr = request.environ.get("REMOTE_ADDR")
    client = state.guard.client_ip(remote_addr, request.headers.getlist("X-Forwarded-For"))
    refused = state.guard.admit(client, remote_addr)
    if refused:
        return refuse(refused, client)
    problem = check_token(settings, request.headers)
    if problem:
        log.info("rejected reason=auth problem=%r", problem)
        extra = {"WWW-Authenticate": "Bearer"} if settings.auth_header.lower() == "authorization" else {}
        return reject(401, {settings.auth_header: [problem]}, **extra)
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return reject(413, {"$": [f"body of {request.content_length} bytes exceeds the {limit}-byte limit"]})
    if request.mimetype != "application/json" or request.mimetype_params.get("charset", "utf-8").lower() \
            not in ("utf-8", "utf8"):
        return reject(415, {"Content-Type": [
            f"expected application/json (UTF-8), got {request.content_type or 'nothing'!r}"]})
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return reject(413, {"$": [f"body exceeds the {limit}-byte limit"]})
    refused = state.guard.verify_signature(body, request.headers)
    if refused:
        return refuse(refused)
    try:
        event = load_event(decode_json(body))
    except BodyError as exc:
        log.info("rejected reason=body problem=%s", exc)
        return reject(400, {"$": [str(exc)]})
    except ValidationError as exc:
        errors = flatten_errors(exc.messages)
        log.info("rejected reason=schema fields=%s", ",".join(sorted(errors)))
        return reject(400, errors)
    try:
        outcome = state.dispatcher.submit(event, body, logged_headers(request.headers))
    except InFlight:
        response = jsonify(status="in_progress", event_id=event.event_id)
        response.status_code, response.headers["Retry-After"] = 409, "1"
        return response
    except EnqueueError:
        response = jsonify(status="unavailable", event_id=event.event_id,
                           error="the event could not be queued; retry later")
        response.status_code, response.headers["Retry-After"] = 503, str(RETRY_AFTER_SECONDS)
        return response
    log.info("%s event_id=%s type=%s channel=%s handlers=%d ms=%.1f", outcome.status, event.event_id,
             event.event_type, event.channel, len(outcome.handlers), (time.perf_counter() - started) * 1000)
    response = jsonify(status=outcome.status, event_id=outcome.event_id)
    response.status_code = 202 if outcome.status == "accepted" else 200
    return response


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    checks = _state().dispatcher.ready()
    ok = all(v == "ok" for v in checks.values())
    response = jsonify(status="ready" if ok else "unavailable", checks=checks)
    response.status_code = 200 if ok else 503
    return response


@bp.get("/openapi.json")
def openapi_spec() -> Response:
    from .openapi import openapi_json  # apispec is imported only when the document is asked for

    prefix = request.url_rule.rule[:-len("/openapi.json")] if request.url_rule else ""
    return Response(openapi_json(prefix), mimetype="application/json")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return reject(exc.code or 400, {"$": [exc.description or exc.name]})
