"""The event console (receiver/console.py): sign-in, sessions, CSRF, the read-only token, the list's filters and
cursor, the event page, replay, bulk replay and the overview, through the Flask test client.

The real-browser walk-through (a real receiver and worker) is tests/test_console_browser.py."""
from __future__ import annotations

import json
import re
from html import unescape
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from suprhook import make_inbound_message, make_status_event
from suprhook.handlers.registry import Registry
from suprhook.handlers.stores.browse import BadQuery, Cursor, EventBrowser, Filters
from suprhook.handlers.stores.db import DEAD, FAILED
from suprhook.handlers.stores.embedded import queue_depth
from suprhook.handlers.stores.store import EventStore
from suprhook.receiver import create_app

from .conftest import REPO, stack_config, wait_until

TOKEN, READONLY, OLD = "console-token-0123456789", "console-readonly-0123456789", "console-old-token-0123456789"


def registry() -> Registry:
    reg = Registry()
    reg(event_type="status", name="tests.console.on_status")(noop)
    reg(name="tests.console.catch_all")(noop)
    return reg


def noop(event):
    """A module-level handler."""


@pytest.fixture
def config(tmp_path):
    return stack_config(tmp_path, None, SUPRHOOK_HANDLERS="", SUPRHOOK_CONSOLE_TOKEN=f"{TOKEN},{OLD}",
                        SUPRHOOK_CONSOLE_READONLY_TOKEN=READONLY, SUPRHOOK_LOG_DISTINCT_ID="mask")


@pytest.fixture
def app(config):
    return create_app(config, registry=registry())


@pytest.fixture
def client(app):
    return app.test_client()


def sign_in(client, token=TOKEN):
    r = client.post("/console/signin", data={"token": token, "next": "/console/"})
    assert r.status_code == 303, r.data
    return r


def post(client, payload, **headers):
    r = client.post("/webhooks/suprsend", data=json.dumps(payload),
                    headers={"Content-Type": "application/json", **headers})
    assert r.status_code in (200, 202), r.data
    return r.get_json()["event_id"]


def csrf_of(html: bytes) -> str:
    return re.search(rb'name="csrf" value="([^"]+)"', html).group(1).decode()


def store_of(app) -> EventStore:
    return app.extensions["suprhook_console"].parts.store


def fail(store, event_id, handler, status=FAILED, error="RuntimeError: the CRM said no"):
    attempt = store.begin_run(event_id, handler, 30)
    store.finish_run(event_id, handler, status, error, attempt=attempt)


# --------------------------------------------------------------------------------------------------
# Where and who


def test_the_console_is_off_without_a_token(tmp_path):
    app = create_app(stack_config(tmp_path, None, SUPRHOOK_HANDLERS=""), registry=registry())
    assert app.test_client().get("/console/").status_code == 404
    assert "suprhook_console" not in app.extensions


def test_no_data_without_a_session(client):
    event_id = post(client, make_status_event("failed", workflow="Hidden Workflow"))
    for path in ("/console/", f"/console/events/{event_id}", "/console/overview", "/console/replay?outcome=dead",
                 "/console/?q=user@example.com"):
        r = client.get(path)
        assert r.status_code == 303 and "/console/signin" in r.headers["Location"]
        assert b"Hidden Workflow" not in r.data and b"gupshup" not in r.data
    r = client.post(f"/console/events/{event_id}/replay", data={"csrf": "x"})
    assert r.status_code == 401 and b"Hidden Workflow" not in r.data


def test_wrong_token_shows_nothing_and_sets_no_cookie(client):
    event_id = post(client, make_status_event("failed", workflow="Hidden Workflow"))
    for token in ("", "nope", TOKEN + "x", TOKEN[:-1]):
        r = client.post("/console/signin", data={"token": token})
        assert r.status_code == 401 and "Set-Cookie" not in r.headers
        assert event_id.encode() not in r.data and b"Hidden Workflow" not in r.data
    assert client.get("/console/").status_code == 303
    client.set_cookie("suprhook_console", "eyJyIjoiZnVsbCIsIm4iOiJ4In0.forged.signature", path="/console/")
    assert client.get("/console/").status_code == 303


