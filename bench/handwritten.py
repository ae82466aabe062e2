"""The ingest baseline users compare us with: the receiver they would write themselves.

What a backend engineer writes in an afternoon (issue 13): a bearer-token check, a marshmallow schema for
the fields their handlers read, a Redis `SET NX EX` so a redelivery is not processed twice, and one
`apply_async` per webhook. No event log, no signature, no per-handler fan-out. Served by the same
gunicorn command as suprhook's receiver, on the same Redis (`python -m bench` starts it)."""
import hmac
import json
import os

import redis
from celery import Celery
from flask import Flask, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")
QUEUE = os.environ.get("SUPRHOOK_QUEUE", "handwritten")
TOKEN = os.environ.get("SUPRHOOK_AUTH_TOKENS", "").split(",")[0]

app = Flask("handwritten")
celery = Celery("handwritten", broker=BROKER, set_as_current=False)
celery.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
dedup = redis.Redis.from_url(BROKER)


class Reference(Schema):
    supr_nid = fields.String(required=True)
    idempotency_key = fields.String(allow_none=True)


class Webhook(Schema):
    class Meta:
        unknown = EXCLUDE

    event_type = fields.String(required=True)
    channel = fields.String(required=True)
    distinct_id = fields.String(allow_none=True)
    status = fields.String()
    reference = fields.Nested(Reference, required=True, unknown=EXCLUDE)
    suprsend_inbound_message = fields.Dict()
    vendor_response = fields.Dict()


schema = Webhook()


@app.post("/webhooks/suprsend")
def receive():
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {TOKEN}".encode()):
        return jsonify(error="unauthorized"), 401
    try:
        payload = json.loads(request.get_data())
        event = schema.load(payload)
    except (ValueError, ValidationError) as exc:
        return jsonify(error=str(exc)), 400
    key = f"{event['event_type']}:{event['reference']['supr_nid']}:{event.get('status', '')}"
    if not dedup.set(f"seen:{key}", 1, nx=True, ex=86400):
        return jsonify(status="duplicate"), 200
    celery.send_task("handwritten.handle", args=[payload], queue=QUEUE)
    return jsonify(status="accepted"), 202


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
