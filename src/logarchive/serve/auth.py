"""Who may read the archive: tokens from ``[serve] tokens``, compared in constant time.

A request is let in with ``Authorization: Bearer <token>``, or a ``session`` cookie holding either
a token (seed 002's clients send ``Cookie: session=...``) or a browser session issued by
``POST /login``. A browser session is ``s.<expiry>.<nonce>.<hmac>``: signed with a key derived
from the configured tokens, so removing or changing a token ends every session, and nothing is
kept on the server. Only ``/login`` is reachable without one; everything else, static files
included, answers 401 (or sends a browser to ``/login``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

SESSION_COOKIE = "session"
OPEN_PATHS = ("/login",)
_SESSION_PREFIX = "s."

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Authenticator:
    """Checks tokens and browser sessions (see the module doc)."""

    def __init__(self, tokens: list[bytes], session_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        if not tokens:
            raise ValueError("no token configured")
        self._tokens = list(tokens)
        self._key = hashlib.sha256(b"logarchive-serve-session\0" + b"\0".join(sorted(tokens))
                                   ).digest()
        self.session_seconds = session_seconds
        self._clock = clock
        self._revoked: dict[str, int] = {}  # signed payload -> its expiry (logged out)

    def token_ok(self, presented: str) -> bool:
        """Whether ``presented`` is a configured token; every token is compared, in constant
        time, whatever matches."""
        value = presented.encode("utf-8", "surrogateescape")
        ok = False
        for token in self._tokens:
            ok |= hmac.compare_digest(value, token)
        return ok

    def new_session(self) -> str:
        payload = f"{int(self._clock() + self.session_seconds)}.{secrets.token_urlsafe(16)}"
        return f"{_SESSION_PREFIX}{payload}.{self._sign(payload)}"

    def session_ok(self, value: str) -> bool:
        if not value.startswith(_SESSION_PREFIX):
            return False
        payload, _, signature = value[len(_SESSION_PREFIX):].rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return False
        expiry = payload.partition(".")[0]
        return expiry.isdigit() and int(expiry) > self._clock() and payload not in self._revoked

    def revoke(self, value: str) -> None:
        """Logout: this session is refused from now on (kept in memory until it would have
        expired anyway; a restart forgets it, rotating the tokens ends every session)."""
        if self.session_ok(value):
            now = self._clock()
            self._revoked = {p: e for p, e in self._revoked.items() if e > now}
            payload = value[len(_SESSION_PREFIX):].rpartition(".")[0]
            self._revoked[payload] = int(payload.partition(".")[0])

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def allowed(self, authorization: str | None, cookie: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and token and self.token_ok(token.strip()):
            return True
        return bool(cookie) and (self.session_ok(cookie) or self.token_ok(cookie))


def refusal(path: str, query: str) -> tuple[int, dict[str, str], bytes]:
    """What an unauthenticated request gets, in the shape its API uses: seed 000's JSON body,
    seed 002's text, the JSON API's error, or a browser's redirect to the login page."""
    if path.startswith("/api/v1/models/"):
        return 401, {"content-type": "application/json"}, (
            b'{"error": "Unauthorized", "message": "Verify your JWT token format and ensure it '
            b'has not expired."}')
    if path.startswith("/workflows/"):
        return 401, {"content-type": "text/plain"}, b"Invalid or expired session\n"
    if path.startswith("/api/") or path.startswith("/static/"):
        return 401, {"content-type": "application/json"}, (
            b'{"error": "Unauthorized", "message": "a valid token is required: Authorization: '
            b'Bearer <token>, or log in at /login"}')
    target = path + (f"?{query}" if query else "")
    return 303, {"location": "/login?next=" + quote(target, safe="")}, b""


class AuthMiddleware:
    """ASGI middleware: every HTTP request but the login page must be authenticated."""

    def __init__(self, app: Any, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        cookies = _cookies(headers.get("cookie")) or [None]
        if any(self.auth.allowed(headers.get("authorization"), c) for c in cookies):
            await self.app(scope, receive, send)
            return
        status, extra, body = refusal(scope["path"], scope.get("query_string", b"").decode())
        response_headers = [(k.encode(), v.encode()) for k, v in extra.items()]
        response_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})


def _cookies(header: str | None) -> list[str]:
    """Every ``session`` cookie of a Cookie header (a browser may send several)."""
    found = []
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE:
            found.append(value.strip().strip('"'))
    return found


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this server only (never ``//host`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
