"""Connection slots: a cap on concurrent requests to one sink across the whole export.

``max_connections`` of a batching sink bounds the requests on the wire to it at once, over every
run and every worker: a thread semaphore in one process, a Dask :class:`distributed.Semaphore`
(held by the scheduler, shared by every worker of the cluster) when the request is made inside a
Dask task. 50 workers then open no more connections than the receiver tolerates.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCAL: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_CLUSTER: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


@contextmanager
def connection_slot(sink: str, limit: int | None) -> Iterator[None]:
    """Hold one of ``limit`` slots of sink ``sink`` (no limit: nothing to hold)."""
    if limit is None:
        yield
        return
    semaphore = _cluster_semaphore(sink, limit) or _local_semaphore(sink, limit)
    with semaphore:
        yield


def _local_semaphore(sink: str, limit: int) -> threading.BoundedSemaphore:
    with _LOCK:
        return _LOCAL.setdefault((sink, limit), threading.BoundedSemaphore(limit))


def _cluster_semaphore(sink: str, limit: int) -> Any:
    """The cluster-wide semaphore when running inside a Dask task, else None. Dask is only
    imported when the Dask executor already imported it."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        distributed.get_worker()
    except ValueError:  # not in a worker
        return None
    with _LOCK:
        if (sink, limit) not in _CLUSTER:
            _CLUSTER[(sink, limit)] = distributed.Semaphore(
                max_leases=limit, name=f"logarchive-connections-{sink}-{limit}")
        return _CLUSTER[(sink, limit)]
