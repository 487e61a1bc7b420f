"""Short-lived tokens for browsers, which cannot set headers on `EventSource` or WebSocket.

A token is `apt_<payload>.<signature>`: the payload (base64url JSON: key name, optional agent,
expiry as Unix seconds) signed with HMAC-SHA256. It names its key rather than containing it, so a
token in a URL (access logs) reveals no key, and a key revoked on reload takes its tokens with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

TOKEN_PREFIX = "apt_"
MAX_TOKEN_CHARS = 1024
"""Longer strings are not tokens: refused before any decoding."""


class TokenError(Exception):
    """A token that is not accepted; `reason` is `invalid_token` or `expired_token`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claims:
    key: str
    """The name of the key the token was issued for."""
    agent: str | None
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies tokens with one secret (a random one for this process when none is given)."""

    def __init__(self, secret: bytes | None, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.clock = clock
        """Injectable, so that tests can stand at a window's or a token's edge."""

    def _sign(self, payload: str) -> str:
        return _b64(
            hmac.new(self._secret, payload.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        )

    def issue(self, key: str, agent: str | None, ttl_s: float) -> tuple[str, int]:
        """(token, expires_at as Unix seconds)."""
        expires_at = int(self.clock() + ttl_s)
        payload = _b64(orjson.dumps({"k": key, "a": agent, "e": expires_at}))
        return f"{TOKEN_PREFIX}{payload}.{self._sign(payload)}", expires_at

    def verify(self, token: str) -> Claims:
        if len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
            raise TokenError("invalid_token")
        payload, _, signature = token[len(TOKEN_PREFIX) :].partition(".")
        if not hmac.compare_digest(
            signature.encode("utf-8", "surrogateescape"), self._sign(payload).encode()
        ):
            raise TokenError("invalid_token")
        try:
            claims = orjson.loads(_unb64(payload))
            result = Claims(str(claims["k"]), claims["a"], int(claims["e"]))
        except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TokenError("invalid_token") from exc
        if result.agent is not None and not isinstance(result.agent, str):
            raise TokenError("invalid_token")
        if result.expires_at <= self.clock():
            raise TokenError("expired_token")
        return result
