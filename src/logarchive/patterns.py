"""Regular expressions written by someone else: a client of ``logarchive serve``.

Python's ``re`` has no time limit, so one pattern with catastrophic backtracking would keep a
server thread busy for ever. A :class:`BoundedPattern` runs on the ``regex`` module (installed
with the ``[serve]`` extra), whose ``search`` takes a timeout: each call gets at most
``per_call`` seconds and the whole request at most ``budget``; past either, :class:`PatternTooSlow`
(a ``ValueError``) is raised and the request is answered 400.
"""

from __future__ import annotations

import time
from typing import Any


class PatternTooSlow(ValueError):
    """The pattern used up its time: rewrite it without nested repetition."""


class BoundedPattern:
    """``search(text)`` like a compiled pattern's, within a time budget."""

    def __init__(self, text: str, *, ignore_case: bool = False, per_call: float = 0.5,
                 budget: float = 10.0) -> None:
        import regex

        try:
            self._pattern: Any = regex.compile(text, regex.IGNORECASE if ignore_case else 0)
        except regex.error as exc:
            raise ValueError(f"{text!r} is not a regular expression: {exc}") from None
        self.text, self._per_call = text, per_call
        self._deadline = time.monotonic() + budget

    def search(self, text: str) -> Any:
        left = self._deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            return self._pattern.search(text, timeout=min(self._per_call, left))
        except TimeoutError:
            raise PatternTooSlow(f"the pattern {self.text!r} takes too long to match "
                                 "(nested repetition such as (a+)+ backtracks without end)"
                                 ) from None
