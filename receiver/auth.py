"""Token authentication from a custom header (SuprSend's endpoint "custom headers")."""
from __future__ import annotations

import hmac
from typing import Mapping, Sequence

from ..handlers import Settings


def check_token(settings: Settings, headers: Mapping[str, str], tokens: Sequence[str] | None = None) -> str | None:
    """None when the request is authenticated, else what is wrong (never echoing the token).

    `tokens`: the accepted tokens of the endpoint posted to (`receiver.endpoints`); None means
    ``SUPRHOOK_AUTH_TOKENS``. The header is always ``SUPRHOOK_AUTH_HEADER``.
    """
    accepted_tokens = settings.auth_tokens if tokens is None else tokens
    if not accepted_tokens:
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
    for accepted in accepted_tokens:
        matched |= hmac.compare_digest(presented, accepted.encode("utf-8"))
    return None if matched else "invalid token"
