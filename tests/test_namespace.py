"""One namespace (issue 12, part 1): suprhook installs the `suprhook` package and nothing else, so a project
with its own `handlers.py`, `schemas.py`, `wsgi.py` or `celery_worker.py` keeps them."""
from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import requests

from .conftest import REPO, make_status, stack_config, stop_group, wait_until
from .test_broker_outage import free_port

MAPPED = ("receiver", "handlers", "schemas")  # top-level directories of the clone, suprhook.<name> installed


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def test_only_the_suprhook_package_is_installed_and_every_subpackage_is_listed():
    options = _setup_cfg()["options"]
    packages = _lines(options["packages"])
    assert "py_modules" not in options
    assert all(p == "suprhook" or p.startswith("suprhook.") for p in packages)
    # an explicit list (package_dir maps three roots): a new subpackage must be added to it, or the wheel lacks it
    on_disk = {"suprhook"} | {"suprhook." + ".".join(init.parent.relative_to(REPO).parts)
                              for top in MAPPED for init in (REPO / top).rglob("__init__.py")}
    assert set(packages) == on_disk
    entry_points = _setup_cfg()["options.entry_points"]
    assert _lines(entry_points["console_scripts"]) == ["suprhook = suprhook.receiver.cli:main"]
    assert _lines(entry_points["pytest11"]) == ["suprhook = suprhook.receiver.pytest_plugin"]


def _python(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env={**environ, **(env or {})},
                          capture_output=True, text=True, timeout=120)


