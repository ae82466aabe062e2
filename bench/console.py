"""`python -m bench.console`: the event console's list over an event log of 100,000 events.

Fills a fresh event log (SQLite under a temp dir by default; `--store-url postgresql+psycopg://postgres@127.0.0.1/test`
uses a throwaway schema there, dropped afterwards) with `--events` status and reply events over the last 7 days
(15 vendors, 4 channels, 2-3 handler runs each: ~2% failed, ~0.5% dead, ~1% pending), then times whole HTTP
answers of the console through Flask's test client (query + rendering, signed in; no network), each page
`--repeat` times after one warm-up: the first page, pages 2 and 50 by cursor, filters (type, channel, vendor,
handler, outcome, Failed shortcut, time range) and searches (event_id, supr_nid, distinct_id, phone). Prints a
markdown table of median and max milliseconds and the row count of each page.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

VENDORS = [("whatsapp", "gupshup"), ("whatsapp", "meta"), ("whatsapp", "karix"), ("whatsapp", "infobip"),
           ("sms", "twilio"), ("sms", "msg91"), ("sms", "plivo"), ("sms", "vonage"), ("sms", "sinch"),
           ("sms", "messagebird"), ("sms", "kaleyra"), ("sms", "exotel"), ("sms", "aws_sns"),
           ("whatsapp", "netcore"), ("email", None)]
STATUSES = ["sent", "delivered", "delivered", "seen", "failed"]
HANDLERS = ["app.crm.notify", "app.analytics.track", "app.orders.confirm"]


def templates(rng: random.Random) -> list[dict]:
    """A few hundred real payloads from the testing kit; events are copies with their ids changed."""
    from suprhook import make_inbound_message, make_status_event

    out = []
    for channel, vendor in VENDORS:
        for status in STATUSES:
            try:
                out.append(make_status_event(status, channel=channel, vendor=vendor))
            except ValueError:
                continue
        if channel == "whatsapp":
            for text in ("YES", "no thanks", "STOP", "where is my order?"):
                try:
                    out.append(make_inbound_message(text, vendor=vendor))
                except ValueError:
                    continue
    rng.shuffle(out)
    return out


def fill(store_url: str, count: int, seed: int = 14) -> dict:
    """Write `count` events and their runs; returns a few values to search for."""
    from sqlalchemy import insert

    from suprhook.handlers.messages import LoggedEvent
    from suprhook.handlers.stores.store import EventStore, runs

    from suprhook.handlers.stores.browse import EventBrowser

    rng = random.Random(seed)
    store = EventStore(store_url)
    EventBrowser(store).ensure_indexes()  # as a receiver with the console has: the inserts maintain them
    base = templates(rng)
    now = datetime.now(timezone.utc)
    probes: dict = {}
    batch: list[LoggedEvent] = []
    run_rows: list[dict] = []
    for i in range(count):
        payload = json.loads(json.dumps(base[i % len(base)]))
        nid = uuid.UUID(int=rng.getrandbits(128)).hex
        payload["reference"]["supr_nid"] = nid
        payload["distinct_id"] = f"user{rng.randrange(20000)}@example.com"
        payload["channel_value"] = f"+1555{rng.randrange(10**7):07d}"
        received = now - timedelta(seconds=rng.uniform(0, 7 * 86400))
        event_id = f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex}"
        status = (payload.get("suprsend_status") or {}).get("status")
        is_status = payload["event_type"] == "status"
        batch.append(LoggedEvent(event_id, received, payload["event_type"], payload["channel"], status, nid,
                                 payload["distinct_id"], is_status, received if is_status else None, (),
                                 json.dumps(payload), json.dumps({"User-Agent": "SuprSend/1.0"})))
        for handler in HANDLERS[:2 if is_status else 3]:
            roll = rng.random()
            state = "dead" if roll < 0.005 else "failed" if roll < 0.025 else "pending" if roll < 0.035 \
                else "succeeded"
            run_rows.append({"event_id": event_id, "handler": handler, "status": state,
                             "attempts": 0 if state == "pending" else 1 + (state != "succeeded") * 2,
                             "error": "RuntimeError: CRM unreachable" if state in ("failed", "dead") else None,
                             "updated_at": received.timestamp()})
        if i == count // 2:
            probes = {"event_id": event_id, "supr_nid": nid, "distinct_id": payload["distinct_id"],
                      "phone": payload["channel_value"]}
        if len(batch) == 2000:
            store.record_logged(batch)
            with store.db.writing() as conn:
                conn.execute(insert(runs), run_rows)
            batch, run_rows = [], []
    if batch:
        store.record_logged(batch)
        with store.db.writing() as conn:
            conn.execute(insert(runs), run_rows)
    if store.engine.dialect.name == "postgresql":  # as autovacuum would; SQLite gets no statistics (nor has them live)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return probes


def time_pages(app, pages: list[tuple[str, str]], repeat: int) -> list[tuple[str, float, float, int]]:
    client = app.test_client()
    token = app.extensions["suprhook_console"].settings.console_tokens[0]
    assert client.post("/console/signin", data={"token": token}).status_code == 303
    results = []
    for name, path in pages:
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.data[:300])
        rows = r.data.count(b'class="open"')
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            r = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200
        results.append((name, statistics.median(times), max(times), rows))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store-url", default=None, help="default: a SQLite file in a temp dir")
    args = parser.parse_args(argv)

    from suprhook.handlers.registry import Registry
    from suprhook.receiver import create_app

    tmp = tempfile.mkdtemp(prefix="suprhook-bench-console-")
    url, drop = args.store_url or f"sqlite:///{tmp}/events.sqlite3", None
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        schema = f"suprhook_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
        drop = (admin, schema)
    try:
        started = time.perf_counter()
        probes = fill(url, args.events)
        filled = time.perf_counter() - started
        registry = Registry()
        for name in HANDLERS:
            registry(name=name)(_noop)
        app = create_app({"SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": tmp, "SUPRHOOK_HANDLERS": "",
                          "SUPRHOOK_STORE_URL": url, "SUPRHOOK_CONSOLE_TOKEN": "bench-token",
                          "SUPRHOOK_LOG_LEVEL": "WARNING"}, registry=registry)
        client = app.test_client()
        client.post("/console/signin", data={"token": "bench-token"})
        cursor_page, path = None, "/console/"
        for _ in range(49):  # follow "Older" to page 50
            html = client.get(path).data.decode()
            path = re.search(r'href="([^"]+)" rel="next"', html).group(1).replace("&amp;", "&")
            cursor_page = cursor_page or path
        since = (datetime.now(timezone.utc) - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
        pages = [
            ("list, first page", "/console/"),
            ("list, page 2 (cursor)", cursor_page),
            ("list, page 50 (cursor)", path),
            ("type = inbound_message", "/console/?event_type=inbound_message"),
            ("channel = sms", "/console/?channel=sms"),
            ("vendor = kaleyra", "/console/?vendor=kaleyra"),
            ("handler = app.orders.confirm", "/console/?handler=app.orders.confirm"),
            ("outcome = dead", "/console/?outcome=dead"),
            ("Failed (failed + dead)", "/console/?outcome=failed&outcome=dead"),
            ("dead, handler app.crm.notify, sms", "/console/?outcome=dead&handler=app.crm.notify&channel=sms"),
            ("last 6 hours, vendor = meta", f"/console/?since={since}&vendor=meta"),
            ("search event_id", f"/console/?q={probes['event_id']}"),
            ("search supr_nid", f"/console/?q={probes['supr_nid']}"),
            ("search distinct_id", f"/console/?q={quote(probes['distinct_id'])}"),
            ("search phone", f"/console/?q={quote(probes['phone'])}"),
            ("search, no match", "/console/?q=nobody%40example.com"),
            ("worst: outcome = skipped (none)", "/console/?outcome=skipped"),
            ("worst: channel = push (none)", "/console/?channel=push"),
            ("worst: vendor = none-such", "/console/?vendor=none-such"),
            ("worst: type = none-such", "/console/?event_type=none-such"),
            ("outcome = succeeded (most runs)", "/console/?outcome=succeeded"),
            ("succeeded, channel = push (none)", "/console/?outcome=succeeded&channel=push"),
        ]
        results = time_pages(app, pages, args.repeat)
    finally:
        if drop is not None:
            from suprhook.handlers.stores.db import open_database

            open_database(url).dispose()
            admin, schema = drop
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
    dialect = "PostgreSQL" if drop else "SQLite"
    print(f"\nevent console over {args.events:,} events ({dialect}; filled in {filled:.0f} s); "
          f"whole HTTP answers via the Flask test client, median and max of {args.repeat}:\n")
    print("| page | median ms | max ms | rows |\n|---|---:|---:|---:|")
    for name, median, worst, rows in results:
        print(f"| {name} | {median:.1f} | {worst:.1f} | {rows} |")
    return 0


def _noop(event):
    """A registered handler for the bench's runs."""


if __name__ == "__main__":
    sys.exit(main())