def test_the_session_cookie_is_httponly_strict_and_secure_outside_development(tmp_path):
    dev = create_app(stack_config(tmp_path / "dev", None, SUPRHOOK_HANDLERS="", SUPRHOOK_CONSOLE_TOKEN=TOKEN),
                     registry=registry())
    cookie = sign_in(dev.test_client()).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
    assert "Secure" not in cookie and TOKEN not in cookie
    prod = create_app(stack_config(tmp_path / "prod", None, SUPRHOOK_ENV="production", SUPRHOOK_HANDLERS="",
                                   SUPRHOOK_AUTH_TOKENS="hook-token", SUPRHOOK_METRICS="off",
                                   SUPRHOOK_CONSOLE_TOKEN=TOKEN), registry=registry())
    cookie = sign_in(prod.test_client()).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_pages_forbid_framing_and_inline_script(client):
    sign_in(client)
    r = client.get("/console/")
    assert r.headers["X-Frame-Options"] == "DENY" and "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"


def test_several_tokens_and_removing_one_ends_its_sessions(config, tmp_path):
    app = create_app(config, registry=registry())
    old, new = app.test_client(), app.test_client()
    sign_in(old, OLD)
    sign_in(new, TOKEN)
    assert old.get("/console/").status_code == new.get("/console/").status_code == 200
    rotated = create_app({**config, "SUPRHOOK_CONSOLE_TOKEN": TOKEN}, registry=registry())  # OLD removed
    for client, expected in ((old, 303), (new, 200)):
        cookie = client.get_cookie("suprhook_console", path="/console/").value
        fresh = rotated.test_client()
        fresh.set_cookie("suprhook_console", cookie, path="/console/")
        assert fresh.get("/console/").status_code == expected


def test_a_session_expires(client, config):
    with freeze_time("2026-11-30 12:00:00") as frozen:
        sign_in(client)
        assert client.get("/console/").status_code == 200
        frozen.tick(timedelta(seconds=43200 - 5))
        assert client.get("/console/").status_code == 200
        frozen.tick(timedelta(seconds=10))
        assert client.get("/console/").status_code == 303


def test_sign_in_returns_only_to_a_console_page(client):
    r = client.post("/console/signin", data={"token": TOKEN, "next": "https://evil.example/"})
    assert r.headers["Location"].endswith("/console/")
    r = client.post("/console/signin", data={"token": TOKEN, "next": "/console/overview"})
    assert r.headers["Location"].endswith("/console/overview")


def test_sign_out_needs_csrf_and_ends_the_session(client):
    sign_in(client)
    assert client.post("/console/signout", data={}).status_code == 403
    csrf = csrf_of(client.get("/console/").data)
    r = client.post("/console/signout", data={"csrf": csrf})
    assert r.status_code == 303 and "suprhook_console=;" in r.headers["Set-Cookie"]


# --------------------------------------------------------------------------------------------------
# CSRF and the read-only token


def test_replay_needs_the_sessions_csrf_token(app, client):
    event_id = post(client, make_status_event("failed"))
    fail(store_of(app), event_id, "tests.console.on_status", DEAD)
    sign_in(client)
    page = client.get(f"/console/events/{event_id}")
    assert page.status_code == 200
    for form in ({}, {"csrf": ""}, {"csrf": "0" * 64}):
        r = client.post(f"/console/events/{event_id}/replay", data=form)
        assert r.status_code == 403 and b"CSRF" in r.data
    other = app.test_client()
    sign_in(other)
    r = other.post(f"/console/events/{event_id}/replay", data={"csrf": csrf_of(page.data)})
    assert r.status_code == 403  # another session's token does not do
    r = client.post(f"/console/events/{event_id}/replay", data={"csrf": csrf_of(page.data)})
    assert r.status_code == 303 and "Replayed" in r.headers["Location"]


def test_the_read_only_token_sees_everything_and_replays_nothing(app, client, config):
    event_id = post(client, make_status_event("failed"))
    fail(store_of(app), event_id, "tests.console.on_status", DEAD)
    sign_in(client, READONLY)
    assert event_id.encode() in client.get("/console/?outcome=dead").data
    page = client.get(f"/console/events/{event_id}")
    assert page.status_code == 200 and b"read-only" in page.data and b"replay-event" not in page.data
    csrf = csrf_of(page.data)
    r = client.post(f"/console/events/{event_id}/replay", data={"csrf": csrf})
    assert r.status_code == 403 and b"read-only" in r.data
    assert client.post("/console/replay", data={"csrf": csrf, "outcome": "dead"}).status_code == 403
    assert store_of(app).select_runs(event_ids=[event_id], statuses=[DEAD])  # untouched


