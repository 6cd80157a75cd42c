"""How the dashboard's pages are made: the Jinja2 environment and the common context, the
message page for errors, and the helpers every page module shares."""

from __future__ import annotations

import hashlib
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from jeeves_runner import __version__
from jeeves_runner.access_model import Scope
from jeeves_runner.api.access import DASHBOARD, SESSION_COOKIE
from jeeves_runner.api.deps import get_control
from jeeves_runner.web import views
from jeeves_runner.web.session import (
    CSRF_FIELD,
    LoginRequired,
    PageError,
    actor,
    csrf_token,
    form_of,
    login_url,
    token_scope,
)

HERE = Path(__file__).resolve().parent
MAX_PAGE = 100_000
MAX_SEARCH = 200
# The lists poll this often; an unchanged database answers 204 (nothing to swap).
POLL = "every 1s"
# Pages that show times ("next fire", "late") refresh at least this often without a change.
TIME_BUCKET_S = 30

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["duration"] = views.duration


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    scope = token_scope(request)
    zone: tzinfo = request.app.state.zone
    body = templates.get_template(template).render(
        request=request,
        ui=DASHBOARD,
        version=__version__,
        csrf=csrf_token(request),
        csrf_field=CSRF_FIELD,
        actor=actor(request),
        logged_in=request.cookies.get(SESSION_COOKIE) is not None,
        can_trigger=scope is not None and scope.allows(Scope.TRIGGER),
        can_admin=scope is not None and scope.allows(Scope.ADMIN),
        cluster_nav=in_cluster(request),
        zone_name=str(zone),
        local=lambda instant: views.local_time(instant, zone),
        offset=lambda instant: views.zone_offset_minutes(instant, zone),
        **context,
    )
    response = HTMLResponse(body, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    return response


async def login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if is_htmx(request):
        # A poll whose session ended (a token revoked): the whole page goes to the login,
        # rather than a login form swapped into a table.
        return Response(status_code=200, headers={"HX-Redirect": login_url(DASHBOARD)})
    return RedirectResponse(login_url(exc.next_path), status_code=303)


async def page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    if is_htmx(request):
        # htmx swaps only 2xx answers: the message goes into the flash area as a 200.
        return render(request, "flash.html", ok=False, message=exc.message, link=None)
    return render(request, "message.html", exc.status_code, title="Sorry", message=exc.message)


def in_cluster(request: Request) -> bool:
    """This runner is a node of a cluster (the Runner's `cluster`, set when it starts in
    cluster mode): the nav shows the Cluster page."""
    return getattr(get_control(request), "cluster", None) is not None


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def now_of(request: Request) -> datetime:
    now: datetime = request.app.state.clock.now()
    return now


def page_number(request: Request, name: str = "page") -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return 1
    if not text.isascii() or not text.isdigit() or not 1 <= int(text[:7]) <= MAX_PAGE:
        raise PageError(400, f"{name} must be a whole number from 1 to {MAX_PAGE}.")
    return int(text)


async def data_token(request: Request) -> str:
    """The data version with a time bucket, as a short token the polling lists send back."""
    control = get_control(request)
    version = await control.store.probe(control.data_version)
    bucket = int(now_of(request).timestamp()) // TIME_BUCKET_S
    return hashlib.sha1(repr((version, bucket)).encode()).hexdigest()[:12]


def safe_next(text: str | None) -> str:
    """Only a path of this dashboard: never an open redirect to another site."""
    if text and text.startswith(DASHBOARD) and "//" not in text and "\\" not in text:
        return text
    return DASHBOARD


async def done(request: Request, message: str, link: str | None, link_text: str | None) -> Response:
    """After an action: a flash message for htmx, else back to the page the form was on."""
    if is_htmx(request):
        return render(
            request, "flash.html", ok=True, message=message, link=link, link_text=link_text
        )
    back = (await form_of(request)).get("back")
    return RedirectResponse(link or safe_next(back), status_code=303)
