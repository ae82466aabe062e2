"""Run your handlers in-process, exactly as the worker runs them, and see what they did.

    from suprhook import dispatch_sync, make_inbound_message

    outcomes = dispatch_sync(make_inbound_message("YES", workflow="Order Placed"))
    assert outcomes.followup("order_confirmed").distinct_id == "user@example.com"

`dispatch_sync` loads the payload with the real schemas, asks the registry which handlers match (echo and
STOP/HELP routing included, as the receiver does), and runs each through `handlers.worker.tasks.run_handler`,
the worker's own code path: argument injection, `match`, conversation state under its lock, `event.timeline`.
Follow-ups go to a `FollowupRecorder`: the real `Followup` and the real SuprSend SDK build, validate, key and
sign every call, and the recorder keeps the request instead of sending it. No broker, Redis or network.
The pytest plugin (`receiver.pytest_plugin`) wraps all this in fixtures.
"""
from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import shutil
import tempfile
import threading
import uuid
from typing import Any, Iterable, Mapping, Sequence

import requests
from celery import Celery

from ..schemas import Event, load_event

from .errors import PermanentError
from ..compose import configure, worker_runtime
from .integrations.followup import JsonResponse, TimedSuprsend
from .registry import Handler, Registry
from .settings import Settings
from .stores.store import Timeline
from .messages import is_echo, message_event
from .worker.runtime import WorkerRuntime
from .worker.tasks import run_handler

__all__ = ["FollowupRecorder", "Outcome", "Outcomes", "RecordedFollowup", "SyncDispatcher", "dispatch_sync",
           "drain", "isolated_settings"]

RAN, SKIPPED, FAILED = "ran", "skipped", "failed"


@dataclasses.dataclass(frozen=True)
class RecordedFollowup:
    """One follow-up event a handler sent, as SuprSend would have received it.

    `properties` are the handler's own (without `suprhook_causation` and the SDK's `$`-fields, which are
    in `causation` and `body`); `body` is the exact JSON the SDK posted.
    """

    event_name: str
    distinct_id: str
    properties: dict[str, Any]
    idempotency_key: str | None
    handler: str | None
    causation: dict[str, Any]
    tenant_id: str | None = None
    brand_id: str | None = None
    attachments: tuple[str, ...] = ()
    bulk: bool = False
    body: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any], bulk: bool) -> "RecordedFollowup":
        props = dict(body.get("properties") or {})
        causation = props.pop("suprhook_causation", None) or {}
        attachments = tuple(a.get("url") or a.get("name") or "" for a in props.get("$attachments") or ()
                            if isinstance(a, dict))
        props = {k: v for k, v in props.items() if not k.startswith("$")}
        return cls(event_name=body.get("event", ""), distinct_id=body.get("distinct_id", ""), properties=props,
                   idempotency_key=body.get("$idempotency_key"), handler=causation.get("handler"),
                   causation=causation, tenant_id=body.get("tenant_id"), brand_id=body.get("brand_id"),
                   attachments=attachments, bulk=bulk, body=dict(body))


