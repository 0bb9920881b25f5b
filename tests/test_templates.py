"""The one ``{field}`` template renderer and the retry machinery's waits."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timezone

import pytest

from logarchive.errors import ConfigError, Interrupted
from logarchive.listing import fill_template
from logarchive.paths import render
from logarchive.retry import RetryOptions, Retryable, backoff_delay, poll_until, retrying
from logarchive.runs import RunRef
from logarchive.templates import UnknownFields, render_template


def test_render_template_converts_each_value_and_names_unknown_fields() -> None:
    when = datetime(2026, 3, 13, 10, 0, tzinfo=timezone.utc)
    assert render_template("{a}-{b:>3}/{t:%Y/%m}", {"a": 1, "b": "x", "t": when}) == "1-  x/2026/03"
    assert render_template("{a}", {"a": "x y"}, convert=lambda v, _: v.upper()) == "X Y"
    with pytest.raises(UnknownFields) as info:
        render_template("{a}/{b}/{c}/{b}", {"a": 1})
    assert info.value.names == ["b", "c"]
    # A missing field takes the default as it is, whatever its format spec.
    assert render_template("{a}/{t:%Y}", {"a": 1}, default="-") == "1/-"


def test_render_template_looks_up_plain_names_only() -> None:
    with pytest.raises(UnknownFields):
        render_template("{a.__class__}", {"a": 1})
    with pytest.raises(UnknownFields):
        render_template("{a[0]}", {"a": [1]})
    with pytest.raises(ValueError, match="invalid template"):
        render_template("{a", {"a": 1})


def test_every_caller_keeps_its_conversion() -> None:
    run = RunRef(source="s", fields={"model_id": "../m", "run_id": "r 1"})
    assert render("{source}/{model_id}/{run_id}.{ext}", run, ext="txt") == "s/_._m/r_1.txt"
    assert fill_template("/m/{model_id}", {"model_id": "a/b"}) == "/m/a%2Fb"
    assert fill_template("{q}", {"q": "a/b"}, quote_values=False) == "a/b"
    with pytest.raises(ConfigError, match=r"uses \{x\}"):
        fill_template("/{x}", {"model_id": "m"})


def test_backoff_is_full_jitter_below_the_ceiling() -> None:
    options = RetryOptions(backoff_initial=1, backoff_max=8)
    rng_state = random.getstate()
    random.seed(11)
    try:
        delays = [backoff_delay(options, 3) for _ in range(400)]  # ceiling 4 s
    finally:
        random.setstate(rng_state)
    assert all(0 <= d <= 4 for d in delays)
    assert min(delays) < 1 and max(delays) > 3  # the whole [0, ceiling], not [ceiling/2, ...]
    assert backoff_delay(options, 30) <= 8
    assert backoff_delay(options, 1, retry_after=500) == options.retry_after_max


def test_a_set_stop_event_interrupts_every_wait() -> None:
    stop = threading.Event()
    stop.set()
    slow = RetryOptions(backoff_initial=600, backoff_max=600)
    attempts = retrying(slow, stop=stop)
    with pytest.raises(Interrupted):
        attempts(lambda: (_ for _ in ()).throw(Retryable("down", retry_after=600)))
    with pytest.raises(Interrupted):
        poll_until(lambda: False, interval=600, give_up=lambda: False, stop=stop,
                   what="an acknowledgement")


def test_poll_until_returns_what_happened_first() -> None:
    answers = iter([False, False, True])
    never = threading.Event()
    assert poll_until(lambda: next(answers), interval=0, give_up=lambda: False, stop=never,
                      what="x") is True
    polls: list[int] = []
    assert poll_until(lambda: polls.append(1) or False, interval=0,
                      give_up=lambda: len(polls) >= 3, stop=never, what="x") is False
    assert len(polls) == 3


def test_retrying_budget_follows_the_failure_count_it_is_given() -> None:
    """A download resets its failure count when it made progress: the budget follows."""
    failures = 0
    tries = 0

    def attempt() -> str:
        nonlocal failures, tries
        tries += 1
        if tries <= 6:
            failures = 1 if tries % 2 else failures + 1  # progress on every other try
            raise Retryable("dropped")
        return "done"

    options = RetryOptions(max_retries=2, backoff_initial=0, backoff_max=0)
    assert retrying(options, stop=threading.Event(), failures=lambda: failures)(attempt) == "done"
    assert tries == 7  # 6 failures, never more than 2 in a row
    failures = tries = 0
    with pytest.raises(Retryable):
        retrying(options, stop=threading.Event())(attempt)  # by attempt number: 3 tries
    assert tries == 3
