"""A real PostgreSQL for the tests (the ``pgserver`` wheel: a PostgreSQL 16 server in the
package), started once per test session and stopped at its end, also on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """The server; its URIs are ``postgres_server.get_uri(DATABASE)`` (a Unix socket)."""
    import pgserver

    # As root, pgserver runs the server as a user of its own, which must reach the data folder:
    # not under pytest's private temporary folders. Removed with the server at the end.
    root = Path(tempfile.mkdtemp(prefix="logarchive-pg-"))
    root.chmod(0o755)
    server = pgserver.get_server(root, cleanup_mode="delete")
    # Throwaway data: no waiting for the disk (CREATE DATABASE and the final stop take seconds
    # with it on a busy machine).
    server.psql("ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET synchronous_commit = off; "
                "ALTER SYSTEM SET full_page_writes = off; SELECT pg_reload_conf();")
    previous = signal.getsignal(signal.SIGTERM)

    def stop_then_die(signum: int, _frame: Any) -> None:
        server.cleanup()
        signal.signal(signum, previous if callable(previous) else signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, stop_then_die)
    try:
        yield server
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.cleanup()


@pytest.fixture
def pg_url(postgres_server: Any) -> str:
    """The URL of a new, empty database of its own for one test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres_server.psql(f"CREATE DATABASE {name};")
    return postgres_server.get_uri(name)


class CuttableProxy:
    """127.0.0.1:port forwarded to the server's Unix socket, cut for good (listener closed,
    every connection dropped) when the clients have sent ``marker`` ``after`` times: the
    database gone mid-export, at a chosen point."""

    def __init__(self, socket_path: str, marker: bytes, after: int) -> None:
        self.socket_path, self.marker, self.left = socket_path, marker, after
        self.database = ""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def to(cls, pg_url: str, marker: bytes, after: int) -> CuttableProxy:
        """A proxy to the database of ``pg_url`` (a ``pg_url`` fixture's Unix socket URL)."""
        path, query = pg_url.split("?")
        params = dict(p.split("=", 1) for p in query.split("&"))
        proxy = cls(f"{params['host']}/.s.PGSQL.{params.get('port', '5432')}", marker, after)
        proxy.database = path.rsplit("/", 1)[1]
        return proxy

    @property
    def url(self) -> str:
        """The database's URL through the proxy (TCP on 127.0.0.1)."""
        return f"postgresql://postgres:pw@127.0.0.1:{self.port}/{self.database}"

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            server.connect(self.socket_path)
            self.sockets += [client, server]
            for a, b, sniff in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, sniff), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, sniff: bool) -> None:
        try:
            while data := src.recv(65536):
                if sniff and self.marker in data:
                    self.left -= 1
                    if self.left == 0:
                        self.close()
                        return
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.cut.set()
        self.listener.close()
        for each in self.sockets:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()
