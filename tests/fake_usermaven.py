"""A fake Usermaven server-to-server event API on a real localhost socket, for the sink's tests.

As Usermaven documents it: `POST /api/v1/s2s/event?token=API_KEY.SERVER_TOKEN`, a JSON object or a
JSON array of them (bulk), each with `api_key`, `event_id`, `event_type`, `user.id`, optional
`_timestamp` (UTC milliseconds) and `event_attributes`; answers `{"status": "ok"}`. A wrong token is
a 401, a malformed body a 400 (nothing of it recorded). It records every request, can fail the next
requests with given statuses, refuse given event types (400) and be slow.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .fake_http import serve_json

PATH = "/api/v1/s2s/event"


@dataclass
class Recorded:
    path: str
    token_ok: bool
    body: Any
    status: int


@dataclass
class FakeUsermaven:
    api_key: str = "fake-um-api-key-0001"
    server_token: str = "fake-um-server-token-0001"
    requests: list[Recorded] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # every event accepted, in order (repeats included)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer, one per upcoming request
    reject_event_types: set[str] = field(default_factory=set)  # a batch holding one of these is a 400
    delay: float = 0.0

    def start(self, port: int = 0) -> "FakeUsermaven":
        self.lock = threading.Lock()
        self.server = serve_json(lambda path, headers, raw: self._handle(path, headers.get("Content-Type", ""), raw),
                                 port)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def token(self) -> str:
        return f"{self.api_key}.{self.server_token}"

    def _handle(self, target: str, content_type: str, raw: bytes) -> tuple[int, Any]:
        if self.delay:
            time.sleep(self.delay)
        url = urlsplit(target)
        token_ok = parse_qs(url.query).get("token") == [self.token]
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        with self.lock:
            status, reply = self._answer(url.path, token_ok, content_type, body)
            self.requests.append(Recorded(url.path, token_ok, body, status))
            return status, reply

    def _answer(self, path: str, token_ok: bool, content_type: str, body: Any) -> tuple[int, Any]:
        if path != PATH:
            return 404, {"status": "error", "message": f"no route {path}"}
        if not token_ok:
            return 401, {"status": "error", "message": "invalid token"}
        if self.fail_next:
            code = self.fail_next.pop(0)
            return code, {"status": "error", "message": f"planned {code}"}
        items = body if isinstance(body, list) else [body]
        problems = [p for item in items for p in self.problems(item)]
        if not content_type.startswith("application/json") or problems:
            return 400, {"status": "error", "message": "; ".join(problems) or "content type"}
        self.events.extend(items)
        return 200, {"status": "ok"}

    def problems(self, event: Any) -> list[str]:
        """Why one event does not have the documented shape (empty when it does)."""
        if not isinstance(event, dict):
            return ["an event must be a JSON object"]
        out = []
        if event.get("api_key") != self.api_key:
            out.append("api_key does not match the token")
        if not isinstance(event.get("event_type"), str) or not event["event_type"]:
            out.append("event_type is required")
        elif event["event_type"] in self.reject_event_types:
            out.append(f"event_type {event['event_type']} refused")
        if not isinstance(event.get("event_id"), str):
            out.append("event_id must be a string")
        user = event.get("user")
        if not isinstance(user, dict) or not user.get("id") or "anonymous_id" not in user:
            out.append("user.id and user.anonymous_id are required")
        stamp = event.get("_timestamp")
        if stamp is not None and not (isinstance(stamp, int) and 10**12 <= stamp < 10**14):
            out.append("_timestamp must be UTC milliseconds")
        if not isinstance(event.get("event_attributes", {}), dict):
            out.append("event_attributes must be an object")
        return out

    def event_ids(self) -> list[str]:
        with self.lock:
            return [e["event_id"] for e in self.events]

    def bulk_sizes(self, ok_only: bool = True) -> list[int]:
        """How many events each bulk request carried (only the accepted ones by default)."""
        with self.lock:
            return [len(r.body) for r in self.requests if isinstance(r.body, list) and (r.status == 200 or not ok_only)]


def main() -> None:
    """`python -m tests.fake_usermaven --port 8200`: prints every event it accepts."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8200)
    fake = FakeUsermaven().start(parser.parse_args().port)
    print(f"fake Usermaven on {fake.url} (USERMAVEN_HOST={fake.url} USERMAVEN_API_KEY={fake.api_key} "
          f"USERMAVEN_SERVER_TOKEN={fake.server_token})", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            for event in fake.events[seen:]:
                print(f"{event['event_type']} user={event['user']['id']} at={event.get('_timestamp')} "
                      f"attributes={json.dumps(event.get('event_attributes'))}", flush=True)
            seen = len(fake.events)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
