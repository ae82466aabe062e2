"""The event console: every webhook, why a handler failed, and replay it, in the browser (`/console/`).

The Flask adapter only: sign-in and sessions are `receiver.console_auth`'s, the queries
`handlers.stores.browse`'s, the overview's counts `handlers.web.traffic`'s, and replay is
`handlers.replay.redispatch`, as for `suprhook replay`. The composition root (`compose.console`) builds those
parts when a console token is set; `mount` serves them. Pages are rendered server-side from
`receiver/templates/console` by a Jinja environment of the console's own (the host app's templates neither
shadow nor see them); every action is a POST carrying the session's CSRF token, and reading works without
JavaScript.
"""
from __future__ import annotations

import json
import logging
import shlex
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, redirect, request, url_for
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from ..compose import Console, Web
from ..handlers import Registry, Settings
from ..handlers.observability.jsonlog import mask_distinct_id
from ..handlers.replay import redispatch
from ..handlers.stores.browse import DEAD, FAILED, MAX_BULK, OUTCOMES, SUCCEEDED, BadQuery, Cursor, EventRow, Filters
from ..schemas import load_event

from .console_auth import COOKIE, ConsoleAuth, Session
from .security import RequestGuard

log = logging.getLogger("suprhook.console")
HERE = Path(__file__).resolve().parent
bp = Blueprint("suprhook_console", __name__, static_folder=str(HERE / "static" / "console"),
               static_url_path="/static")
EXTENSION = "suprhook_console"
SHORTCUTS = (("Failed", (FAILED, DEAD)), ("Dead", (DEAD,)), ("Pending", ("pending",)))
# Never shown, whatever an older version or a custom setup kept: credentials and signatures.
SECRET_HEADER_WORDS = ("authorization", "token", "secret", "signature", "cookie", "api-key", "apikey", "password")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class ConsoleState:
    settings: Settings
    registry: Registry
    celery: Any
    parts: Console
    jinja: Environment
    webhook_path: str  # for "copy as curl"
    guard: RequestGuard  # refused sign-ins spend the source's refusal budget, as refused webhooks do

    @property
    def auth(self) -> ConsoleAuth:
        return self.parts.auth


def mount(app: Flask, web: Web, url_prefix: str | None = None) -> ConsoleState:
    """Serve `web.console` at `<url_prefix>/console/` on `app`."""
    assert web.console is not None
    jinja = Environment(loader=FileSystemLoader(str(HERE / "templates" / "console")),
                        autoescape=select_autoescape(default=True, default_for_string=True))
    jinja.globals.update(url_for=url_for, mask=lambda v: mask_distinct_id(v, web.settings.log_distinct_id),
                         fmt_time=fmt_time, OUTCOMES=OUTCOMES, SHORTCUTS=SHORTCUTS)
    jinja.filters["truncate_text"] = truncate
    state = ConsoleState(web.settings, web.registry, web.celery, web.console, jinja,
                         f"{url_prefix or ''}{web.routes[0].endpoint.path}", web.guard)
    app.extensions[EXTENSION] = state
    app.register_blueprint(bp, url_prefix=f"{url_prefix or ''}/console")
    return state


def _state() -> ConsoleState:
    return current_app.extensions[EXTENSION]


# --------------------------------------------------------------------------------------------------
# Rendering


