"""Who may do what over HTTP: bearer tokens by scope, and no mutating request from another
web origin (a page open in the operator's browser must not be able to POST to the runner).

Runs before routing, so an unknown path without a token is a 401 too: the API tells nobody
what exists before they show a token.
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
        headers = Headers(scope=scope)
        verdict = await self.guard.verdict(headers.get("authorization"))
        if verdict.name is None or verdict.scope is None:
            response = json_response({"error": TOKEN_REQUIRED}, 401)
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        method: str = scope["method"]
        origin = headers.get("origin")
        if (
            method not in _SAFE_METHODS
            and origin is not None
            and not origin_allowed(origin, scope, headers, verdict.name != ANONYMOUS)
        ):
            await json_response({"error": OTHER_ORIGIN}, 403)(scope, receive, send)
            return
        needed = required_scope(method, scope["path"])
        if not verdict.scope.allows(needed):
            message = scope_too_low(verdict.name, verdict.scope.value, needed.value)
            await json_response({"error": message}, 403)(scope, receive, send)
            return
        scope.setdefault("state", {})["actor"] = verdict.name
        await self.app(scope, receive, send)


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
