"""Loopback servers for tests: real sockets on 127.0.0.1, handlers written by each test.

``LoopbackServer`` is a ``ThreadingHTTPServer``; its ``handler`` gets the raw
``BaseHTTPRequestHandler`` so a test can send exactly the status, headers and bytes a seed
document specifies, and break things on purpose (close mid-body, stall, drip, lie about
``Content-Length``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Request:
    """What a handler function receives: the parsed request plus helpers to answer."""

    def __init__(self, raw: BaseHTTPRequestHandler) -> None:
        self.raw = raw
        self.method = raw.command
        parts = urlsplit(raw.path)
        self.path = parts.path
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = raw.headers
        length = int(raw.headers.get("Content-Length") or 0)
        self.body = raw.rfile.read(length) if length else b""

    def cookie(self, name: str) -> str | None:
        from http.cookies import SimpleCookie

        jar = SimpleCookie(self.headers.get("Cookie") or "")
        return jar[name].value if name in jar else None

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
             *, content_length: bool = True) -> None:
        self.raw.send_response(status)
        for key, value in (headers or {}).items():
            self.raw.send_header(key, value)
        if content_length:
            self.raw.send_header("Content-Length", str(len(body)))
        self.raw.end_headers()
        if body:
            self.raw.wfile.write(body)

    def send_json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        import json

        self.send(status, json.dumps(document).encode(),
                  {"Content-Type": "application/json", **(headers or {})})

    def start(self, status: int, headers: dict[str, str]) -> None:
        """Send status and headers only; the body follows with ``write``."""
        self.raw.send_response(status)
        for key, value in headers.items():
            self.raw.send_header(key, value)
        self.raw.end_headers()

    def write(self, data: bytes) -> None:
        self.raw.wfile.write(data)
        self.raw.wfile.flush()

    def reset(self) -> None:
        """Drop the connection abruptly (RST)."""
        import struct

        sock = self.raw.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        self.raw.close_connection = True


Handler = Callable[[Request], None]


class LoopbackServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 with a swappable handler and a request log."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler | None = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and
                # delayed ACKs add ~40 ms to every response.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _dispatch(self) -> None:
                request = Request(self)
                with outer._lock:
                    outer.requests.append(request)
                if outer.handler is None:
                    request.send(404, b"no handler")
                    return
                try:
                    outer.handler(request)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
