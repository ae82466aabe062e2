"""Every process stops on SIGTERM within 20 s, leaves no process behind and logs no ERROR (issue 11).

Real processes on real brokers: the Celery worker (`celery -A celery_worker worker`, `suprhook worker`),
`suprhook dev` (receiver + worker) and gunicorn, stopped both ways a supervisor does it: SIGTERM to the
whole process group (`kill -TERM -<pgid>`: the pool processes get it too) and to the main pid only
(docker stop, systemd KillMode=mixed).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from .conftest import REPO, stack_config, stop_group, wait_until
from .test_broker_outage import free_port

STOP_WITHIN = 20.0
BROKERS = {  # with tests.probe_stop the worker consumes only its own queue (SUPRHOOK_QUEUE, unique per test)
    "embedded": None,
    "redis": "redis://127.0.0.1:6379/0",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(children - found)
            found |= children
    return found


def alive(pid: int) -> bool:
    """Running (a zombie is dead: only its parent, maybe init, has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Stack:
    """One process kind started in its own session, its combined output in a log file."""

    def __init__(self, kind: str, broker: str, tmp_path: Path) -> None:
        self.probe = tmp_path / "probe"
        self.probe.mkdir()
        self.port = free_port()
        env = stack_config(tmp_path / "data", BROKERS[broker], SUPRHOOK_HANDLERS="tests.probe_stop",
                           SUPRHOOK_PROBE_DIR=str(self.probe))
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SUPRHOOK_", "CELERY_"))}
        self.env = {**clean, **env, "PYTHONPATH": str(REPO)}
        worker = ["--loglevel", "INFO", "--concurrency", "2"]
        node = ["--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"]  # see tests/conftest.py Worker
        argv = {
            "celery": ["-m", "celery", "-A", "celery_worker", "worker", *worker, "--without-gossip",
                       "--without-mingle", *node],
            "suprhook-worker": ["-m", "suprhook", "worker", *worker, "--", *node],
            "dev": ["-m", "suprhook", "dev", "--port", str(self.port), "--concurrency", "2"],
            "gunicorn": ["-m", "gunicorn", "-c", "python:suprhook.handlers.web.gunicorn_conf", "-w", "2",
                         "-b", f"127.0.0.1:{self.port}", "wsgi:app"],
        }[kind]
        self.kind = kind
        self.log_path = tmp_path / f"{kind}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        if self.kind == "gunicorn":  # the receiver: both gunicorn workers booted and answering
            def ready() -> bool:
                try:
                    up = requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).ok
                except requests.RequestException:
                    return False
                return up and self.output().count("Booting worker") >= 2
        else:  # the Celery worker itself (its worker_ready signal, tests/probe_handlers.py), not a port
            def ready() -> bool:
                return (self.probe / "ready").exists()
        if not wait_until(lambda: ready() or self.proc.poll() is not None, 60, 0.1) or self.proc.poll() is not None:
            self.close()
            pytest.fail(f"{self.kind} not ready:\n{self.log_path.read_text()[-4000:]}")
        time.sleep(0.5)  # let the pool processes settle into waiting for work

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def close(self) -> None:
        stop_group(self.proc)
        self.log.close()


@pytest.mark.parametrize("target", ["group", "main"])
@pytest.mark.parametrize("broker", list(BROKERS))
@pytest.mark.parametrize("kind", ["celery", "suprhook-worker", "dev"])
def test_sigterm_stops_everything_promptly_and_cleanly(tmp_path, kind, broker, target):
    stack = Stack(kind, broker, tmp_path)
    try:
        stack.wait_ready()
        if kind == "dev":  # some work in flight through the receiver
            for _ in range(3):
                body = (REPO / "examples/payloads/whatsapp_status.json").read_text().replace(
                    "01GNEQZ6F4JZF1BAK9CDXYD4T4", uuid.uuid4().hex)
                r = requests.post(f"http://127.0.0.1:{stack.port}/webhooks/suprsend", data=body,
                                  headers={"Content-Type": "application/json"}, timeout=10)
                assert r.status_code == 202, r.text
        children = descendants(stack.proc.pid)
        assert len(children) >= 2, children  # the pool processes (and for dev its worker) are there
        started = time.monotonic()
        if target == "group":
            os.killpg(stack.proc.pid, signal.SIGTERM)
        else:
            os.kill(stack.proc.pid, signal.SIGTERM)
        try:
            code = stack.proc.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{kind} on {broker} still running {STOP_WITHIN} s after SIGTERM:\n{stack.output()}")
        took = time.monotonic() - started
        assert code == 0, stack.output()
        # Its children were reaped by it (or, had they been orphaned, by init): none may still run.
        assert wait_until(lambda: not any(alive(pid) for pid in children), 2), \
            (took, [pid for pid in children if alive(pid)], stack.output())
        errors = [line for line in stack.output().splitlines() if "ERROR" in line or "Traceback" in line]
        assert errors == [], stack.output()
        print(f"{kind} {broker} SIGTERM to {target}: stopped in {took:.2f} s")
    finally:
        stack.close()


