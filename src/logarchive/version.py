"""The installed version of logarchive.

A module of its own, so that any module can import the version without importing the package
itself (whose ``__init__`` imports the engine for the public API: a circle).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("logarchive")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