class FollowupRecorder(TimedSuprsend):
    """A SuprSend client that records instead of sending.

    Everything up to the HTTP request is real (suprhook's checks and idempotency keys, the SDK's schema
    validation and signature). `followups` holds the events SuprSend would have accepted, one per
    idempotency key (SuprSend drops a repeated key); `requests` every request body. Set `fail_next` to
    a list of HTTP statuses (`[503]`) to answer the next requests with them: a 5xx or 429 makes the
    handler fail and its task retry, as in production.
    """

    def __init__(self, *, fail_next: Iterable[int] = ()) -> None:
        self.base_url_setting = "https://suprsend.test/"  # never resolved: nothing is sent
        super().__init__(f"suprhookTest{uuid.uuid4().hex[:12]}", f"test-secret-{uuid.uuid4().hex}",
                         base_url=self.base_url_setting, timeout=1.0)
        self.fail_next: list[int] = list(fail_next)
        self.requests: list[Any] = []
        self.followups: list[RecordedFollowup] = []
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def request(self, method: str, url: str, body: Any = None) -> requests.Response:
        self.prepare_request(method, url, body)  # the SDK signs here, as it would for SuprSend
        with self._lock:
            self.requests.append(body)
            if self.fail_next:
                code = self.fail_next.pop(0)
                return JsonResponse(code, {"error": {"type": "recorded_failure", "message": f"planned {code}"},
                                        "records": []})
            if url.endswith("/bulk/event/"):
                return JsonResponse(207, {"records": [{"status": "success", "status_code": 202,
                                                    "message_id": self._accept(e, bulk=True)} for e in body]})
            return JsonResponse(202, {"status": "success", "message_id": self._accept(body, bulk=False)})

    def _accept(self, event: Mapping[str, Any], bulk: bool) -> str:
        key = event.get("$idempotency_key") or str(uuid.uuid4())
        if key not in self._keys:
            self._keys.add(key)
            self.followups.append(RecordedFollowup.from_body(event, bulk))
        return f"msg-{uuid.uuid5(uuid.NAMESPACE_OID, key).hex[:12]}"

    def events_named(self, event_name: str) -> list[RecordedFollowup]:
        """The recorded follow-ups with this event name."""
        return [f for f in self.followups if f.event_name == event_name]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.followups.clear()
            self._keys.clear()
            self.fail_next.clear()

    def __repr__(self) -> str:
        return f"FollowupRecorder({len(self.followups)} follow-ups)"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one handler did with one event: `status` is "ran", "skipped" (its `state=` filter did not
    match the conversation) or "failed" (then `exception` is set)."""

    handler: str
    status: str
    event_id: str
    exception: BaseException | None = None
    followups: tuple[RecordedFollowup, ...] = ()

    @property
    def will_retry(self) -> bool:
        """In the worker, this failure would be retried (any exception but PermanentError)."""
        return self.status == FAILED and not isinstance(self.exception, PermanentError)

    def __repr__(self) -> str:
        error = f", exception={type(self.exception).__name__}: {self.exception}" if self.exception else ""
        return f"Outcome({self.handler!r}, {self.status!r}{error}, followups={len(self.followups)})"


class Outcomes(list[Outcome]):
    """The outcomes of one dispatch, in handler order, with lookups for assertions."""

    def __init__(self, items: Iterable[Outcome] = (), event: Event | None = None, echo: bool = False) -> None:
        super().__init__(items)
        self.event, self.echo = event, echo

    @property
    def handlers(self) -> list[str]:
        return [o.handler for o in self]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self if o.status == FAILED]

    @property
    def followups(self) -> list[RecordedFollowup]:
        return [f for o in self for f in o.followups]

    def get(self, handler: str) -> Outcome:
        """The outcome of `handler`: its full name, or just the function name."""
        found = [o for o in self if o.handler == handler or o.handler.rsplit(".", 1)[-1] == handler]
        if len(found) != 1:
            raise KeyError(f"{handler!r}: {'no' if not found else 'several'} such handler ran; ran: {self.handlers}")
        return found[0]

    def followup(self, event_name: str) -> RecordedFollowup:
        """The one follow-up named `event_name`; AssertionError (saying what was sent) if not exactly one."""
        found = [f for f in self.followups if f.event_name == event_name]
        if len(found) != 1:
            sent = [(f.handler, f.event_name) for f in self.followups]
            failed = {o.handler: repr(o.exception) for o in self.failed}
            raise AssertionError(f"expected one {event_name!r} follow-up, got {len(found)}; sent: {sent}"
                                 + (f"; failed handlers: {failed}" if failed else ""))
        return found[0]


# --------------------------------------------------------------------------------------------------
# Settings for in-process runs

@functools.cache
def _process_data_dir() -> str:
    """One temporary directory per test process, removed at exit."""
    path = tempfile.mkdtemp(prefix="suprhook-test-")
    atexit.register(shutil.rmtree, path, True)
    return path


def isolated_settings(config: Mapping[str, Any] | None = None, data_dir: str | None = None) -> Settings:
    """Settings for tests: development mode, SQLite stores under `data_dir` (default: a temporary
    directory for this process), the embedded broker, no auth. The environment is ignored; `config`
    (keys as the environment variables) wins."""
    root = data_dir or _process_data_dir()
    base = {"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": root,
            "CELERY_BROKER_URL": f"sqla+sqlite:///{root}/broker.sqlite3",
            "SUPRHOOK_DEDUP_URL": f"sqlite:///{root}/dedup.sqlite3",
            "SUPRHOOK_STORE_URL": f"sqlite:///{root}/events.sqlite3",
            "SUPRHOOK_CONVERSATION_URL": f"sqlite:///{root}/conversations.sqlite3",
            "SUPRHOOK_RATE_LIMIT": "0", "SUPRHOOK_REFUSAL_LIMIT": "0"}
    return Settings.load({**base, **dict(config or {})}, environ={})


# --------------------------------------------------------------------------------------------------
# Running handlers


def _load(payload: Any) -> Event:
    if isinstance(payload, Event):
        return payload
    if isinstance(payload, (bytes, str)):
        payload = json.loads(payload)
    return load_event(payload)


def _select(handlers: Sequence[Handler], names: Iterable[str] | None) -> list[Handler]:
    if names is None:
        return list(handlers)
    wanted = set(names)
    return [h for h in handlers if h.name in wanted or h.name.rsplit(".", 1)[-1] in wanted]


def _runtime(settings: Settings, recorder: FollowupRecorder | None) -> WorkerRuntime:
    return worker_runtime(settings, suprsend=recorder)  # None: the real SDK client for the settings' workspace


def _run_one(handler: Handler, event: Event, runtime: WorkerRuntime, recorder: FollowupRecorder | None,
             attempt: int) -> Outcome:
    before = len(recorder.followups) if recorder is not None else 0
    try:
        ran = run_handler(handler, event, runtime, attempt=attempt)
        status, error = (RAN if ran else SKIPPED), None
    except Exception as exc:  # the worker would record it and retry (or not: PermanentError)
        status, error = FAILED, exc
    sent = tuple(f for f in (recorder.followups[before:] if recorder is not None else ())
                 if f.handler == handler.name and f.causation.get("event_id") == event.event_id)
    return Outcome(handler.name, status, event.event_id, error, sent)


def dispatch_sync(payload: Any, registry: Registry | None = None, followup: FollowupRecorder | bool | None = None,
                  *, settings: Settings | None = None, config: Mapping[str, Any] | None = None,
                  handlers: Iterable[str] | None = None, attempt: int = 0, raise_errors: bool = False) -> Outcomes:
    """Run every handler of `registry` (default: `on`) that matches `payload` in this process; return
    their outcomes.

    `payload`: a webhook dict (as from `make_status_event` / `make_inbound_message`), its JSON text, or
    an `Event`. `followup`: a `FollowupRecorder` to collect follow-ups in (default: a new one; False
    sends them for real with `settings`). `settings` / `config`: see `isolated_settings`; conversation
    state and the event log persist in its data dir, so consecutive calls make a conversation.
    `handlers`: run only these (full or function names). `attempt`: what handlers see as `attempt`.
    `raise_errors`: re-raise the first handler exception after all have run. Every call runs the
    handlers again (no run bookkeeping): dispatching one payload twice runs them twice.
    """
    settings = settings or isolated_settings(config)
    registry = configure(settings, registry=registry).registry
    recorder = FollowupRecorder() if followup is None or followup is True else followup or None
    return _dispatch(payload, registry, _runtime(settings, recorder), recorder, handlers, attempt, raise_errors)


def _dispatch(payload: Any, registry: Registry, runtime: WorkerRuntime, recorder: FollowupRecorder | None,
              handlers: Iterable[str] | None, attempt: int, raise_errors: bool) -> Outcomes:
    event = _load(payload)
    if is_echo(event, runtime.settings.own_numbers):
        return Outcomes((), event, echo=True)
    matched = _select(registry.match(event), handlers)
    store = runtime.event_store()
    store.record_accepted(event, [h.name for h in matched])  # for event.timeline, as the receiver logs it
    event = dataclasses.replace(event, timeline=Timeline(store, event.reference.supr_nid, event))
    outcomes = Outcomes((_run_one(h, event, runtime, recorder, attempt) for h in matched), event)
    if raise_errors and outcomes.failed:
        raise outcomes.failed[0].exception  # type: ignore[misc]
    return outcomes


class SyncDispatcher:
    """`dispatch_sync` bound to one registry, settings and recorder (what the pytest fixture gives you)."""

    def __init__(self, registry: Registry | None = None, settings: Settings | None = None,
                 recorder: FollowupRecorder | None = None) -> None:
        self.settings = settings or isolated_settings()
        self.registry = configure(self.settings, registry=registry).registry
        self.recorder = recorder or FollowupRecorder()
        self.runtime = _runtime(self.settings, self.recorder)

    def __call__(self, payload: Any, *, handlers: Iterable[str] | None = None, attempt: int = 0,
                 raise_errors: bool = False) -> Outcomes:
        return _dispatch(payload, self.registry, self.runtime, self.recorder, handlers, attempt, raise_errors)

    @property
    def followups(self) -> list[RecordedFollowup]:
        """Every follow-up recorded so far in this test."""
        return list(self.recorder.followups)


def drain(celery: Celery, registry: Registry, settings: Settings, recorder: FollowupRecorder | None = None,
          queues: Iterable[str] | None = None) -> Outcomes:
    """Take every task the receiver queued on `celery`'s broker and run it in-process (`run_handler`).

    For the embedded broker of a test app: what a worker would have done, without a worker.
    """
    by_task = {h.task_name: h for h in registry}
    names = sorted(set(queues or ()) or {settings.default_queue} | {h.queue for h in registry if h.queue})
    outcomes = Outcomes()
    runtime = _runtime(settings, recorder)
    with celery.connection_for_read() as conn:
        for name in names:
            queue = conn.SimpleQueue(name, no_ack=True)
            try:
                while True:
                    try:
                        message = queue.get(block=False)
                    except queue.Empty:
                        break
                    args, _kwargs, _embed = message.decode()
                    handler = by_task.get(message.headers.get("task"))
                    if handler is None:
                        continue
                    body = args[0]
                    event = message_event(body)  # as the worker does
                    event = dataclasses.replace(event, timeline=Timeline(runtime.event_store(),
                                                                          event.reference.supr_nid, event))
                    outcomes.append(_run_one(handler, event, runtime, recorder, 0))
            finally:
                queue.close()
    return outcomes
