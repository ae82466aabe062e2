"""The commands in deploy/ (Procfile, systemd units) and README "Production" start what they claim."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"


def _procfile() -> dict[str, str]:
    lines = [line for line in (DEPLOY / "Procfile").read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split(": ", 1) for line in lines)


def _expand(command: str, env: dict[str, str]) -> list[str]:
    """${VAR:-default} as the shell would, then split; leading VAR=value words become environment."""
    command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1), m.group(2)), command)
    words = shlex.split(command)
    while words and re.fullmatch(r"\w+=.*", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    return words


def test_procfile_web_is_a_valid_gunicorn_command_for_the_app(tmp_path):
    """From a project directory that is not this clone: the units name only the installed package."""
    env = {**os.environ, "SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp_path),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    env.pop("PYTHONPATH", None)
    words = _expand(_procfile()["web"], env)
    assert words[0] == "gunicorn" and "suprhook.wsgi:app" in words
    assert "python:suprhook.handlers.web.gunicorn_conf" in words
    result = subprocess.run([sys.executable, "-m", *words, "--check-config"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_procfile_worker_is_our_worker_with_every_queue(tmp_path):
    env = {**os.environ, "SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp_path),
           "SUPRHOOK_HANDLERS": "tests.probe_handlers", "PYTHONPATH": str(REPO)}
    words = _expand(_procfile()["worker"], env)
    assert words[:2] == ["suprhook", "worker"]
    result = subprocess.run([sys.executable, "-m", "suprhook", *words[1:], "--dry-run"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "celery -A suprhook.celery_worker worker" in result.stdout and "suprhook-probe-side" in result.stdout


def test_systemd_units_run_the_same_commands():
    receiver = (DEPLOY / "suprhook-receiver.service").read_text()
    worker = (DEPLOY / "suprhook-worker.service").read_text()
    assert "gunicorn -c python:suprhook.handlers.web.gunicorn_conf" in receiver and "suprhook.wsgi:app" in receiver
    assert "suprhook worker" in worker and "KillSignal=SIGTERM" in worker
    assert "EnvironmentFile=/etc/suprhook/env" in receiver and "EnvironmentFile=/etc/suprhook/env" in worker


def _directives(unit: str) -> dict[str, str]:
    text = (DEPLOY / unit).read_text().replace("\\\n", " ")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_systemd_units_stop_the_main_process_and_bound_the_stop():
    """SIGTERM to the main process only, which stops its children itself (a Celery worker's pool processes
    must not get it: the warm shutdown lets their handlers finish); SIGKILL to all after the timeout."""
    for unit in ("suprhook-receiver.service", "suprhook-worker.service"):
        directives = _directives(unit)
        assert directives.get("KillMode") == "mixed", unit
        assert directives.get("KillSignal") == "SIGTERM", unit
        assert 20 <= int(directives["TimeoutStopSec"]) <= 120, unit
    graceful = re.search(r"--graceful-timeout (\d+)", _directives("suprhook-receiver.service")["ExecStart"])
    assert graceful and int(graceful.group(1)) < int(_directives("suprhook-receiver.service")["TimeoutStopSec"])
