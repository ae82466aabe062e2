"""Several webhook endpoints: one URL per event type or channel, each with its own credentials.

SuprSend lets a user point one endpoint per event type (and channel) at a URL, or all of them at one
URL. `POST /webhooks/suprsend` (the ``default`` endpoint) always accepts every event with
``SUPRHOOK_AUTH_TOKENS`` / ``SUPRHOOK_SIGNING_SECRET``. Named endpoints add paths that accept only
some event types and/or channels, declared in code (`Endpoint`, passed to `init_app` / `create_app`)
or in the environment::

    SUPRHOOK_ENDPOINTS="status:/webhooks/suprsend/status:event_type=status;
                        replies:/webhooks/suprsend/replies:event_type=inbound_message:channel=whatsapp|sms"

Entries are separated by ``;`` (or newlines); each is ``name:path`` followed by optional
``:event_type=a|b`` and ``:channel=c|d`` filters (no filter: that endpoint accepts everything).
Credentials, per endpoint (``NAME`` is the name in upper case), first found wins:

- tokens: `Endpoint.tokens` (code) -> ``SUPRHOOK_ENDPOINT_<NAME>_TOKENS`` -> ``SUPRHOOK_AUTH_TOKENS``;
- signing secrets: `Endpoint.signing_secrets` -> ``SUPRHOOK_ENDPOINT_<NAME>_SIGNING_SECRET`` ->
  ``SUPRHOOK_SIGNING_SECRET``.

An event an endpoint does not accept (SuprSend's webhook for it points at the wrong URL) is refused
with a 422 that names the field, the endpoint, what it accepts and the endpoint that would take it.
This module holds that logic; `receiver.ingest` calls it, `receiver.blueprint` mounts the routes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..handlers import ConfigError, Settings

from .ingest import Rejection
from .security import SignatureVerifier, check_signature

ENV_VAR = "SUPRHOOK_ENDPOINTS"
DEFAULT_NAME = "default"
DEFAULT_PATH = "/webhooks/suprsend"
# Paths the blueprint serves itself: no endpoint may take them.
RESERVED_PATHS = {DEFAULT_PATH: "the default endpoint", "/healthz": "the liveness check",
                  "/readyz": "the readiness check", "/metrics": "the Prometheus metrics",
                  "/openapi.json": "the OpenAPI document"}
FILTER_KEYS = ("event_type", "channel")
FORMAT = "name:/path[:event_type=a|b][:channel=c|d], entries separated by ';'"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
_VALUE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def tokens_variable(name: str) -> str:
    return f"SUPRHOOK_ENDPOINT_{name.upper()}_TOKENS"


def secret_variable(name: str) -> str:
    return f"SUPRHOOK_ENDPOINT_{name.upper()}_SIGNING_SECRET"


def _csv(value: str | Iterable[str]) -> tuple[str, ...]:
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(str(p).strip() for p in parts if str(p).strip())


def _values(name: str, key: str, value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    found = frozenset(str(v).strip() for v in items)
    if not found:
        raise ConfigError(f"endpoint {name!r}: {key} is empty, so it would accept nothing "
                          f"(leave it out to accept every {key})")
    for v in sorted(found):
        if not _VALUE.match(v):
            raise ConfigError(f"endpoint {name!r}: {key} value {v!r} is not a SuprSend {key} "
                              "(lowercase letters, digits, '_', '.', '-')")
    return found


@dataclass(frozen=True)
class Endpoint:
    """A named webhook URL and what it accepts.

    `path` is relative to where the receiver is mounted (``url_prefix``). `event_types` / `channels`
    None accept every value; a string or an iterable of strings is a set of accepted values.
    `tokens` / `signing_secrets` None fall back to ``SUPRHOOK_ENDPOINT_<NAME>_TOKENS`` /
    ``..._SIGNING_SECRET``, then to the global settings; ``()`` means none (e.g. signature only).
    Credentials are never part of the ``repr``.
    """

    name: str
    path: str
    tokens: tuple[str, ...] | None = field(default=None, repr=False)
    signing_secrets: tuple[str, ...] | None = field(default=None, repr=False)
    event_types: frozenset[str] | None = None
    channels: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"endpoint name {self.name!r} must be 1 to 40 lowercase letters, digits or '_', "
                              "starting with a letter (it names SUPRHOOK_ENDPOINT_<NAME>_TOKENS)")
        path = self.path
        segments = path.split("/")[1:] if isinstance(path, str) and path.startswith("/") else None
        if not segments or not all(_SEGMENT.match(s) and s not in (".", "..") for s in segments):
            raise ConfigError(f"endpoint {self.name!r}: path {path!r} must be '/' followed by segments of "
                              "letters, digits, '.', '_', '~' or '-' (no '//', no trailing '/', no '.' or '..')")
        set_ = object.__setattr__  # frozen: normalize once, here
        for attr in ("tokens", "signing_secrets"):
            value = getattr(self, attr)
            if value is not None:
                set_(self, attr, _csv(value))
        set_(self, "event_types", _values(self.name, "event_type", self.event_types))
        set_(self, "channels", _values(self.name, "channel", self.channels))

    def accepts(self, event_type: str, channel: str) -> bool:
        return ((self.event_types is None or event_type in self.event_types)
                and (self.channels is None or channel in self.channels))

    def describe(self) -> str:
        """``event_type=status channel=sms|whatsapp``, or ``(every event)``, as `suprhook routes` shows it."""
        parts = [f"{key}={'|'.join(sorted(values))}" for key, values in
                 (("event_type", self.event_types), ("channel", self.channels)) if values is not None]
        return " ".join(parts) or "(every event)"

    def doc_key(self) -> tuple[str, str, tuple[str, ...] | None, tuple[str, ...] | None]:
        """What the OpenAPI document says about this endpoint (hashable, no credentials)."""
        return (self.name, self.path, None if self.event_types is None else tuple(sorted(self.event_types)),
                None if self.channels is None else tuple(sorted(self.channels)))


DEFAULT = Endpoint(DEFAULT_NAME, DEFAULT_PATH)  # POST /webhooks/suprsend: every event, the global credentials


# --------------------------------------------------------------------------------------------------
# Declaring: the environment, code, and the checks on the whole set


def parse_endpoints(spec: str, *, variable: str = ENV_VAR) -> list[Endpoint]:
    """The endpoints of a ``SUPRHOOK_ENDPOINTS`` value; a ConfigError names the entry that is wrong."""
    found: list[Endpoint] = []
    for index, entry in enumerate((e.strip() for e in re.split(r"[;\n]", spec or "")), 1):
        if not entry:
            continue
        where = f"{variable}: entry #{index} {entry!r}"
        name, sep, rest = entry.partition(":")
        path, _, options = rest.partition(":")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ConfigError(f"{where} is not {FORMAT}")
        filters: dict[str, list[str]] = {}
        for option in (o.strip() for o in options.split(":") if options):
            key, eq, value = (x.strip() for x in option.partition("="))
            if not eq or key not in FILTER_KEYS:
                raise ConfigError(f"{where}: {option!r} is not event_type=... or channel=... (format: {FORMAT})")
            if key in filters:
                raise ConfigError(f"{where}: {key} is given twice; list its values once, separated by '|'")
            values = [v.strip() for v in value.split("|")]
            if not all(values):
                raise ConfigError(f"{where}: {key} has an empty value (values are separated by '|')")
            filters[key] = values
        try:
            found.append(Endpoint(name, path, event_types=filters.get("event_type"), channels=filters.get("channel")))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return found


def check_endpoints(endpoints: Sequence[Endpoint]) -> None:
    """Names and paths unique; no path taken by the default endpoint, /healthz, /readyz, /metrics, /openapi.json."""
    names: dict[str, Endpoint] = {}
    paths: dict[str, Endpoint] = {}
    for endpoint in endpoints:
        if not isinstance(endpoint, Endpoint):
            raise ConfigError(f"endpoints must be receiver.endpoints.Endpoint objects, got {endpoint!r}")
        if endpoint.name == DEFAULT_NAME:
            raise ConfigError(f"endpoint name {DEFAULT_NAME!r} is taken by {DEFAULT_PATH}, which accepts every event")
        if endpoint.name in names:
            raise ConfigError(f"endpoint {endpoint.name!r} is declared twice (in code and/or {ENV_VAR})")
        if endpoint.path in RESERVED_PATHS:
            raise ConfigError(f"endpoint {endpoint.name!r}: path {endpoint.path} is taken by "
                              f"{RESERVED_PATHS[endpoint.path]}")
        if endpoint.path in paths:
            raise ConfigError(f"endpoints {paths[endpoint.path].name!r} and {endpoint.name!r} both use the path "
                              f"{endpoint.path}; each endpoint needs its own")
        names[endpoint.name], paths[endpoint.path] = endpoint, endpoint


def declared_endpoints(source: Mapping[str, Any], extra: Iterable[Endpoint] = ()) -> list[Endpoint]:
    """The named endpoints: those of ``SUPRHOOK_ENDPOINTS`` in `source`, then `extra` (code), checked."""
    endpoints = parse_endpoints(str(source.get(ENV_VAR) or "")) + list(extra)
    check_endpoints(endpoints)
    return endpoints


def stray_variables(source: Mapping[str, Any], endpoints: Sequence[Endpoint]) -> list[str]:
    """``SUPRHOOK_ENDPOINT_<NAME>_...`` variables set for no declared endpoint (a typo, or a removed one)."""
    known = {v for e in endpoints for v in (tokens_variable(e.name), secret_variable(e.name))}
    return sorted(k for k, v in source.items() if k.startswith("SUPRHOOK_ENDPOINT_") and k not in known
                  and v not in (None, ""))


# --------------------------------------------------------------------------------------------------
# Resolving: credentials and the mounted path of each endpoint


@dataclass(frozen=True)
class Route:
    """An endpoint as served: its mounted URL path and effective credentials (never in the ``repr``)."""

    endpoint: Endpoint
    url: str  # the path as mounted, url_prefix included
    tokens: tuple[str, ...] = field(repr=False)
    tokens_from: str  # the setting the tokens come from: a variable name, or "code"
    verifier: SignatureVerifier | None = field(repr=False)
    secrets_from: str

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def is_default(self) -> bool:
        return self.endpoint.name == DEFAULT_NAME

    @property
    def authenticated(self) -> bool:
        return bool(self.tokens) or self.verifier is not None

    def auth(self) -> str:
        """``2 token(s) (SUPRHOOK_AUTH_TOKENS) + signature (SUPRHOOK_SIGNING_SECRET)``, or ``none``: no secret."""
        parts = [f"{len(self.tokens)} token(s) ({self.tokens_from})"] if self.tokens else []
        parts += [f"signature ({self.secrets_from})"] if self.verifier is not None else []
        return " + ".join(parts) or "none"

    def verify_signature(self, body: bytes, headers: Mapping[str, str]) -> Rejection | None:
        return check_signature(self.verifier, body, headers)

    def refusal(self, event_type: str, channel: str, routes: Iterable["Route"]) -> dict[str, list[str]] | None:
        """None when this endpoint accepts the event, else the 422 ``errors``: by field, what is wrong
        (this endpoint, what it accepts) and where SuprSend's webhook for this event should point."""
        endpoint = self.endpoint
        wrong = [(key, got, accepted) for key, got, accepted in (("event_type", event_type, endpoint.event_types),
                                                                 ("channel", channel, endpoint.channels))
                 if accepted is not None and got not in accepted]
        if not wrong:
            return None
        others = [r for r in routes if r is not self and r.endpoint.accepts(event_type, channel)]
        target = next((r for r in others if not r.is_default), others[0] if others else None)
        if target is None:
            advice = "no endpoint of this receiver accepts it"
        elif target.is_default:
            advice = f"point it at {target.url} (the default endpoint, which accepts every event)"
        else:
            advice = f"point it at {target.url} (endpoint {target.name!r}, which accepts {target.endpoint.describe()})"
        return {key: [f"endpoint {self.name!r} ({self.url}) accepts {key} {'|'.join(sorted(accepted))}, "
                      f"not {got}: SuprSend's {channel} {event_type} webhook points at the wrong URL; {advice}"]
                for key, got, accepted in wrong}