# --------------------------------------------------------------------------------------------------
# The list


def test_filters_and_search(app, client):
    store = store_of(app)
    with freeze_time("2026-11-30 10:00:00"):
        old = post(client, make_status_event("delivered", channel="sms", vendor="twilio", distinct_id="ann@x.io",
                                             phone="+15550001111"))
    with freeze_time("2026-11-30 11:00:00"):
        failed = post(client, make_status_event("failed", vendor="gupshup", distinct_id="bob@x.io"))
        reply = post(client, make_inbound_message("YES", vendor="meta", phone="+15550002222"))
    fail(store, failed, "tests.console.on_status")
    sign_in(client)

    def listed(query: str) -> set[str]:
        r = client.get("/console/?" + query)
        assert r.status_code == 200, r.data
        return {e for e in (old, failed, reply) if e.encode() in r.data}

    assert listed("") == {old, failed, reply}
    assert listed("event_type=inbound_message") == {reply}
    assert listed("channel=sms") == {old}
    assert listed("vendor=gupshup") == {failed}
    assert listed("outcome=failed") == {failed}
    assert listed("outcome=failed&outcome=dead") == listed("outcome=failed,dead") == {failed}
    assert listed("outcome=pending&handler=tests.console.on_status") == {old}
    assert listed("handler=tests.console.on_status") == {old, failed}
    assert listed("since=2026-11-30T10:30") == {failed, reply}
    assert listed("until=2026-11-30T10:30:00Z") == {old}
    assert listed(f"q={failed}") == {failed}
    supr_nid = store.recent_events(event_ids=[reply])[0]["supr_nid"]
    assert listed(f"q={supr_nid}") == {reply}
    assert listed("q=bob@x.io") == {failed}
    assert listed("q=%2B15550001111") == listed("q=15550001111") == listed("q=%2B1 555 000 1111") == {old}
    assert listed("q=nothing-like-it") == set()


def test_list_rows_show_what_the_issue_asks_and_mask_the_user(app, client):
    event_id = post(client, make_status_event("failed", distinct_id="carol@example.com", workflow="Refunds"))
    fail(store_of(app), event_id, "tests.console.on_status")
    sign_in(client)
    html = client.get("/console/").data.decode()
    assert "c***@example.com" in html and "carol@example.com" not in html
    assert "Refunds" in html and "gupshup" in html and "failed" in html and "×1" in html
    assert "tests.console.catch_all" in html and "pending" in html


@pytest.mark.parametrize("query, word", [
    ("outcome=exploded", "outcome"), ("since=yesterday", "since"), ("until=2026-13-01", "until"),
    ("since=2026-11-30T12:00&until=2026-11-30T11:00", "since"), ("cursor=not-a-cursor", "cursor"),
    ("cursor=" + "A" * 700, "cursor"), ("vendor=" + "x" * 300, "vendor"), ("q=a%00b", "q"),
])
def test_bad_filters_are_a_clear_400(client, query, word):
    sign_in(client)
    r = client.get("/console/?" + query)
    assert r.status_code == 400 and word.encode() in r.data and b"<h1>400" in r.data
    r = client.get("/console/?" + query, headers={"Accept": "application/json"})
    assert r.status_code == 400 and r.get_json()["status"] == "error" and word in r.get_json()["error"]


def test_cursor_pages_through_ties_without_gaps_or_repeats(app, client):
    with freeze_time("2026-11-30 09:00:00"):  # every event the same received_at: the event_id breaks ties
        ids = {post(client, make_status_event("sent")) for _ in range(7)}
    browser = EventBrowser(store_of(app))
    seen, cursor = [], None
    while True:
        page = browser.page(Filters(), cursor, limit=3)
        seen += [r.event_id for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor.encode())
    assert len(seen) == 7 and set(seen) == ids and seen == sorted(seen, reverse=True)


