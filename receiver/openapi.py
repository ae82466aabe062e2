"""The receiver's OpenAPI 3.1 document, generated with apispec from the marshmallow schemas.

`openapi_document()` builds it once (cached) and the blueprint serves it at ``GET /openapi.json``.
The request body is `schemas.EnvelopeSchema` and its nested schemas, converted by apispec's
`MarshmallowPlugin`; the custom fields (`MillisTimestamp`, `Identifier`, `JSONObject`, `TextBody`,
the vendors' `Text`) are mapped to the JSON types they accept. Every schema with ``unknown = INCLUDE``
allows additional properties, as the receiver keeps fields SuprSend adds. The responses are written
out by hand from `receiver.blueprint` and `receiver.security`: one schema per body shape. Each named
endpoint (`receiver.endpoints`) is a path of its own, with what it accepts and its 422.
"""
from __future__ import annotations

import copy
import functools
import json
from typing import Any, Iterable

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from ..schemas import EnvelopeSchema
from ..schemas.fields import MAX_MILLIS, Identifier, JSONObject, MillisTimestamp
from ..schemas.inbound_message import TextBody
from ..schemas.model import INBOUND_MESSAGE, STATUS
from ..schemas.vendors.base import Text

from .body import MAX_DEPTH
from .endpoints import Endpoint
from .security import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

OPENAPI_VERSION = "3.1.0"
WEBHOOK_PATH = "/webhooks/suprsend"
EVENT_ID_PATTERN = "^evt_[0-9a-f]{32}$"
# What the document says of each named endpoint: (name, path, event types or None, channels or None).
EndpointKey = tuple[tuple[str, str, "tuple[str, ...] | None", "tuple[str, ...] | None"], ...]
# Digit strings of up to 14 digits are always within MillisTimestamp's range (<= 253402300799999).
_MILLIS_STRING_PATTERN = "^[0-9]{1,14}$"


# --------------------------------------------------------------------------------------------------
# Custom marshmallow fields -> JSON Schema


