"""RunRef: one unit whose log is exported."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from typing import Any, Literal

import structlog

from logarchive.codec import RECORD_KEYS

log = structlog.get_logger("logarchive")
_LEAP_SECOND = re.compile(r"\d{4}-\d\d-\d\d[T ]23:59:60")

Status = Literal["pending", "running", "completed", "failed", "killed", "unknown"]
STATUSES: tuple[str, ...] = ("pending", "running", "completed", "failed", "killed", "unknown")
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "killed"})
RESERVED_FIELDS = RECORD_KEYS | {"source", "ext", "exported", "started", "completed"}
_SURROGATE = re.compile("[\ud800-\udfff]")  # cannot be encoded: no key, path or ledger row


@dataclass(frozen=True)
class RunRef:
    """A run as a source sees it.

    ``fields`` identify the run (``model_id``, ``run_id``, ``job_id``...: whatever the source
    uses) and are what path templates and records refer to; their order is the source's. ``status``
    is one of :data:`STATUSES`. ``metadata`` (params, tags, metric summaries, owner...) goes into
    the manifest. ``locator`` is the source's private handle to open the log (a URL, an artifact
    path); it may hold credentials, so it is never logged, stored or put in a manifest.
    """

    source: str
    fields: dict[str, str]
    status: str = "completed"
    started: datetime | None = None
    completed: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    locator: Any = field(default=None, repr=False, compare=False)
    size_hint: int | None = field(default=None, compare=False)
    replays: RunRef | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError(f"run of source {self.source!r} has no identifying fields")
        clash = RESERVED_FIELDS.intersection(self.fields)
        if clash:
            raise ValueError(f"run field names {sorted(clash)} are reserved by logarchive")
        for key, value in self.fields.items():
            if not isinstance(value, str):
                raise TypeError(f"run field {key!r} must be a string, got {type(value).__name__}")
            if value == "":
                raise ValueError(f"run field {key!r} of source {self.source!r} is empty")
            if _SURROGATE.search(value):
                raise ValueError(f"run field {key!r} of source {self.source!r} is not valid "
                                 f"Unicode (a lone surrogate): {value[:120]!r}")
        if self.status not in STATUSES:
            raise ValueError(f"run status {self.status!r} is not one of {STATUSES}")

    @cached_property
    def key(self) -> str:
        """Stable identity across exports: ``source/field=value/...``. The ledger key.

        Injective: a value with an ``=`` after a ``/`` (``p/run_id=x``: it would read as two
        fields, and two runs could share a key) or starting with ``=`` is written ``field==`` +
        the value with ``%``, ``/`` and ``=`` percent-encoded. Every other value is written as
        is (``exp;code=7``, ``50%``, ``logs/train.log``: a ``/``-piece without ``=`` can only
        continue the value before it), so the keys of such runs are what they always were.
        """
        return self.source + "/" + "/".join(f"{k}={key_value(v)}" for k, v in self.fields.items())

    @property
    def key_hash(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:32]

    @property
    def run_id(self) -> str:
        """The most specific field value, for display (``run_id`` if the source has one)."""
        return self.fields.get("run_id") or list(self.fields.values())[-1]

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def record_fields(self) -> dict[str, str]:
        """Fields added to every record: the source name and the identifying fields (those of
        the replayed run for a replay, so its records are the original ones)."""
        if self.replays is not None:
            return self.replays.record_fields()
        return {"source": self.source, **self.fields}

    def matches(self, selector: str) -> bool:
        """``--run`` selection: a field value, the full key, or ``field=value``."""
        if selector == self.key or selector in self.fields.values():
            return True
        if "=" in selector:
            k, _, v = selector.partition("=")
            return self.fields.get(k) == v
        return False

    def to_json(self) -> dict[str, Any]:
        """The run as it appears in manifests and ``--json`` listings (no locator)."""
        return {
            "source": self.source,
            "key": self.key,
            "fields": dict(self.fields),
            "status": self.status,
            "started": iso(self.started),
            "completed": iso(self.completed),
            "metadata": self.metadata,
        }


_KEY_ESCAPES = {"%": "%25", "/": "%2F", "=": "%3D"}


def key_value(value: str) -> str:
    """A field value as it appears in a run key (see :attr:`RunRef.key`)."""
    if "=" not in value.partition("/")[2] and not value.startswith("="):
        return value
    return "=" + "".join(_KEY_ESCAPES.get(c, c) for c in value)


def iso(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z`` (a naive time counts as UTC), as manifests and the ledger
    store times."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    """Parse an API time (ISO-8601 string, epoch seconds or milliseconds) to aware UTC.

    None, ``""`` and an unreadable string are None (no time). A number that is no time at all
    (NaN, infinite, or outside years 1-9999 such as ``1e20`` or ``-1e15``) raises ValueError
    naming the value: the item carrying it is bad, not the listing.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _in_utc_range(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _epoch(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            if _LEAP_SECOND.match(text):
                log.warning("leap_second_dropped", time=text,
                            reason="a leap second is not a time Python can hold: the time is "
                                   "dropped (paths use the start or the export date)")
            return None
        return _in_utc_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc))
    return None


def _in_utc_range(value: datetime) -> datetime:
    """``value`` if it is a time in UTC too: ``9999-12-31T23:59:59-01:00`` is not (year 10000)."""
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"time {value.isoformat()!r} is out of range in UTC (years 1-9999)"
                         ) from None
    return value


def _epoch(value: int | float) -> datetime:
    """Epoch seconds, or milliseconds when the magnitude is beyond year 5138 in seconds."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"time {value!r} is not a number")
    seconds = value / 1000 if abs(value) > 1e11 else value
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"time {value!r} is out of range (epoch seconds or milliseconds "
                         "within years 1-9999)") from None