def test_the_list_links_to_older_pages(app, client):
    with freeze_time("2026-11-30 09:00:00") as frozen:
        for _ in range(52):
            post(client, make_status_event("sent"))
            frozen.tick(timedelta(seconds=1))
    sign_in(client)
    first = client.get("/console/?event_type=status").data.decode()
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "event_type=status" in older
    second = client.get(older).data.decode()
    assert second.count('class="open"') == 2 and 'rel="next"' not in second


def test_filters_parse_and_round_trip():
    filters = Filters.parse({"since": "2026-11-30T14:02", "outcome": ["dead", "failed"], "vendor": " meta ",
                             "q": ""})
    assert filters.since == datetime(2026, 11, 30, 14, 2, tzinfo=timezone.utc) and filters.vendor == "meta"
    assert Filters.parse({k: [v] for k, v in filters.args()} | {"outcome": ["dead", "failed"]}) == filters
    assert Filters.parse({"since": "1796000000"}).since == datetime.fromtimestamp(1796000000, timezone.utc)
    with pytest.raises(BadQuery):
        Filters.parse({"outcome": "done"})


# --------------------------------------------------------------------------------------------------
# The event page and replay


def test_event_page_shows_body_headers_normalized_runs_and_timeline(app, client):
    nid = "01TESTNID0000000000000000A"
    sent = post(client, make_status_event("sent", nid=nid))
    failed = post(client, make_status_event("failed", nid=nid, error=("30003", "Unreachable handset")),
                  Authorization="Bearer hook-secret-token", **{"webhook-signature": "v1,c2lnbmF0dXJl",
                                                               "User-Agent": "SuprSend/1.0", "X-Request-Id": "req-42"})
    fail(store_of(app), failed, "tests.console.on_status", DEAD, "RuntimeError: CRM down")
    sign_in(client)
    html = unescape(client.get(f"/console/events/{failed}").data.decode())
    assert '"supr_nid": "01TESTNID0000000000000000A"' in html  # the raw body, pretty-printed
    assert "SuprSend/1.0" in html and "req-42" in html  # the headers kept
    assert "hook-secret-token" not in html and "c2lnbmF0dXJl" not in html and "webhook-signature" not in html
    assert "normalized_status" in html and "undelivered" in html or "failed" in html
    assert "30003" in html and "RuntimeError: CRM down" in html and "dead" in html
    assert re.search(r'aria-current="step">\s*<span class="badge st">failed', html)  # current status marked
    assert f'/console/events/{sent}"' in html  # the timeline links the other status
    assert "curl -sS" in html and "make_status_event('failed'" in html and "json.loads" in html


def test_headers_that_look_secret_are_never_shown(app, client):
    store = store_of(app)
    from suprhook.schemas import load_event

    payload = make_status_event("sent")
    event = load_event(payload)
    store.record_accepted(event, ["tests.console.on_status"], json.dumps(payload),
                          {"Authorization": "Bearer leaked", "X-Api-Key": "leaked2", "Cookie": "s=leaked3",
                           "User-Agent": "kept"})
    sign_in(client)
    html = client.get(f"/console/events/{event.event_id}").data.decode()
    assert "leaked" not in html and "kept" in html


def test_unknown_event_is_a_404_page(client):
    sign_in(client)
    r = client.get("/console/events/evt_nope")
    assert r.status_code == 404 and b"evt_nope" in r.data


def test_replay_one_event_and_one_run_send_tasks_through_redispatch(app, client, config):
    store = store_of(app)
    event_id = post(client, make_status_event("failed"))
    fail(store, event_id, "tests.console.on_status", DEAD)
    fail(store, event_id, "tests.console.catch_all")
    broker = app.extensions["suprhook"].settings.broker_url
    before = queue_depth(broker)
    sign_in(client)
    csrf = csrf_of(client.get(f"/console/events/{event_id}").data)
    r = client.post(f"/console/events/{event_id}/replay", data={"csrf": csrf, "handler": "tests.console.on_status"})
    assert r.status_code == 303 and "Replayed+1+run" in r.headers["Location"]
    statuses = {r["handler"]: r["status"] for r in store.select_runs(event_ids=[event_id])}
    assert statuses == {"tests.console.on_status": "pending", "tests.console.catch_all": "failed"}
    r = client.post(f"/console/events/{event_id}/replay", data={"csrf": csrf})
    assert "Replayed+2+runs" in r.headers["Location"]  # every run that did not succeed, the pending one too
    assert queue_depth(broker) == before + 3
    assert b"Replayed 2 runs" in client.get(r.headers["Location"]).data
    r = client.post(f"/console/events/{event_id}/replay", data={"csrf": csrf, "handler": "no.such.handler"})
    assert r.status_code == 400


