"""`suprhook send-sample`, `check-config`, `worker` and `replay`'s progress, run as a user runs them:
the command in a subprocess, against a receiver on a real socket and real Redis where it says so."""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from suprhook.handlers import Registry, Settings
from suprhook.handlers.stores.store import EventStore
from suprhook.handlers.testing import drain
from suprhook.receiver import create_app
from suprhook.receiver.cli import main
from suprhook.schemas import load_event

from .conftest import REPO, LiveServer, make_status, stack_config, wait_until
from .test_broker_outage import free_port

SECRET = "whsec_" + base64.b64encode(b"suprhook-cli-test-signing-key-32").decode()


def suprhook(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SUPRHOOK_", "CELERY_", "SUPRSEND_"))}
    return subprocess.run([sys.executable, "-m", "suprhook", *args], cwd=cwd, capture_output=True, text=True,
                          env={**clean, "PYTHONPATH": str(REPO), **(env or {})}, timeout=timeout)


sink = Registry()


@sink(name="cli_tests.sink")
def sink_handler(event):
    return None


@pytest.fixture
def receiver(tmp_path):
    """A receiver that wants a token and a Standard Webhooks signature, on a real socket."""
    config = stack_config(tmp_path, None, SUPRHOOK_AUTH_TOKENS="tok-1,tok-2", SUPRHOOK_SIGNING_SECRET=SECRET,
                          SUPRHOOK_RATE_LIMIT="0")
    app = create_app(config, registry=sink)
    server = LiveServer(app)
    yield server, app, Settings.load(config, environ={})
    server.stop()


def event_ids(output: str) -> list[str]:
    return re.findall(r'"event_id":\s*"(evt_[0-9a-f]+)"', output)


# -- send-sample ----------------------------------------------------------------------------------------


def test_send_sample_signs_and_authenticates_from_the_receivers_environment(receiver):
    server, app, settings = receiver
    env = {"SUPRHOOK_AUTH_TOKENS": "tok-2, tok-1", "SUPRHOOK_SIGNING_SECRET": SECRET}
    url = f"{server.url}/webhooks/suprsend"
    status = suprhook("send-sample", "--url", url, "--status", "failed", "--vendor", "twilio", "--channel", "sms",
                      "--error", "30007:Message filtered", "--workflow", "Billing", env=env)
    reply = suprhook("send-sample", "--url", url, "--type", "inbound", "--vendor", "meta",
                     "--button", "CONFIRM:Yes, confirm", "--distinct-id", "cust-7", env=env)
    assert status.returncode == 0 and reply.returncode == 0, status.stdout + status.stderr + reply.stderr
    assert status.stdout.startswith("[1/1] 202 ") and '"status":"accepted"' in status.stdout.replace(" ", "")
    store = EventStore(settings.store_url)
    [status_id], [reply_id] = event_ids(status.stdout), event_ids(reply.stdout)
    failed = load_event(store.body(status_id))
    assert (failed.status, failed.channel, failed.workflow_name, failed.vendor.name) == ("failed", "sms", "Billing",
                                                                                          "twilio")
    assert (failed.vendor.normalized_status, failed.vendor.error_code, failed.vendor.error_message) == \
        ("failed", "30007", "Message filtered")
    button = load_event(store.body(reply_id))
    assert (button.distinct_id, button.message.button_payload, button.message.text) == ("cust-7", "CONFIRM",
                                                                                        "Yes, confirm")
    assert button.vendor.name == "meta" and button.vendor.normalized_status == "replied"
    ran = drain(app.extensions["suprhook"].dispatcher.celery, sink, settings)
    assert sorted(o.event_id for o in ran) == sorted([status_id, reply_id]) and {o.status for o in ran} == {"ran"}


def test_send_sample_shows_the_refusal_and_exits_1(receiver):
    server, _, _ = receiver
    unsigned = suprhook("send-sample", "--url", f"{server.url}/webhooks/suprsend", "--token", "tok-1")
    assert unsigned.returncode == 1
    assert unsigned.stdout.startswith("[1/1] 401 ") and "webhook-signature" in unsigned.stdout
    no_token = suprhook("send-sample", "--url", f"{server.url}/webhooks/suprsend", "--signing-secret", SECRET)
    assert no_token.returncode == 1 and "[1/1] 401 " in no_token.stdout and "Authorization" in no_token.stdout


def test_send_sample_count_reports_progress_and_a_summary(receiver):
    server, _, settings = receiver
    env = {"SUPRHOOK_AUTH_TOKENS": "tok-1", "SUPRHOOK_SIGNING_SECRET": SECRET}
    run = suprhook("send-sample", "--url", f"{server.url}/webhooks/suprsend", "--count", "30", "--type", "inbound",
                   "--vendor", "vonage", env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    progress = [line.strip() for line in lines if line.strip().startswith("sent ")]
    assert progress[0] == "sent 3/30 (10%)  202x3" and progress[-1] == "sent 30/30 (100%)  202x30"
    assert len(progress) == 10 and not any(line.startswith("[") for line in lines)  # > 10: no per-response lines
    url = re.escape(f"{server.url}/webhooks/suprsend")
    assert re.search(rf"^30 inbound webhooks sent to {url}: 30 x 202 in [0-9.]+ s \([0-9]+/s\)$", run.stdout, re.M)
    assert len(EventStore(settings.store_url).recent_events(100)) == 30  # 30 distinct events


def test_send_sample_print_unreachable_and_impossible_samples(tmp_path):
    printed = suprhook("send-sample", "--print", "--type", "inbound", "--vendor", "sinch", "--channel", "sms",
                       "--text", "STOP")
    assert printed.returncode == 0
    event = load_event(json.loads(printed.stdout))
    assert (event.message.text, event.vendor.name, event.channel) == ("STOP", "sinch", "sms")
    closed = suprhook("send-sample", "--url", f"http://127.0.0.1:{free_port()}/webhooks/suprsend")
    assert closed.returncode == 1 and "cannot reach" in closed.stderr and "suprhook dev" in closed.stderr
    impossible = suprhook("send-sample", "--status", "seen", "--vendor", "msg91", "--channel", "sms")
    assert impossible.returncode == 2 and "msg91 on sms reports no 'read' status" in impossible.stderr
    bad_secret = suprhook("send-sample", "--signing-secret", "whsec_%%%")
    assert bad_secret.returncode == 2 and "not 'whsec_' + base64" in bad_secret.stderr


# -- check-config ---------------------------------------------------------------------------------------


def rows(output: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in output.splitlines():
        match = re.match(r"^  (\u2713|\u2717|!) (\S+(?: \S+)?)\s{2,}(.*)$", line)
        if match:
            found[match.group(2)] = (match.group(1), match.group(3))
    return found


def test_check_config_passes_on_the_embedded_broker(tmp_path):
    run = suprhook("check-config", env={"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp_path),
                                        "SUPRHOOK_HANDLERS": "tests.probe_handlers"})
    assert run.returncode == 0, run.stdout + run.stderr
    table = rows(run.stdout)
    for name in ("settings", "broker", "dedup", "event log", "conversations"):
        assert table[name][0] == "\u2713", (name, run.stdout)
    assert table["handlers"][0] == "\u2713" and "handler(s) from tests.probe_handlers" in table["handlers"][1]
    assert table["authentication"] == ("!", "none (fine for development)")
    assert run.stdout.rstrip().endswith("configuration OK")


def test_check_config_reaches_real_redis_in_production(tmp_path):
    env = {"SUPRHOOK_DATA_DIR": str(tmp_path), "SUPRHOOK_AUTH_TOKENS": "a-token",
           "SUPRHOOK_HANDLERS": "examples.quickstart", "SUPRHOOK_METRICS_TOKEN": "a-metrics-token",
           "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", "SUPRHOOK_DEDUP_URL": "redis://127.0.0.1:6379/1",
           "SUPRHOOK_CONVERSATION_URL": "redis://127.0.0.1:6379/2", "SUPRHOOK_RATE_LIMIT_URL": "redis://127.0.0.1:6379/3"}
    run = suprhook("check-config", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    table = rows(run.stdout)
    assert table["settings"][1].startswith("production mode")
    assert table["authentication"] == ("\u2713", "1 token(s) in Authorization")
    assert table["broker"] == ("\u2713", "redis://127.0.0.1:6379/0")
    assert table["dedup"] == ("\u2713", "redis://127.0.0.1:6379/1")
    assert table["conversations"] == ("\u2713", "redis://127.0.0.1:6379/2")
    assert table["rate limit"] == ("\u2713", "redis://127.0.0.1:6379/3")
    assert table["metrics"] == ("\u2713", "GET /metrics needs the bearer token SUPRHOOK_METRICS_TOKEN")
    assert "a-token" not in run.stdout and "a-metrics-token" not in run.stdout
    open_metrics = suprhook("check-config", env={k: v for k, v in env.items() if k != "SUPRHOOK_METRICS_TOKEN"})
    assert open_metrics.returncode == 1
    mark, detail = rows(open_metrics.stdout)["metrics"]
    assert mark == "\u2717" and detail.startswith("refusing to start in production with GET /metrics open")


def test_check_config_names_each_problem_redacts_urls_and_exits_1(tmp_path):
    env = {"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp_path),
           "CELERY_BROKER_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0", "SUPRHOOK_SIGNING_SECRET": "not base64!",
           "SUPRHOOK_HANDLERS": "examples.order_confirmation"}
    run = suprhook("check-config", env=env)
    assert run.returncode == 1, run.stdout
    table = rows(run.stdout)
    assert table["broker"][0] == "\u2717" and table["broker"][1].startswith("redis://:***@127.0.0.1:")
    assert "unreachable" in table["broker"][1] and "hunter2" not in run.stdout
    assert table["authentication"] == ("\u2717", "SUPRHOOK_SIGNING_SECRET: secret #1 is not 'whsec_' + base64")
    assert table["follow-ups"][0] == "\u2717" and "examples.order_confirmation.confirm_order" in table["follow-ups"][1]
    assert table["dedup"][0] == table["event log"][0] == "\u2713"
    assert run.stdout.rstrip().endswith("problems: authentication, broker, follow-ups")
    invalid = suprhook("check-config", env={"SUPRHOOK_RECOVERY": "sometimes", "SUPRHOOK_DATA_DIR": str(tmp_path)})
    assert invalid.returncode == 1 and rows(invalid.stdout)["settings"] == (
        "\u2717", "SUPRHOOK_RECOVERY must be auto, on or off, got 'sometimes'")


def test_check_config_says_why_a_store_is_unreachable(tmp_path):
    port = free_port()
    env = {"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp_path),
           "SUPRHOOK_HANDLERS": "tests.probe_handlers", "CELERY_BROKER_URL": "redsi://127.0.0.1:6379/0",  # a typo for redis://
           "SUPRHOOK_DEDUP_URL": f"redis://:hunter2@127.0.0.1:{port}/0"}
    run = suprhook("check-config", env=env)
    assert run.returncode == 1, run.stdout
    table = rows(run.stdout)
    assert table["broker"] == ("\u2717", "redsi://127.0.0.1:6379/0: unsupported URL scheme "
                                         "(KeyError: No such transport: redsi.  Did you mean redis?)")
    mark, detail = table["dedup"]
    assert mark == "\u2717" and detail.startswith(f"redis://:***@127.0.0.1:{port}/0: unreachable: connection refused (")
    assert f"connecting to 127.0.0.1:{port}" in detail and "Connection refused" in detail  # the message itself
    assert "hunter2" not in run.stdout + run.stderr
    assert table["event log"][0] == "\u2713"


def test_routes_and_check_config_agree_on_handlers_when_suprhook_handlers_is_unset(tmp_path):
    """Outside the clone neither imports examples.quickstart; inside it both show it, with the same note."""
    env = {"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp_path / "var")}
    outside = tmp_path / "project"
    outside.mkdir()
    routes = suprhook("routes", cwd=outside, env=env)
    assert routes.returncode == 0, routes.stdout + routes.stderr
    assert "examples.quickstart" not in routes.stdout + routes.stderr
    assert "SUPRHOOK_HANDLERS is unset: no handler would run" in routes.stdout
    check = suprhook("check-config", cwd=outside, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert rows(check.stdout)["handlers"] == (
        "!", "SUPRHOOK_HANDLERS is unset: no handler would run (set SUPRHOOK_HANDLERS=your.module)")

    routes = suprhook("routes", cwd=REPO, env=env)
    check = suprhook("check-config", cwd=REPO, env=env)
    assert routes.returncode == 0 and check.returncode == 0, routes.stdout + check.stdout
    assert "examples.quickstart.record_status" in routes.stdout
    mark, detail = rows(check.stdout)["handlers"]
    assert mark == "!" and detail.startswith("3 handler(s) from examples.quickstart (SUPRHOOK_HANDLERS is unset")
    note = "SUPRHOOK_HANDLERS is unset: showing examples.quickstart, which `suprhook dev` loads"
    assert note in routes.stdout and note in detail


# -- worker ---------------------------------------------------------------------------------------------


def test_worker_dry_run_consumes_every_queue_the_handlers_use(tmp_path):
    (tmp_path / "myhooks.py").write_text(textwrap.dedent('''
        from suprhook.handlers import on

        @on(event_type="status")
        def statuses(event): ...

        @on(channel="sms", queue="sms-replies")
        def sms(event): ...
    '''))
    env = {"SUPRHOOK_HANDLERS": "myhooks", "SUPRHOOK_DATA_DIR": str(tmp_path), "SUPRHOOK_QUEUE": "hooks"}
    run = suprhook("worker", "--dry-run", "--loglevel", "WARNING", "--", "--autoscale", "4,1", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    argv = run.stdout.split()
    assert argv[1:6] == ["-m", "celery", "-A", "suprhook.celery_worker", "worker"]
    assert argv[argv.index("--queues") + 1] == "hooks,sms-replies"
    assert argv[argv.index("--concurrency") + 1] == "2"  # the embedded broker
    assert argv[argv.index("--loglevel") + 1] == "WARNING"
    assert {"--without-gossip", "--without-mingle"} <= set(argv) and argv[-2:] == ["--autoscale", "4,1"]
    redis = suprhook("worker", "--dry-run", "--concurrency", "7", cwd=tmp_path,
                     env={**env, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"})
    assert "--concurrency 7" in redis.stdout
    broken = suprhook("worker", cwd=tmp_path, env={"SUPRHOOK_HANDLERS": "no_such_module"})
    assert broken.returncode == 2 and "cannot import 'no_such_module'" in broken.stderr


def test_worker_runs_the_handlers_of_a_live_receiver(tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    config = stack_config(tmp_path, None, SUPRHOOK_HANDLERS="tests.probe_handlers", SUPRHOOK_PROBE_DIR=str(probe))
    mirror = Registry()  # the receiver needs the handler names only; the worker runs the real ones
    mirror(event_type="status", name="tests.probe_handlers.on_status")(sink_handler)
    server = LiveServer(create_app(config, registry=mirror))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SUPRHOOK_", "CELERY_"))}
    proc = subprocess.Popen([sys.executable, "-m", "suprhook", "worker", "--concurrency", "1", "--",
                             "--without-heartbeat"], cwd=REPO, env={**clean, **config, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert wait_until(lambda: (probe / "ready").exists() or proc.poll() is not None, 60), "worker not ready"
        assert proc.poll() is None, proc.stdout.read()
        response = server.post(make_status("delivered"))
        assert response.status_code == 202
        event_id = response.json()["event_id"]
        runs = probe / "runs.jsonl"
        assert wait_until(lambda: runs.exists() and event_id in runs.read_text(), 30)
        run = json.loads(runs.read_text().splitlines()[0])
        assert (run["handler"], run["event_id"], run["current"]) == ("on_status", event_id, "delivered")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        server.stop()
    banner = proc.stdout.read()
    assert "suprhook worker: handlers tests.probe_handlers; broker sqla+sqlite" in banner


# -- replay progress, help ----------------------------------------------------------------------------


def test_replay_reports_progress_on_long_replays(tmp_path):
    from suprhook.handlers.stores.embedded import queue_depth

    env = {"SUPRHOOK_HANDLERS": "tests.probe_handlers", "SUPRHOOK_DATA_DIR": str(tmp_path),
           "SUPRHOOK_ENV": "development"}
    settings = Settings.load(env, environ={})
    store = EventStore(settings.store_url)
    for _ in range(120):
        event = load_event(make_status("delivered", workflow_name="Broken"))
        store.record_accepted(event, ["tests.probe_handlers.broken"])
        store.begin_run(event.event_id, "tests.probe_handlers.broken", 60)
        store.finish_run(event.event_id, "tests.probe_handlers.broken", "dead", "PermanentError: no")
    run = suprhook("replay", "--dead", env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    progress = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("re-dispatched")]
    assert progress == ["re-dispatched 50/120 (41%)", "re-dispatched 100/120 (83%)", "re-dispatched 120/120 (100%)"]
    assert "120 handler runs selected, 0 already succeeded, 120 to re-run" in run.stdout
    assert re.search(r"^120 handler runs re-dispatched in [0-9.]+ s$", run.stdout, re.M)
    assert queue_depth(settings.broker_url) == 120


@pytest.mark.parametrize("command", ["dev", "send-sample", "check-config", "routes", "events", "replay", "worker"])
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: suprhook {command}") and "\nexamples:\n  suprhook " in out
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert all(name in top for name in ("send-sample", "check-config", "examples:"))


def test_top_level_help_shows_each_commands_whole_first_sentence(capsys):
    from suprhook.receiver.cli import build_parser, first_sentence

    with pytest.raises(SystemExit):
        main(["--help"])
    top = " ".join(capsys.readouterr().out.split())  # argparse wraps the help column
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"dev", "send-sample", "check-config", "routes", "events", "replay", "worker"}
    for name, parser in sub.choices.items():
        sentence = first_sentence(parser.description)
        assert sentence.endswith(".") and not sentence.endswith("..."), (name, sentence)
        assert f"{name} {sentence}" in top, (name, sentence)
    assert "then every registered handler with its filters and options." in top  # was cut after "registered"
    assert first_sentence("One line\n    goes on. Second. Third.") == "One line goes on."
