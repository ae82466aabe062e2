"""Shared fixtures: seed payloads, a live HTTP receiver, and real Celery worker processes."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parent.parent
BROKERS = {
    "embedded": None,  # sqla+sqlite under the test's data dir
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}


def _seed(name: str) -> dict[str, Any]:
    return json.loads((REPO / "examples" / "payloads" / name).read_text())


# Source of both: SuprSend docs, "Outbound Webhook" (https://docs.suprsend.com/docs/outbound-webhook),
# "Sample payload for Whatsapp Status" and "... Whatsapp User reply", as in
# ../shared/seeds/003_4a90e786c1c6dcae.txt (the obfuscated distinct_id replaced by user@example.com).
SEED_STATUS = _seed("whatsapp_status.json")
SEED_INBOUND = _seed("whatsapp_inbound_reply.json")


def make_status(status: str = "delivered", nid: str | None = None, ts: int = 1672310923000,
                **top: Any) -> dict[str, Any]:
    """The seed status payload for a fresh notification (unique supr_nid) unless `nid` is given."""
    payload = copy.deepcopy(SEED_STATUS)
    nid = nid or uuid.uuid4().hex
    payload["reference"].update(supr_nid=nid, idempotency_key=f"idem-{nid}")
    payload["suprsend_status"] = {"status": status, "timestamp": ts}
    payload.update(top)
    return payload


def make_inbound(text: str = "Hi", ts: int | None = None, **top: Any) -> dict[str, Any]:
    """The seed inbound reply with its own text and a unique timestamp (so a unique message)."""
    payload = copy.deepcopy(SEED_INBOUND)
    payload["suprsend_inbound_message"]["text"] = {"body": text}
    payload["suprsend_inbound_message"]["timestamp"] = ts or 1683898377000 + uuid.uuid4().int % 10**9
    payload.update(top)
    return payload


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class LiveServer:
    """The Flask app on a real socket (127.0.0.1, ephemeral port) in a background thread."""

    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.session = requests.Session()

    def post(self, payload: Any = None, *, data: bytes | str | None = None, token: str | None = None,
             headers: dict[str, str] | None = None, path: str = "/webhooks/suprsend") -> requests.Response:
        hdrs = {"Content-Type": "application/json"}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        hdrs.update(headers or {})
        body = data if data is not None else json.dumps(payload)
        return self.session.post(self.url + path, data=body, headers=hdrs, timeout=10)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # the listening socket too
        self.thread.join(timeout=10)
        self.session.close()


class Worker:
    """`celery -A celery_worker worker` in a subprocess, running tests/probe_handlers.py."""

    def __init__(self, env: dict[str, str], probe_dir: Path, concurrency: int = 2) -> None:
        self.probe_dir = probe_dir
        probe_dir.mkdir(parents=True, exist_ok=True)
        (probe_dir / "ready").unlink(missing_ok=True)
        self.log = open(probe_dir / "worker.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_worker", "worker", "--loglevel", "INFO",
             "--concurrency", str(concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
             # a node name of its own: RabbitMQ gives `celery@host`'s control queue to one connection at a
             # time (RESOURCE_LOCKED when two suites, or a stopping and a starting worker, share it)
             "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=REPO, env={**os.environ, "SUPRHOOK_HANDLERS": "tests.probe_handlers", **env,
                           "SUPRHOOK_PROBE_DIR": str(probe_dir), "PYTHONPATH": str(REPO)},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        # Wait for the worker itself (its worker_ready signal), not for a port.
        if not wait_until(lambda: (probe_dir / "ready").exists() or self.proc.poll() is not None, 60):
            self.stop()
            raise RuntimeError(f"worker not ready in 60 s:\n{self.output()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.output()}")

    def runs(self, event_id: str | None = None, handler: str | None = None) -> list[dict[str, Any]]:
        path = self.probe_dir / "runs.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        rows = [json.loads(line) for line in lines if line.strip()]
        return [r for r in rows if (event_id is None or r["event_id"] == event_id)
                and (handler is None or r["handler"] == handler)]

    def wait_runs(self, event_id: str, count: int, handler: str | None = None,
                  timeout: float = 20.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.runs(event_id, handler)) >= count, timeout)
        return self.runs(event_id, handler)

    def output(self) -> str:
        self.log.flush()
        return (self.probe_dir / "worker.log").read_text()[-4000:]

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: no warm shutdown, no acks, no cleanup."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.log.closed:
            return
        stop_group(self.proc)
        self.log.close()


def stop_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM a process started with start_new_session=True and its children; SIGKILL after `timeout`,
    and SIGKILL whatever of its group outlived it (nothing a test starts may survive the test)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # orphans still in the group (none when all went well)
    except (ProcessLookupError, PermissionError):
        pass


def stack_config(data_dir: Path, broker_url: str | None, **extra: str) -> dict[str, str]:
    """Settings for one isolated stack: own data dir, own queue (shared brokers stay clean)."""
    config = {"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(data_dir),
              "SUPRHOOK_QUEUE": f"suprhook-test-{uuid.uuid4().hex[:10]}"}
    if broker_url:
        config["CELERY_BROKER_URL"] = broker_url
    config.update(extra)
    return config


def delete_queue(celery_app: Any, queue: str) -> None:
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)


@pytest.fixture
def tmp_config(tmp_path: Path) -> dict[str, str]:
    return stack_config(tmp_path, None)


@pytest.fixture
def redis_prefix():
    """A key prefix unique to one test on the shared Redis; its keys are deleted afterwards."""
    import redis

    prefix = f"suprhook-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)


PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: Any, tmp_path: Path) -> Any:
    """An event-log URL: a SQLite file, or a throwaway schema on the local PostgreSQL (dropped after the test,
    with the pooled connections every store of this process opened on it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/events.sqlite3"
        return
    from sqlalchemy import create_engine, text

    from suprhook.handlers.stores.db import open_database

    schema = f"suprhook_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    yield url
    open_database(url).dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def start_together(target: Callable[..., None], args: list[tuple[Any, ...]]) -> list[int | None]:
    """Fork one process per `args` entry, release them at once (`target(*args, barrier)` waits on the barrier),
    and return their exit codes: for races between processes opening the same file."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(args))
    procs = [ctx.Process(target=target, args=(*a, barrier)) for a in args]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    return [proc.exitcode for proc in procs]
