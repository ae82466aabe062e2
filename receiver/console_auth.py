"""Sign-in, sessions and CSRF for the event console (receiver.console), without Flask.

A person signs in with one of `SUPRHOOK_CONSOLE_TOKEN` (full access) or `SUPRHOOK_CONSOLE_READONLY_TOKEN`
(reads everything, replays nothing), several of each allowed for rotation. The session is a cookie signed
with a key derived from the very token used, so removing a token from the settings ends its sessions and
only theirs. The cookie carries the role, a random nonce and its issue time (never the token); the CSRF
token of every form is an HMAC of that nonce. Tokens are compared in constant time and never logged.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..handlers import Settings

FULL, READONLY = "full", "readonly"
COOKIE = "suprhook_console"
_SALT = "suprhook-console-session-v1"


@dataclass(frozen=True)
class Session:
    """A signed-in person: `role` is FULL or READONLY; `csrf` goes in every form they post."""

    role: str
    csrf: str

    @property
    def can_replay(self) -> bool:
        return self.role == FULL


def _key(token: str) -> bytes:
    return hashlib.sha256(b"suprhook-console-key:" + token.encode("utf-8", "surrogateescape")).digest()


class ConsoleAuth:
    """Issues and checks console sessions for one receiver's settings."""

    def __init__(self, settings: Settings) -> None:
        self.tokens: tuple[tuple[str, str], ...] = tuple(
            [(FULL, t) for t in settings.console_tokens] + [(READONLY, t) for t in settings.console_readonly_tokens])
        self.ttl = settings.console_session_ttl
        self.secure_cookie = settings.env != "development"

    def __repr__(self) -> str:  # never the tokens
        return f"ConsoleAuth({len(self.tokens)} tokens, ttl={self.ttl})"

    def role_of(self, presented: str) -> str | None:
        """The role of a token typed into the sign-in form, or None; every configured token is compared."""
        given = presented.strip().encode("utf-8", "surrogateescape")
        role = None
        for kind, token in self.tokens:
            if hmac.compare_digest(given, token.encode("utf-8", "surrogateescape")) and role is None:
                role = kind
        return role if given else None

    def issue(self, presented: str) -> str | None:
        """The session cookie's value for a valid token, else None."""
        role = self.role_of(presented)
        if role is None:
            return None
        token = presented.strip()
        data = {"r": role, "n": secrets.token_urlsafe(16)}
        return URLSafeTimedSerializer(_key(token), salt=_SALT).dumps(data)

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, if it is ours, unexpired and its token is still configured."""
        if not cookie or len(cookie) > 1000:
            return None
        for role, token in self.tokens:  # a handful; the signature decides
            try:
                data = URLSafeTimedSerializer(_key(token), salt=_SALT).loads(cookie, max_age=self.ttl)
            except BadSignature:
                continue
            if isinstance(data, dict) and data.get("r") == role and isinstance(data.get("n"), str):
                return Session(role, hmac.new(_key(token), b"csrf:" + data["n"].encode(), "sha256").hexdigest())
        return None

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(session.csrf.encode(), str(presented).encode())
