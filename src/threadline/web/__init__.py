"""The dashboard at ``/`` and the public web-chat widget, server-rendered with Jinja2.

``install(app)`` adds the routes, the static files and the front-end packages (htmx and
Chart.js, installed from the npm registry by ``make`` into ``web/node_modules`` as pinned by
``package-lock.json``), and turns the dashboard's own errors into pages.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from threadline.web import auth
from threadline.web.templating import HERE, STATIC, templates

NODE_MODULES = HERE / "node_modules"
#: The front-end files served at /static/vendor/NAME, from the npm packages.
VENDOR = {
    "htmx.js": Path("htmx.org/dist/htmx.min.js"),
    "chart.js": Path("chart.js/dist/chart.umd.min.js"),
}


def install(app: FastAPI) -> None:
    from threadline.web.routes import (
        admin,
        agents,
        analytics,
        contacts,
        conversation,
        inbox,
        inboxes,
        live,
        search,
        session,
        widget,
    )

    app.state.web_throttle = auth.Throttle()
    for module in (
        session,
        inbox,
        conversation,
        contacts,
        analytics,
        admin,
        inboxes,
        agents,
        search,
        live,
        widget,
    ):
        app.include_router(module.router)
    app.add_api_route("/static/vendor/{name}", vendor, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(auth.SignInRequired, _sign_in_required)
    app.add_exception_handler(auth.Forbidden, _forbidden)


def vendor(name: str) -> Response:
    """A pinned front-end package file, cached for a day."""
    relative = VENDOR.get(name)
    path = NODE_MODULES / relative if relative else None
    if path is None or not path.is_file():
        raise StarletteHTTPException(404, "not installed: run make (it runs npm ci)")
    return FileResponse(
        path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    if request.method == "GET" and request.url.path != "/live":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response: Response = RedirectResponse(f"/?next={quote(target, safe='/')}", 303)
    else:
        response = Response("sign in first", status_code=401, media_type="text/plain")
    if request.headers.get("hx-request"):
        response.headers["HX-Redirect"] = "/"
    return response


async def _forbidden(request: Request, exc: Exception) -> Response:
    message = exc.message if isinstance(exc, auth.Forbidden) else "forbidden"
    if request.headers.get("hx-request"):
        return Response(message, status_code=403, media_type="text/plain")
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": "Not allowed", "message": message, "user": auth.optional_user(request)},
        status_code=403,
    )
