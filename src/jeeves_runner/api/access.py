"""Who may do what over HTTP: bearer tokens by scope, and no mutating request from another
web origin (a page open in the operator's browser must not be able to POST to the runner).

Runs before routing, so an unknown path without a token is a 401 too: the API tells nobody
what exists before they show a token.

The dashboard (`/ui`, `web/`) is the exception: a browser shows its token through the
session cookie the login page set, and the dashboard's own routes decide, with pages rather
than JSON, what a visitor without a token or with too low a scope sees. The cookie also
stands for a bearer token on reads elsewhere (the run page follows `/runs/:id/log` with an
EventSource, which cannot send headers); never on a write outside `/ui`, whose forms carry a
CSRF token besides.
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from jeeves_runner.api.params import json_response
from jeeves_runner.auth import ANONYMOUS, TokenGuard, required_scope

TOKEN_REQUIRED = "A valid token is required"
OTHER_ORIGIN = "Requests from another web origin are refused"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
DASHBOARD = "/ui"
SESSION_COOKIE = "jr_session"


def scope_too_low(name: str, has: str, needs: str) -> str:
    return f"The token '{name}' has scope {has}; this request needs {needs}"


class AccessControl:
    def __init__(self, app: ASGIApp, guard: TokenGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        dashboard = is_dashboard_path(path)
        authorization, cookie, origin = _access_headers(scope)
        # A browser adds a cookie by itself, never a bearer header: only the header counts
        # as proof below that the request is not a forgery.
        header_token = authorization is not None
        if authorization is None and (dashboard or method in _SAFE_METHODS):
            secret = secret_of_cookie(cookie)
            if secret is not None:
                authorization = f"Bearer {secret}"
        verdict = await self.guard.verdict(authorization)
        if dashboard:
            # Pages decide for themselves (a login page, a message page); the Origin check
            # below still applies to their forms.
            state = scope.setdefault("state", {})
            state["actor"] = verdict.name
            state["token_scope"] = verdict.scope
        elif verdict.name is None or verdict.scope is None:
            response = json_response({"error": TOKEN_REQUIRED}, 401)
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        if (
            method not in _SAFE_METHODS
            and origin is not None
            and not origin_allowed(
                origin,
                scope,
                Headers(scope=scope),
                header_token and verdict.name not in (None, ANONYMOUS),
            )
        ):
            await json_response({"error": OTHER_ORIGIN}, 403)(scope, receive, send)
            return
        if dashboard:
            await self.app(scope, receive, send)
            return
        assert verdict.name is not None and verdict.scope is not None
        needed = required_scope(method, scope["path"])
        if not verdict.scope.allows(needed):
            message = scope_too_low(verdict.name, verdict.scope.value, needed.value)
            await json_response({"error": message}, 403)(scope, receive, send)
            return
        scope.setdefault("state", {})["actor"] = verdict.name
        await self.app(scope, receive, send)


def is_dashboard_path(path: str) -> bool:
    return path in ("/", DASHBOARD) or path.startswith(DASHBOARD + "/")


# The headers access control reads, each with its place in _access_headers' answer.
_ACCESS_HEADERS = {b"authorization": 0, b"cookie": 1, b"origin": 2}


def _access_headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """Authorization, Cookie and Origin, each the first of its name as Starlette's
    `Headers.get` gives it (the server lowercases names), in one pass over the raw headers:
    every API request passes here."""
    found: list[str | None] = [None, None, None]
    for name, value in scope["headers"]:
        at = _ACCESS_HEADERS.get(name)
        if at is not None and found[at] is None:
            found[at] = value.decode("latin-1")
    return found[0], found[1], found[2]


def session_secret(headers: Headers) -> str | None:
    """The token the dashboard's session cookie holds, if any."""
    return secret_of_cookie(headers.get("cookie"))


def secret_of_cookie(raw: str | None) -> str | None:
    """The session token in a Cookie header's value, if any."""
    if not raw:
        return None
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return value
    return None


def own_origins(scope: Scope) -> set[str]:
    """The origins a page served by this very server has: its socket's address, and for a
    loopback socket the usual loopback names. Not the Host header: a DNS-rebinding page sends
    a Host and an Origin that agree with each other."""
    http_scheme = "https" if scope.get("scheme") == "https" else "http"
    server = scope.get("server")
    if not server:
        return set()
    host, port = str(server[0]), server[1]
    names = [f"[{host}]" if ":" in host else host]
    try:
        if ipaddress.ip_address(host).is_loopback:
            names += _LOOPBACK_NAMES
    except ValueError:
        pass
    origins = set()
    for name in names:
        origins.add(f"{http_scheme}://{name}:{port}")
        if (http_scheme, port) in (("http", 80), ("https", 443)):
            origins.add(f"{http_scheme}://{name}")
    return origins


def origin_allowed(origin: str, scope: Scope, headers: Headers, authenticated: bool) -> bool:
    origin = origin.rstrip("/").lower()
    if origin in own_origins(scope):
        return True
    # With a token the request cannot be a cross-site forgery (a browser never adds a bearer
    # token by itself), so a page reached by a name (a dashboard on a LAN host) may use it.
    host = headers.get("host")
    if authenticated and host:
        http_scheme = "https" if scope.get("scheme") == "https" else "http"
        return origin == f"{http_scheme}://{host.lower()}"
    return False
