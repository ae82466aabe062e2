"""The webhook endpoints, as a blueprint you can mount in your own Flask app via `init_app`.

Order of checks: source-IP allowlist -> rate limit -> token -> size (before reading) -> content type
-> signature (raw body) -> JSON -> schema -> the endpoint accepts this event type/channel -> enqueue.
The source and signature checks live in `receiver.security`; named endpoints (several URLs, each
with its credentials and accepted event types/channels) in `receiver.endpoints`. Every endpoint is
served by the one view below.
"""
from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, NotFound

from ..compose import build_web
from ..handlers import EnqueueError, InFlight, Registry, Settings
from ..handlers.observability import metrics
from ..handlers.observability.jsonlog import FIELDS_ATTR, event_fields, new_correlation_id
from ..handlers.web.dispatch import Dispatcher
from ..schemas import ValidationError, flatten_errors, load_event

from .auth import check_token
from .body import BodyError, decode_json
from .endpoints import Endpoint, Route
from .security import Rejection, RequestGuard

log = logging.getLogger("suprhook.receiver")
bp = Blueprint("suprhook", __name__)
NAMED = "suprhook_endpoints"  # the per-app blueprint of the named endpoints
RETRY_AFTER_SECONDS = 5


@dataclass
class ReceiverState:
    settings: Settings
    dispatcher: Dispatcher
    guard: RequestGuard
    routes: dict[str, Route] = field(default_factory=dict)  # by Flask endpoint name; the default first

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The named endpoints (without the default one), in declaration order."""
        return tuple(r.endpoint for r in self.routes.values() if not r.is_default)


def init_app(app: Flask, config: Mapping[str, Any] | None = None, *, registry: Registry | None = None,
             url_prefix: str | None = None, endpoints: Iterable[Endpoint] = ()) -> ReceiverState:
    """Configure suprhook on `app` and mount its routes (`/webhooks/suprsend`, `/healthz`, `/readyz`, ...).

    `endpoints`: named endpoints declared in code, in addition to those of ``SUPRHOOK_ENDPOINTS``.
    """
    web = build_web(config, registry=registry, endpoints=endpoints, url_prefix=url_prefix)
    settings, routes = web.settings, web.routes
    by_view = {f"{bp.name}.receive_webhook": routes[0], **{f"{NAMED}.{r.name}": r for r in routes[1:]}}
    state = app.extensions["suprhook"] = ReceiverState(settings, web.dispatcher, web.guard, by_view)
    app.register_blueprint(bp, url_prefix=url_prefix)
    if len(routes) > 1:
        # A blueprint per app: `bp` is shared by every app in the process, and Flask forbids new rules
        # on a blueprint once it is registered.
        extra = Blueprint(NAMED, __name__)
        extra.register_error_handler(HTTPException, _http_error)
        for route in routes[1:]:
            extra.add_url_rule(route.endpoint.path, endpoint=route.name, view_func=receive_webhook, methods=["POST"])
        app.register_blueprint(extra, url_prefix=url_prefix)
    open_routes = [f"{r.name} ({r.url})" for r in routes if not r.authenticated]
    if open_routes:
        log.warning("suprhook: no token and no signing secret (SUPRHOOK_AUTH_TOKENS, SUPRHOOK_SIGNING_SECRET) for "
                    "%s: unauthenticated", ", ".join(open_routes))
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


def refuse(rejection: Rejection) -> Response:
    response = jsonify(rejection.body())
    response.status_code = rejection.code
    response.headers.update(rejection.headers)
    return response


@bp.post("/webhooks/suprsend")
def receive_webhook() -> Response:
    """Every endpoint's view: the default one, and each named one (`init_app` mounts them)."""
    started = time.perf_counter()
    metrics.RECEIVED.inc()
    cid = new_correlation_id(request.headers.get("X-Request-Id"))
    state = _state()
    settings = state.settings
    route = state.routes[request.endpoint or ""]
    remote_addr = request.environ.get("REMOTE_ADDR")
    client = state.guard.client_ip(remote_addr, request.headers.getlist("X-Forwarded-For"))
    refused = state.guard.admit(client, remote_addr, route.name)
    if refused:
        return finish(refuse(refused), started, cid, refused.reason, client=client, detail=",".join(refused.errors))
    problem = check_token(settings, request.headers, route.tokens)
    if problem:
        extra = {"WWW-Authenticate": "Bearer"} if settings.auth_header.lower() == "authorization" else {}
        return finish(reject(401, {settings.auth_header: [problem]}, **extra), started, cid, "auth", client=client,
                      detail=problem)
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return finish(reject(413, {"$": [f"body of {request.content_length} bytes exceeds the {limit}-byte limit"]}),
                      started, cid, "size", client=client)
    if request.mimetype != "application/json" or request.mimetype_params.get("charset", "utf-8").lower() \
            not in ("utf-8", "utf8"):
        return finish(reject(415, {"Content-Type": [
            f"expected application/json (UTF-8), got {request.content_type or 'nothing'!r}"]}), started, cid,
            "content_type", client=client)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return finish(reject(413, {"$": [f"body exceeds the {limit}-byte limit"]}), started, cid, "size", client=client)
    refused = route.verify_signature(body, request.headers)
    if refused:
        return finish(refuse(refused), started, cid, refused.reason, client=client, detail=",".join(refused.errors))
    try:
        event = load_event(decode_json(body))
    except BodyError as exc:
        return finish(reject(400, {"$": [str(exc)]}), started, cid, "body", client=client, detail=str(exc))
    except ValidationError as exc:
        errors = flatten_errors(exc.messages)
        return finish(reject(400, errors), started, cid, "schema", client=client, detail=",".join(sorted(errors)))
    wrong = route.refusal(event.event_type, event.channel, state.routes.values())
    if wrong:  # SuprSend's webhook for this event type/channel points at the wrong URL
        return finish(reject(422, wrong), started, cid, "wrong_endpoint", event, client=client,
                      detail=f"{route.name} accepts {route.endpoint.describe()}")
    try:
        outcome = state.dispatcher.submit(event, body, logged_headers(request.headers))
    except InFlight:
        response = jsonify(status="in_progress", event_id=event.event_id)
        response.status_code, response.headers["Retry-After"] = 409, "1"
        return finish(response, started, cid, "in_progress", event)
    except EnqueueError:
        response = jsonify(status="unavailable", event_id=event.event_id,
                           error="the event could not be queued; retry later")
        response.status_code, response.headers["Retry-After"] = 503, str(RETRY_AFTER_SECONDS)
        return finish(response, started, cid, "unavailable", event)
    response = jsonify(status=outcome.status, event_id=outcome.event_id)
    response.status_code = 202 if outcome.status == "accepted" else 200
    return finish(response, started, cid, None, event, handlers=len(outcome.handlers))


