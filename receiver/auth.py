"""Token authentication from a custom header (SuprSend's endpoint "custom headers")."""
from __future__ import annotations

import hmac
from typing import Mapping

from handlers import Settings


def check_token(settings: Settings, headers: Mapping[str, str]) -> str | None:
    """None when the request is authenticated, else what is wrong (never echoing the token)."""
    if not settings.auth_tokens:
        return None
    header = settings.auth_header
    value = headers.get(header)
    if not value:
        return f"missing: send the token in the {header} header"
    token = value.strip()
    if header.lower() == "authorization":
        scheme, _, token = token.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "expected 'Bearer <token>'"
        token = token.strip()
    presented = token.encode("utf-8", "surrogateescape")
    # Compare against every configured token, without stopping early: constant time per token.
    matched = False
    for accepted in settings.auth_tokens:
        matched |= hmac.compare_digest(presented, accepted.encode("utf-8"))
    return None if matched else "invalid token"
