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
    print(f"\nsuprhook dev: handlers {', '.join(settings.handler_modules)}; broker {settings.broker_url}")
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
    worker = sub.add_parser("worker", help=cmd_worker.__doc__, description=cmd_worker.__doc__)
    worker.add_argument("celery_args", nargs=argparse.REMAINDER, help="passed to `celery worker`")
    worker.set_defaults(func=cmd_worker)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
