"""`create_app()`: a Flask app serving only suprhook, with JSON errors everywhere."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from handlers import Registry

from .blueprint import init_app

log = logging.getLogger("suprhook.receiver")


def create_app(config: Mapping[str, Any] | None = None, *, registry: Registry | None = None) -> Flask:
    """Build the receiver. `config` keys are the environment variable names and win over them."""
    app = Flask("suprhook")
    init_app(app, config, registry=registry)

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
