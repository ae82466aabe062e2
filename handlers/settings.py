"""Settings read from the environment (or an override mapping with the same keys)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    env: str = "production"
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)  # never printed
    auth_header: str = "Authorization"
    allow_unauthenticated: bool = False
    max_body_bytes: int = 1 << 20
    data_dir: Path = Path("var")
    broker_url: str = ""
    dedup_url: str = ""
    dedup_ttl: int = 86400
    handler_modules: tuple[str, ...] = ()
    default_queue: str = "suprhook"
    poll_interval: float = 0.05
    visibility_timeout: int = 30  # Redis: held messages are kept fresh by the worker (handlers.worker.leases)
    publish_timeout: float = 1.0
    max_retries: int = 5
    retry_backoff_max: int = 600
    suprsend_workspace_key: str = ""
    suprsend_workspace_secret: str = field(default="", repr=False)  # never printed
    suprsend_base_url: str = ""
    followup_timeout: float = 10.0
    followup_max_bytes: int = 100 * 1024
    followup_max_depth: int = 3
    conversation_url: str = ""
    conversation_ttl: int = 86400
    own_numbers: tuple[str, ...] = ()
    signing_secrets: tuple[str, ...] = field(default=(), repr=False)  # never printed
    signature_tolerance: int = 300
    allowed_ips: tuple[str, ...] = ()
    trusted_proxies: int = 0
    refusal_limit: float = 1.0  # refused requests/s per source before its refusals become 429; 0 = off
    refusal_burst: int = 50
    rate_limit: float = 0.0  # requests/s over all sources, per endpoint; 0 (the default) turns it off
    rate_limit_burst: int = 200
    rate_limit_url: str = ""  # redis://... to share both limits between receiver processes
    store_url: str = ""
    run_lease: float = 30.0  # renewed every third of it while the handler runs (handlers.worker.leases)
    recovery: str = "on"  # the event-log sweep: on (any broker), auto (embedded broker only), off
    recovery_after: float = 30.0
    redis_fastpath: bool = True  # dedup + enqueue in one Lua call when broker and dedup share a Redis
    log_format: str = "json"  # json | text (default text when env is development)
    log_level: str = "INFO"
    log_distinct_id: str = "hash"  # plain | hash | mask, see handlers.observability.jsonlog
    metrics_token: str = field(default="", repr=False)  # never printed; bearer token for GET /metrics
    metrics_enabled: bool = True  # SUPRHOOK_METRICS=off: no GET /metrics on the receiver's port (404)
    metrics_public: bool = False  # SUPRHOOK_METRICS_PUBLIC=1: production may serve /metrics without a token
    worker_metrics_port: int = 0  # 0 = off; else the worker serves /metrics there
    worker_metrics_addr: str = "0.0.0.0"
    # The event console (receiver.console): on when any token is set. Tokens never printed.
    console_tokens: tuple[str, ...] = field(default=(), repr=False)
    console_readonly_tokens: tuple[str, ...] = field(default=(), repr=False)
    console_session_ttl: int = 43200  # seconds a console sign-in lasts

    def __repr__(self) -> str:
        """Like the dataclass repr, with secrets left out and passwords in URLs masked."""
        shown = (f"{f.name}={redact_url(v) if isinstance(v := getattr(self, f.name), str) else v!r}"
                 for f in fields(self) if f.repr)
        return f"Settings({', '.join(shown)})"

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def console_enabled(self) -> bool:
        """The event console is mounted at /console/ when a console token is set (`suprhook dev` sets one)."""
        return bool(self.console_tokens or self.console_readonly_tokens)

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("sqla+sqlite")

    @property
    def recovery_sweep(self) -> bool:
        """The embedded broker loses the task of a SIGKILLed worker; kombu's Redis transport loses one
        taken by BRPOP but not yet in its unacked hash when the worker or the broker dies (seen in the
        chaos test). The sweep over the event log re-dispatches such runs; bookkeeping skips the rest."""
        return self.recovery == "on" or (self.recovery == "auto" and self.embedded_broker)

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "Settings":
        """Read `SUPRHOOK_*` / `CELERY_BROKER_URL`; keys in `overrides` win over the environment."""
        src = config_source(overrides, environ)

        def get(key: str, default: Any = None) -> Any:
            value = src.get(key)
            return default if value is None or value == "" else value

        def num(key: str, default: Any, kind: type) -> Any:
            value = get(key, default)
            try:
                parsed = kind(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{key} must be a {kind.__name__}, got {value!r}") from None
            if parsed < 0:
                raise ConfigError(f"{key} must not be negative, got {value!r}")
            return parsed

        data_dir = Path(get("SUPRHOOK_DATA_DIR", "var")).resolve()
        env = str(get("SUPRHOOK_ENV", "production")).lower()
        if env not in ("production", "development"):
            raise ConfigError(f"SUPRHOOK_ENV must be 'production' or 'development', got {env!r}")
        return cls(
            env=env,
            auth_tokens=_csv(get("SUPRHOOK_AUTH_TOKENS", "")),
            auth_header=str(get("SUPRHOOK_AUTH_HEADER", "Authorization")),
            allow_unauthenticated=str(get("SUPRHOOK_ALLOW_UNAUTHENTICATED", "")).lower() in _TRUE,
            max_body_bytes=num("SUPRHOOK_MAX_BODY_BYTES", 1 << 20, int),
            data_dir=data_dir,
            broker_url=str(get("CELERY_BROKER_URL", f"sqla+sqlite:///{data_dir / 'broker.sqlite3'}")),
            dedup_url=str(get("SUPRHOOK_DEDUP_URL", f"sqlite:///{data_dir / 'dedup.sqlite3'}")),
            dedup_ttl=num("SUPRHOOK_DEDUP_TTL", 86400, int),
            handler_modules=_csv(get("SUPRHOOK_HANDLERS", "")),
            default_queue=str(get("SUPRHOOK_QUEUE", "suprhook")),
            poll_interval=num("SUPRHOOK_POLL_INTERVAL", 0.05, float),
            visibility_timeout=num("SUPRHOOK_VISIBILITY_TIMEOUT", 30, int),
            publish_timeout=num("SUPRHOOK_PUBLISH_TIMEOUT", 1.0, float),
            max_retries=num("SUPRHOOK_MAX_RETRIES", 5, int),
            retry_backoff_max=num("SUPRHOOK_RETRY_BACKOFF_MAX", 600, int),
            suprsend_workspace_key=str(get("SUPRSEND_WORKSPACE_KEY", "")),
            suprsend_workspace_secret=str(get("SUPRSEND_WORKSPACE_SECRET", "")),
            suprsend_base_url=str(get("SUPRSEND_BASE_URL", "")),
            followup_timeout=num("SUPRSEND_TIMEOUT", 10.0, float),
            followup_max_bytes=num("SUPRHOOK_FOLLOWUP_MAX_BYTES", 100 * 1024, int),
            followup_max_depth=num("SUPRHOOK_FOLLOWUP_MAX_DEPTH", 3, int),
            conversation_url=str(get("SUPRHOOK_CONVERSATION_URL", f"sqlite:///{data_dir / 'conversations.sqlite3'}")),
            conversation_ttl=num("SUPRHOOK_CONVERSATION_TTL", 86400, int),
            own_numbers=_csv(get("SUPRHOOK_OWN_NUMBERS", "")),
            signing_secrets=_csv(get("SUPRHOOK_SIGNING_SECRET", "")),
            signature_tolerance=num("SUPRHOOK_SIGNATURE_TOLERANCE", 300, int),
            allowed_ips=_csv(get("SUPRHOOK_ALLOWED_IPS", "")),
            trusted_proxies=num("SUPRHOOK_TRUSTED_PROXIES", 0, int),
            refusal_limit=num("SUPRHOOK_REFUSAL_LIMIT", 1.0, float),
            refusal_burst=num("SUPRHOOK_REFUSAL_BURST", 50, int),
            rate_limit=num("SUPRHOOK_RATE_LIMIT", 0.0, float),
            rate_limit_burst=num("SUPRHOOK_RATE_LIMIT_BURST", 200, int),
            rate_limit_url=str(get("SUPRHOOK_RATE_LIMIT_URL", "")),
            store_url=str(get("SUPRHOOK_STORE_URL", f"sqlite:///{data_dir / 'events.sqlite3'}")),
            run_lease=num("SUPRHOOK_RUN_LEASE", 30.0, float),
            recovery=str(get("SUPRHOOK_RECOVERY", "on")).lower(),
            recovery_after=num("SUPRHOOK_RECOVERY_AFTER", 30.0, float),
            redis_fastpath=str(get("SUPRHOOK_REDIS_FASTPATH", "1")).lower() in _TRUE,
            log_format=str(get("SUPRHOOK_LOG_FORMAT", "json" if env == "production" else "text")).lower(),
            log_level=str(get("SUPRHOOK_LOG_LEVEL", "INFO")).upper(),
            log_distinct_id=str(get("SUPRHOOK_LOG_DISTINCT_ID", "hash")).lower(),
            metrics_token=str(get("SUPRHOOK_METRICS_TOKEN", "")),
            metrics_enabled=_on_off("SUPRHOOK_METRICS", get("SUPRHOOK_METRICS", "on")),
            metrics_public=str(get("SUPRHOOK_METRICS_PUBLIC", "")).lower() in _TRUE,
            worker_metrics_port=num("SUPRHOOK_WORKER_METRICS_PORT", 0, int),
            worker_metrics_addr=str(get("SUPRHOOK_WORKER_METRICS_ADDR", "0.0.0.0")),
            console_tokens=_csv(get("SUPRHOOK_CONSOLE_TOKEN", "")),
            console_readonly_tokens=_csv(get("SUPRHOOK_CONSOLE_READONLY_TOKEN", "")),
            console_session_ttl=num("SUPRHOOK_CONSOLE_SESSION_TTL", 43200, int),
        )

    def require_auth(self) -> None:
        """Refuse to serve webhooks in production without credentials, unless explicitly allowed."""
        if self.production and not (self.auth_tokens or self.signing_secrets) and not self.allow_unauthenticated:
            raise ConfigError(
                "refusing to start in production without authentication: set SUPRHOOK_AUTH_TOKENS "
                "(comma-separated) and/or SUPRHOOK_SIGNING_SECRET (whsec_...), or "
                "SUPRHOOK_ALLOW_UNAUTHENTICATED=1 if something in front of "
                "this service authenticates SuprSend, or SUPRHOOK_ENV=development for local work"
            )

    def require_metrics_guard(self) -> None:
        """Refuse to serve `GET /metrics` open to anyone on the webhook's public port in production, unless
        explicitly allowed."""
        if self.production and self.metrics_enabled and not self.metrics_token and not self.metrics_public:
            raise ConfigError(
                "refusing to start in production with GET /metrics open on the webhook port: set "
                "SUPRHOOK_METRICS_TOKEN (scrapers send Authorization: Bearer <token>), or SUPRHOOK_METRICS=off "
                "to serve no /metrics on this port, or SUPRHOOK_METRICS_PUBLIC=1 if the internet cannot reach it "
                "(something in front of this service blocks or guards /metrics), or SUPRHOOK_ENV=development "
                "for local work"
            )

    def validate(self) -> None:
        """Refuse settings under which a live worker would lose its runs or its held messages."""
        if self.recovery not in ("auto", "on", "off"):
            raise ConfigError(f"SUPRHOOK_RECOVERY must be auto, on or off, got {self.recovery!r}")
        if self.run_lease < 3:
            raise ConfigError(f"SUPRHOOK_RUN_LEASE must be at least 3 s (it is renewed every third of it), "
                              f"got {self.run_lease:g}")
        if self.visibility_timeout < 4:
            raise ConfigError(f"SUPRHOOK_VISIBILITY_TIMEOUT must be at least 4 s (held messages are refreshed "
                              f"every quarter of it), got {self.visibility_timeout}")

    @property
    def lease_renew_every(self) -> float:
        """How often a running handler's lease is renewed: three chances before it expires."""
        return self.run_lease / 3

    @property
    def unacked_refresh_every(self) -> float:
        """How often a Redis worker marks the messages it holds as still held (handlers.worker.leases)."""
        return self.visibility_timeout / 4


def config_source(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The environment with `overrides` applied (their None values ignored): what `Settings.load` reads,
    for settings whose names are not fixed (`SUPRHOOK_ENDPOINT_<NAME>_TOKENS`, see `receiver.endpoints`)."""
    src: dict[str, Any] = dict(os.environ if environ is None else environ)
    src.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return src


def redact_url(value: str) -> str:
    """`redis://:secret@host/0` -> `redis://:***@host/0` (also user:password@)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", value)


def _on_off(key: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key} must be on or off, got {value!r}")


def _csv(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(part.strip() for part in str(value).split(",") if part.strip())
