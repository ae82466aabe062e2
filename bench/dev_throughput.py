"""Throughput of `suprhook dev` (receiver + worker on the embedded SQLite broker) on a no-op handler.

    .venv/bin/python bench/dev_throughput.py [--events 1000] [--clients 4]

Measures, in one run on this machine:
  ingest    POSTs/s through the real receiver (werkzeug threaded, as `suprhook dev` serves it),
            N client threads with keep-alive;
  dispatch  events/s a 2-process worker drains a backlog of N events through the no-op handler;
  baseline  the same backlog as bare Celery no-op tasks (no suprhook code) on the same broker,
            worker settings and poll interval; dispatch is printed as a ratio to it.
Everything runs under a temp dir and stops by itself.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SEED = json.loads((REPO / "examples/payloads/whatsapp_status.json").read_text())


def payloads(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        p = copy.deepcopy(SEED)
        p["reference"]["supr_nid"] = f"bench-{uuid.uuid4().hex}"
        if i == n - 1:
            p["bench_last"] = True
        out.append(json.dumps(p).encode())
    return out


def start_worker(app_module: str, env: dict[str, str], queue: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", app_module, "worker", "--concurrency", "2", "-Q", queue,
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
        cwd=REPO, env={**os.environ, **env, "PYTHONPATH": str(REPO)}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_file(path: Path, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not written in {timeout} s")
        time.sleep(0.01)
    return time.monotonic()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def post_all(url: str, bodies: list[bytes], clients: int) -> float:
    chunks = [bodies[i::clients] for i in range(clients)]
    errors: list[str] = []

    def run(chunk: list[bytes]) -> None:
        with requests.Session() as s:
            for body in chunk:
                r = s.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
                if r.status_code != 202:
                    errors.append(f"{r.status_code} {r.text[:100]}")

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} posts failed, first: {errors[0]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="suprhook-bench-"))
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = {"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp), "SUPRHOOK_QUEUE": queue,
           "SUPRHOOK_HANDLERS": "bench.noop_handlers", "BENCH_DONE_FILE": str(tmp / "done"),
           "BENCH_QUEUE": queue, "CELERY_BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.sqlite3'}",
           "SUPRHOOK_RATE_LIMIT": "0"}  # one local load generator is one "source": do not throttle it
    os.environ.update(env)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    from handlers.embedded import queue_depth
    from receiver import create_app

    app = create_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/webhooks/suprsend"
    bodies = payloads(args.events)

    # 1. ingest, no worker running: requests/s into the broker
    ingest_s = post_all(url, bodies, args.clients)
    assert queue_depth(env["CELERY_BROKER_URL"]) == args.events

    # 2. dispatch: a fresh worker drains that backlog
    worker = start_worker("celery_worker", env, queue)
    t0 = time.monotonic()
    try:
        dispatch_s = wait_file(tmp / "done", 300) - t0
    finally:
        stop(worker)

    # 3. baseline: the same number of bare Celery no-op tasks, same broker file and settings
    (tmp / "done").unlink()
    from handlers import embedded

    embedded.prepare(env["CELERY_BROKER_URL"], 0.05)
    import bench.raw_celery_app as raw

    for i, body in enumerate(bodies):
        raw.raw_noop.apply_async(args=[json.loads(body)], kwargs={"last": i == len(bodies) - 1})
    worker = start_worker("bench.raw_celery_app", env, queue)
    t0 = time.monotonic()
    try:
        baseline_s = wait_file(tmp / "done", 300) - t0
    finally:
        stop(worker)
        server.shutdown()

    n = args.events
    print(f"suprhook dev throughput, {n} events, {args.clients} HTTP clients, worker concurrency 2, "
          f"nproc={os.cpu_count()}")
    print("| figure | events/s | ratio |")
    print("|---|---:|---:|")
    print(f"| ingest: POST -> 202 (werkzeug threaded, embedded broker) | {n / ingest_s:.0f} | - |")
    print(f"| dispatch: backlog -> no-op handler (suprhook worker) | {n / dispatch_s:.0f} | "
          f"{baseline_s / dispatch_s:.2f}x of baseline |")
    print(f"| baseline: backlog -> bare Celery no-op task | {n / baseline_s:.0f} | 1.00 |")
    print(f"| end to end: {n} events posted then drained | {n / (ingest_s + dispatch_s):.0f} | - |")


if __name__ == "__main__":
    main()
