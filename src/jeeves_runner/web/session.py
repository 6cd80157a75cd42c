"""Who is looking at the dashboard, and what they may do there.

The AccessControl middleware has already matched the session cookie (or a bearer header)
against the tokens and left the verdict in `request.state`; here each page turns it into a
redirect to the login page or a message page, with the scope the API would ask for the same
action (`/ui/jobs/x/run` needs what `POST /jobs/x/run` needs).

Every form carries a CSRF token: an HMAC, under a key made when the app starts, of the
session's secret (or of "anonymous" where no token is needed). A page from another site
cannot read it, so it cannot forge a form; the SameSite=Strict cookie and the Origin check
are the other two locks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, quote

from fastapi import Request
from starlette.datastructures import Headers

from jeeves_runner.access_model import Scope
from jeeves_runner.api.access import DASHBOARD, SESSION_COOKIE, session_secret
from jeeves_runner.auth import ANONYMOUS, required_scope

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_MISSING = "This form has no valid CSRF token: reload the page and try again."
MAX_FORM_BYTES = 256 * 1024


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__("A token is required")
        self.next_path = next_path


class PageError(Exception):
    """Answered with the message page: a status and one sentence."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def new_csrf_key() -> bytes:
    return secrets.token_bytes(32)


def csrf_token(request: Request) -> str:
    key: bytes = request.app.state.csrf_key
    identity = session_secret(Headers(scope=request.scope)) or ANONYMOUS
    return hmac.new(key, identity.encode("utf-8"), hashlib.sha256).hexdigest()


def token_scope(request: Request) -> Scope | None:
    found = getattr(request.state, "token_scope", None)
    return found if isinstance(found, Scope) else None


def actor(request: Request) -> str | None:
    found = getattr(request.state, "actor", None)
    return found if isinstance(found, str) else None


def may(request: Request, needed: Scope) -> bool:
    has = token_scope(request)
    return has is not None and has.allows(needed)


async def form_of(request: Request) -> dict[str, str]:
    """A urlencoded form body (the only kind the pages send), first value of each field."""
    cached = getattr(request.state, "form", None)
    if isinstance(cached, dict):
        return cached
    # Read with a cap: a huge body is refused without being held in memory.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise PageError(413, "The form is too large.")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PageError(400, "The form is not UTF-8 text.") from None
    form = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    request.state.form = form
    return form


async def check_access(request: Request) -> None:
    """Every dashboard route but login, logout and the static files: a visitor without a
    valid token goes to the login page; a token of too low a scope gets a message; a form
    without the CSRF token is refused."""
    if token_scope(request) is None:
        if request.method == "GET":
            raise LoginRequired(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
        raise PageError(401, "A token is required: log in first.")
    api_path = request.url.path.removeprefix(DASHBOARD) or "/"
    needed = required_scope(request.method, api_path)
    if not may(request, needed):
        raise PageError(
            403,
            f"The token '{actor(request)}' has scope {token_scope(request)}; this needs {needed}.",
        )
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get(CSRF_HEADER) or (await form_of(request)).get(CSRF_FIELD, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(request).encode()):
            raise PageError(403, CSRF_MISSING)


def login_url(next_path: str) -> str:
    return f"{DASHBOARD}/login?next={quote(next_path, safe='/')}"


def session_cookie_header(secret: str, *, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict{flags}"


def clear_cookie_header() -> str:
    return f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