def _credentials(explicit: tuple[str, ...] | None, source: Mapping[str, Any], variable: str,
                 fallback: tuple[str, ...], fallback_variable: str) -> tuple[tuple[str, ...], str]:
    if explicit is not None:
        return explicit, "code"
    own = _csv(str(source.get(variable) or ""))
    return (own, variable) if own else (fallback, fallback_variable)


def build_routes(settings: Settings, source: Mapping[str, Any], endpoints: Sequence[Endpoint], *,
                 url_prefix: str | None = None, default_verifier: SignatureVerifier | None = None) -> list[Route]:
    """The default route, then one per named endpoint, with their credentials resolved.

    `default_verifier`: the global signature verifier when one is built already (the request guard's).
    """
    prefix = (url_prefix or "").rstrip("/")
    if default_verifier is None and settings.signing_secrets:
        default_verifier = SignatureVerifier(settings.signing_secrets, settings.signature_tolerance)
    routes = [Route(DEFAULT, prefix + DEFAULT_PATH, settings.auth_tokens, "SUPRHOOK_AUTH_TOKENS",
                    default_verifier, "SUPRHOOK_SIGNING_SECRET")]
    for endpoint in endpoints:
        tokens, tokens_from = _credentials(endpoint.tokens, source, tokens_variable(endpoint.name),
                                           settings.auth_tokens, "SUPRHOOK_AUTH_TOKENS")
        secrets, secrets_from = _credentials(endpoint.signing_secrets, source, secret_variable(endpoint.name),
                                             settings.signing_secrets, "SUPRHOOK_SIGNING_SECRET")
        if secrets_from == "SUPRHOOK_SIGNING_SECRET":
            verifier = default_verifier
        else:
            verifier = SignatureVerifier(secrets, settings.signature_tolerance, setting=(
                f"endpoint {endpoint.name!r} signing_secrets" if secrets_from == "code" else secrets_from)
            ) if secrets else None
        routes.append(Route(endpoint, prefix + endpoint.path, tokens, tokens_from, verifier, secrets_from))
    return routes


