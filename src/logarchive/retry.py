"""The one retry machinery: exponential backoff with full jitter, ``Retry-After``, stop-aware sleeps.

Plugins never loop themselves: they classify an outcome by raising :class:`Retryable` (with an
optional server-given delay) or a final error, and call :func:`call_with_retries`. Core loops
that need more (a download resuming where it stopped, a sink polling for an acknowledgement)
use :func:`retrying` and :func:`poll_until`. All built on tenacity.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

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
    (capped), else exponential backoff with full jitter, uniform in [0, ceiling], so a herd of
    clients spreads apart."""
    if retry_after is not None:
        return min(retry_after, options.retry_after_max)
    ceiling = min(options.backoff_max, options.backoff_initial * (2 ** (failures - 1)))
    return random.uniform(0, ceiling)


def _sleep_unless(stop: Any, message: str) -> Callable[[float], None]:
    """A tenacity ``sleep`` that ``stop`` (an Event) wakes up, raising Interrupted."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Interrupted(message)
    return sleep


def retrying(
    options: RetryOptions,
    *,
    stop: Any,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    retry_on: tuple[type[BaseException], ...] = (Retryable,),
    failures: Callable[[], int] | None = None,
) -> tenacity.Retrying:
    """logarchive's tenacity policy: retry ``retry_on`` exceptions with backoff and full jitter
    (or the exception's ``retry_after``), at most ``options.max_retries`` times, in sleeps that
    ``stop`` (an Event) interrupts with :class:`~logarchive.errors.Interrupted`.

    ``failures()`` counts failures for the budget and the backoff instead of the attempt
    number: a loop that makes progress between failures (a download) resets it.
    """

    def count(state: tenacity.RetryCallState) -> int:
        return failures() if failures is not None else state.attempt_number

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff_delay(options, count(state), getattr(exc, "retry_after", None))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            delay = state.next_action.sleep if state.next_action else 0.0
            on_retry(count(state), state.outcome.exception(), delay)  # type: ignore[arg-type]

    return tenacity.Retrying(
        stop=lambda state: count(state) > options.max_retries,
        wait=wait,
        retry=tenacity.retry_if_exception_type(retry_on),
        sleep=_sleep_unless(stop, "stopped while waiting to retry"),
        before_sleep=before_sleep,
        reraise=True,
    )


def call_with_retries(
    attempt: Callable[[], T],
    *,
    options: RetryOptions,
    stop: Any = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Run ``attempt`` until it returns, raises something other than :class:`Retryable`, or the
    retries run out (then the last ``Retryable``'s error is raised). ``stop`` (an Event) wakes
    sleeps up and raises :class:`~logarchive.errors.Interrupted`."""
    stop = stop or threading.Event()

    def checked() -> T:
        if stop.is_set():
            raise Interrupted("export stopped")
        return attempt()

    try:
        return retrying(options, stop=stop, on_retry=on_retry)(checked)
    except Retryable as exc:
        error = exc.error
        if isinstance(error, BaseException):
            raise error from None
        raise RuntimeError(str(error)) from None


def poll_until(check: Callable[[], bool], *, interval: float,
               give_up: Callable[[], bool], stop: Any, what: str) -> bool:
    """Call ``check`` every ``interval`` seconds until it returns True (then True) or
    ``give_up()`` says enough (then False). ``stop`` (an Event) interrupts the wait with
    :class:`~logarchive.errors.Interrupted`; ``give_up`` may raise to end the wait too."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda done: not done),
        stop=lambda _state: give_up(),
        wait=tenacity.wait_fixed(interval),
        sleep=_sleep_unless(stop, f"stopped while waiting for {what}"),
        retry_error_callback=lambda _state: False,
    )(check)


__all__ = ["RetryOptions", "Retryable", "backoff_delay", "call_with_retries", "parse_retry_after",
           "poll_until", "retrying"]
