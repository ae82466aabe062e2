"""`create_app()`: a Flask app serving only suprhook, with JSON errors everywhere."""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from ..handlers import Registry
from ..handlers.observability.jsonlog import setup_logging

from .blueprint import init_app
from .endpoints import Endpoint

log = logging.getLogger("suprhook.receiver")


def create_app(config: Mapping[str, Any] | None = None, *, registry: Registry | None = None,
               endpoints: Iterable[Endpoint] = ()) -> Flask:
    """Build the receiver. `config` keys are the environment variable names and win over them;
    `endpoints` are named endpoints declared in code (see `receiver.endpoints`), besides SUPRHOOK_ENDPOINTS."""
    app = Flask("suprhook")
    setup_logging(init_app(app, config, registry=registry, endpoints=endpoints).settings)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = jsonify(status="rejected", errors={"$": [exc.description or exc.name]})
        response.status_code = exc.code or 400
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        log.exception("unhandled error")  # the trace goes to our log, never to the client
        response = jsonify(status="error", error="internal error")
        response.status_code = 500
        return response

    return app
