"""The `suprhook` command as a user runs it: `dev` end to end, `routes`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import requests

from .conftest import REPO, stop_group, wait_until
from .test_broker_outage import free_port


def worker_ready(line: str) -> bool:
    """Celery's "<node> ready." line of the worker `suprhook dev` starts (node suprhook-dev-<pid>@host)."""
    return "suprhook-dev-" in line and " ready." in line


def suprhook(*args: str, cwd: Path, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SUPRHOOK_", "CELERY_"))}
    return subprocess.Popen([sys.executable, "-m", "suprhook", *args], cwd=cwd,
                            env={**clean, "PYTHONPATH": str(REPO), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_dev_runs_receiver_and_worker_on_the_embedded_broker(tmp_path):
    shutil.copytree(REPO / "examples", tmp_path / "examples")  # a user's project with the example handlers
    port = free_port()
    proc = suprhook("dev", "--port", str(port), cwd=tmp_path, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        assert wait_until(lambda: any(worker_ready(line) for line in lines), 60), "".join(lines)
        curl = next(line for line in lines if line.strip().startswith("curl"))
        assert f"http://127.0.0.1:{port}/webhooks/suprsend" in curl
        assert "@examples/payloads/whatsapp_status.json" in curl
        body = (tmp_path / "examples/payloads/whatsapp_inbound_reply.json").read_bytes()
        r = requests.post(f"http://127.0.0.1:{port}/webhooks/suprsend", data=body,
                          headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 202, r.text
        assert wait_until(lambda: any("replied 'Hi'" in line for line in lines), 30), "".join(lines)
        assert (tmp_path / "var" / "broker.sqlite3").exists() and (tmp_path / "var" / "dedup.sqlite3").exists()
    finally:
        stop_group(proc)  # SIGTERM, then SIGKILL: SIGINT is ignored when the suite runs in the background


def test_routes_lists_handlers_with_filters(tmp_path):
    proc = suprhook("routes", cwd=REPO, env={"SUPRHOOK_HANDLERS": "tests.probe_handlers"})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "tests.probe_handlers.on_yes_no" in out
    assert "event_type=inbound_message text=/(?i)^\\s*(yes|no)\\b/" in out
    assert "tests.probe_handlers.flaky" in out and "workflow=Flaky" in out
    flaky = next(line for line in out.splitlines() if line.startswith("tests.probe_handlers.flaky "))
    assert flaky.split()[-2:] == ["3", "-"]  # per-handler max_retries, no rate limit


def test_dev_without_handlers_says_what_to_set(tmp_path):
    proc = suprhook("dev", cwd=tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "SUPRHOOK_HANDLERS" in out


def test_unimportable_handler_module_is_a_clear_error(tmp_path):
    proc = suprhook("routes", cwd=tmp_path, env={"SUPRHOOK_HANDLERS": "no_such_module"})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "cannot import 'no_such_module'" in out


def test_order_confirmation_example_runs_against_suprhook_dev_as_the_readme_says(tmp_path):
    """README "Two-way flows": fake SuprSend + `suprhook dev` with the example + the curl line."""
    from .fake_suprsend import FakeSuprsend

    shutil.copytree(REPO / "examples", tmp_path / "examples")
    fake = FakeSuprsend().start()
    port = free_port()
    env = {"SUPRHOOK_HANDLERS": "examples.order_confirmation", "SUPRSEND_WORKSPACE_KEY": fake.workspace_key,
           "SUPRSEND_WORKSPACE_SECRET": fake.workspace_secret, "SUPRSEND_BASE_URL": fake.url}
    proc = suprhook("dev", "--port", str(port), cwd=tmp_path, env=env, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        assert wait_until(lambda: any(worker_ready(line) for line in lines), 60), "".join(lines)
        url = f"http://127.0.0.1:{port}/webhooks/suprsend"
        # In README order: the Quick start sample first (same ./var), then the walkthrough's two payloads,
        # each a new event (not a `duplicate` of the Quick start one).
        for name in ("whatsapp_status", "order_status_delivered", "order_reply_yes"):
            body = (tmp_path / "examples" / "payloads" / f"{name}.json").read_bytes()
            r = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
            assert r.status_code == 202 and r.json()["status"] == "accepted", (name, r.text)
        assert wait_until(lambda: fake.events_named("order_confirmed"), 30), "".join(lines)
        confirmed = fake.events_named("order_confirmed")[0]
        assert confirmed["distinct_id"] == "user@example.com"
        assert confirmed["properties"]["order_notification"] == "01H08212QETNQ7J71B42V3XVKD"
        assert all(r.signature_ok for r in fake.requests)
        import sqlite3

        assert wait_until(lambda: (tmp_path / "var" / "orders.sqlite3").exists(), 10)
        rows = sqlite3.connect(tmp_path / "var" / "orders.sqlite3").execute(
            "SELECT supr_nid, status FROM deliveries").fetchall()
        assert rows == [("01H08212QETNQ7J71B42V3XVKD", "delivered")]  # the notification the YES answers
    finally:
        stop_group(proc)
        fake.stop()


def test_example_payloads_are_distinct_events():
    """Following the README in order posts these into one ./var: a shared event id would answer `duplicate`."""
    import json

    from suprhook.schemas import load_event

    ids = {path.name: load_event(json.loads(path.read_text())).event_id
           for path in sorted((REPO / "examples" / "payloads").glob("*.json"))}
    assert {"whatsapp_status.json", "order_status_delivered.json"} <= set(ids)
    assert len(set(ids.values())) == len(ids), ids


def test_events_and_replay_rerun_only_what_did_not_succeed(tmp_path):
    """`suprhook events` shows outcomes; `suprhook replay --dead` re-runs only the dead handler run."""
    from suprhook.handlers import Settings
    from suprhook.handlers.stores.embedded import queue_depth
    from suprhook.handlers.stores.store import EventStore
    from suprhook.schemas import load_event

    from .conftest import make_status

    env = {"SUPRHOOK_HANDLERS": "tests.probe_handlers", "SUPRHOOK_DATA_DIR": str(tmp_path),
           "SUPRHOOK_ENV": "development"}
    settings = Settings.load(env, environ={})
    store = EventStore(settings.store_url)
    event = load_event(make_status("delivered", workflow_name="Broken"))
    store.record_accepted(event, ["tests.probe_handlers.on_status", "tests.probe_handlers.broken"])
    for handler, outcome in (("on_status", "succeeded"), ("broken", "dead")):
        store.begin_run(event.event_id, f"tests.probe_handlers.{handler}", 60)
        store.finish_run(event.event_id, f"tests.probe_handlers.{handler}", outcome, "PermanentError: no"
                         if outcome == "dead" else None)

    listed = suprhook("events", cwd=REPO, env=env)
    out, _ = listed.communicate(timeout=60)
    assert listed.returncode == 0, out
    assert event.event_id in out and "dead" in out and "PermanentError: no" in out and "succeeded" in out

    dry = suprhook("replay", "--dead", "--dry-run", cwd=REPO, env=env)
    out, _ = dry.communicate(timeout=60)
    assert dry.returncode == 0 and "1 to re-run" in out and "tests.probe_handlers.broken" in out, out
    assert queue_depth(settings.broker_url) == 0

    replay = suprhook("replay", "--event", event.event_id, cwd=REPO, env=env)
    out, _ = replay.communicate(timeout=60)
    assert replay.returncode == 0, out
    assert "2 handler runs selected, 1 already succeeded, 1 to re-run" in out and "re-dispatched 1/1" in out
    assert queue_depth(settings.broker_url) == 1  # only the dead run went back on the queue
    statuses = {r["handler"]: r["status"] for r in store.select_runs(event_ids=[event.event_id])}
    assert statuses == {"tests.probe_handlers.on_status": "succeeded", "tests.probe_handlers.broken": "pending"}