# --------------------------------------------------------------------------------------------------
# Bulk replay and the overview


def test_bulk_replay_counts_then_sends_and_shows_progress(app, client):
    store = store_of(app)
    dead = [post(client, make_status_event("failed")) for _ in range(3)]
    for event_id in dead:
        fail(store, event_id, "tests.console.on_status", DEAD)
    fail(store, dead[0], "tests.console.catch_all")  # failed, not dead: not part of it
    sign_in(client)
    r = client.get("/console/replay?outcome=dead&event_type=status")
    assert r.status_code == 200 and re.search(rb'id="bulk-count"><strong>3</strong>', r.data)
    assert client.get("/console/replay?outcome=pending").status_code == 400
    csrf = csrf_of(r.data)
    r = client.post("/console/replay", data={"csrf": csrf, "outcome": "dead", "event_type": "status"})
    assert r.status_code == 303 and "/console/replay/" in r.headers["Location"]
    job = r.headers["Location"]
    assert wait_until(lambda: b'Sent <span id="sent">3</span> of 3.' in client.get(job).data, 10)
    progress = client.get(job)
    assert progress.status_code == 200 and b"of 3 finished" in progress.data
    assert b'http-equiv="refresh"' in progress.data  # still pending: the page refreshes itself
    runs = store.select_runs(event_ids=dead)
    assert [r["status"] for r in runs if r["handler"] == "tests.console.on_status"] == ["pending"] * 3
    assert [r["status"] for r in runs if r["event_id"] == dead[0] and r["handler"] == "tests.console.catch_all"] \
        == ["failed"]
    assert client.get("/console/replay/" + "0" * 32).status_code == 404


def test_overview_counts_accepted_duplicate_and_rejected_without_bodies(app, client):
    payload = make_status_event("delivered")
    post(client, payload)
    post(client, payload)  # duplicate
    secret_body = b'{"password": "hunter2-in-a-bad-body"}'
    client.post("/webhooks/suprsend", data=secret_body, headers={"Content-Type": "text/plain"})
    client.post("/webhooks/suprsend", data=b"{not json", headers={"Content-Type": "application/json"})
    sign_in(client)
    html = client.get("/console/overview").data.decode()
    row = re.search(r"<tr><td>\d\d:\d\d</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>", html)
    assert row.groups() == ("1", "1", "2"), html
    assert "content_type" in html and "body" in html and "415" in html and "hunter2" not in html
    assert "Webhooks are being refused" not in html  # accepted in the same minute


def test_overview_says_since_when_webhooks_are_refused(tmp_path):
    config = stack_config(tmp_path, None, SUPRHOOK_HANDLERS="", SUPRHOOK_CONSOLE_TOKEN=TOKEN,
                          SUPRHOOK_AUTH_TOKENS="hook-token")
    app = create_app(config, registry=registry())
    client = app.test_client()
    with freeze_time("2026-11-30 14:01:30"):
        post(client, make_status_event("sent"), Authorization="Bearer hook-token")
    with freeze_time("2026-11-30 14:02:10") as frozen:
        for _ in range(3):
            client.post("/webhooks/suprsend", json=make_status_event("sent"), headers={"Authorization": "Bearer old"})
            frozen.tick(timedelta(seconds=30))
        sign_in(client)
        html = client.get("/console/overview").data.decode()
    assert "Webhooks are being refused since 14:02: auth" in html


