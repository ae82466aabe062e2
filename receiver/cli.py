"""`suprhook`: run the receiver and a worker locally, send sample webhooks, check the configuration,
list routes, inspect and replay the event log, start a worker."""
from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

from ..handlers import ConfigError, Settings
from ..handlers.settings import redact_url

if TYPE_CHECKING:
    from ..compose import Core

DEFAULT_EXAMPLE = "examples.quickstart"
SAMPLE = Path("examples/payloads/whatsapp_status.json")
DEFAULT_URL = "http://127.0.0.1:8000/webhooks/suprsend"
REPLAY_BATCH = 50


class Progress:
    """`label done/total (pct%)` for long commands: rewritten in place on a terminal, else one line per
    `every` items (and the last), so logs and pipes get a readable trail."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None, every: int | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.every = every or max(1, total // 10)
        self.started = time.monotonic()

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if self.tty or self.done >= self.total or self.done % self.every < n:
            pct = 100 * self.done // self.total if self.total else 100
            line = f"  {self.label} {self.done}/{self.total} ({pct}%){'  ' + note if note else ''}"
            end = "\r" if self.tty and self.done < self.total else "\n"
            self.stream.write(line + end)
            self.stream.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def dev_console_token(data_dir: Path) -> str | None:
    """`suprhook dev` always serves the console: without SUPRHOOK_CONSOLE_TOKEN it sets one, kept in
    <data dir>/console-token (mode 600) so a restart keeps sessions. Returns it; None when the user set their own."""
    if os.environ.get("SUPRHOOK_CONSOLE_TOKEN") or os.environ.get("SUPRHOOK_CONSOLE_READONLY_TOKEN"):
        return None
    import secrets

    path = data_dir / "console-token"
    token = path.read_text().strip() if path.exists() else ""
    if not token:
        data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(18)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    os.environ["SUPRHOOK_CONSOLE_TOKEN"] = token
    return token


def cmd_dev(args: argparse.Namespace) -> int:
    """Receiver + worker on the embedded broker, data under ./var, for local development."""
    os.environ.setdefault("SUPRHOOK_ENV", "development")
    os.environ.setdefault("SUPRHOOK_DATA_DIR", str(Path("var").resolve()))
    if not os.environ.get("SUPRHOOK_HANDLERS"):
        if not Path(*DEFAULT_EXAMPLE.split(".")).with_suffix(".py").exists():
            print("suprhook dev: set SUPRHOOK_HANDLERS=your.module (comma-separated)", file=sys.stderr)
            return 2
        os.environ["SUPRHOOK_HANDLERS"] = DEFAULT_EXAMPLE
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    console_token = dev_console_token(Path(os.environ["SUPRHOOK_DATA_DIR"]))

    from .app import create_app

    try:
        app = create_app()
    except ConfigError as exc:
        print(f"suprhook dev: {exc}", file=sys.stderr)
        return 2
    settings: Settings = app.extensions["suprhook"].settings
    from ..handlers.worker.shutdown import die_with_parent

    # PR_SET_PDEATHSIG (kernel-enforced, needs nothing in the worker) rather than a pipe the worker would
    # have to watch: even a SIGKILLed `suprhook dev` takes its worker with it. SIGTERM, not SIGKILL: the
    # worker shuts down warm, so its running handlers finish and ack (the embedded broker never redelivers).
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "suprhook.celery_worker", "worker",
                               "--loglevel", args.loglevel, "--concurrency", str(args.concurrency),
                               "--without-gossip", "--without-mingle",
                               # its own node name: RabbitMQ gives a node's control queue to one connection
                               "--hostname", f"suprhook-dev-{os.getpid()}@%h"],
                              preexec_fn=die_with_parent(signal.SIGTERM))
    state = {"stopping": False, "died": None}
    lock = threading.RLock()  # the signal handler may run while the main thread holds it

    class Stop(BaseException):  # not an Exception: nothing on the way may swallow it
        pass

    def on_signal(signum: int, _frame: object) -> None:
        with lock:
            first, state["stopping"] = not state["stopping"], True
        if first:
            raise Stop(signum)
        worker.kill()  # a second signal while the worker shuts down: do not wait for it

    def watch_worker() -> None:
        code = worker.wait()
        with lock:
            if state["stopping"]:
                return
            state["died"] = code
        print(f"suprhook dev: the worker exited on its own with {code}; stopping", file=sys.stderr, flush=True)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    url = f"http://{args.host}:{args.port}/webhooks/suprsend"
    auth = f" -H {shlex.quote(settings.auth_header + ': Bearer $TOKEN')}" if settings.auth_tokens else ""
    print(f"\nsuprhook dev: handlers {', '.join(settings.handler_modules)}; broker {redact_url(settings.broker_url)}")
    for route in list(app.extensions["suprhook"].routes.values())[1:]:
        print(f"suprhook dev: endpoint {route.name}: http://{args.host}:{args.port}{route.url} "
              f"accepts {route.endpoint.describe()}")
    sample = f"  suprhook send-sample --url {url}\n"
    if SAMPLE.exists():  # in a clone of this repository: its sample payloads, for curl
        sample += (f"\nor with curl\n\n  curl -sS {url} -H 'Content-Type: application/json'{auth} --data @{SAMPLE}\n")
    print(f"suprhook dev: post a sample webhook with\n\n{sample}\nor any channel, vendor, status or reply with\n\n"
          f"  suprhook send-sample --url {url} --type inbound --text YES --vendor meta\n", flush=True)
    console_url = f"http://{args.host}:{args.port}/console/"
    print(f"suprhook dev: event console {console_url} — sign in with "
          + (f"the token {console_token}" if console_token else "your SUPRHOOK_CONSOLE_TOKEN") + "\n", flush=True)
    try:
        # SIGTERM is how docker, systemd and supervisors stop us; SIGINT and SIGHUP too, unless this process
        # was started ignoring them (nohup, `&` in a script): then whoever started it meant it so.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if sig == signal.SIGTERM or signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, on_signal)
        threading.Thread(target=watch_worker, daemon=True).start()
        from werkzeug.serving import run_simple

        run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    except Stop:
        pass
    finally:
        with lock:
            state["stopping"] = True
        if worker.poll() is None:
            worker.terminate()  # warm shutdown: running handlers finish
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print("suprhook dev: the worker did not stop in 15 s; killing it", file=sys.stderr, flush=True)
                worker.kill()
                worker.wait()
    if state["died"] is not None:
        return 1
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def endpoint_routes() -> tuple[list[Any], list[str]]:
    """The endpoints the environment declares (default first) with their credentials resolved, and the
    SUPRHOOK_ENDPOINT_<NAME>_* variables set for no declared endpoint. Raises ConfigError."""
    from ..handlers.settings import config_source

    from .endpoints import build_routes, declared_endpoints, stray_variables

    source = config_source()
    named = declared_endpoints(source)
    return build_routes(Settings.load(), source, named), stray_variables(source, named)


def handler_modules_shown(settings: Settings) -> tuple[tuple[str, ...], str | None]:
    """The handler modules `routes` and `check-config` load, and a note when SUPRHOOK_HANDLERS is unset.

    One rule for both, the one `suprhook dev` uses: SUPRHOOK_HANDLERS; else, in a clone of this repository
    (./examples/quickstart.py exists), the quickstart example `suprhook dev` would run; else none."""
    if settings.handler_modules:
        return settings.handler_modules, None
    if Path(*DEFAULT_EXAMPLE.split(".")).with_suffix(".py").exists():
        return (DEFAULT_EXAMPLE,), (f"SUPRHOOK_HANDLERS is unset: showing {DEFAULT_EXAMPLE}, which `suprhook dev` "
                                    "loads; a receiver or worker without it runs no handler")
    return (), "SUPRHOOK_HANDLERS is unset: no handler would run (set SUPRHOOK_HANDLERS=your.module)"


def cmd_routes(args: argparse.Namespace) -> int:
    """Print the webhook endpoints (path, what each accepts, its authentication), then every registered
    handler with its filters and options."""
    from ..compose import configure

    try:
        settings = Settings.load()
        routes, stray = endpoint_routes()
        modules, note = handler_modules_shown(settings)
        notes = [f"({note})"] if note else []
        registry = configure(settings, handler_modules=modules).registry
    except ConfigError as exc:
        print(f"suprhook routes: {exc}", file=sys.stderr)
        return 2
    # Credentials are summarized (how many tokens, from which setting), never shown.
    _print_table([("ENDPOINT", "PATH", "ACCEPTS", "AUTH")] +
                 [(r.name, r.url, r.endpoint.describe(), r.auth()) for r in routes])
    if stray:
        print(f"(set for no endpoint of SUPRHOOK_ENDPOINTS: {', '.join(stray)}; endpoints declared in code, "
              "with create_app(endpoints=...) or init_app(endpoints=...), are not listed here)")
    print()
    for note in notes:
        print(note + "\n")
    rows = [("HANDLER", "FILTERS", "QUEUE", "RETRIES", "RATE")]
    for h in registry:
        rows.append((h.name, " OR ".join(f.describe() for f in h.filters), h.queue or settings.default_queue,
                     str(settings.max_retries if h.max_retries is None else h.max_retries),
                     h.rate_limit or "-"))
    _print_table(rows)
    if len(rows) == 1 and not notes:
        print("(no handlers registered: set SUPRHOOK_HANDLERS)")
    return 0


def _loaded() -> "Core":
    """The settings and the handler registry, as the receiver and the worker load them."""
    from ..compose import configure

    return configure(Settings.load())


def cmd_events(args: argparse.Namespace) -> int:
    """List recent events with each handler's outcome (from the event log)."""
    from ..handlers.stores.store import EventStore

    store = EventStore(Settings.load().store_url)  # the log alone: no handler module is imported
    rows = store.recent_events(args.limit, event_ids=args.event or ())
    for row in rows:
        print(f"{row['event_id']}  {row['received_at']:%Y-%m-%d %H:%M:%S}  {row['event_type']:<16} "
              f"{row['channel']:<9} {row['status'] or '-':<10} {row['supr_nid'] or '-'}")
        for run in row["runs"]:
            error = f"  {run['error'].splitlines()[0]}" if run["error"] else ""  # the traceback: the console
            print(f"    {run['status']:<10} x{run['attempts']}  {run['handler']}{error}")
    if not rows:
        print("(no events logged yet)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-dispatch handler runs that did not succeed: by event id, by time range, or every dead run."""
    from datetime import datetime

    from ..compose import producer
    from ..handlers.stores.store import DONE, EventStore
    from ..handlers.replay import redispatch

    try:
        core = _loaded()
        settings = core.settings
        since = datetime.fromisoformat(args.since) if args.since else None
        until = datetime.fromisoformat(args.until) if args.until else None
    except (ConfigError, ValueError) as exc:
        print(f"suprhook replay: {exc}", file=sys.stderr)
        return 2
    store = EventStore(settings.store_url)
    selected = store.select_runs(event_ids=args.event or (), since=since, until=until,
                                 statuses=["dead"] if args.dead else ())
    todo = [(r["event_id"], r["handler"]) for r in selected if r["status"] not in DONE]
    print(f"{len(selected)} handler runs selected, {len(selected) - len(todo)} already succeeded, "
          f"{len(todo)} to re-run")
    if args.dry_run or not todo:
        for event_id, handler in todo:
            print(f"  would re-run {handler} for {event_id}")
        return 0
    celery = producer(settings, core.registry)
    sent, problems = 0, []
    progress = Progress("re-dispatched", len(todo))
    for start in range(0, len(todo), REPLAY_BATCH):
        batch = todo[start:start + REPLAY_BATCH]
        done, issues = redispatch(store, celery, core.registry, settings, batch)
        sent, problems = sent + done, problems + issues
        progress.advance(len(batch), f"{len(problems)} skipped" if problems else "")
    for problem in problems:
        print(f"  skipped: {problem}", file=sys.stderr)
    print(f"{sent} handler runs re-dispatched in {progress.elapsed:.1f} s"
          + (f", {len(problems)} skipped" if problems else ""))
    return 0 if not problems else 1


def worker_command(core: "Core", args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The `celery worker` command line `suprhook worker` runs: our app, every queue the registry uses,
    no gossip/mingle (the workers share nothing through them), and a sensible concurrency."""
    settings = core.settings
    queues = args.queues or ",".join(sorted({settings.default_queue} | {h.queue for h in core.registry if h.queue}))
    concurrency = args.concurrency or (2 if settings.embedded_broker else os.cpu_count() or 2)
    return [sys.executable, "-m", "celery", "-A", "suprhook.celery_worker", "worker", "--loglevel", args.loglevel,
            "--queues", queues, "--concurrency", str(concurrency), "--without-gossip", "--without-mingle", *extra]


def cmd_worker(args: argparse.Namespace, extra: list[str] | None = None) -> int:
    """Start Celery's worker for your handlers, with suprhook's defaults; unknown options go to Celery."""
    from ..compose import configure, load_settings

    try:
        core = configure(load_settings())
    except ConfigError as exc:
        print(f"suprhook worker: {exc}", file=sys.stderr)
        return 2
    settings = core.settings
    argv = worker_command(core, args, [a for a in (extra or []) if a != "--"])
    if args.dry_run:
        print(shlex.join(argv))
        return 0
    print(f"suprhook worker: handlers {', '.join(settings.handler_modules) or '(none: set SUPRHOOK_HANDLERS)'}; "
          f"broker {redact_url(settings.broker_url)}", flush=True)
    cwd = os.getcwd()  # the handler modules are imported from here, as `suprhook dev` does
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [cwd, os.environ.get("PYTHONPATH")]))
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover


# -- send-sample ----------------------------------------------------------------------------------


def _sign(secret: str, body: str) -> dict[str, str]:
    """Standard Webhooks headers for `body`, as SuprSend signs with a `whsec_` secret."""
    import uuid
    from datetime import datetime, timezone

    from standardwebhooks import Webhook

    raw = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    msg_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(raw).sign(msg_id, now, body)}


def _first(value: str | None) -> str | None:
    return next((part.strip() for part in (value or "").split(",") if part.strip()), None)


def build_sample(args: argparse.Namespace) -> dict[str, Any]:
    """The payload `send-sample` posts for these arguments (a fresh event each call)."""
    from ..schemas.samples import make_inbound_message, make_status_event

    common: dict[str, Any] = {"channel": args.channel, "vendor": args.vendor or None, "phone": args.phone,
                              "distinct_id": args.distinct_id, "workflow": args.workflow, "template": args.template}
    if args.type == "status":
        error = None
        if args.error:
            code, _, message = args.error.partition(":")
            error = (code or None, message or None)
        status = args.status or ("failed" if error else "delivered")
        return make_status_event(status, error=error, **common)
    button = None
    if args.button:
        payload, _, title = args.button.partition(":")
        button = (payload, title or args.text)
    return make_inbound_message(args.text, button=button, **common)


def cmd_send_sample(args: argparse.Namespace) -> int:
    """Post realistic sample webhooks (any channel, type, vendor, status) to a running receiver."""
    import requests

    token = args.token if args.token is not None else _first(os.environ.get("SUPRHOOK_AUTH_TOKENS"))
    header = args.auth_header or os.environ.get("SUPRHOOK_AUTH_HEADER") or "Authorization"
    secret = args.signing_secret if args.signing_secret is not None \
        else _first(os.environ.get("SUPRHOOK_SIGNING_SECRET"))
    try:
        first = build_sample(args)
        if secret:
            _sign(secret, "{}")  # a malformed secret is a usage error, not a traceback per request
    except ValueError as exc:
        print(f"suprhook send-sample: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"suprhook send-sample: the signing secret is not 'whsec_' + base64 ({type(exc).__name__})",
              file=sys.stderr)
        return 2
    if args.print:
        print(json.dumps(first, indent=2))
        return 0
    session = requests.Session()
    counts: dict[str, int] = {}
    progress = Progress("sent", args.count) if args.count > 1 else None
    verbose = args.count <= 10 or args.verbose
    for number in range(1, args.count + 1):
        payload = first if number == 1 else build_sample(args)
        body = json.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if token:
            headers[header] = f"Bearer {token}" if header.lower() == "authorization" else token
        if secret:
            headers.update(_sign(secret, body))
        started = time.monotonic()
        try:
            response = session.post(args.url, data=body.encode(), headers=headers, timeout=args.timeout)
        except requests.RequestException as exc:
            print(f"suprhook send-sample: cannot reach {args.url}: {type(exc).__name__} "
                  f"(is the receiver running? `suprhook dev` serves {DEFAULT_URL})", file=sys.stderr)
            return 1
        code = str(response.status_code)
        counts[code] = counts.get(code, 0) + 1
        if verbose or response.status_code // 100 != 2:
            print(f"[{number}/{args.count}] {response.status_code} {response.text.strip()} "
                  f"({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
        if progress is not None:
            progress.advance(note=" ".join(f"{k}x{v}" for k, v in sorted(counts.items())))
    if args.count > 1:
        elapsed = progress.elapsed if progress else 0.0
        summary = ", ".join(f"{v} x {k}" for k, v in sorted(counts.items()))
        print(f"{args.count} {args.type} webhooks sent to {args.url}: {summary} in {elapsed:.1f} s "
              f"({args.count / elapsed if elapsed else 0:.0f}/s)")
    return 0 if all(code.startswith("2") for code in counts) else 1


# -- check-config ---------------------------------------------------------------------------------

OK, FAIL, WARN = "\u2713", "\u2717", "!"


def _probe(name: str, target: str, check: Callable[[], object]) -> tuple[str, str, str]:
    from ..handlers.web.dispatch import explain

    try:
        check()
        return OK, name, target
    except Exception as exc:
        return FAIL, name, f"{target}: {explain(exc)}"  # the reason, with passwords masked


def config_checks() -> list[tuple[str, str, str]]:
    """(mark, check, detail) rows for `check-config`; URLs redacted, secrets never shown."""
    from .. import compose
    from ..handlers.stores.conversation import open_conversations
    from ..handlers.web.dispatch import explain

    # The receiver's composition steps (suprhook.compose.build_web), one at a time, each failure on its row.
    rows: list[tuple[str, str, str]] = []
    try:
        settings = compose.load_settings()
    except ConfigError as exc:
        return [(FAIL, "settings", str(exc))]
    rows.append((OK, "settings", f"{settings.env} mode, data dir {settings.data_dir}"))
    try:
        settings.require_auth()
        parts = [f"{len(settings.auth_tokens)} token(s) in {settings.auth_header}"] if settings.auth_tokens else []
        parts += [f"{len(settings.signing_secrets)} signing secret(s)"] if settings.signing_secrets else []
        compose.request_guard(settings)  # parses the allowlist, the signing secrets and the rate limit
        mark = OK if parts or settings.production else WARN
        rows.append((mark, "authentication", ", ".join(parts) or (
            "none (SUPRHOOK_ALLOW_UNAUTHENTICATED)" if settings.production else "none (fine for development)")))
    except ConfigError as exc:
        rows.append((FAIL, "authentication", str(exc)))
    try:
        settings.require_metrics_guard()
        if not settings.metrics_enabled:
            rows.append((OK, "metrics", "GET /metrics not served on the webhook port (SUPRHOOK_METRICS=off)"))
        elif settings.metrics_token:
            rows.append((OK, "metrics", "GET /metrics needs the bearer token SUPRHOOK_METRICS_TOKEN"))
        else:
            rows.append((WARN, "metrics", "GET /metrics open to anyone who reaches the webhook port " + (
                "(SUPRHOOK_METRICS_PUBLIC)" if settings.production else "(fine for development)")))
    except ConfigError as exc:
        rows.append((FAIL, "metrics", str(exc)))
    if any(k.startswith("SUPRHOOK_ENDPOINT") and v for k, v in os.environ.items()):
        try:
            routes = compose.routes(settings)
            rows.append((OK, "endpoints", ", ".join(f"{r.name} {r.url}" for r in routes)))
        except ConfigError as exc:
            rows.append((FAIL, "endpoints", str(exc)))
    modules, note = handler_modules_shown(settings)  # the same modules `suprhook routes` lists
    registry = None
    try:
        registry = compose.configure(settings, handler_modules=modules).registry
        count = len(registry)
        loaded = f"{count} handler(s) from {', '.join(modules)}" if modules else ""
        rows.append((WARN if note else OK, "handlers", f"{loaded} ({note})" if loaded and note else loaded or note))
    except ConfigError as exc:
        rows.append((FAIL, "handlers", str(exc)))
    if registry is None:
        from ..handlers.registry import Registry

        registry = Registry()  # the handler modules failed to load: check the rest without them
    celery = dedup = store = None
    try:
        celery = compose.producer(settings, registry)
        dedup = compose.dedup_store(settings)
        store = compose.event_log(settings)
    except Exception as exc:
        failing = "broker" if celery is None else "dedup" if dedup is None else "event log"
        url = settings.broker_url if celery is None else settings.dedup_url if dedup is None else settings.store_url
        rows.append((FAIL, failing, f"{redact_url(url)}: {explain(exc)}"))
    dispatcher = compose.dispatcher(settings, registry, celery, dedup, store) if store is not None else None
    if dispatcher is not None:
        problems = dispatcher.probe()
        targets = {"broker": settings.broker_url, "dedup": settings.dedup_url, "store": settings.store_url}
        for name, exc in problems.items():  # the reason in full here, where /readyz gives only a short one
            rows.append((OK if exc is None else FAIL, "event log" if name == "store" else name,
                         redact_url(targets[name]) + ("" if exc is None else f": {explain(exc)}")))
    rows.append(_probe("conversations", redact_url(settings.conversation_url),
                       lambda: open_conversations(settings.conversation_url, settings.conversation_ttl).load(
                           "suprhook:check-config")))
    if settings.rate_limit_url:
        import redis

        rows.append(_probe("rate limit", redact_url(settings.rate_limit_url), lambda: redis.Redis.from_url(
            settings.rate_limit_url, socket_timeout=1, socket_connect_timeout=1).ping()))
    users = [h.name for h in registry if "followup" in h.params]
    if settings.suprsend_workspace_key and settings.suprsend_workspace_secret:
        rows.append((OK, "follow-ups", f"workspace key {settings.suprsend_workspace_key[:4]}..., "
                                        f"{settings.suprsend_base_url or 'SuprSend API'}"))
    else:
        rows.append((FAIL if users else WARN, "follow-ups",
                     "SUPRSEND_WORKSPACE_KEY / SUPRSEND_WORKSPACE_SECRET unset" +
                     (f": needed by {', '.join(users)}" if users else " (only needed by handlers that use followup)")))
    return rows


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the settings and handler modules, and reach the broker, the dedup store, the event log, the
    conversation store and the rate-limit Redis (exit status 1 if anything failed)."""
    rows = config_checks()
    width = max(len(name) for _, name, _ in rows)
    for mark, name, detail in rows:
        print(f"  {mark} {name.ljust(width)}  {detail}")
    failed = [name for mark, name, _ in rows if mark == FAIL]
    print(f"\n{'configuration OK' if not failed else 'problems: ' + ', '.join(failed)}")
    return 1 if failed else 0


EPILOG = """\
examples:
  suprhook dev                                    receiver on :8000 + a worker, embedded broker, ./var
  suprhook send-sample --type inbound --text YES  post a sample reply to it
  suprhook check-config                           validate the environment and reach every store
  suprhook routes                                 which handler runs for what
  suprhook events --limit 5                       recent events and each handler's outcome
  suprhook replay --dead                          re-run handler runs that exhausted their retries
  suprhook worker --concurrency 8                 a production worker for SUPRHOOK_HANDLERS

Settings come from the environment (SUPRHOOK_*, CELERY_BROKER_URL, SUPRSEND_*); see README "Configuration".
"""

EXAMPLES = {
    "dev": """\
examples:
  suprhook dev
  SUPRHOOK_HANDLERS=myapp.webhooks suprhook dev --port 9000 --concurrency 4""",
    "routes": """\
examples:
  suprhook routes                                   the handlers of SUPRHOOK_HANDLERS (or the quickstart)
  SUPRHOOK_HANDLERS=myapp.webhooks suprhook routes
  SUPRHOOK_ENDPOINTS="status:/webhooks/suprsend/status:event_type=status" suprhook routes

Endpoints come from SUPRHOOK_ENDPOINTS (name:/path[:event_type=a|b][:channel=c|d]; ...); AUTH says how
many tokens and which setting they come from, never the tokens. Endpoints declared in code are not listed.""",
    "send-sample": """\
examples:
  suprhook send-sample                                          a gupshup WhatsApp "delivered" status
  suprhook send-sample --status failed --vendor twilio --channel sms --error 30003:"Unreachable handset"
  suprhook send-sample --type inbound --text YES --workflow "Order Placed"
  suprhook send-sample --type inbound --vendor meta --button CONFIRM:"Yes, confirm"
  suprhook send-sample --count 500 --url https://hooks.example.com/webhooks/suprsend --token "$TOKEN"
  suprhook send-sample --type inbound --print > reply.json       just print the payload

The token defaults to the first of SUPRHOOK_AUTH_TOKENS (sent in SUPRHOOK_AUTH_HEADER), the signing secret
to the first of SUPRHOOK_SIGNING_SECRET: with the receiver's own environment, send-sample just works.
Exit status 1 if any response is not 2xx.""",
    "check-config": """\
examples:
  suprhook check-config
  SUPRHOOK_ENV=production CELERY_BROKER_URL=redis://redis:6379/0 suprhook check-config

Prints one line per check (\u2713 ok, \u2717 failed, ! worth a look); exit status 1 if any check failed.""",
    "events": """\
examples:
  suprhook events --limit 50
  suprhook events --event evt_3f2a... evt_9b1c...""",
    "replay": """\
examples:
  suprhook replay --dead --dry-run
  suprhook replay --since 2025-06-01T00:00 --until 2025-06-01T06:00
  suprhook replay --event evt_3f2a...""",
    "worker": """\
examples:
  suprhook worker                                   every queue the handlers use, sensible concurrency
  suprhook worker --concurrency 8 --loglevel WARNING
  suprhook worker --dry-run                         print the celery command instead of running it
  suprhook worker -- --autoscale 8,2                anything after -- (or unknown) goes to celery

Runs `celery -A suprhook.celery_worker worker --queues <default + handler queues> --concurrency <n>
--without-gossip --without-mingle`; n defaults to 2 on the embedded broker, else the CPU count.""",
}


def first_sentence(doc: str) -> str:
    """The docstring's whole first sentence on one line (a sentence may span several docstring lines)."""
    text = " ".join(doc.split())
    return re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]


def _command(sub: Any, name: str, func: Callable[..., int]) -> argparse.ArgumentParser:
    doc = inspect.cleandoc(func.__doc__ or "")
    parser = sub.add_parser(name, help=first_sentence(doc), description=doc, epilog=EXAMPLES.get(name),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="suprhook", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = _command(sub, "dev", cmd_dev)
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    dev.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    dev.add_argument("--loglevel", default="INFO", help="worker log level (default INFO)")

    sample = _command(sub, "send-sample", cmd_send_sample)
    sample.add_argument("--url", default=DEFAULT_URL, help=f"the receiver's webhook URL (default {DEFAULT_URL})")
    sample.add_argument("--type", choices=("status", "inbound"), default="status",
                        help="a delivery status or a user's reply (default status)")
    sample.add_argument("--status", default=None,
                        help="SuprSend's status: triggered, sent, delivered, seen, failed, clicked, ... "
                             "(default delivered, or failed with --error)")
    sample.add_argument("--channel", default="whatsapp", help="whatsapp, sms, ... (default whatsapp)")
    sample.add_argument("--vendor", default="gupshup",
                        help="vendor_name whose callback is included: gupshup, meta, twilio, vonage, infobip, sinch, "
                             "plivo, exotel, kaleyra, karix, messagebird, netcore, msg91, aws_sns or an alias; "
                             "'' for none (default gupshup)")
    sample.add_argument("--error", metavar="CODE[:MESSAGE]", help="the vendor error of a failed status")
    sample.add_argument("--text", default="YES", help="the reply text (--type inbound; default YES)")
    sample.add_argument("--button", metavar="PAYLOAD[:TITLE]", help="a tapped quick-reply button (--type inbound)")
    sample.add_argument("--workflow", default="Order Placed", help="workflow_name (default 'Order Placed')")
    sample.add_argument("--template", default="order-placed", help="template (default order-placed)")
    sample.add_argument("--distinct-id", default="user@example.com", help="the user (default user@example.com)")
    sample.add_argument("--phone", default="+15555555555", help="the user's number (default +15555555555)")
    sample.add_argument("--count", type=int, default=1, help="how many (each a new event; default 1)")
    sample.add_argument("--token", help="auth token (default: first of $SUPRHOOK_AUTH_TOKENS)")
    sample.add_argument("--auth-header", help="header for the token (default $SUPRHOOK_AUTH_HEADER or Authorization)")
    sample.add_argument("--signing-secret", metavar="WHSEC",
                        help="sign with this Standard Webhooks secret (default: first of $SUPRHOOK_SIGNING_SECRET)")
    sample.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    sample.add_argument("--verbose", action="store_true", help="print every response, also with --count > 10")
    sample.add_argument("--print", action="store_true", help="print the payload as JSON and send nothing")

    _command(sub, "check-config", cmd_check_config)
    _command(sub, "routes", cmd_routes)
    events = _command(sub, "events", cmd_events)
    events.add_argument("--limit", type=int, default=20, help="how many recent events (default 20)")
    events.add_argument("--event", nargs="+", help="only these event ids")
    replay = _command(sub, "replay", cmd_replay)
    pick = replay.add_mutually_exclusive_group(required=True)
    pick.add_argument("--event", nargs="+", help="event ids to replay")
    pick.add_argument("--since", help="ISO time: events received from then on (with --until)")
    pick.add_argument("--dead", action="store_true", help="every handler run that exhausted its retries")
    replay.add_argument("--until", help="ISO time: events received until then (with --since)")
    replay.add_argument("--dry-run", action="store_true", help="list what would be re-run, send nothing")
    worker = _command(sub, "worker", cmd_worker)
    worker.add_argument("--concurrency", type=int, help="worker processes (default: 2 on the embedded broker, "
                                                        "else the CPU count)")
    worker.add_argument("--queues", help="comma-separated queues (default: SUPRHOOK_QUEUE + every handler's queue=)")
    worker.add_argument("--loglevel", default="INFO", help="default INFO")
    worker.add_argument("--dry-run", action="store_true", help="print the celery command, do not run it")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "worker":
        return cmd_worker(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "count", 1) < 1:
        parser.error("--count must be at least 1")
    return args.func(args)

if __name__ == "__main__":
    sys.exit(main())
