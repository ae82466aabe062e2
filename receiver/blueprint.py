"""The webhook endpoints, as a blueprint you can mount in your own Flask app via `init_app`.

This is the Flask adapter only: every endpoint is served by the one view below, which builds a
`WebhookRequest` from ``flask.request``, hands it to `receiver.ingest.Ingest.handle` and turns the
`Answer` into a response. The order of the checks (source-IP allowlist -> rate limit -> token -> size
-> content type -> signature -> JSON -> schema -> the endpoint accepts this event type/channel ->
enqueue), the metrics and the log line are `receiver.ingest`'s. The source and signature checks live
in `receiver.security`; named endpoints (several URLs, each with its credentials and accepted event
types/channels) in `receiver.endpoints`.
"""
from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, NotFound

from ..compose import build_web
from ..handlers import Registry, Settings
from ..handlers.observability import metrics
from ..handlers.web.dispatch import Dispatcher

from .endpoints import Endpoint, Route
from .ingest import Ingest, WebhookRequest
from .security import RequestGuard

log = logging.getLogger("suprhook.receiver")
bp = Blueprint("suprhook", __name__)
NAMED = "suprhook_endpoints"  # the per-app blueprint of the named endpoints


@dataclass
class ReceiverState:
    settings: Settings
    dispatcher: Dispatcher
    guard: RequestGuard
    ingest: Ingest = field(repr=False)  # the webhook's steps (receiver.ingest)
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
    state = app.extensions["suprhook"] = ReceiverState(settings, web.dispatcher, web.guard, web.ingest, by_view)
    app.register_blueprint(bp, url_prefix=url_prefix)
    if len(routes) > 1:
        # A blueprint per app: `bp` is shared by every app in the process, and Flask forbids new rules
        # on a blueprint once it is registered.
        extra = Blueprint(NAMED, __name__)
        extra.register_error_handler(HTTPException, _http_error)
        for route in routes[1:]:
            extra.add_url_rule(route.endpoint.path, endpoint=route.name, view_func=receive_webhook, methods=["POST"])
        app.register_blueprint(extra, url_prefix=url_prefix)
    if web.console is not None:  # SUPRHOOK_CONSOLE_TOKEN: the event console at <url_prefix>/console/
        from .console import mount as mount_console

        mount_console(app, web, url_prefix)
    open_routes = [f"{r.name} ({r.url})" for r in routes if not r.authenticated]
    if open_routes:
        log.warning("suprhook: no token and no signing secret (SUPRHOOK_AUTH_TOKENS, SUPRHOOK_SIGNING_SECRET) for "
                    "%s: unauthenticated", ", ".join(open_routes))
    return state


def _state() -> ReceiverState:
    return current_app.extensions["suprhook"]


def respond(code: int, body: Mapping[str, object], headers: Mapping[str, str]) -> Response:
    response = jsonify(body)
    response.status_code = code
    response.headers.update(headers)
    return response


def reject(code: int, errors: Mapping[str, list[str]], **headers: str) -> Response:
    """A refusal outside the webhook view (/metrics, HTTP errors), in the webhook refusals' shape."""
    return respond(code, {"status": "rejected", "errors": dict(errors)}, headers)


def webhook_request() -> WebhookRequest:
    """``flask.request`` as `receiver.ingest` sees it; the body is read only when the steps get there."""
    return WebhookRequest(headers=request.headers, read=lambda n: request.stream.read(n),
                          remote_addr=request.environ.get("REMOTE_ADDR"),
                          forwarded_for=tuple(request.headers.getlist("X-Forwarded-For")),
                          content_length=request.content_length, content_type=request.content_type,
                          mimetype=request.mimetype, charset=request.mimetype_params.get("charset"))


@bp.post("/webhooks/suprsend")
def receive_webhook() -> Response:
    """Every endpoint's view: the default one, and each named one (`init_app` mounts them)."""
    state = _state()
    answer = state.ingest.handle(webhook_request(), state.routes[request.endpoint or ""])
    return respond(answer.code, answer.body, answer.headers)


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
