"""The Starlette application: routes of the seed APIs, the JSON API and the web UI, behind
:class:`~logarchive.serve.auth.AuthMiddleware`. Needs the ``[serve]`` extra."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from logarchive.base import ByteSink
from logarchive.codec import DEFAULT_MAX_LINE_BYTES
from logarchive.serve import api, seeds, ui
from logarchive.serve.auth import Authenticator, AuthMiddleware
from logarchive.serve.index import RunIndex, RunRow
from logarchive.serve.logs import MEDIA_TYPES, IntegrityError, checked_chunks, render
from logarchive.serve.settings import ServeConfig

log = structlog.get_logger("logarchive.serve")
ORIGIN_HEADER = "x-logarchive-origin"


@dataclass
class Served:
    """What every request handler needs: the archive, its index, who may read."""

    settings: ServeConfig
    sink: ByteSink
    index: RunIndex
    auth: Authenticator
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES

    def latest(self, fields: dict[str, str], statuses: tuple[str, ...] = ()) -> RunRow | None:
        """:meth:`RunIndex.latest`, if its object is still there (deleted since the last
        refresh: not found, and the index learns it now)."""
        row = self.index.latest(fields, statuses)
        return row if row is None or self.still_there(row) else None

    def still_there(self, row: RunRow) -> bool:
        if self.sink.exists(row.object_path):
            return True
        self.index.mark_absent(row.id)
        return False

    def chunks(self, row: RunRow) -> Iterator[bytes]:
        """The stored bytes of ``row``'s object, checked against its manifest (the outcome of
        a complete read is remembered in the index)."""
        return checked_chunks(self.sink, row.stored(),
                              lambda ok: self.index.record_check(row.id, ok))

    def rendered(self, row: RunRow, rendering: str) -> Iterator[bytes]:
        return render(row.stored(), rendering, self.chunks(row), self.max_line_bytes)


class StreamAborted(Exception):
    """Raised inside a streamed body to break the connection (the client sees an incomplete
    response, never a complete-looking wrong one). Logged as one event, without a traceback."""


class LogStream(StreamingResponse):
    """A streamed log: the body iterator runs in a worker thread (Starlette iterates a sync
    iterator in its thread pool: reads are blocking), nothing
    is read for HEAD, and an :class:`IntegrityError` either ends the body with ``trailer(error)``
    (seed 002) or breaks the connection."""

    def __init__(self, body: Iterator[bytes], headers: dict[str, str],
                 trailer: Callable[[IntegrityError], bytes] | None = None,
                 what: str = "") -> None:
        super().__init__(self._guarded(body, trailer, what), headers=headers)

    @staticmethod
    def _guarded(body: Iterator[bytes], trailer: Callable[[IntegrityError], bytes] | None,
                 what: str) -> Iterator[bytes]:
        try:
            for chunk in body:
                if chunk:
                    yield chunk
        except IntegrityError as exc:
            log.error("serve_log_failed", run=what, error=str(exc))
            if trailer is None:
                raise StreamAborted(str(exc)) from None
            yield trailer(exc)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await super().__call__(scope, receive, send)


def log_response(served: Served, row: RunRow, rendering: str, disposition: str | None,
                 trailer: Callable[[IntegrityError], bytes] | None = None) -> LogStream:
    """A run's log as ``rendering``: the seed's bare ``Content-Type`` (no charset), a
    ``Content-Disposition`` when given, and ``X-Logarchive-Origin`` saying whether the bytes are
    the archived ones or rebuilt from records."""
    headers = {"content-type": MEDIA_TYPES[rendering],
               ORIGIN_HEADER: row.stored().origin(rendering)}
    if disposition:
        headers["content-disposition"] = disposition
    return LogStream(served.rendered(row, rendering), headers, trailer, row.run_key)


_PLAIN = re.compile(r"^[\x20-\x7e]*$")


def attachment(filename: str) -> str:
    """``attachment; filename="..."`` as the seeds write it; a name that is not plain ASCII, or
    holds a quote or backslash, is replaced there and given in full as ``filename*`` (RFC 6266)."""
    from urllib.parse import quote

    if _PLAIN.match(filename) and '"' not in filename and "\\" not in filename:
        return f'attachment; filename="{filename}"'
    fallback = re.sub(r'[^\x20-\x7e]|["\\]', "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def json_error(status: int, error: str, message: str) -> Response:
    """An error body in seed 000's shape (``{"error": ..., "message": ...}``, as ``json.dumps``
    writes it), with a bare ``application/json``."""
    import json

    return Response(json.dumps({"error": error, "message": message}).encode(), status,
                    headers={"content-type": "application/json"})


class _QuietAbort(logging.Filter):
    """uvicorn logs an exception escaping the app with its traceback: a deliberate
    :class:`StreamAborted` was already logged as one event."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StreamAborted)


def build_app(served: Served) -> Starlette:
    logging.getLogger("uvicorn.error").addFilter(_QuietAbort())
    from importlib.resources import files

    static = StaticFiles(directory=str(files("logarchive.serve") / "static"))
    routes = [*seeds.routes(served), *api.routes(served), *ui.routes(served),
              Mount("/static", app=static, name="static")]
    app = Starlette(routes=routes, middleware=[Middleware(AuthMiddleware, auth=served.auth)],
                    exception_handlers={404: _not_found})
    app.state.served = served
    return app


async def _not_found(request: Any, exc: Any) -> Response:
    answer = seeds.unrouted(request)
    if answer is not None:
        return answer
    if request.url.path.startswith("/api/"):
        return json_error(404, "Not Found", "no such route")
    if request.url.path.startswith("/workflows/"):
        return Response(b"Workflow or job not found\n", 404, headers={"content-type": "text/plain"})
    return Response(b"Not Found\n", 404, headers={"content-type": "text/plain"})

