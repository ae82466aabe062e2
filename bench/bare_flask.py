"""The ingest baseline: a bare Flask endpoint that only parses the JSON body and answers 202.

Served by the same gunicorn command as suprhook's receiver (`python -m bench` starts both)."""
import json

from flask import Flask, Response, jsonify, request

app = Flask("bare")


@app.post("/webhooks/suprsend")
def receive() -> Response:
    json.loads(request.get_data())
    response = jsonify(status="accepted")
    response.status_code = 202
    return response


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")