def test_browser_queries_on_postgresql_and_sqlite(store_url):
    """The vendor and phone filters use expression indexes, one per dialect (handlers/stores/store.py)."""
    from sqlalchemy import text

    from suprhook.schemas import load_event

    store = EventStore(store_url)
    browser = EventBrowser(store)
    browser.ensure_indexes()
    browser.ensure_indexes()  # idempotent
    a, b = make_status_event("sent", vendor="twilio", channel="sms", phone="+15550009999"), make_status_event("sent")
    for payload in (a, b):
        store.record_accepted(load_event(payload), ["h"], json.dumps(payload))
    # PostgreSQL's JSON functions raise on \u0000 anywhere in a body: the indexes must not refuse the event.
    nul = make_status_event("sent", vendor="twilio")
    nul["vendor_response"]["twilio"]["Body"] = "a\x00b"
    store.record_accepted(load_event(nul), [], json.dumps(nul))
    assert store.body(load_event(nul).event_id)["vendor_response"]["twilio"]["Body"] == "a\x00b"
    assert len(browser.page(Filters()).rows) == 3
    nul_event = load_event(nul).event_id
    twilio = [r.event_id for r in browser.page(Filters(vendor="twilio")).rows]
    assert len(twilio) == (1 if browser.dialect == "postgresql" else 2) and (nul_event in twilio) == (
        browser.dialect == "sqlite")  # PostgreSQL cannot read its vendor: found by event_id, not by vendor
    assert [r.event_id for r in browser.page(Filters(q=nul_event)).rows] == [nul_event]
    assert len(browser.page(Filters(q="15550009999")).rows) == 1
    for few_runs in (20_000, 0):  # starting from the runs, or walking the events (SQLite, many matching runs)
        browser.few_runs = few_runs
        assert len(browser.page(Filters(handler="h")).rows) == 2 and not browser.page(Filters(handler="x")).rows
        assert len(browser.page(Filters(handler="h", outcomes=("pending",))).rows) == 2
        assert not browser.page(Filters(outcomes=("succeeded",))).rows
        assert len(browser.page(Filters(outcomes=("pending", "dead"), channel="sms")).rows) == 1
        assert len(browser.page(Filters(outcomes=("pending",))).rows) == 2  # the third event has no run
    assert browser.count_runs(Filters(vendor="twilio"), ["pending"]) == 1
    assert browser.oldest_pending()[0] == 2
    sql = ("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()" if browser.dialect == "postgresql"
           else "SELECT name FROM sqlite_master WHERE type = 'index'")
    with store.engine.connect() as conn:
        names = set(conn.execute(text(sql)).scalars())
    suffix = "_pg" if browser.dialect == "postgresql" else "_sqlite"
    assert {"ix_suprhook_events_received_id", "ix_suprhook_events_distinct_id", "ix_suprhook_events_vendor" + suffix,
            "ix_suprhook_events_phone" + suffix, "ix_suprhook_handler_runs_handler_status",
            "ix_suprhook_events_channel", "ix_suprhook_events_type"} <= names


def test_wrong_tokens_spend_the_sources_refusal_budget(tmp_path):
    config = stack_config(tmp_path, None, SUPRHOOK_HANDLERS="", SUPRHOOK_CONSOLE_TOKEN=TOKEN,
                          SUPRHOOK_REFUSAL_LIMIT="0.01", SUPRHOOK_REFUSAL_BURST="3")
    client = create_app(config, registry=registry()).test_client()
    codes = [client.post("/console/signin", data={"token": "guess"}).status_code for _ in range(5)]
    assert codes[:3] == [401] * 3 and codes[3:] == [429, 429]
    assert "Retry-After" in client.post("/console/signin", data={"token": "guess"}).headers


def test_mounted_under_a_prefix_in_your_own_flask_app(config):
    from flask import Flask

    from suprhook import init_app

    app = Flask("mine")
    init_app(app, config, registry=registry(), url_prefix="/hooks")
    client = app.test_client()
    post_ok = client.post("/hooks/webhooks/suprsend", json=make_status_event("sent", workflow="Prefixed"))
    assert post_ok.status_code == 202
    assert client.get("/console/").status_code == 404
    r = client.post("/hooks/console/signin", data={"token": TOKEN})
    assert r.status_code == 303 and "Path=/hooks/console/" in r.headers["Set-Cookie"]
    html = client.get("/hooks/console/").data.decode()
    assert "Prefixed" in html and "/hooks/console/static/console.css" in html


