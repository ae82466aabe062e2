"""Broker down -> 503 with Retry-After within 2 s, nothing remembered; back up -> the same payload is accepted.

Uses a private redis-server the test starts and stops (the shared one is left alone), and a
"blackhole" socket that accepts connections but never answers (a hung broker).
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pytest
import redis

from suprhook.handlers import Registry
from suprhook.receiver import create_app

from .conftest import make_status, stack_config, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self, port: int, workdir) -> None:
        self.port, self.workdir, self.proc = port, workdir, None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is required for this test (apt-get install redis-server)"
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        assert wait_until(lambda: _pings(client), 10), "private redis-server did not start"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


def _queue_len(port: int, queue: str) -> int:
    return redis.Redis(port=port).llen(queue)


def noop_registry() -> Registry:
    registry = Registry()
    registry(event_type="status", name="noop")(lambda event: None)
    return registry


@pytest.mark.parametrize("dedup", ["sqlite", "same-redis"])
def test_broker_down_then_recovered(tmp_path, private_redis, dedup):
    """Two-phase (dedup elsewhere) and atomic (dedup in the broker's Redis): a 503 remembers nothing."""
    registry = noop_registry()
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    config = stack_config(tmp_path, url, **({"SUPRHOOK_DEDUP_URL": url} if dedup == "same-redis" else {}))
    app = create_app(config, registry=registry)
    assert (app.extensions["suprhook"].dispatcher.fastpath is not None) == (dedup == "same-redis")
    client = app.test_client()
    payload = make_status()

    private_redis.stop()
    started = time.monotonic()
    r = client.post("/webhooks/suprsend", json=payload)
    elapsed = time.monotonic() - started
    assert r.status_code == 503 and r.json["status"] == "unavailable", r.json
    assert int(r.headers["Retry-After"]) > 0
    assert elapsed < 2.0, f"503 took {elapsed:.2f} s"
    assert client.get("/readyz").status_code == 503

    private_redis.start()
    r2 = client.post("/webhooks/suprsend", json=payload)  # the sender's retry is not a "duplicate"
    assert r2.status_code == 202, r2.json
    assert r2.json["event_id"] == r.json["event_id"]
    assert _queue_len(private_redis.port, config["SUPRHOOK_QUEUE"]) == 1
    assert client.post("/webhooks/suprsend", json=payload).status_code == 200  # now it is one


@pytest.mark.parametrize("scheme", ["redis", "redis-atomic", "amqp"])
def test_hung_broker_is_bounded(tmp_path, scheme):
    """A broker that accepts the connection but never answers must not hold the request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0" if scheme.startswith("redis") else f"amqp://guest:guest@127.0.0.1:{port}//"
    extra = {"SUPRHOOK_DEDUP_URL": url} if scheme == "redis-atomic" else {}  # the one-round-trip path
    try:
        client = create_app(stack_config(tmp_path, url, **extra), registry=noop_registry()).test_client()
        started = time.monotonic()
        r = client.post("/webhooks/suprsend", json=make_status())
        elapsed = time.monotonic() - started
        assert r.status_code == 503 and "Retry-After" in r.headers
        assert elapsed < 2.0, f"503 took {elapsed:.2f} s"
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()
