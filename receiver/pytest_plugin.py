"""pytest plugin for testing your own handlers (installed with suprhook: entry point `pytest11: suprhook`).

Fixtures (no Redis, broker or network needed):

- `make_status_event(...)`, `make_inbound_message(...)`: realistic SuprSend webhooks for any channel,
  vendor and status (`schemas.samples`; also importable from this module);
- `dispatch_sync(payload)`: runs the matching handlers in-process as the worker does and returns their
  outcomes, follow-ups recorded instead of sent (`handlers.testing`);
- `followup_recorder`: the recorder behind it (`fail_next = [503]` makes SuprSend fail);
- `suprhook_client`: a Flask test client of `create_app()` in development mode on the embedded broker
  in a temporary directory; `post_webhook(payload)` posts, `drain()` runs what was queued;
- `suprhook_config` / `suprhook_settings` / `suprhook_registry`: override these to change the setup.

    from suprhook import make_inbound_message
    import myapp.webhooks  # registers your handlers

    def test_yes_confirms(dispatch_sync):
        outcomes = dispatch_sync(make_inbound_message("YES", workflow="Order Placed"))
        assert outcomes.followup("order_confirmed").distinct_id == "user@example.com"

Disable with `-p no:suprhook`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import pytest
from flask.testing import FlaskClient

from ..schemas.samples import make_inbound_message, make_status_event

if TYPE_CHECKING:
    from flask import Flask

    from ..handlers import Registry, Settings
    from ..handlers.testing import FollowupRecorder, Outcomes, SyncDispatcher

__all__ = ["SuprhookClient", "dispatch_sync", "make_inbound_message", "make_status_event"]


def dispatch_sync(payload: Any, *args: Any, **kwargs: Any) -> "Outcomes":
    """`handlers.testing.dispatch_sync`: run the matching handlers in-process, return their outcomes."""
    from ..handlers.testing import dispatch_sync as run

    return run(payload, *args, **kwargs)


class SuprhookClient(FlaskClient):
    """The Flask test client of a suprhook app, plus `post_webhook` and `drain`."""

    recorder: "FollowupRecorder | None" = None

    def post_webhook(self, payload: Any, *, token: str | None = None, headers: dict[str, str] | None = None,
                     path: str = "/webhooks/suprsend") -> Any:
        """POST `payload` (a dict, or str/bytes sent as is) as SuprSend would; returns the response."""
        state = self.application.extensions["suprhook"]
        sent = dict(headers or {})
        if token is not None:
            header = state.settings.auth_header
            sent[header] = f"Bearer {token}" if header.lower() == "authorization" else token
        if isinstance(payload, (str, bytes)):
            return self.post(path, data=payload, content_type="application/json", headers=sent)
        return self.post(path, json=payload, headers=sent)

    def drain(self, queues: Iterable[str] | None = None) -> "Outcomes":
        """Run every task the app has queued, in this process, as a worker would; returns the outcomes."""
        from ..handlers.testing import drain

        state = self.application.extensions["suprhook"]
        dispatcher = state.dispatcher
        return drain(dispatcher.celery, dispatcher.registry, state.settings, self.recorder, queues)


# kombu's SQLAlchemy models (the embedded broker) use lazy="noload", deprecated in SQLAlchemy 2.1; kombu reads
# queue_id directly and never loads the relationship, so the warning does not apply. Not the user's to fix,
# so it is kept out of their test runs (as setup.cfg keeps it out of ours); their other filters still apply.
KOMBU_NOLOAD_FILTER = "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", KOMBU_NOLOAD_FILTER)


@pytest.fixture(name="make_status_event")
def _make_status_event_fixture() -> Any:
    """`schemas.samples.make_status_event`: a SuprSend status webhook for any vendor and status."""
    return make_status_event


@pytest.fixture(name="make_inbound_message")
def _make_inbound_message_fixture() -> Any:
    """`schemas.samples.make_inbound_message`: a SuprSend reply webhook for any vendor, text or button."""
    return make_inbound_message


@pytest.fixture
def suprhook_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Settings for this test (environment variable names): development mode, every store and the
    embedded broker under a fresh temporary directory, no auth, no rate limit. Only SUPRHOOK_HANDLERS
    is taken from the environment. Override this fixture to change any of it."""
    root = tmp_path_factory.mktemp("suprhook")
    return {
        "SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(root),
        "CELERY_BROKER_URL": f"sqla+sqlite:///{root / 'broker.sqlite3'}",
        "SUPRHOOK_DEDUP_URL": f"sqlite:///{root / 'dedup.sqlite3'}",
        "SUPRHOOK_STORE_URL": f"sqlite:///{root / 'events.sqlite3'}",
        "SUPRHOOK_CONVERSATION_URL": f"sqlite:///{root / 'conversations.sqlite3'}",
        "SUPRHOOK_RATE_LIMIT": "0", "SUPRHOOK_REFUSAL_LIMIT": "0", "SUPRHOOK_QUEUE": "suprhook",
        "SUPRHOOK_HANDLERS": os.environ.get("SUPRHOOK_HANDLERS", ""),
    }


@pytest.fixture
def suprhook_settings(suprhook_config: dict[str, str]) -> "Settings":
    """`suprhook_config` loaded (the environment ignored)."""
    from ..handlers.testing import isolated_settings

    return isolated_settings(suprhook_config, data_dir=suprhook_config["SUPRHOOK_DATA_DIR"])


@pytest.fixture
def suprhook_registry() -> "Registry":
    """The registry handlers are taken from: `suprhook.on` (override to use your own `Registry()`)."""
    from ..handlers import on

    return on


@pytest.fixture
def followup_recorder() -> "FollowupRecorder":
    """Collects the follow-ups handlers send during this test (nothing goes out)."""
    from ..handlers.testing import FollowupRecorder

    return FollowupRecorder()


@pytest.fixture(name="dispatch_sync")
def _dispatch_sync_fixture(suprhook_registry: "Registry", suprhook_settings: "Settings",
                           followup_recorder: "FollowupRecorder") -> "SyncDispatcher":
    """`dispatch_sync(payload, handlers=None, attempt=0, raise_errors=False) -> Outcomes`, with this
    test's settings (conversation state persists between calls) and `followup_recorder`."""
    from ..handlers.testing import SyncDispatcher

    return SyncDispatcher(suprhook_registry, suprhook_settings, followup_recorder)


@pytest.fixture
def suprhook_app(suprhook_config: dict[str, str], suprhook_registry: "Registry") -> Iterator["Flask"]:
    """`create_app(suprhook_config, registry=suprhook_registry)`: the real receiver."""
    from .app import create_app

    Path(suprhook_config["SUPRHOOK_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    app = create_app(suprhook_config, registry=suprhook_registry)
    app.test_client_class = SuprhookClient
    yield app
    store = app.extensions["suprhook"].dispatcher.store
    if store is not None:
        store.dispose()


@pytest.fixture
def suprhook_client(suprhook_app: "Flask", followup_recorder: "FollowupRecorder") -> SuprhookClient:
    """A Flask test client of `suprhook_app`: `post_webhook(payload)`, then `drain()` to run the handlers."""
    client = suprhook_app.test_client()
    assert isinstance(client, SuprhookClient)
    client.recorder = followup_recorder
    return client