# Refusals of what a request carried (its credentials, its body): counted per source by the guard.
# Not counted: the allowlist and the endpoint ceiling (already source-wide), a wrong endpoint (a
# SuprSend setting), and our own trouble (503, 409).
COUNTED_REFUSALS = frozenset({"auth", "signature", "size", "content_type", "body", "schema"})


def finish(response: Response, started: float, cid: str, reason: str | None, event: Any = None, *,
           handlers: int | None = None, client: object = None, detail: str | None = None) -> Response:
    """Count the outcome (a `reason` means refused), time it, log its one line, return the request id."""
    if reason in COUNTED_REFUSALS:  # a source that keeps sending what we refuse gets 429s for it
        limited = _state().guard.count_refusal(client, request.environ.get("REMOTE_ADDR"),
                                               response.get_json(silent=True).get("errors") or {})
        if limited is not None:
            response, reason = refuse(limited), limited.reason
    seconds = time.perf_counter() - started
    if reason is None:
        outcome = "accepted" if response.status_code == 202 else "duplicate"
        (metrics.ACCEPTED if outcome == "accepted" else metrics.DUPLICATE).inc()
    else:
        outcome = "rejected"
        metrics.rejected[reason].inc()
    metrics.ingest_seconds[outcome].observe(seconds)
    response.headers["X-Request-Id"] = cid
    level = logging.WARNING if reason == "unavailable" else logging.INFO
    if log.isEnabledFor(level):
        fields = event_fields(event, _state().settings.log_distinct_id) if event is not None else {}
        fields["outcome"], fields["reason"], fields["code"] = outcome, reason, response.status_code
        if request.blueprint == NAMED and request.endpoint:
            fields["endpoint"] = request.endpoint.rpartition(".")[2]
        fields["handlers"], fields["latency_ms"] = handlers, round(seconds * 1000, 2)
        if reason is not None:
            fields["client"], fields["detail"] = None if client is None else str(client), detail
        log.log(level, "webhook %s", outcome, extra={FIELDS_ATTR: fields})
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


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    """Prometheus text format; with SUPRHOOK_METRICS_TOKEN set, only for `Authorization: Bearer <token>`;
    with SUPRHOOK_METRICS=off, not served here (404)."""
    settings = _state().settings
    if not settings.metrics_enabled:
        raise NotFound()
    token = settings.metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].strip().encode(), token.encode()):
            response = reject(401, {"Authorization": ["a valid metrics token is required"]})
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi_spec() -> Response:
    from .openapi import openapi_json  # apispec is imported only when the document is asked for

    prefix = request.url_rule.rule[:-len("/openapi.json")] if request.url_rule else ""
    return Response(openapi_json(prefix, _state().endpoints), mimetype="application/json")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return reject(exc.code or 400, {"$": [exc.description or exc.name]})
