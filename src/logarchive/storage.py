"""fsspec helpers shared by every plugin that reads or writes storage URLs.

Local paths, ``file://``, ``s3://`` (s3fs), ``gs://`` (gcsfs), ``memory://`` and any other
fsspec protocol whose backend is installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# gcsfs otherwise probes every bucket over TLS gRPC for hierarchical namespaces first, which
# hangs for a minute against emulators and private endpoints. Users can still turn it on.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import fsspec  # noqa: E402

from logarchive.errors import ConfigError  # noqa: E402
from logarchive.secrets import redact_url, register_secret  # noqa: E402

_SECRET_OPTION_WORDS = ("secret", "key", "token", "password", "credential", "session")
LOCAL_PROTOCOLS = ("file", "local")


def register_storage_secrets(options: dict[str, Any]) -> None:
    """Make credential-looking storage option values redacted everywhere."""
    for key, value in options.items():
        if isinstance(value, dict):
            register_storage_secrets(value)
        elif isinstance(value, str) and any(w in key.lower() for w in _SECRET_OPTION_WORDS):
            if "url" not in key.lower():
                register_secret(value)


def resolve(url: str, base_dir: Path | None = None, storage_options: dict[str, Any] | None = None
            ) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """``(filesystem, root path, protocol)`` for a URL; a plain path is local, relative paths are
    relative to ``base_dir`` (the config file's folder)."""
    options = dict(storage_options or {})
    register_storage_secrets(options)
    if "://" not in url:
        path = Path(url).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        url = str(path.resolve())
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot use storage URL {redact_url(url)}: {exc}") from None
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return fs, root.rstrip("/") or root, protocol


def display_url(protocol: str, path: str) -> str:
    if protocol in LOCAL_PROTOCOLS:
        return path
    return redact_url(f"{protocol}://{path}")


@contextmanager
def read_chunks(fs: fsspec.AbstractFileSystem, path: str, chunk_size: int = 1 << 20
                ) -> Iterator[Iterator[bytes]]:
    """Stream a file in chunks. Sequential read-ahead; never the whole file in memory.

    gcsfs' default cache made a line-by-line read of 50 MB take minutes; read-ahead with large
    blocks is what a sequential reader wants on every backend.
    """
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    kwargs: dict[str, Any] = {}
    if protocol not in LOCAL_PROTOCOLS and protocol != "memory":
        kwargs = {"block_size": max(chunk_size, 5 << 20), "cache_type": "readahead"}
    with fs.open(path, "rb", **kwargs) as handle:
        yield iter(lambda: handle.read(chunk_size), b"")