def test_every_public_name_comes_from_suprhook_lazily(tmp_path):
    result = _python("""
        import sys
        import suprhook
        assert sorted(suprhook.__all__) == sorted(suprhook._EXPORTS), "__all__ and _EXPORTS disagree"
        assert not [m for m in sys.modules if m.startswith("suprhook.")], "import suprhook loads nothing"
        from suprhook import on, Event, PermanentError, Settings, ConfigError, Registry, create_app, init_app
        from suprhook import Endpoint
        assert "suprsend" not in sys.modules and "suprhook.handlers.testing" not in sys.modules
        for name in suprhook.__all__:
            assert getattr(suprhook, name) is not None, name
        from suprhook import Followup, Conversation, FollowupUnavailable, Timeline
        from suprhook import dispatch_sync, make_status_event, make_inbound_message, FollowupRecorder, Outcomes
        import suprhook.handlers.registry
        assert on is suprhook.handlers.registry.on
        print("ok")
        """, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


def test_the_cli_loads_without_the_web_and_worker_stacks(tmp_path):
    """`suprhook --help`, `routes`, `events` start from suprhook.receiver.cli: importing it must not load
    Flask, SQLAlchemy or Celery (eagerly they made `suprhook --help` take 0.60 s instead of 0.14 s)."""
    result = _python("""
        import sys
        import suprhook.receiver.cli
        print(sorted(m for m in ("flask", "sqlalchemy", "celery", "kombu", "suprsend") if m in sys.modules))
        """, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_web_process_imports_no_worker_only_code(tmp_path):
    """The receiver sends tasks by name: it never loads the handlers' runtime, the lease heartbeat, the
    SuprSend SDK behind follow-ups or the Usermaven outbox (issue 12's check, with the settings production
    needs, the Usermaven sink on: the receiver registers its handler, the worker alone runs it)."""
    result = _python(f"""
        import os, sys
        os.environ.update(SUPRHOOK_AUTH_TOKENS="tok-ns-0123456789", SUPRHOOK_METRICS="off",
                          SUPRHOOK_DATA_DIR={str(tmp_path / "var")!r}, SUPRHOOK_HANDLERS="tests.probe_handlers",
                          USERMAVEN_API_KEY="um-key", USERMAVEN_SERVER_TOKEN="um-token")
        import suprhook.wsgi
        assert "suprhook.usermaven" in [h.name for h in suprhook.wsgi.app.extensions["suprhook"].dispatcher.registry]
        print(sorted(m for m in sys.modules if m == "suprsend" or m.startswith("suprhook.handlers.worker.")
                     or m in ("suprhook.handlers.integrations.followup", "suprhook.handlers.testing",
                              "suprhook.handlers.stores.usermaven_outbox")))
        """, REPO)
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_no_module_answers_to_a_second_name():
    """From the clone's root `handlers/` is on the path as `handlers` too: importing it so would make a second
    registry. Each package refuses any name but its own."""
    for name in MAPPED:
        result = _python(f"import {name}", REPO)
        assert result.returncode == 1, (name, result.stdout + result.stderr)
        assert f"ImportError: import suprhook.{name}, not {name}" in result.stderr


def test_the_clone_keeps_its_entry_modules_as_thin_reexports(tmp_path):
    result = _python("""
        import celery_worker, wsgi
        import suprhook.celery_worker, suprhook.wsgi
        assert wsgi.app is suprhook.wsgi.app and celery_worker.app is suprhook.celery_worker.app
        print("ok")
        """, REPO, {"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


PROJECT = {
    # the most common module names of a Flask app: suprhook must not shadow them, nor be shadowed by them
    "handlers.py": 'WHO = "the project\'s own handlers.py"\n',
    "schemas.py": 'WHO = "the project\'s own schemas.py"\n',
    "wsgi.py": 'raise RuntimeError("suprhook imported the project\'s wsgi.py")\n',
    "celery_worker.py": 'raise RuntimeError("suprhook imported the project\'s celery_worker.py")\n',
    "myapp_webhooks.py": '''\
        import json
        import os
        from pathlib import Path

        from celery.signals import worker_ready

        import handlers
        import schemas
        from suprhook import Event, on

        OUT = Path(os.environ["MYAPP_OUT"])


        @on(event_type="status")
        def record(event: Event) -> None:
            with open(OUT / "runs.jsonl", "a") as f:
                f.write(json.dumps({"event_id": event.event_id, "handlers": handlers.WHO,
                                    "schemas": schemas.WHO}) + "\\n")


        @worker_ready.connect
        def ready(**_):
            (OUT / "ready").touch()
        ''',
}


def test_a_project_with_its_own_handlers_and_schemas_runs_its_handlers_through_a_real_worker(tmp_path):
    """README "Add suprhook to your project": `suprhook worker` and `gunicorn suprhook.wsgi:app` started in
    the project's directory, SUPRHOOK_HANDLERS naming the project's module."""
    project, out = tmp_path / "myapp", tmp_path / "out"
    project.mkdir()
    out.mkdir()
    for name, text in PROJECT.items():
        (project / name).write_text(textwrap.dedent(text))
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what is installed, and the project
    env = {**environ, **stack_config(tmp_path / "data", None, SUPRHOOK_HANDLERS="myapp_webhooks",
                                     MYAPP_OUT=str(out), PYTHONPATH=str(project))}
    bin_dir = Path(sys.executable).parent  # the console script `suprhook` is installed beside this python
    port = free_port()
    with open(tmp_path / "worker.log", "w") as worker_log, open(tmp_path / "gunicorn.log", "w") as web_log:
        worker = subprocess.Popen([str(bin_dir / "suprhook"), "worker", "--concurrency", "1"], cwd=project,
                                  env=env, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
                                "suprhook.wsgi:app"], cwd=project, env=env, stdout=web_log,
                               stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def logs() -> str:
                return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in tmp_path.glob("*.log"))

            def web_up() -> bool:
                try:
                    return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                except requests.RequestException:
                    return False

            # the worker's own worker_ready signal, not a port
            assert wait_until(lambda: (out / "ready").exists() or worker.poll() is not None, 60), logs()
            assert worker.poll() is None, logs()
            assert wait_until(lambda: web_up() or web.poll() is not None, 60) and web.poll() is None, logs()

            response = requests.post(f"http://127.0.0.1:{port}/webhooks/suprsend", json=make_status("delivered"),
                                     timeout=10)
            assert response.status_code == 202, response.text
            event_id = response.json()["event_id"]

            def runs() -> list[dict[str, str]]:
                path = out / "runs.jsonl"
                return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

            assert wait_until(runs, 60), logs()
            assert runs() == [{"event_id": event_id, "handlers": "the project's own handlers.py",
                               "schemas": "the project's own schemas.py"}]
        finally:
            stop_group(web)
            stop_group(worker)
