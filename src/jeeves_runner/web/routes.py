"""The dashboard's routes: `install` adds the pages to the app; the root, the login and the
logout live here, the pages in job_pages.py and data_pages.py."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from jeeves_runner.api.access import DASHBOARD
from jeeves_runner.auth import TokenGuard
from jeeves_runner.web import data_pages, job_pages
from jeeves_runner.web.render import HERE, login_required, page_error, render, safe_next
from jeeves_runner.web.session import (
    LoginRequired,
    PageError,
    clear_cookie_header,
    form_of,
    new_csrf_key,
    session_cookie_header,
)

public = APIRouter(include_in_schema=False)


def install(app: FastAPI, guard: TokenGuard) -> None:
    """Pages, static files and the handlers that turn page errors into pages."""
    app.state.csrf_key = new_csrf_key()
    app.state.guard = guard
    app.include_router(public)
    app.include_router(job_pages.router)
    app.include_router(data_pages.router)
    app.mount(f"{DASHBOARD}/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(PageError, page_error)


@public.get("/")
async def root() -> Response:
    return RedirectResponse(DASHBOARD, status_code=303)


@public.get(f"{DASHBOARD}/login")
async def login_page(request: Request) -> Response:
    return render(
        request, "login.html", next=safe_next(request.query_params.get("next")), error=None
    )


@public.post(f"{DASHBOARD}/login")
async def login(request: Request) -> Response:
    form = await form_of(request)
    secret = form.get("token", "").strip()
    next_path = safe_next(form.get("next"))
    guard: TokenGuard = request.app.state.guard
    await guard.refresh()
    verdict = guard.match(secret) if secret else None
    if verdict is None or verdict.name is None:
        return render(request, "login.html", 401, next=next_path, error="That token is not valid.")
    response = RedirectResponse(next_path, status_code=303)
    response.headers["Set-Cookie"] = session_cookie_header(
        secret, secure=request.url.scheme == "https"
    )
    return response


@public.post(f"{DASHBOARD}/logout")
async def logout() -> Response:
    response = RedirectResponse(f"{DASHBOARD}/login", status_code=303)
    response.headers["Set-Cookie"] = clear_cookie_header()
    return response
