"""The HTTP part of the fake servers (tests/fake_suprsend.py, tests/fake_usermaven.py): a threaded server
on 127.0.0.1 that hands every POST to one function and writes its answer as JSON."""
from __future__ import annotations

import json
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Handle = Callable[[str, Message, bytes], "tuple[int, Any]"]  # (path with query, headers, body) -> (status, reply)


def serve_json(handle: Handle, port: int = 0) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; `server.shutdown()` and `server.server_close()` stop it."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, reply = handle(self.path, self.headers, raw)
            body = json.dumps(reply).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client timed out on purpose (a slow-server test) and hung up

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the same, noticed by the server: not news

    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