@pytest.mark.parametrize("target", ["group", "main"])
def test_gunicorn_stops_on_sigterm(tmp_path, target):
    stack = Stack("gunicorn", "embedded", tmp_path)
    try:
        stack.wait_ready()
        children = descendants(stack.proc.pid)
        assert len(children) >= 2, children
        started = time.monotonic()
        (os.killpg if target == "group" else os.kill)(stack.proc.pid, signal.SIGTERM)
        code = stack.proc.wait(timeout=STOP_WITHIN)
        took = time.monotonic() - started
        assert code == 0, stack.output()
        assert wait_until(lambda: not any(alive(pid) for pid in children), 2), stack.output()
        assert [line for line in stack.output().splitlines() if "ERROR" in line or "Traceback" in line] == []
        print(f"gunicorn SIGTERM to {target}: stopped in {took:.2f} s")
    finally:
        stack.close()


def test_sigkilled_dev_takes_its_worker_with_it(tmp_path):
    """PR_SET_PDEATHSIG: even `suprhook dev` SIGKILLed (no chance to clean up) leaves no worker behind."""
    stack = Stack("dev", "embedded", tmp_path)
    try:
        stack.wait_ready()
        children = descendants(stack.proc.pid)
        os.kill(stack.proc.pid, signal.SIGKILL)
        stack.proc.wait(timeout=5)
        assert wait_until(lambda: not any(alive(pid) for pid in children), STOP_WITHIN), \
            [pid for pid in children if alive(pid)]
    finally:
        stack.close()


def test_dev_exits_non_zero_when_its_worker_dies(tmp_path):
    stack = Stack("dev", "embedded", tmp_path)
    try:
        stack.wait_ready()
        worker = int((stack.probe / "ready").read_text())  # the worker's main process
        children = descendants(stack.proc.pid)
        os.kill(worker, signal.SIGKILL)
        code = stack.proc.wait(timeout=STOP_WITHIN)
        assert code != 0, stack.output()
        assert "the worker exited on its own with -9; stopping" in stack.output()
        assert wait_until(lambda: not any(alive(pid) for pid in children), 5), \
            [pid for pid in children if alive(pid)]
    finally:
        stack.close()


def test_the_main_process_can_still_stop_a_pool_process(tmp_path):
    """The pool processes ignore only other senders' SIGTERM: a cold shutdown (SIGQUIT), which cancels a
    running handler with the main process's SIGTERM to its pool process, still stops the worker at once."""
    from .conftest import make_status

    stack = Stack("dev", "embedded", tmp_path)
    try:
        stack.wait_ready()
        r = requests.post(f"http://127.0.0.1:{stack.port}/webhooks/suprsend", timeout=10,
                          json=make_status("delivered", workflow_name="Long"))
        assert r.status_code == 202, r.text
        assert wait_until(lambda: (stack.probe / "long_started").exists(), 30), stack.output()
        worker = int((stack.probe / "ready").read_text())
        processes = {worker} | descendants(worker)
        started = time.monotonic()
        os.kill(worker, signal.SIGQUIT)
        assert wait_until(lambda: not any(alive(pid) for pid in processes), STOP_WITHIN), stack.output()
        assert time.monotonic() - started < 10  # not the handler's 60 s
        assert stack.proc.wait(timeout=STOP_WITHIN) == 1  # `suprhook dev` saw its worker go
    finally:
        stack.close()
