"""The composition root (suprhook.compose) and the rules it keeps: one place wires each role, loading handler
modules only registers handlers, no module-global configuration, no reaching into another module's privates."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from suprhook import (FollowupRecorder, Registry, SyncDispatcher, enable_keywords, isolated_settings,
                      make_inbound_message)
from suprhook.compose import build_web, build_worker, configure
from suprhook.handlers.loader import load_handler_modules

from .conftest import REPO, stack_config

PACKAGE_DIRS = [REPO / "receiver", REPO / "handlers", REPO / "schemas", REPO / "src" / "suprhook"]


def _modules() -> list[Path]:
    return sorted(p for d in PACKAGE_DIRS for p in d.rglob("*.py"))


def test_web_and_worker_are_built_from_one_settings_and_registry(tmp_path):
    registry = Registry()
    config = stack_config(tmp_path, None, SUPRHOOK_HANDLERS="")
    registry.reply(name="tests.compose.yes")(lambda_free_handler)
    web = build_web(config, registry=registry)
    worker = build_worker(config, registry=registry)
    assert web.settings == worker.settings and web.registry is worker.registry is registry
    task = registry.get("tests.compose.yes").task_name
    assert task not in web.celery.tasks  # the receiver sends tasks by name; it binds none
    assert task in worker.celery.tasks
    assert web.dispatcher.celery is web.celery and web.routes[0].is_default
    assert worker.runtime.settings is worker.settings


def lambda_free_handler(event):
    """A module-level handler for the test above."""


def test_loading_handler_modules_only_registers_handlers(monkeypatch):
    """It used to install the Usermaven sink as a side effect; now only the composition root does."""
    monkeypatch.setenv("USERMAVEN_API_KEY", "um-key")
    monkeypatch.setenv("USERMAVEN_SERVER_TOKEN", "um-token")
    from suprhook import on

    load_handler_modules(["tests.probe_handlers"])
    assert "suprhook.usermaven" not in [h.name for h in on]
    registry = Registry()
    core = configure(isolated_settings(), registry=registry, handler_modules=())
    assert core.usermaven is not None and [h.name for h in registry] == ["suprhook.usermaven"]


def test_two_registries_keep_their_own_keyword_events():
    """STOP/HELP event names lived in one module-global dict shared by every registry: the last
    `enable_keywords` call won for all of them."""
    first, second = Registry(), Registry()
    enable_keywords(first, stop_event="first_stop")
    enable_keywords(second, stop_event="second_stop")
    enable_keywords(first, stop_event="first_stop")  # again: replaced, not doubled
    stop = make_inbound_message("STOP", phone="+15550001111")
    for registry, name in ((first, "first_stop"), (second, "second_stop")):
        outcomes = SyncDispatcher(registry, isolated_settings(), FollowupRecorder())(stop)
        assert [f.event_name for f in outcomes.followups] == [name]
    assert len(first) == 2 and first.keyword_pattern is not None


def test_each_runtime_sends_follow_ups_with_its_own_client():
    """The testing kit used to swap entries of followup's module-global client cache; a recorder is now
    the runtime's SuprSend client, so two dispatchers on the same settings never see each other's calls."""
    registry = Registry()
    enable_keywords(registry)
    settings = isolated_settings()
    one, two = FollowupRecorder(), FollowupRecorder()
    SyncDispatcher(registry, settings, one)(make_inbound_message("HELP", phone="+15550002222"))
    assert len(one.followups) == 1 and not two.followups


# Module-level names a `global` statement may rebind, each with its reason. Configuration never: it
# lives in Settings and the objects the composition root builds from it.
GLOBAL_ALLOWED: dict[str, str] = {}


def test_no_module_rebinds_module_globals():
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Global):
                found += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in node.names
                          if f"{path.relative_to(REPO)}:{n}" not in GLOBAL_ALLOWED]
    assert not found, "module-global state rebound (keep it on an object the composition root builds):\n" + \
        "\n".join(found)


def _imported_modules(tree: ast.Module) -> set[str]:
    """Local names bound to modules: `import x.y as z`, and `from . import mod` style imports of modules."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names if a.name[:1].islower() and "_" not in a.name[:1]}
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_reaches_into_another_modules_private_names(path):
    tree = ast.parse(path.read_text(), str(path))
    modules = _imported_modules(tree)
    bad = [f"line {n.lineno}: from {n.module} import {a.name}" for n in ast.walk(tree)
           if isinstance(n, ast.ImportFrom) for a in n.names if a.name.startswith("_") and not a.name.startswith("__")]
    bad += [f"line {n.lineno}: {n.value.id}.{n.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules
            and n.attr.startswith("_") and not n.attr.startswith("__")]
    assert not bad, bad
