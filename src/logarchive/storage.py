"""fsspec helpers shared by every plugin that reads or writes storage URLs.

Local paths, ``file://``, ``s3://`` (s3fs), ``gs://`` (gcsfs), ``memory://`` and any other
fsspec protocol whose backend is installed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec

from logarchive.errors import ConfigError
from logarchive.secrets import redact_url, register_secret

_SECRET_OPTION_WORDS = ("secret", "key", "token", "password", "credential", "session")
LOCAL_PROTOCOLS = ("file", "local")

# Optional backends: protocol -> (module, extra). Every distribution whose URLs may use them
# declares the extra (``logarchive-fs[s3]``, ``logarchive-files[gcs]``...).
BACKENDS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"),
            "gcs": ("gcsfs", "gcs")}
# gcsfs' experimental class (the default when this variable is unset) probes every bucket over
# TLS gRPC for hierarchical namespaces first, which hangs for a minute against emulators and
# private endpoints: logarchive uses the plain class unless the user sets the variable.
GCS_HNS_VARIABLE = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"


def require_backend(protocol: str, distribution: str = "logarchive") -> None:
    """Raise one clear error naming the extra to install when ``protocol``'s backend is absent."""
    module, extra = BACKENDS.get(protocol, (None, None))
    if module is not None and importlib.util.find_spec(module) is None:
        raise ConfigError(f"{protocol}:// needs {module}: pip install '{distribution}[{extra}]'")


def filesystem(protocol: str, **options: Any) -> fsspec.AbstractFileSystem:
    """An fsspec filesystem for ``protocol`` (gs: the plain gcsfs class, see GCS_HNS_VARIABLE)."""
    if protocol in ("gs", "gcs") and os.environ.get(GCS_HNS_VARIABLE) is None:
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(**options)
    return fsspec.filesystem(protocol, **options)


def register_storage_secrets(options: dict[str, Any]) -> None:
    """Make credential-looking storage option values redacted everywhere."""
    for key, value in options.items():
        if isinstance(value, dict):
            register_storage_secrets(value)
        elif isinstance(value, str) and any(w in key.lower() for w in _SECRET_OPTION_WORDS):
            if "url" not in key.lower():
                register_secret(value)


def resolve(url: str, base_dir: Path | None = None, storage_options: dict[str, Any] | None = None,
            distribution: str = "logarchive") -> tuple[fsspec.AbstractFileSystem, str, str]:
    """``(filesystem, root path, protocol)`` for a URL; a plain path is local, relative paths are
    relative to ``base_dir`` (the config file's folder). ``distribution`` is the one whose extra
    a missing backend error names (the plugin's)."""
    options = dict(storage_options or {})
    register_storage_secrets(options)
    if "://" not in url:
        path = Path(url).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        url = str(path.resolve())
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    require_backend(scheme, distribution)
    try:
        if scheme in ("gs", "gcs"):
            fs = filesystem(scheme, **options)
            root = fs._strip_protocol(url)
        else:
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