def require_auth(settings: Settings, routes: Sequence[Route]) -> None:
    """The production rule, per endpoint: refuse to start with an endpoint nobody has to authenticate to."""
    if not settings.production or settings.allow_unauthenticated:
        return
    for route in routes:
        if not route.authenticated:
            name = route.name
            raise ConfigError(
                f"refusing to start in production: endpoint {name!r} ({route.url}) has no authentication; set "
                f"{tokens_variable(name)} or {secret_variable(name)} (or SUPRHOOK_AUTH_TOKENS / "
                "SUPRHOOK_SIGNING_SECRET, which every endpoint without its own uses), give it tokens= or "
                "signing_secrets= in code, or SUPRHOOK_ALLOW_UNAUTHENTICATED=1 if something in front of this "
                "service authenticates SuprSend")



def load_routes(settings: Settings, source: Mapping[str, Any], extra: Iterable[Endpoint] = (), *,
                url_prefix: str | None = None, default_verifier: SignatureVerifier | None = None) -> list[Route]:
    """What a receiver serves: the default route, then the endpoints of ``SUPRHOOK_ENDPOINTS`` and `extra`
    (code), checked; a ``SUPRHOOK_ENDPOINT_<NAME>_...`` variable for no endpoint (a typo) and, in
    production, an endpoint without authentication are ConfigErrors."""
    named = declared_endpoints(source, extra)
    stray = stray_variables(source, named)
    if stray:
        raise ConfigError(f"{', '.join(stray)}: no endpoint has that name (declared: "
                          f"{', '.join(e.name for e in named) or 'none'})")
    routes = build_routes(settings, source, named, url_prefix=url_prefix, default_verifier=default_verifier)
    require_auth(settings, routes)
    return routes
