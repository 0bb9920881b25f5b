"""The web UI: server-rendered pages (Jinja2, autoescaped) with a little vanilla JS from
``static/`` (no CDN, no build step). Pages: ``/login``, ``/`` (runs), ``/runs/{id}`` (one run),
``/search``. Every value shown comes from the index or a manifest (manifests are redacted when
written); no setting of the config, and no token, is ever rendered."""

from __future__ import annotations

from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from logarchive.serve.auth import SESSION_COOKIE, safe_next
from logarchive.serve.index import SORTS

MAX_FORM_BYTES = 8192


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(files("logarchive.serve") / "templates"))
    templates.env.filters["pretty"] = lambda v: orjson.dumps(
        v, option=orjson.OPT_INDENT_2).decode()
    templates.env.globals["sorts"] = list(SORTS)
    return templates


def routes(served: Any) -> list[Route]:
    from logarchive.patterns import PatternTooSlow
    from logarchive.serve.api import BadRequest, list_page, search_page

    templates = _templates()

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status)

    async def login_form(request: Request) -> Response:
        return page(request, "login.html", next=safe_next(request.query_params.get("next")))

    async def login(request: Request) -> Response:
        body = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(body).items()}
        target = safe_next(form.get("next"))
        if not served.auth.token_ok(form.get("token", "")):
            return page(request, "login.html", 401, next=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        secure = served.settings.secure_cookie or request.url.scheme == "https"
        response.set_cookie(SESSION_COOKIE, served.auth.new_session(),
                            max_age=int(served.auth.session_seconds), path="/", httponly=True,
                            samesite="strict", secure=secure)
        return response

    async def logout(request: Request) -> Response:
        served.auth.revoke(request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def runs(request: Request) -> Response:
        params = request.query_params
        try:
            listing = await run_in_threadpool(list_page, served, params)
            error = None
        except (BadRequest, PatternTooSlow) as exc:
            listing, error = {"runs": [], "total": 0, "offset": 0, "limit": 50}, str(exc)
        facets = await run_in_threadpool(served.index.facets)
        field_name = next((k[2:] for k in params if k.startswith("f.")), "")
        return page(request, "runs.html", 400 if error else 200, listing=listing, error=error,
                    facets=facets, p=params, field_name=field_name,
                    field_value=params.get(f"f.{field_name}", "") if field_name else "",
                    link=lambda **change: _link(params, change))

    async def run(request: Request) -> Response:
        row = await run_in_threadpool(served.index.get, request.path_params["run"])
        if row is None:
            return page(request, "missing.html", 404)
        manifest = await run_in_threadpool(served.index.manifest, row.id)
        return page(request, "run.html", run=row, manifest=manifest)

    async def search(request: Request) -> Response:
        params = request.query_params
        result, error = None, None
        if params.get("pattern"):
            try:
                result = await run_in_threadpool(search_page, served, params)
            except (BadRequest, PatternTooSlow) as exc:
                error = str(exc)
        facets = await run_in_threadpool(served.index.facets)
        return page(request, "search.html", 400 if error else 200, result=result, error=error,
                    p=params, facets=facets)

    return [Route("/login", login_form, methods=["GET"]), Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]), Route("/", runs, methods=["GET"]),
            Route("/runs/{run}", run, methods=["GET"]),
            Route("/search", search, methods=["GET"])]


def _link(params: Any, change: dict[str, Any]) -> str:
    """The runs page's URL with some parameters changed (sorting, paging)."""
    merged = {k: v for k, v in params.multi_items() if k not in change}
    merged.update({k: v for k, v in change.items() if v is not None})
    return "/?" + urlencode(merged)

