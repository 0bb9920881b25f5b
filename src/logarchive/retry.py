"""The one retry loop: exponential backoff with full jitter, ``Retry-After``, stop-aware sleeps.

Plugins never loop themselves: they classify an outcome by raising :class:`Retryable` (with an
optional server-given delay) or a final error, and call :func:`call_with_retries`. Built on
tenacity.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity
from pydantic import BaseModel, ConfigDict, Field

from logarchive.errors import Interrupted

T = TypeVar("T")


class RetryOptions(BaseModel):
    """How hard to retry a request that failed in a way that may succeed later."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: int = Field(default=5, ge=0, le=100, description="Retries after the first try.",
                             examples=[5])
    backoff_initial: float = Field(default=0.5, ge=0, description="First backoff, seconds.",
                                   examples=[0.5])
    backoff_max: float = Field(default=30.0, ge=0, description="Longest backoff, seconds.",
                               examples=[30])
    retry_after_max: float = Field(
        default=300.0, ge=0, description="Longest Retry-After honoured, seconds; longer asks "
        "fail this try instead of hanging the export.", examples=[300],
    )


class Retryable(Exception):
    """Raised by an attempt that may succeed if tried again (after ``retry_after`` if given)."""

    def __init__(self, error: BaseException | str, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass
class RetryStats:
    attempts: int = 0
    waited: float = 0.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def backoff_delay(options: RetryOptions, failures: int, retry_after: float | None = None) -> float:
    """Delay before retry number ``failures`` (1-based): the server's ``Retry-After`` when given
    (capped), else exponential backoff with jitter in [ceiling/2, ceiling] so a herd of clients
    spreads apart."""
    if retry_after is not None:
        return min(retry_after, options.retry_after_max)
    ceiling = min(options.backoff_max, options.backoff_initial * (2 ** (failures - 1)))
    return random.uniform(ceiling / 2, ceiling)


class _Wait(tenacity.wait.wait_base):
    def __init__(self, options: RetryOptions) -> None:
        self.options = options

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return backoff_delay(self.options, retry_state.attempt_number,
                             getattr(exc, "retry_after", None))


def call_with_retries(
    attempt: Callable[[], T],
    *,
    options: RetryOptions,
    stop: threading.Event | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    stats: RetryStats | None = None,
) -> T:
    """Run ``attempt`` until it returns, raises something other than :class:`Retryable`, or the
    retries run out (then the last ``Retryable``'s error is raised). ``stop`` wakes sleeps up
    and raises :class:`~logarchive.errors.Interrupted`."""
    stop = stop or threading.Event()

    def sleep(seconds: float) -> None:
        if stats is not None:
            stats.waited += seconds
        if stop.wait(seconds):
            raise Interrupted("stopped while waiting to retry")

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            delay = state.next_action.sleep if state.next_action else 0.0
            on_retry(state.attempt_number, state.outcome.exception(), delay)

    def counted() -> T:
        if stats is not None:
            stats.attempts += 1
        if stop.is_set():
            raise Interrupted("export stopped")
        return attempt()

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(options.max_retries + 1),
        wait=_Wait(options),
        retry=tenacity.retry_if_exception_type(Retryable),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(counted)
    except Retryable as exc:
        error = exc.error
        if isinstance(error, BaseException):
            raise error from None
        raise RuntimeError(str(error)) from None


def sleep_or_stop(seconds: float, stop: threading.Event | None) -> None:
    """Sleep unless asked to stop; raise Interrupted when stopped."""
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise Interrupted("export stopped")


__all__ = ["RetryOptions", "RetryStats", "Retryable", "backoff_delay", "call_with_retries", "parse_retry_after",
           "sleep_or_stop"]
