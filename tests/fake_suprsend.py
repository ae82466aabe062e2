"""A fake SuprSend event API on a real localhost socket, for follow-up tests.

It checks the SDK's HMAC-SHA256 request signature the way SuprSend documents it (method, body MD5,
Content-Type, Date, path), records every request, skips events whose `$idempotency_key` it already
processed (as SuprSend does for 24 h), answers `{"status": "success", "message_id": ...}` (202) for
an event and 207 multi-status for bulk, JSON errors otherwise, and can be told to fail or be slow.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .fake_http import serve_json


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    signature_ok: bool
    status: int


@dataclass
class FakeSuprsend:
    workspace_key: str = "fakeWorkspaceKey0001"
    workspace_secret: str = "fake-workspace-secret-0001"
    requests: list[Recorded] = field(default_factory=list)
    processed: dict[str, dict] = field(default_factory=dict)  # idempotency key -> first event processed
    fail_next: list[int] = field(default_factory=list)  # statuses to answer, one per upcoming request
    delay: float = 0.0
    reject_event_names: set[str] = field(default_factory=set)  # bulk records with these names fail (400)

    def start(self, port: int = 0) -> "FakeSuprsend":
        self.lock = threading.Lock()
        self.server = serve_json(lambda path, headers, raw: self._handle(path, dict(headers), raw), port)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def signature_ok(self, path: str, headers: dict[str, str], raw: bytes) -> bool:
        auth = headers.get("Authorization", "")
        key, _, signature = auth.partition(":")
        md5 = hashlib.md5(raw).hexdigest() if raw else ""
        to_sign = f"POST\n{md5}\n{headers.get('Content-Type', '')}\n{headers.get('Date', '')}\n{path}"
        expected = base64.b64encode(hmac.new(self.workspace_secret.encode(), to_sign.encode(),
                                             hashlib.sha256).digest()).decode()
        return key == self.workspace_key and bool(headers.get("Date")) and hmac.compare_digest(signature, expected)

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            ok = self.signature_ok(path, headers, raw)
            body = json.loads(raw or b"null")
            status, reply = self._answer(path, body, ok)
            self.requests.append(Recorded(path, headers, body, ok, status))
            return status, reply

    def _answer(self, path: str, body: Any, signature_ok: bool) -> tuple[int, Any]:
        if self.fail_next:
            code = self.fail_next.pop(0)
            return code, {"error": {"type": "fake_failure", "message": f"planned {code}"}}
        if not signature_ok:
            return 401, {"error": {"type": "authentication_failed", "message": "invalid signature"}}
        if path == "/v2/event/":
            return 202, {"status": "success", "message_id": self._process(body)}
        if path == "/v2/bulk/event/":
            records = []
            for event in body:
                if event.get("event") in self.reject_event_names:
                    records.append({"status": "error", "status_code": 400,
                                    "error": {"type": "validation", "message": f"event {event.get('event')} refused"}})
                else:
                    records.append({"status": "success", "status_code": 202, "message_id": self._process(event)})
            return 207, {"records": records}
        return 404, {"error": {"type": "not_found", "message": path}}

    def _process(self, event: dict) -> str:
        key = event.get("$idempotency_key") or str(uuid.uuid4())
        self.processed.setdefault(key, event)  # a key seen before is skipped, not processed again
        return f"msg-{hashlib.sha1(key.encode()).hexdigest()[:12]}"

    def events_named(self, name: str) -> list[dict]:
        return [e for e in self.processed.values() if e.get("event") == name]


def main() -> None:
    """`python -m tests.fake_suprsend --port 8100`: a local stand-in for SuprSend's event API that
    prints every event it receives (for trying follow-ups against `suprhook dev`)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    fake = FakeSuprsend().start(args.port)
    print(f"fake SuprSend on {fake.url} (SUPRSEND_WORKSPACE_KEY={fake.workspace_key} "
          f"SUPRSEND_WORKSPACE_SECRET={fake.workspace_secret})", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            for r in fake.requests[seen:]:
                events = r.body if isinstance(r.body, list) else [r.body]
                for e in events:
                    print(f"{r.status} {r.path} signature={'ok' if r.signature_ok else 'BAD'} "
                          f"event={e.get('event')} distinct_id={e.get('distinct_id')} "
                          f"key={e.get('$idempotency_key')}", flush=True)
            seen = len(fake.requests)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
