"""Connection slots: a cap on concurrent requests to one sink across the whole export.

``max_connections`` of a batching sink bounds the requests on the wire to it at once, over every
run and every worker: a thread semaphore in one process, a Dask :class:`distributed.Semaphore`
(held by the scheduler, shared by every worker of the cluster) when the request is made inside a
Dask task. 50 workers then open no more connections than the receiver tolerates.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCAL: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_CLUSTER: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()
_WORKER: Any = None  # the Dask worker of this process, once a task bound it


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


def bind_worker(worker: Any) -> None:
    """Called by the Dask executor's task on its worker: from then on the slots of this process
    are the cluster's (the sink's own threads, not being Dask tasks, cannot find the worker)."""
    global _WORKER
    _WORKER = worker


def _cluster_semaphore(sink: str, limit: int) -> Any:
    """The cluster-wide semaphore in a Dask worker process, else None. Dask is only imported
    when the Dask executor bound this process to its worker."""
    if _WORKER is None:
        return None
    from distributed import Semaphore

    with _LOCK:
        if (sink, limit) not in _CLUSTER:
            _CLUSTER[(sink, limit)] = Semaphore(
                max_leases=limit, name=f"logarchive-connections-{sink}-{limit}",
                scheduler_rpc=_WORKER.scheduler, loop=_WORKER.loop)
        return _CLUSTER[(sink, limit)]