def fmt_time(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def truncate(value: Any, length: int = 60) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= length else text[:length - 1] + "…"


def page(template: str, status_code: int = 200, session: Session | None = None, **context: Any) -> Response:
    state = _state()
    body = state.jinja.get_template(template).render(session=session, base=url_for("suprhook_console.events"),
                                                     **context)
    response = Response(body, status=status_code, mimetype="text/html")
    response.headers.update(SECURITY_HEADERS)
    return response


def problem(code: int, message: str, session: Session | None = None) -> Response:
    """A clear error page (or JSON when asked for it): bad filters and cursors are 400s, never 500s."""
    if request.accept_mimetypes.best == "application/json":
        response = Response(json.dumps({"status": "error", "error": message}), status=code,
                            mimetype="application/json")
        response.headers.update(SECURITY_HEADERS)
        return response
    return page("error.html", code, session, code=code, message=message)


@bp.errorhandler(BadQuery)
def bad_query(exc: BadQuery) -> Response:
    return problem(400, str(exc), current_session())


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    original = getattr(exc, "original_exception", None)
    if original is not None:
        return internal_error(original)
    return problem(exc.code or 400, exc.description or exc.name, current_session())


@bp.errorhandler(DBAPIError)
def event_log_down(exc: DBAPIError) -> Response:
    """The event log is down or refusing: say so (503), never a trace."""
    log.warning("console: the event log is unavailable: %s", type(exc.orig).__name__)
    response = problem(503, "the event log is unavailable right now (the receiver's log says why); webhooks are "
                            "still being accepted", current_session())
    response.headers["Retry-After"] = "5"
    return response


@bp.errorhandler(Exception)
def internal_error(exc: Exception) -> Response:
    if isinstance(exc, DBAPIError):
        return event_log_down(exc)
    log.error("console error", exc_info=exc)  # the trace goes to the log, never to the page
    return problem(500, "internal error (the receiver's log has the details)")


# --------------------------------------------------------------------------------------------------
# Sign-in, sessions, CSRF


def current_session() -> Session | None:
    state = current_app.extensions.get(EXTENSION)
    return state.auth.session(request.cookies.get(COOKIE)) if state is not None else None


def signed_in(view: Callable[..., Response]) -> Callable[..., Response]:
    """No session: to the sign-in form (nothing else is shown). A POST also needs the session's CSRF token."""
    def wrapped(*args: Any, **kwargs: Any) -> Response:
        session = current_session()
        if session is None:
            if request.method == "POST":
                return problem(401, "sign in first (your session has expired, or the token was removed)")
            return redirect(url_for("suprhook_console.signin", next=request.full_path.rstrip("?")), 303)
        if request.method == "POST" and not ConsoleAuth.csrf_ok(session, request.form.get("csrf")):
            return problem(403, "this form is stale or did not come from the console (CSRF token missing or "
                                "wrong): reload the page and try again", session)
        return view(session, *args, **kwargs)

    wrapped.__name__ = view.__name__
    return wrapped


def may_replay(session: Session) -> Response | None:
    if not session.can_replay:
        return problem(403, "this token is read-only: it can see everything but replay nothing", session)
    return None


def _safe_next(value: str | None) -> str:
    base = url_for("suprhook_console.events")
    return value if value and value.startswith(base) and not value.startswith("//") else base


@bp.get("/signin")
def signin() -> Response:
    return page("signin.html", next=_safe_next(request.args.get("next")), error=None)


@bp.post("/signin")
def signin_post() -> Response:
    state = _state()
    cookie = state.auth.issue(request.form.get("token", ""))
    target = _safe_next(request.form.get("next"))
    if cookie is None:
        client = state.guard.client_ip(request.remote_addr, request.headers.getlist("X-Forwarded-For"))
        log.info("console sign-in refused from %s", client or request.remote_addr)  # never the token
        limited = state.guard.count_refusal(client, request.remote_addr, {"token": ["not a console token"]})
        if limited is not None:  # guessing: SUPRHOOK_REFUSAL_LIMIT per second and source, as for webhooks
            response = page("signin.html", 429, next=target, error="Too many wrong tokens from here; wait a moment.")
            response.headers.update(limited.headers)
            return response
        return page("signin.html", 401, next=target, error="That token is not a console token here.")
    response = redirect(target, 303)
    response.set_cookie(COOKIE, cookie, max_age=state.auth.ttl, path=url_for("suprhook_console.events"),
                        secure=state.auth.secure_cookie, httponly=True, samesite="Strict")
    return response


@bp.post("/signout")
@signed_in
def signout(session: Session) -> Response:
    response = redirect(url_for("suprhook_console.signin"), 303)
    response.delete_cookie(COOKIE, path=url_for("suprhook_console.events"), secure=_state().auth.secure_cookie,
                           httponly=True, samesite="Strict")
    return response


# --------------------------------------------------------------------------------------------------
# The events list


@bp.get("/")
@signed_in
def events(session: Session) -> Response:
    state = _state()
    filters = Filters.parse(request.args)
    cursor = Cursor.decode(request.args.get("cursor"))
    result = state.parts.browser.page(filters, cursor)
    older = None
    if result.next_cursor is not None:
        older = url_for("suprhook_console.events") + "?" + urlencode(
            filters.args() + [("cursor", result.next_cursor.encode())])
    return page("list.html", session=session, filters=filters, rows=[summary(r, state.settings) for r in result.rows],
                older=older, first=url_for("suprhook_console.events") + ("?" + urlencode(filters.args())
                                                                        if filters else ""),
                paged=cursor is not None, handlers=sorted(h.name for h in state.registry),
                shortcut_url=lambda outcomes: url_for("suprhook_console.events") + "?" + urlencode(
                    [("outcome", o) for o in outcomes]),
                bulk_url=lambda outcome: url_for("suprhook_console.bulk") + "?" + urlencode(
                    [a for a in filters.args() if a[0] != "outcome"] + [("outcome", outcome)]))


def summary(row: EventRow, settings: Settings) -> dict[str, Any]:
    """A list row: what each column shows (distinct_id masked as the logs mask it)."""
    raw = row.raw
    text = row.status
    if row.event_type == "inbound_message":
        text = reply_text(raw)
    return {"event_id": row.event_id, "received_at": row.received_at, "event_type": row.event_type,
            "channel": row.channel, "vendor": raw.get("vendor_name"), "text": text,
            "distinct_id": mask_distinct_id(row.distinct_id, settings.log_distinct_id),
            "workflow": raw.get("workflow_name"), "supr_nid": row.supr_nid, "runs": row.runs}


def reply_text(raw: Mapping[str, Any]) -> str | None:
    message = raw.get("suprsend_inbound_message")
    if not isinstance(message, Mapping):
        return None
    text = message.get("text")
    if isinstance(text, Mapping):
        text = text.get("body")
    if not text:
        for key in ("button", "interactive"):
            part = message.get(key)
            if isinstance(part, Mapping):
                text = part.get("text") or part.get("title") or part.get("payload")
                break
    return str(text) if text else (str(message.get("type")) if message.get("type") else None)


# --------------------------------------------------------------------------------------------------
# One event


@bp.get("/events/<event_id>")
@signed_in
def event(session: Session, event_id: str) -> Response:
    state = _state()
    row = state.parts.browser.event(event_id)
    if row is None:
        return problem(404, f"no event {event_id!r} in the event log", session)
    normalized, vendor, drift, error = normalize(row)
    history, current = [], None
    if row.supr_nid:
        history = state.parts.store.history(row.supr_nid)
        current = state.parts.store.current_status(row.supr_nid)
    headers = {k: v for k, v in row.headers.items() if not any(w in k.lower() for w in SECRET_HEADER_WORDS)}
    return page("event.html", session=session, row=row, s=summary(row, state.settings),
                body=json.dumps(row.body, indent=2, ensure_ascii=False, sort_keys=False),
                headers=headers, normalized=normalized, vendor=vendor, drift=drift, load_error=error,
                vendor_response=json.dumps(row.raw.get("vendor_response"), indent=2, ensure_ascii=False),
                history=history, current=current, curl=as_curl(row, state), pytest=as_pytest(row),
                followups=state.parts.store.followups_of(row.event_id),
                replayable=[r for r in row.runs if r.status != SUCCEEDED], message=request.args.get("message"))


def normalize(row: EventRow) -> tuple[dict[str, Any], dict[str, Any], str | None, str | None]:
    """The event as handlers see it (`load_event`), and its normalized vendor callback; or why it does not load."""
    try:
        event = load_event(row.raw, event_id=row.event_id)
    except Exception as exc:  # a body this version no longer loads is shown as stored, with why
        return {}, {}, None, str(exc)[:500]
    vendor = {k: getattr(event.vendor, k) for k in ("name", "message_id", "status", "normalized_status",
                                                     "error_code", "error_message", "timestamp", "recipient",
                                                     "sender", "profile_name")}
    vendor["normalized_status"] = str(getattr(vendor["normalized_status"], "value", vendor["normalized_status"]))
    normalized: dict[str, Any] = {"event_type": event.event_type, "channel": event.channel, "status": event.status,
                                  "timestamp": event.timestamp, "workflow_name": event.workflow_name,
                                  "template": event.template, "vendor_name": event.vendor_name,
                                  "supr_nid": event.reference.supr_nid,
                                  "idempotency_key": event.reference.idempotency_key}
    if event.message is not None:
        m = event.message
        normalized.update({"message.type": str(getattr(m.type, "value", m.type)), "message.text": m.text,
                           "message.button": (m.button.payload if m.button else None),
                           "message.reply_to_nid": m.reply_to_nid})
    return normalized, vendor, event.vendor.drift, None


def as_curl(row: EventRow, state: ConsoleState) -> str:
    url = request.host_url.rstrip("/") + state.webhook_path
    auth = ""
    if state.settings.auth_tokens:
        header = state.settings.auth_header
        auth = f" -H {shlex.quote(header + ': ' + ('Bearer ' if header.lower() == 'authorization' else ''))}\"$TOKEN\""
    body = json.dumps(row.body, ensure_ascii=False)
    return f"curl -sS {shlex.quote(url)} -H 'Content-Type: application/json'{auth} --data {shlex.quote(body)}"


def as_pytest(row: EventRow) -> str:
    raw = row.raw
    vendor = raw.get("vendor_name")
    common = (f"channel={raw.get('channel')!r}, vendor={vendor!r}, workflow={raw.get('workflow_name')!r}, "
              f"template={raw.get('template')!r}")
    if row.event_type == "inbound_message":
        call = f"make_inbound_message({reply_text(raw)!r}, {common})"
        name = "make_inbound_message"
    else:
        call = f"make_status_event({row.status!r}, {common})"
        name = "make_status_event"
    exact = json.dumps(row.body, indent=4, ensure_ascii=False)
    return (f"from suprhook import {name}\n\n# the same kind of event, from the testing kit:\npayload = {call}\n\n"
            f"# or exactly this one:\nimport json\npayload = json.loads(r'''{exact}''')\n")


# --------------------------------------------------------------------------------------------------
# Replay


@bp.post("/events/<event_id>/replay")
@signed_in
def replay_event(session: Session, event_id: str) -> Response:
    """Replay this event's runs that did not succeed, or one run (`handler` in the form)."""
    denied = may_replay(session)
    if denied is not None:
        return denied
    state = _state()
    row = state.parts.browser.event(event_id)
    if row is None:
        return problem(404, f"no event {event_id!r} in the event log", session)
    handler = request.form.get("handler") or None
    runs = [r for r in row.runs if r.status != SUCCEEDED and (handler is None or r.handler == handler)]
    if handler is not None and not runs:
        return problem(400, f"{handler!r} has no run of this event that did not succeed", session)
    sent, problems = redispatch(state.parts.store, state.celery, state.registry, state.settings,
                                [(event_id, r.handler) for r in runs])
    log.info("console replay event_id=%s handler=%s sent=%d", event_id, handler or "*", sent)
    message = f"Replayed {sent} run{'s' if sent != 1 else ''}." + (" " + "; ".join(problems) if problems else "")
    return redirect(url_for("suprhook_console.event", event_id=event_id, message=message), 303)


@bp.get("/replay")
@signed_in
def bulk(session: Session) -> Response:
    """What a bulk replay would send: the count, before confirming."""
    state = _state()
    filters, outcome = _bulk_filters()
    count = state.parts.browser.count_runs(filters, [outcome])
    return page("bulk.html", session=session, filters=filters, outcome=outcome, count=count, limit=MAX_BULK,
                back=url_for("suprhook_console.events") + "?" + urlencode(filters.args() + [("outcome", outcome)]))


def _bulk_filters() -> tuple[Filters, str]:
    source = request.form if request.method == "POST" else request.args
    filters = Filters.parse(source)
    if len(filters.outcomes) != 1 or filters.outcomes[0] not in (DEAD, FAILED):
        raise BadQuery("outcome: a bulk replay sends either the dead or the failed runs "
                       "(outcome=dead or outcome=failed)")
    return filters.with_outcomes(()), filters.outcomes[0]


@bp.post("/replay")
@signed_in
def bulk_post(session: Session) -> Response:
    denied = may_replay(session)
    if denied is not None:
        return denied
    state = _state()
    filters, outcome = _bulk_filters()
    pairs = state.parts.browser.run_pairs(filters, [outcome])
    summary_text = f"{outcome} runs of: " + (", ".join(f"{k}={v}" for k, v in filters.args()) or "every event")
    job = state.parts.jobs.add(pairs, 0, summary_text)
    # Thousands of runs take longer than a request may: sent from a thread, the page follows their progress.
    threading.Thread(target=send_bulk, args=(state, job, pairs), name=f"suprhook-console-replay-{job[:8]}",
                     daemon=True).start()
    log.info("console bulk replay job=%s outcome=%s matched=%d", job, outcome, len(pairs))
    return redirect(url_for("suprhook_console.progress", job_id=job), 303)


def send_bulk(state: ConsoleState, job: str, pairs: list[tuple[str, str]], chunk: int = 200) -> None:
    """Re-send `pairs` through redispatch, recording how many were sent after each chunk."""
    sent, problems = 0, []
    try:
        for start in range(0, len(pairs), chunk):
            done, trouble = redispatch(state.parts.store, state.celery, state.registry, state.settings,
                                       pairs[start:start + chunk])
            sent, problems = sent + done, problems + trouble
            state.parts.jobs.update(job, sent, problems[:5])
    except Exception as exc:
        log.exception("console bulk replay job=%s stopped after %d runs", job, sent)
        state.parts.jobs.update(job, sent, [*problems[:4], f"stopped: {type(exc).__name__}: {exc}"[:300]],
                                finished=True)
        return
    state.parts.jobs.update(job, sent, problems[:5], finished=True)


@bp.get("/replay/<job_id>")
@signed_in
def progress(session: Session, job_id: str) -> Response:
    state = _state()
    job = state.parts.jobs.get(job_id)
    if job is None:
        return problem(404, "no such bulk replay (only the last 100 are kept)", session)
    counts = state.parts.browser.run_statuses(job["pairs"])
    done = sum(v for k, v in counts.items() if k not in ("pending", "running"))
    finished = job["sending_done"] and done >= len(job["pairs"])
    return page("progress.html", session=session, job=job, counts=counts, done=done, total=len(job["pairs"]),
                finished=finished)


# --------------------------------------------------------------------------------------------------
# Overview


@bp.get("/overview")
@signed_in
def overview(session: Session) -> Response:
    state = _state()
    traffic = state.parts.traffic.summary()
    outcomes = state.parts.browser.run_outcomes(time.time() - 3600)
    pending, oldest = state.parts.browser.oldest_pending()
    reasons = sorted({r for m in traffic["minutes"] for r in m["rejected"]})
    first_refusal = _refusing_since(traffic["minutes"])
    return page("overview.html", session=session, minutes=traffic["minutes"], rejections=traffic["rejections"],
                reasons=reasons, outcomes=outcomes, pending=pending, oldest=oldest, depths=queue_depths(state),
                refusing=first_refusal, now=time.time(),
                peak=max([1] + [m["accepted"] + m["duplicate"] + m["rejected_total"] for m in traffic["minutes"]]))


def _refusing_since(minutes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """"Refused since 14:02: token": the latest run of minutes with rejections and nothing accepted, up to now."""
    since, reasons = None, {}
    for m in reversed(minutes):
        if m["accepted"] or m["duplicate"]:
            break
        if m["rejected_total"]:
            since = m["minute"]
            for k, v in m["rejected"].items():
                reasons[k] = reasons.get(k, 0) + v
    if since is None:
        return None
    return {"since": since, "reasons": sorted(reasons, key=lambda k: -reasons[k])}


def queue_depths(state: ConsoleState) -> dict[str, Any]:
    """Messages waiting in each handler queue ('unavailable' when the broker does not answer)."""
    queues = sorted({state.settings.default_queue} | {h.queue for h in state.registry if h.queue})
    depths: dict[str, Any] = {}
    try:
        with state.celery.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=state.settings.publish_timeout)
            channel = conn.default_channel
            for queue in queues:
                try:
                    depths[queue] = channel.queue_declare(queue, passive=True).message_count
                except Exception:
                    depths[queue] = "none yet"
    except Exception as exc:
        return {q: f"unavailable ({type(exc).__name__})" for q in queues}
    return depths
