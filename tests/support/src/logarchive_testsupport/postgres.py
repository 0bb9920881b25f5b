"""A real PostgreSQL for the tests (the ``pgserver`` wheel: a PostgreSQL 16 server in the
package), started once per test session and stopped at its end, also on SIGTERM."""

from __future__ import annotations

import os
import signal
import tempfile
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
