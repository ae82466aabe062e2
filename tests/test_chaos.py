"""Chaos, on default recovery settings: events posted while workers are SIGKILLed and restarted and
the broker restarts once.

Every event that got a 2xx must have its handler succeed exactly once by the handler-run log, within
120 s of the last POST, with lease, sweep and visibility timeout left at their defaults (the load is
smaller than a production burst, the recovery is not shortened). Its side effect (one follow-up
accepted by the fake SuprSend per event) happens for every event; more than once only for a run a
SIGKILL interrupted between the side effect and recording success: at most kills x concurrency.
Runs against a private redis-server with AOF and appendfsync always (what a broker must do to keep a
2xx honest across its own restart), so stopping it never disturbs the machine's shared Redis.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid

import pytest
import redis
import requests

from suprhook.handlers import Settings
from suprhook.handlers.stores.store import EventStore
from suprhook.receiver import create_app

from .conftest import LiveServer, Worker, make_status, stack_config, wait_until
from .fake_suprsend import FakeSuprsend
from .test_broker_outage import free_port

EVENTS = 1500
CONCURRENCY = 2
HANDLED_WITHIN = 120.0  # seconds after the last POST


class DurableRedis:
    def __init__(self, port: int, workdir) -> None:
        self.port, self.workdir, self.proc = port, workdir, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        assert wait_until(up, 20)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.mark.chaos
def test_chaos_every_accepted_event_handled_exactly_once(tmp_path):
    import tests.probe_chaos  # noqa: F401

    broker = DurableRedis(free_port(), tmp_path)
    broker.start()
    fake = FakeSuprsend().start()
    config = stack_config(
        # dedup in the broker's Redis, as in production: dedup + enqueue is one atomic Lua call
        tmp_path, f"redis://127.0.0.1:{broker.port}/0", SUPRHOOK_DEDUP_URL=f"redis://127.0.0.1:{broker.port}/0",
        SUPRHOOK_HANDLERS="tests.probe_chaos",
        SUPRHOOK_PROBE_DIR=str(tmp_path / "probe"), SUPRSEND_WORKSPACE_KEY=fake.workspace_key,
        SUPRSEND_WORKSPACE_SECRET=fake.workspace_secret, SUPRSEND_BASE_URL=fake.url, PYTHONUNBUFFERED="1")
    for key in ("SUPRHOOK_VISIBILITY_TIMEOUT", "SUPRHOOK_RUN_LEASE", "SUPRHOOK_RECOVERY_AFTER",
                "SUPRHOOK_RETRY_BACKOFF_MAX", "SUPRHOOK_RATE_LIMIT", "SUPRHOOK_REFUSAL_LIMIT"):
        assert key not in config  # the defaults are what is tested
    server = LiveServer(create_app(config))
    workers = [Worker(config, tmp_path / "probe", concurrency=CONCURRENCY)]
    accepted: set[str] = set()
    retried = {"count": 0}
    lock = threading.Lock()

    def post_all(bodies: list[dict]) -> None:
        session = requests.Session()
        for body in bodies:
            while True:  # like SuprSend: retry until a 2xx
                try:
                    r = session.post(server.url + "/webhooks/suprsend", json=body, timeout=10)
                except requests.RequestException:
                    r = None
                if r is not None and r.status_code in (200, 202):
                    with lock:
                        accepted.add(r.json()["event_id"])
                    break
                with lock:
                    retried["count"] += 1
                time.sleep(0.2)

    bodies = [make_status("delivered", workflow_name="Chaos", nid=uuid.uuid4().hex) for _ in range(EVENTS)]
    posters = [threading.Thread(target=post_all, args=(bodies[i::4],)) for i in range(4)]
    started = time.monotonic()
    for t in posters:
        t.start()
    try:
        for round_ in range(4):  # SIGKILL the worker mid-stream and start a new one, four times
            time.sleep(3)
            workers[-1].kill()
            if round_ == 1:  # and restart the broker once, while no worker runs
                broker.kill()
                time.sleep(1.5)
                broker.start()
            workers.append(Worker(config, tmp_path / "probe", concurrency=CONCURRENCY))
        for t in posters:
            t.join(timeout=600)
        last_post = time.monotonic()
        assert len(accepted) == EVENTS
        store = EventStore(Settings.load(config, environ={}).store_url)

        def all_succeeded() -> bool:
            runs = store.select_runs(event_ids=())
            return len(runs) == EVENTS and all(r["status"] == "succeeded" for r in runs)

        assert wait_until(all_succeeded, HANDLED_WITHIN, interval=1), workers[-1].output()
        handled_after = time.monotonic() - last_post
        runs = store.select_runs()
        assert {r["event_id"] for r in runs} == accepted
        done = fake.events_named("chaos_done")
        by_event = {}
        for e in done:
            by_event.setdefault(e["properties"]["source_event"], 0)
            by_event[e["properties"]["source_event"]] += 1
        assert set(by_event) == accepted  # every accepted event's side effect happened...
        kills = len(workers) - 1
        duplicates = sum(n - 1 for n in by_event.values())
        assert duplicates <= kills * CONCURRENCY  # ...again only where a SIGKILL cut a run short
        sent = sum(1 for r in fake.requests if isinstance(r.body, dict) and r.body.get("event") == "chaos_done")
        print(f"\nchaos: {EVENTS} events accepted in {last_post - started:.0f} s, all handled {handled_after:.0f} s "
              f"after the last POST, {duplicates} duplicate side effects, {retried['count']} "
              f"sender retries (503/409/connection) during the broker restart and kills, {len(workers) - 1} worker "
              f"SIGKILLs, 1 broker restart; {sum(r['attempts'] for r in runs)} handler attempts for {EVENTS} runs; "
              f"{sent} follow-up requests for {len(done)} accepted follow-ups")
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        fake.stop()
        if broker.proc.poll() is None:
            broker.kill()
