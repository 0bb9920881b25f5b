"""A raw-socket responder for tests: every byte of every answer is the test's.

:class:`RawResponder` listens on 127.0.0.1, reads each request (head, then ``Content-Length``
bytes of body), records it, and writes the next byte string of its script verbatim (the last
one again once the script runs out), then closes the connection. No HTTP library shapes the
answer, so a test can send exactly what a proxy, a login portal or a misbehaving receiver sends::

    with RawResponder([b"HTTP/1.1 301 Moved Permanently\\r\\nLocation: https://x/\\r\\n"
                       b"Content-Length: 0\\r\\n\\r\\n"]) as server:
        ...  # point the client at server.url; server.requests holds what arrived

An entry may also be a callable returning an iterable of byte strings, sent one by one as it
yields them (it may sleep between them): a body that trickles, or one that never ends (the
answer stops when the client closes the connection).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from collections.abc import Callable, Iterable
from typing import Any, Union

Answer = Union[bytes, Callable[[], Iterable[bytes]]]


@dataclass
class RawRequest:
    head: bytes          # request line and headers, without the blank line
    body: bytes

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def method(self) -> str:
        return self.request_line.split(" ", 1)[0]


def http_response(status: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """``HTTP/1.1 <status>`` with ``headers``, ``Content-Length`` and ``Connection: close``."""
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in (headers or {}).items()),
             f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


class RawResponder:
    """Answers the n-th request with ``script[n]`` (the last entry once the script ends)."""

    def __init__(self, script: list[Answer]) -> None:
        if not script:
            raise ValueError("a RawResponder needs at least one answer")
        self.script = list(script)
        self.requests: list[RawRequest] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> RawResponder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> RawResponder:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                request = _read_request(conn)
            except (OSError, ValueError):
                return
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
                answer = self.script[min(len(self.requests), len(self.script)) - 1]
            try:
                for piece in (answer() if callable(answer) else [answer]):
                    conn.sendall(piece)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def _read_request(conn: socket.socket) -> RawRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawRequest(head, body[:length])
