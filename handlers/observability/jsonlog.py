"""Structured logs: one line per webhook outcome and per handler run, JSON in production, text in `suprhook dev`.

Every line of the `suprhook` loggers (the handlers' injected `suprhook.handler.<name>` loggers too)
carries the request's correlation id: the receiver takes it from `X-Request-Id` (or makes one),
returns it in the response, and puts it in the task message; the worker binds it for the run.

Fields a line may carry: ts, level, logger, msg, pid, correlation_id, event_id, supr_nid,
distinct_id, channel, type, status, outcome, reason, code, endpoint (a named receiver endpoint,
`receiver.endpoints`), handler, attempt, handlers, latency_ms, error, exc. `distinct_id` is the
user's id (often an email or a phone number), so it is written as `SUPRHOOK_LOG_DISTINCT_ID` says:

- `hash` (default): `sha256:` and the first 16 hex digits of SHA-256 of the id. Unkeyed on purpose:
  anyone can compute it from a known id (`python -m suprhook.handlers.observability.jsonlog user@example.com`),
  so you can find one user's lines, and the lines of one user correlate; it hides ids from casual reading, but
  it is pseudonymisation, not anonymity (a guessable id can be confirmed);
- `mask`: `u***@example.com` for emails, else the first and last two characters (`+9***10`);
- `plain`: as received.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any, Mapping

from ..errors import ConfigError

FIELDS_ATTR = "suprhook_fields"  # the LogRecord attribute our formatters merge into the line
DISTINCT_ID_MODES = ("plain", "hash", "mask")
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

correlation_id: ContextVar[str | None] = ContextVar("suprhook_correlation_id", default=None)
_bound: ContextVar[Mapping[str, Any] | None] = ContextVar("suprhook_log_context", default=None)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


# --------------------------------------------------------------------------------------------------
# Correlation


def new_correlation_id(incoming: str | None = None) -> str:
    """Bind the request's correlation id: `incoming` (an `X-Request-Id`) if it is a sane token, else a new one."""
    cid = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    correlation_id.set(cid)
    return cid


def bind_run(cid: str | None, event_id: str | None, handler: str) -> None:
    """In the worker, for one handler run: every `suprhook` line until the next run carries these."""
    correlation_id.set(cid)
    _bound.set({"event_id": event_id, "handler": handler})


# --------------------------------------------------------------------------------------------------
# distinct_id


def mask_distinct_id(value: Any, mode: str = "hash") -> str | None:
    """`value` as SUPRHOOK_LOG_DISTINCT_ID `mode` says to write it (see the module docstring)."""
    if value is None or value == "":
        return None
    text = str(value)
    if mode == "plain":
        return text
    if mode == "mask":
        local, at, domain = text.rpartition("@")
        if at and local:
            return f"{local[:1]}***@{domain}"
        return f"{text[:2]}***{text[-2:]}" if len(text) > 6 else "***"
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def event_fields(event: Any, mode: str = "hash") -> dict[str, Any]:
    """The fields of a line about `event` (a `schemas.Event`): the line's one dict, to add its own to.
    `mode` is SUPRHOOK_LOG_DISTINCT_ID (the caller's settings.log_distinct_id)."""
    return {"event_id": event.event_id, "supr_nid": event.reference.supr_nid,
            "distinct_id": mask_distinct_id(event.distinct_id, mode), "channel": event.channel,
            "type": event.event_type, "status": event.status}


# --------------------------------------------------------------------------------------------------
# Formatters


_encode = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode  # built once, not per line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, pid, correlation_id, the bound run context,
    the line's own fields (None values left out), exc (a traceback, when there is one)."""

    _second: tuple[int, str] = (-1, "")  # the last second formatted, per formatter

    def _timestamp(self, record: logging.LogRecord) -> str:
        second, text = self._second
        if int(record.created) != second:  # formatted once per second, not per line
            second = int(record.created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": self._timestamp(record), "level": record.levelname.lower(), "logger": record.name,
                               "msg": record.getMessage(), "pid": record.process}
        cid = correlation_id.get()
        if cid:
            out["correlation_id"] = cid
        bound = _bound.get()
        if bound:
            out.update(bound)
        fields = getattr(record, FIELDS_ATTR, None)
        if fields:
            for key, value in fields.items():
                if value is not None:
                    out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _encode(out)


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if not text or " " in text or '"' in text else text


class TextFormatter(logging.Formatter):
    """For people (`suprhook dev`): `12:00:01 INFO  suprhook.receiver webhook accepted event_id=… cid=…`."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [time.strftime("%H:%M:%S", time.localtime(record.created)), f"{record.levelname:<5}", record.name,
                 record.getMessage()]
        bound = _bound.get()
        fields = getattr(record, FIELDS_ATTR, None)
        if bound and fields:
            fields = {**bound, **fields}
        for k, v in (fields or bound or {}).items():
            if v is not None:
                parts.append(f"{k}={_text_value(v)}")
        cid = correlation_id.get()
        if cid:
            parts.append(f"cid={cid}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


# --------------------------------------------------------------------------------------------------
# Setup


def setup_logging(settings: Any) -> None:
    """Configure the `suprhook` logger, once per process (later calls only check the settings).

    When the application has configured logging already (the root logger has handlers: your own
    `logging.config`, gunicorn's `--log-config`, a test runner), suprhook's lines propagate to it
    and only `distinct_id` masking applies (use `JsonFormatter` in your config for our layout).
    Otherwise suprhook writes its own lines to stderr, in `SUPRHOOK_LOG_FORMAT`, at `SUPRHOOK_LOG_LEVEL`.
    """
    for key, value, allowed in (("SUPRHOOK_LOG_FORMAT", settings.log_format, LOG_FORMATS),
                                ("SUPRHOOK_LOG_DISTINCT_ID", settings.log_distinct_id, DISTINCT_ID_MODES),
                                ("SUPRHOOK_LOG_LEVEL", settings.log_level, LOG_LEVELS)):
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    logger = logging.getLogger("suprhook")
    if logging.getLogger().handlers or logger.handlers:  # the application's logging, or ours from a first call
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(settings.log_level)
    logger.propagate = False


if __name__ == "__main__":  # `python -m suprhook.handlers.observability.jsonlog ID…`: the logs' names for these ids
    for arg in sys.argv[1:]:
        print(mask_distinct_id(arg, "hash"), arg)