def test_the_web_process_with_the_console_imports_no_worker_code(tmp_path):
    import subprocess
    import sys

    code = ("import sys, suprhook.wsgi; assert 'suprhook_console' in suprhook.wsgi.app.extensions; "
            "print([m for m in sys.modules if m.startswith('suprhook.handlers.worker') or m == 'suprsend'])")
    env = {"PATH": "/usr/bin:/bin", "SUPRHOOK_ENV": "development", "SUPRHOOK_DATA_DIR": str(tmp_path),
           "SUPRHOOK_CONSOLE_TOKEN": TOKEN, "SUPRHOOK_HANDLERS": ""}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
    assert (REPO / "receiver" / "templates" / "console" / "list.html").exists()


def test_the_receiver_starts_and_the_console_says_503_while_the_event_log_is_down(tmp_path):
    """Queue-first the receiver never needs the event log for webhooks: the console opens it on first use."""
    config = stack_config(tmp_path, "redis://127.0.0.1:6379/0", SUPRHOOK_HANDLERS="", SUPRHOOK_CONSOLE_TOKEN=TOKEN,
                          SUPRHOOK_STORE_URL="postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    client = create_app(config, registry=registry()).test_client()
    assert client.get("/healthz").status_code == 200
    sign_in(client)
    r = client.get("/console/")
    assert r.status_code == 503 and b"event log is unavailable" in r.data and b"Traceback" not in r.data
    assert r.headers["Retry-After"] == "5"
    assert client.get("/console/overview").status_code == 503


def test_an_unexpected_error_is_a_500_page_without_a_trace(app, client, monkeypatch):
    sign_in(client)
    browser = app.extensions["suprhook_console"].parts.browser

    def boom(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(browser, "page", boom)
    r = client.get("/console/")
    assert r.status_code == 500 and b"secret detail" not in r.data and b"internal error" in r.data


def test_the_console_builds_its_indexes_in_the_background_and_the_event_log_schema_has_none(app, client, config):
    from sqlalchemy import text

    from suprhook.handlers.stores.store import events, runs

    from suprhook.handlers.stores.browse import console_indexes

    ours = {i.name for d in ("sqlite", "postgresql") for i in console_indexes(d)}
    assert not ours & {i.name for i in (*events.indexes, *runs.indexes)}  # the event log's own schema stays lean
    sign_in(client)
    assert client.get("/console/").status_code == 200
    data = app.extensions["suprhook_console"].parts.data
    data.indexing.join(30)
    with store_of(app).engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'")).scalars())
    assert {"ix_suprhook_events_received_id", "ix_suprhook_events_vendor_sqlite"} <= names


def test_the_event_page_shows_a_runs_error_and_its_traceback(app, client):
    """The worker keeps "Type: message", a blank line and the traceback (tasks.run_error); the page shows the first
    as the run's error and the traceback folded under it."""
    from suprhook.handlers.stores.store import ERROR_CHARS, clip_error
    from suprhook.handlers.worker.tasks import run_error

    try:
        raise RuntimeError("the CRM said no")
    except RuntimeError as exc:
        error = run_error(exc)
    event_id = post(client, make_status_event("failed"))
    fail(store_of(app), event_id, "tests.console.on_status", DEAD, error)
    sign_in(client)
    html = client.get(f"/console/events/{event_id}").data.decode()
    assert '<pre class="error-text">RuntimeError: the CRM said no</pre>' in html
    assert "<summary>Traceback</summary>" in html and "Traceback (most recent call last):" in html
    assert "test_console.py" in html  # down to the raising line
    long = "ValueError: x\n\n" + "frame\n" * 5000
    clipped = clip_error(long)
    assert len(clipped) <= ERROR_CHARS and clipped.startswith("ValueError: x\n") and clipped.endswith("frame\n")


def test_the_event_page_lists_the_followups_each_run_sent(app, client):
    event_id = post(client, make_inbound_message("YES"))
    store = store_of(app)
    attempt = store.begin_run(event_id, "tests.console.catch_all", 30)
    store.finish_run(event_id, "tests.console.catch_all", "succeeded", attempt=attempt, followups=[
        {"name": "order_confirmed", "key": "suprhook-d1-abc", "ok": True, "code": 202, "answer": "01HZ-id", "at": 1.0}])
    sign_in(client)
    html = client.get(f"/console/events/{event_id}").data.decode()
    row = html[html.index('<tr class="followup-row">'):]
    assert "order_confirmed" in row and "suprhook-d1-abc" in row and "202" in row and "01HZ-id" in row