def _custom_fields(self: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """apispec attribute function: what `map_to_openapi_type` cannot say for the custom fields.

    Runs after the built-in attribute functions (so after `field2nullable`, which already appended
    "null" to a list-valued ``type``). JSON Schema applies ``minimum``/``pattern``/``required`` only to
    values of their own type, so one schema with a list of types describes each field exactly.
    """
    if isinstance(field, MillisTimestamp):
        return {"minimum": 0, "maximum": MAX_MILLIS, "pattern": _MILLIS_STRING_PATTERN,
                "description": "Epoch milliseconds: a number from 0 to 253402300799999 (year 9999), "
                               "or the same as a string of digits."}
    if isinstance(field, TextBody):
        return {"properties": {"body": {"type": "string"}}, "required": ["body"],
                "description": 'The text: a string (SMS style) or {"body": "..."} (WhatsApp style).'}
    if isinstance(field, JSONObject):
        return {"contentMediaType": "application/json", "contentSchema": {"type": "object"},
                "description": "A JSON object, or a string holding one JSON-encoded object."}
    if isinstance(field, Identifier):
        return {"description": "A string or an integer id; loaded as a string."}
    if isinstance(field, fields.Raw) and field.name == "version" and isinstance(field.parent, EnvelopeSchema):
        # `version` is a Raw field whose validator accepts a string or a number (not a boolean).
        return {"type": ["string", "number", "null"], "description": "The payload version (string or number)."}
    return {}


def _spec(endpoints: EndpointKey = ()) -> APISpec:
    ma_plugin = MarshmallowPlugin()
    spec = APISpec(
        title="suprhook",
        version="0.1.0",
        openapi_version=OPENAPI_VERSION,
        plugins=[ma_plugin],
        info={"description": "Receives SuprSend outbound webhooks, validates them and dispatches each event "
                             "to its handlers as Celery tasks. No client input produces a 500, and nothing "
                             "is enqueued for any 4xx."},
    )
    ma_plugin.map_to_openapi_type(MillisTimestamp, ["number", "string"], None)
    ma_plugin.map_to_openapi_type(TextBody, ["string", "object"], None)
    ma_plugin.map_to_openapi_type(JSONObject, ["object", "string"], None)
    ma_plugin.map_to_openapi_type(Identifier, ["string", "integer"], None)
    ma_plugin.map_to_openapi_type(Text, ["string", "number", "boolean"], None)
    ma_plugin.converter.add_attribute_function(_custom_fields)  # type: ignore[union-attr]  # set by APISpec()

    _security_schemes(spec)
    for name, schema in _response_schemas().items():
        spec.components.schema(name, schema)
    spec.components.schema("Envelope", schema=EnvelopeSchema)

    spec.path(path=WEBHOOK_PATH, operations={"post": _webhook_operation()})
    for name, path, event_types, channels in endpoints:
        spec.path(path=path, operations={"post": _endpoint_operation(name, event_types, channels)})
    spec.path(path="/healthz", operations={"get": {
        "operationId": "healthz",
        "summary": "Liveness: answers while the process is alive.",
        "responses": {"200": _json("alive", "Health")},
    }})
    spec.path(path="/readyz", operations={"get": {
        "operationId": "readyz",
        "summary": "Readiness: 200 only when the broker and the dedup store are reachable (and the event store, "
                   "on the embedded broker: the only one where the receiver writes it).",
        "responses": {
            "200": _json("every check is ok", "Ready"),
            "503": _json("at least one check failed; `checks` names it", "NotReady"),
        },
    }})
    return spec


# --------------------------------------------------------------------------------------------------
# Security


def _security_schemes(spec: APISpec) -> None:
    spec.components.security_scheme("bearerToken", {
        "type": "http", "scheme": "bearer",
        "description": "A token from SUPRHOOK_AUTH_TOKENS (comma-separated, for rotation) as "
                       "`Authorization: Bearer <token>`. With SUPRHOOK_AUTH_HEADER set to another header "
                       "(a SuprSend endpoint custom header) the bare token goes in that header instead. "
                       "Missing or wrong: 401 naming the header.",
    })
    spec.components.security_scheme("standardWebhooks", {
        "type": "apiKey", "in": "header", "name": SIGNATURE_HEADER,
        "description": f"Standard Webhooks signature, checked when SUPRHOOK_SIGNING_SECRET is set: "
                       f"`{SIGNATURE_HEADER}: v1,<base64 HMAC-SHA256>` (space-separated for several) over "
                       f"`<{ID_HEADER}>.<{TIMESTAMP_HEADER}>.<raw body>`, with `{ID_HEADER}` and "
                       f"`{TIMESTAMP_HEADER}` (Unix seconds within SUPRHOOK_SIGNATURE_TOLERANCE). "
                       "Missing, stale or not matching: 401 naming the header.",
    })


# --------------------------------------------------------------------------------------------------
# Responses


def _status(value: str) -> dict[str, Any]:
    return {"type": "string", "const": value}


_EVENT_ID = {"type": "string", "pattern": EVENT_ID_PATTERN,
             "description": "Stable id of the event: a redelivery of the same webhook gets the same id."}
_ERRORS = {
    "type": "object",
    "description": 'Problems by dotted field path ("suprsend_status.status"), "$" for the body as a whole, '
                   "or by header name (token, signature, Content-Type).",
    "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
}
_CHECK = {"type": "string", "description": '"ok", or "unreachable: <error type>"'}


def _object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties,
            "required": list(properties), "additionalProperties": False}


def _response_schemas() -> dict[str, dict[str, Any]]:
    checks_ok = {"type": "object", "properties": {k: {"type": "string", "const": "ok"} for k in
                                                  ("broker", "dedup", "store")},
                 "required": ["broker", "dedup"], "additionalProperties": {"type": "string", "const": "ok"}}
    checks_any = {"type": "object", "properties": {k: _CHECK for k in ("broker", "dedup", "store")},
                  "required": ["broker", "dedup"], "additionalProperties": _CHECK}
    return {
        "Accepted": _object({"status": _status("accepted"), "event_id": _EVENT_ID},
                            "The event is durably on the broker, one task per matching handler."),
        "Duplicate": _object({"status": _status("duplicate"), "event_id": _EVENT_ID},
                             "The same event was already accepted within SUPRHOOK_DEDUP_TTL seconds."),
        "Rejected": _object({"status": _status("rejected"), "errors": _ERRORS},
                            "The request was refused; nothing was enqueued."),
        "InProgress": _object({"status": _status("in_progress"), "event_id": _EVENT_ID},
                              "The same event is being accepted by a concurrent request; retry."),
        "RateLimited": _object({"status": _status("rate_limited"), "error": {"type": "string"}},
                               "Too many requests from this source; retry after Retry-After seconds."),
        "Unavailable": _object({"status": _status("unavailable"), "event_id": _EVENT_ID, "error": {"type": "string"}},
                               "The broker (or the dedup store) could not take the event; nothing is "
                               "remembered, so the retry is accepted."),
        "Health": _object({"status": _status("ok")}, "The process is alive."),
        "Ready": _object({"status": _status("ready"), "checks": checks_ok}, "Every dependency is reachable."),
        "NotReady": _object({"status": _status("unavailable"), "checks": checks_any},
                            "At least one dependency is unreachable."),
    }


