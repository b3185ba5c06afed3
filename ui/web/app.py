"""The app on the UI port: the collector's query API, the pages and their data, composed.

Pages are HTML shells (Jinja2, autoescaped) that load plotly.js from the installed plotly
package and one script of ours; the script fetches figures built in Python from /ui/data and
renders them. No CDN, no build step: it works with no internet.
"""

from __future__ import annotations

import gzip
import hmac
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Final

import plotly
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.middleware.gzip import GZipMiddleware

from collector.api.app import create_query_app
from collector.capped_body import BodyTimeout, BodyTooLarge
from collector.engine import Collector
from ui.web.data import data_router, map_prefetch
from ui.web.layout_memory import LayoutMemory
from ui.web.security import (
    LoginThrottle,
    SecurityHeaders,
    SessionPolicy,
    SessionRenewal,
    content_security_policy,
    login_redirect,
    safe_next,
    session_cookie_header,
    submitted_token,
)
from ui.web.security import has_session as request_has_session

HERE: Final = Path(__file__).parent
PLOTLY_JS: Final = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# The map page's first paint (static/boot.js), inlined in its <head> and allowed by its hash:
# fetched as a file it came late whenever the server was busy building the map it asks for.
FIRST_PAINT_JS: Final = (HERE / "static" / "boot.js").read_text()
FIRST_PAINT: Final = Markup(FIRST_PAINT_JS)  # our own file, put in the page as it is
PAGES: Final = {
    "/": ("map.html", "Service map"),
    "/traces": ("traces.html", "Traces"),
    "/analytics": ("analytics.html", "Analytics"),
    "/insights": ("insights.html", "Insights"),
    "/compare": ("compare.html", "Compare traces"),
}


@cache
def compressed_plotly() -> bytes:
    return gzip.compress(PLOTLY_JS.read_bytes(), compresslevel=6)


def create_app(collector: Collector, *, token: str | None = None, session: SessionPolicy | None = None) -> FastAPI:
    """The query API plus the web UI for `collector`; `token` guards both."""
    policy = session or SessionPolicy()

    def has_session(request: Request) -> bool:
        return request_has_session(request, token, policy)

    app = create_query_app(collector, token=token, authorized=has_session if token is not None else None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def require_session(request: Request) -> None:
        if not has_session(request):
            raise HTTPException(401, "log in first: the UI needs the daemon's token")

    layouts = LayoutMemory()
    prefetch = map_prefetch(collector, layouts)
    app.include_router(data_router(collector, prefetch, layouts), dependencies=[Depends(require_session)])

    def page(request: Request, template: str, title: str, **context: str) -> Response:
        if not has_session(request):
            return RedirectResponse(login_redirect(request), status_code=303)
        return templates.TemplateResponse(request, template, {"title": title, **context})

    def page_route(template: str, title: str) -> Callable[[Request], Response]:
        def show(request: Request) -> Response:
            if template != "map.html":
                return page(request, template, title)
            query = request.query_params
            plain = query.get("view", "compact") == "compact" and not query.get("focus") and not query.get("group")
            if has_session(request) and plain:
                prefetch.start(query.get("range"), query.get("filter"))
            return page(request, template, title, first_paint=FIRST_PAINT)

        return show

    for path, (template, title) in PAGES.items():
        app.add_api_route(
            path, page_route(template, title), methods=["GET"], response_class=HTMLResponse, include_in_schema=False
        )

    @app.get("/traces/{trace_id}", response_class=HTMLResponse, include_in_schema=False)
    def trace_page(request: Request, trace_id: str) -> Response:
        return page(request, "trace.html", "Trace", trace_id=trace_id)

    _add_login_routes(app, templates, token, policy)
    _add_static_routes(app)
    # Level 1, not Starlette's 9: on the map's ~765 KB of JSON, 9 took ~30 ms, 6 ~17 ms and 1 ~5 ms
    # here, for a body 1.5x the size of level 6's: nothing on a loopback link, little on a LAN.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=1)
    app.add_middleware(SecurityHeaders, policy=content_security_policy((FIRST_PAINT_JS,)))
    app.add_middleware(SessionRenewal, token=token, policy=policy)
    return app


def _add_login_routes(app: FastAPI, templates: Jinja2Templates, token: str | None, policy: SessionPolicy) -> None:
    """The login form and its post: a right token gets a session cookie, wrong ones are slowed per client."""
    throttle = LoginThrottle()

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        return templates.TemplateResponse(request, "login.html", {"title": "Log in", "next": safe_next(next)})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        wait_s = throttle.wait_s(client)
        if wait_s > 0:
            retry = str(int(wait_s) + 1)
            return PlainTextResponse(f"too many failed logins: try again in {retry} s", 429, {"Retry-After": retry})
        try:
            given, target = await submitted_token(request)
        except BodyTooLarge as exc:
            return PlainTextResponse(f"login form too large: {exc}", 413)
        except BodyTimeout as exc:
            return PlainTextResponse(str(exc), 408)
        if token is None or not hmac.compare_digest(given.encode(), token.encode()):
            throttle.failed(client)
            context = {"title": "Log in", "next": target, "error": "That is not the daemon's token."}
            return templates.TemplateResponse(request, "login.html", context, status_code=401)
        throttle.succeeded(client)
        response = RedirectResponse(target, status_code=303)
        response.headers.append("Set-Cookie", session_cookie_header(token, policy, time.time()))
        return response


def _add_static_routes(app: FastAPI) -> None:
    """Plotly (compressed once) and the pages' own scripts and styles."""

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js(request: Request) -> Response:
        # 4.6 MB: compressed once, not per request (on the fly that cost ~300 ms a load here).
        headers = {"Cache-Control": "max-age=86400", "Vary": "Accept-Encoding"}
        if "gzip" not in request.headers.get("accept-encoding", ""):
            return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=headers)
        headers["Content-Encoding"] = "gzip"
        return Response(compressed_plotly(), media_type="text/javascript", headers=headers)

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
