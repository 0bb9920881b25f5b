"""Start ``logarchive serve``: open the sink, build the index, listen (uvicorn), refresh the
index in the background until stopped (SIGINT/SIGTERM: uvicorn's graceful shutdown)."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Callable

import structlog

from logarchive.base import ByteSink
from logarchive.config import Config
from logarchive.errors import ConfigError
from logarchive.secrets import redact
from logarchive.serve.settings import ServeConfig

log = structlog.get_logger("logarchive.serve")
EXTRA_MODULES = ("starlette", "uvicorn", "jinja2")
INDEX_FOLDER = "serve"


def serve_settings(config: Config) -> ServeConfig:
    """The ``[serve]`` table, checked for what the config loader cannot know alone."""
    settings = config.serve
    if settings is None:
        raise ConfigError("no [serve] table: set sink, listen and tokens (see docs/serve.md)",
                          file=config.path, key="serve")
    if not settings.tokens:
        raise ConfigError("no token configured: serve refuses to start without one (every "
                          "request must be authenticated); set tokens = [\"${LOGARCHIVE_SERVE_"
                          "TOKEN}\"]", file=config.path, key="serve.tokens")
    sink = config.sinks.get(settings.sink)
    if sink is None or not issubclass(sink.plugin.cls, ByteSink):
        choices = [n for n, c in config.sinks.items() if issubclass(c.plugin.cls, ByteSink)]
        raise ConfigError(f"{settings.sink!r} is not a sink that stores objects; expected one "
                          f"of: {', '.join(choices) or '(none)'}", file=config.path,
                          key="serve.sink")
    return settings


def require_extra() -> None:
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"logarchive serve needs {', '.join(missing)}: "
                          "pip install 'logarchive[serve]'")


def listening_socket(settings: ServeConfig) -> socket.socket:
    host, port = settings.address()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {settings.listen}: {exc.strerror}",
                          key="serve.listen") from None
    sock.listen(128)
    return sock


def run(config: Config, announce: Callable[[str], None], verbosity: int = 0) -> None:
    """Serve until stopped."""
    settings = serve_settings(config)
    require_extra()
    import uvicorn

    from logarchive.pipeline import open_sink
    from logarchive.serve.app import Served, build_app
    from logarchive.serve.auth import Authenticator
    from logarchive.serve.index import RunIndex

    sink = open_sink(config, settings.sink)
    index = RunIndex(config.state_dir / INDEX_FOLDER / f"{sink.name}.sqlite", sink)
    stop = threading.Event()
    try:
        stats = index.refresh()
        log.info("serve_index_built", sink=sink.name, runs=stats.manifests, read=stats.read,
                 skipped=stats.skipped, seconds=round(stats.seconds, 3))
        served = Served(settings, sink, index,
                        Authenticator(settings.token_values(), settings.session_hours * 3600),
                        sink.config.max_line_bytes)
        sock = listening_socket(settings)
        server = uvicorn.Server(uvicorn.Config(
            build_app(served), log_level="debug" if verbosity > 0 else "warning",
            access_log=verbosity > 0, lifespan="off", proxy_headers=True,
            timeout_graceful_shutdown=5, log_config=None))
        threading.Thread(target=_refresher, args=(index, settings.refresh_seconds, stop),
                         name="serve-index", daemon=True).start()
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        announce(f"serving sink {sink.name!r} ({stats.manifests} runs) on "
                 f"http://{shown}:{port}/")
        server.run(sockets=[sock])
    finally:
        stop.set()
        index.close()
        sink.close()


def _refresher(index: object, seconds: float, stop: threading.Event) -> None:
    while not stop.wait(seconds):
        try:
            stats = index.refresh()  # type: ignore[attr-defined]
        except Exception as exc:  # a store that is briefly unreachable: try again next time
            log.warning("serve_index_refresh_failed", error=redact(str(exc)))
            continue
        if stats.read or stats.removed:
            log.info("serve_index_refreshed", runs=stats.manifests, read=stats.read,
                     removed=stats.removed, seconds=round(stats.seconds, 3))
