"""`suprhook`: run the receiver and a worker locally, list routes, start a worker."""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from handlers import ConfigError, Settings, on
from handlers.settings import redact_url
from handlers.loader import load_handler_modules

DEFAULT_EXAMPLE = "examples.quickstart"
SAMPLE = Path("examples/payloads/whatsapp_status.json")


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

    from receiver import create_app

    try:
        app = create_app()
    except ConfigError as exc:
        print(f"suprhook dev: {exc}", file=sys.stderr)
        return 2
    settings: Settings = app.extensions["suprhook"].settings
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_worker", "worker",
                               "--loglevel", args.loglevel, "--concurrency", str(args.concurrency),
                               "--without-gossip", "--without-mingle"])

    def watch_worker() -> None:
        code = worker.wait()
        if code not in (0, -signal.SIGTERM):
            print(f"suprhook dev: the worker exited with {code}; stopping", file=sys.stderr)
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch_worker, daemon=True).start()
    url = f"http://{args.host}:{args.port}/webhooks/suprsend"
    auth = f" -H {shlex.quote(settings.auth_header + ': Bearer $TOKEN')}" if settings.auth_tokens else ""
    print(f"\nsuprhook dev: handlers {', '.join(settings.handler_modules)}; broker {redact_url(settings.broker_url)}")
    print(f"suprhook dev: post a sample webhook with\n\n  curl -sS {url} -H 'Content-Type: application/json'"
          f"{auth} --data @{SAMPLE}\n", flush=True)
    try:
        from werkzeug.serving import run_simple

        run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
    return 0


def cmd_routes(args: argparse.Namespace) -> int:
    """Print every registered handler with its filters and options."""
    try:
        settings = Settings.load()
        if not settings.handler_modules:
            print(f"(SUPRHOOK_HANDLERS is unset: showing {DEFAULT_EXAMPLE}, which `suprhook dev` loads)\n")
        load_handler_modules(settings.handler_modules or [DEFAULT_EXAMPLE])
    except ConfigError as exc:
        print(f"suprhook routes: {exc}", file=sys.stderr)
        return 2
    rows = [("HANDLER", "FILTERS", "QUEUE", "RETRIES", "RATE")]
    for h in on:
        rows.append((h.name, " OR ".join(f.describe() for f in h.filters), h.queue or settings.default_queue,
                     str(settings.max_retries if h.max_retries is None else h.max_retries),
                     h.rate_limit or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if len(rows) == 1:
        print("(no handlers registered: set SUPRHOOK_HANDLERS)")
    return 0


def _loaded() -> Settings:
    settings = Settings.load()
    load_handler_modules(settings.handler_modules)
    return settings


def cmd_events(args: argparse.Namespace) -> int:
    """List recent events with each handler's outcome (from the event log)."""
    from handlers.store import EventStore

    store = EventStore(_loaded().store_url)
    rows = store.recent_events(args.limit, event_ids=args.event or ())
    for row in rows:
        print(f"{row['event_id']}  {row['received_at']:%Y-%m-%d %H:%M:%S}  {row['event_type']:<16} "
              f"{row['channel']:<9} {row['status'] or '-':<10} {row['supr_nid'] or '-'}")
        for run in row["runs"]:
            error = f"  {run['error']}" if run["error"] else ""
            print(f"    {run['status']:<10} x{run['attempts']}  {run['handler']}{error}")
    if not rows:
        print("(no events logged yet)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-dispatch handler runs that did not succeed: by event id, by time range, or every dead run."""
    from datetime import datetime

    from handlers.celery_app import create_celery
    from handlers.recovery import redispatch
    from handlers.store import DONE, EventStore

    try:
        settings = _loaded()
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
    celery = create_celery(settings, on, role="producer")
    sent, problems = 0, []
    for start in range(0, len(todo), 100):  # progress per batch on long replays
        done, issues = redispatch(store, celery, on, settings, todo[start:start + 100])
        sent, problems = sent + done, problems + issues
        print(f"  re-dispatched {sent}/{len(todo)}", flush=True)
    for problem in problems:
        print(f"  skipped: {problem}", file=sys.stderr)
    return 0 if not problems else 1


def cmd_worker(args: argparse.Namespace) -> int:
    """Exec Celery's worker on our app; extra arguments go to Celery."""
    argv = [sys.executable, "-m", "celery", "-A", "celery_worker", "worker", *args.celery_args]
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="suprhook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help=cmd_dev.__doc__, description=cmd_dev.__doc__)
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    dev.add_argument("--loglevel", default="INFO")
    dev.set_defaults(func=cmd_dev)
    routes = sub.add_parser("routes", help=cmd_routes.__doc__, description=cmd_routes.__doc__)
    routes.set_defaults(func=cmd_routes)
    events = sub.add_parser("events", help=cmd_events.__doc__, description=cmd_events.__doc__)
    events.add_argument("--limit", type=int, default=20, help="how many recent events (default 20)")
    events.add_argument("--event", nargs="+", help="only these event ids")
    events.set_defaults(func=cmd_events)
    replay = sub.add_parser("replay", help=cmd_replay.__doc__, description=cmd_replay.__doc__)
    pick = replay.add_mutually_exclusive_group(required=True)
    pick.add_argument("--event", nargs="+", help="event ids to replay")
    pick.add_argument("--since", help="ISO time: events received from then on (with --until)")
    pick.add_argument("--dead", action="store_true", help="every handler run that exhausted its retries")
    replay.add_argument("--until", help="ISO time: events received until then (with --since)")
    replay.add_argument("--dry-run", action="store_true", help="list what would be re-run, send nothing")
    replay.set_defaults(func=cmd_replay)
    worker = sub.add_parser("worker", help=cmd_worker.__doc__, description=cmd_worker.__doc__)
    worker.add_argument("celery_args", nargs=argparse.REMAINDER, help="passed to `celery worker`")
    worker.set_defaults(func=cmd_worker)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