def _json(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _retry_after(description: str) -> dict[str, Any]:
    return {"Retry-After": {"description": description, "required": True,
                            "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"}}}


_REFERENCE = {"idempotency_key": "44220630-d9ae-49f2-918e-0b2f6018cecf", "supr_nid": "01GNEQZ6F4JZF1BAK9CDXYD4T4",
              "workspace_name": "staging", "workspace_uid": "lap5XXXXXXXXXXX"}
# SuprSend's documented samples ("Outbound Webhook"), trimmed.
_EXAMPLES = {
    "status": {"summary": "A WhatsApp delivery status", "value": {
        "channel": "whatsapp", "channel_value": "+15555555555", "distinct_id": "user@example.com",
        "event_type": "status", "reference": _REFERENCE,
        "suprsend_status": {"status": "delivered", "timestamp": 1672310923000},
        "template": "purchase-made", "vendor_name": "gupshup", "version": "1.0", "workflow_name": "Purchase Made",
    }},
    "inbound_message": {"summary": "A WhatsApp user reply", "value": {
        "channel": "whatsapp", "channel_value": "+15555555555", "distinct_id": "user@example.com",
        "event_type": "inbound_message", "reference": _REFERENCE,
        "suprsend_inbound_message": {
            "context": {"from": "+14444444444", "id": "gBEGkZMmKUh5AglyguZOxeyE6Xc"}, "from": "+15555555555",
            "message_type": "quoted", "source_message_id": "lap5XXXXXXXXXXX-01H08212QETNQ7J71B42V3XVKD",
            "source_message_sent_via_suprsend": True, "text": {"body": "Hi"}, "timestamp": 1683898377000,
            "to": "+14444444444", "type": "text"},
        "template": "purchase-done", "vendor_name": "gupshup", "version": "1.0", "workflow_name": "Purchase Done",
    }},
}


def _webhook_operation() -> dict[str, Any]:
    return {
        "operationId": "receiveWebhook",
        "summary": "Receive one SuprSend outbound webhook.",
        "description": "Order of checks: source-IP allowlist (403) -> rate limit (429) -> token (401) -> size, "
                       "before reading (413) -> content type (415) -> signature over the raw body (401) -> "
                       f"JSON (400: invalid, duplicate keys, NaN/Infinity, bad UTF-8, lone surrogates, more "
                       f"than {MAX_DEPTH} levels deep) -> schema (400, by dotted field path) -> enqueue.",
        "security": [{"bearerToken": []}, {"standardWebhooks": []},
                     {"bearerToken": [], "standardWebhooks": []}, {}],
        "parameters": [
            {"in": "header", "name": ID_HEADER, "required": False, "schema": {"type": "string"},
             "description": "Standard Webhooks message id (signed; checked only with SUPRHOOK_SIGNING_SECRET)."},
            {"in": "header", "name": TIMESTAMP_HEADER, "required": False, "schema": {"type": "string"},
             "description": "Standard Webhooks timestamp: Unix seconds, 1 to 12 digits (signed; checked only "
                            "with SUPRHOOK_SIGNING_SECRET)."},
        ],
        "requestBody": {
            "required": True,
            "description": "The webhook as SuprSend sends it, UTF-8 JSON (a `charset` other than UTF-8 is a 415). "
                           "`suprsend_status` is required when `event_type` is `status`, "
                           "`suprsend_inbound_message` when it is `inbound_message`.",
            "content": {"application/json": {"schema": "Envelope", "examples": _EXAMPLES}},
        },
        "responses": {
            "200": _json("Duplicate: the event was already accepted; nothing new was enqueued.", "Duplicate"),
            "202": _json("Accepted: the event is on the broker.", "Accepted"),
            "400": _json("Not a webhook: invalid JSON or schema errors, by dotted field path.", "Rejected"),
            "401": _json("Token missing or wrong, or signature missing, stale or not matching; `errors` names "
                         "the header.", "Rejected", {"WWW-Authenticate": {
                             "description": "`Bearer`, when the token header is Authorization.",
                             "schema": {"type": "string"}}}),
            "403": _json("The source address is not in SUPRHOOK_ALLOWED_IPS.", "Rejected"),
            "405": _json("Method not allowed: this path takes only POST.", "Rejected", {"Allow": {
                "description": "The allowed methods.", "required": True, "schema": {"type": "string"}}}),
            "409": _json("The same event is being accepted by a concurrent request right now.", "InProgress",
                         _retry_after("Always 1.")),
            "413": _json("The body is over SUPRHOOK_MAX_BODY_BYTES (checked before reading it).", "Rejected"),
            "415": _json("Not `application/json` in UTF-8.", "Rejected"),
            "429": _json("Rate limited (SUPRHOOK_RATE_LIMIT per source address).", "RateLimited",
                         _retry_after("Whole seconds until a request is allowed again.")),
            "503": _json("The event could not be queued (broker or dedup store down); retry.", "Unavailable",
                         _retry_after("Seconds to wait before retrying.")),
        },
    }


def _accepts(event_types: tuple[str, ...] | None, channels: tuple[str, ...] | None) -> str:
    parts = [f"{key} {' or '.join(f'`{v}`' for v in values)}" for key, values in
             (("event_type", event_types), ("channel", channels)) if values is not None]
    return " on ".join(parts) or "every event"


def _endpoint_operation(name: str, event_types: tuple[str, ...] | None,
                        channels: tuple[str, ...] | None) -> dict[str, Any]:
    """A named endpoint: the same pipeline as the default one, plus the check of what it accepts (422)."""
    operation = _webhook_operation()
    accepts = _accepts(event_types, channels)
    operation["operationId"] = f"receiveWebhook_{name}"
    operation["summary"] = f"Receive SuprSend outbound webhooks of {accepts} (endpoint `{name}`)."
    operation["description"] = (
        f"Endpoint `{name}` accepts {accepts}. Its token comes from SUPRHOOK_ENDPOINT_{name.upper()}_TOKENS and "
        f"its signing secret from SUPRHOOK_ENDPOINT_{name.upper()}_SIGNING_SECRET (or the endpoint's declaration "
        "in code), else from SUPRHOOK_AUTH_TOKENS / SUPRHOOK_SIGNING_SECRET. "
        + operation["description"].replace("-> enqueue", "-> the event type and channel this endpoint accepts (422) "
                                                         "-> enqueue"))
    operation["x-suprhook-endpoint"] = {"name": name, "event_type": None if event_types is None else list(event_types),
                                        "channel": None if channels is None else list(channels)}
    examples = {key: example for key, example in _EXAMPLES.items()
                if (event_types is None or example["value"]["event_type"] in event_types)
                and (channels is None or example["value"]["channel"] in channels)}
    content = operation["requestBody"]["content"]["application/json"]
    if examples:
        content["examples"] = examples
    else:
        del content["examples"]
    operation["responses"]["422"] = _json(
        f"A valid webhook of an event type or channel this endpoint does not accept ({accepts}): SuprSend's "
        "webhook for it points at the wrong URL. `errors` names the field (`event_type`, `channel`), this "
        "endpoint, what it accepts and the endpoint that would take it; nothing was enqueued.", "Rejected")
    return operation


# --------------------------------------------------------------------------------------------------
# The document


def _envelope_rules(doc: dict[str, Any]) -> None:
    """Add `EnvelopeSchema`'s `@validates_schema` rule: the part an event type needs must be present."""
    envelope = doc["components"]["schemas"]["Envelope"]
    rules = []
    for event_type, part, schema in ((STATUS, "suprsend_status", "Status"),
                                     (INBOUND_MESSAGE, "suprsend_inbound_message", "InboundMessage")):
        rules.append({
            "if": {"properties": {"event_type": {"const": event_type}}, "required": ["event_type"]},
            "then": {"properties": {part: {"$ref": f"#/components/schemas/{schema}"}}, "required": [part]},
        })
    envelope["allOf"] = rules


@functools.lru_cache(maxsize=None)
def _build(url_prefix: str, endpoints: EndpointKey = ()) -> dict[str, Any]:
    doc = _spec(endpoints).to_dict()
    _envelope_rules(doc)
    if url_prefix:
        doc["servers"] = [{"url": url_prefix}]
    return doc


def _key(endpoints: Iterable[Endpoint]) -> EndpointKey:
    return tuple(endpoint.doc_key() for endpoint in endpoints)


def openapi_document(url_prefix: str = "", endpoints: Iterable[Endpoint] = ()) -> dict[str, Any]:
    """The OpenAPI document (a fresh copy of the cached one); `url_prefix` where the blueprint is mounted,
    `endpoints` the named endpoints besides the default one."""
    return copy.deepcopy(_build(url_prefix.rstrip("/"), _key(endpoints)))


def openapi_json(url_prefix: str = "", endpoints: Iterable[Endpoint] = ()) -> bytes:
    """The document serialized once per prefix and set of endpoints, as ``GET /openapi.json`` serves it."""
    return _serialized(url_prefix.rstrip("/"), _key(endpoints))


@functools.lru_cache(maxsize=None)
def _serialized(url_prefix: str, endpoints: EndpointKey) -> bytes:
    return json.dumps(_build(url_prefix, endpoints), indent=1, ensure_ascii=False).encode("utf-8")
