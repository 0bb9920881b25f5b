"""Object paths from templates of run fields and times, that can never leave a sink's root.

``{source}/{model_id}/{run_id}.{ext}`` or ``{completed:%Y/%m/%d}/{run_id}.{ext}``. Every field
value is sanitised to one safe path segment (``../../etc/passwd`` becomes ``_.._.._etc_passwd``);
``{field:path}`` keeps ``/`` between sanitised segments for values that are paths (artifact
paths). The rendered path is then checked once more as a whole.
"""

from __future__ import annotations

import posixpath
import re
import string
import unicodedata
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from logarchive.errors import SinkError
from logarchive.manifest import MANIFEST_SUFFIX, manifest_path
from logarchive.runs import RunRef
from logarchive.templates import UnknownFields, render_template

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+@-]")
_MAX_SEGMENT = 200
TIME_FIELDS = ("started", "completed", "exported")


def sanitize_segment(value: str) -> str:
    """One safe path segment: no separators, no control characters, no leading dot, not empty.

    Percent-escapes are decoded first so ``%2e%2e%2f`` cannot sneak a traversal through a
    backend that decodes keys.
    """
    text = unicodedata.normalize("NFKC", unquote(str(value)))
    text = _UNSAFE.sub("_", text)
    if text.startswith("."):
        text = "_" + text[1:]
    if len(text) > _MAX_SEGMENT:
        text = text[:_MAX_SEGMENT]
    return text or "_"


def sanitize_path(value: str) -> str:
    """A relative path made of sanitised segments; ``..``, ``.``, empty and absolute parts go."""
    segments = re.split(r"[/\\]+", unquote(str(value)))
    kept = [sanitize_segment(s) for s in segments if s not in ("", ".", "..")]
    return "/".join(kept) or "_"


def path_value(value: Any, spec: str) -> str:
    """One value of a path template as safe path text: a time by its strftime ``spec``,
    ``{field:path}`` as sanitised segments joined by ``/``, anything else as one segment."""
    if isinstance(value, datetime):
        return sanitize_path(utc(value).strftime(spec or "%Y-%m-%dT%H-%M-%SZ"))
    if spec == "path":
        return sanitize_path(value)
    return sanitize_segment(format(value, spec))


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive time is taken as UTC. Path times are always rendered in UTC,
    as manifests and the ledger store them."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


_PARSER = string.Formatter()


# The C89 codes Python documents as portable, plus the ISO 8601 week ones (%G %u %V).
_STRFTIME_CODES = "aAwdbBmyYHIpMSfzZjUWcxXGuV%"
# Names every run has for a path template, whatever its source (see render()).
PATH_BUILTINS = frozenset(("source", "ext", "run_path", *TIME_FIELDS))


def validate_template(template: str) -> str:
    try:
        parsed = [(name, spec) for _, name, spec, _ in _PARSER.parse(template)
                  if name is not None]
    except ValueError as exc:
        raise ValueError(f"invalid template {template!r}: {exc}") from None
    for name, spec in parsed:
        if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"template {template!r}: field {{{name}}} must be a plain name")
        bad = [code for code in re.findall(r"%(.?)", spec) if code not in _STRFTIME_CODES]
        if name in TIME_FIELDS and bad:
            raise ValueError(f"template {template!r}: {{{name}:{spec}}}: unknown strftime code "
                             f"%{bad[0]}; expected one of "
                             + " ".join("%" + c for c in _STRFTIME_CODES))
        if name not in TIME_FIELDS and spec not in ("", "path"):
            raise ValueError(
                f"template {template!r}: {{{name}:{spec}}}: only the times "
                f"({', '.join(TIME_FIELDS)}) take a format (strftime); other fields take "
                "nothing or ':path'"
            )
    if template.startswith("/") or ".." in template.split("/"):
        raise ValueError(f"template {template!r} must be a relative path without '..'")
    return template


def render(template: str, run: RunRef, *, ext: str = "", exported: datetime | None = None) -> str:
    """Render ``template`` for ``run``. Unknown fields raise SinkError naming what the run has."""
    exported = exported or datetime.now(timezone.utc)
    values: dict[str, Any] = {
        "source": run.source,
        "ext": ext,
        "run_path": "/".join(sanitize_segment(v) for v in run.fields.values()),
        "exported": exported,
        "started": run.started or run.completed or exported,
        "completed": run.completed or run.started or exported,
        **run.fields,
    }
    # run_path is already sanitised segment by segment; keep its slashes.
    try:
        rendered = render_template(template.replace("{run_path}", "{run_path:path}"), values,
                                   convert=path_value)
    except UnknownFields as exc:
        raise SinkError(
            f"path template {template!r} uses {', '.join('{' + m + '}' for m in exc.names)} but "
            f"run {run.key} has only {', '.join(sorted(values))}"
        ) from None
    return not_a_manifest_name(ensure_relative(rendered))


def not_a_manifest_name(path: str) -> str:
    """An object path never ends like a manifest (``<object>.manifest.json``, in any case), so an
    object can never overwrite a manifest nor be taken for one: ``x.json.manifest.json`` (format
    json, run ``x.json.manifest``) is stored as ``x.json_manifest.json``."""
    if path.lower().endswith(MANIFEST_SUFFIX):
        return path[:-len(MANIFEST_SUFFIX)] + "_" + path[-len(MANIFEST_SUFFIX) + 1:]
    return path


def check_name_lengths(path: str, template: str, limits: tuple[int | None, int | None],
                       where: str) -> None:
    """Refuse, before anything is written, an object whose name or whose manifest's name the
    store would reject: ``limits`` is (bytes per path segment, bytes of the whole path)."""
    segment_max, path_max = limits
    for name in (path, manifest_path(path)):
        longest = max(name.split("/"), key=lambda s: len(s.encode()))
        if segment_max is not None and len(longest.encode()) > segment_max:
            raise SinkError(
                f"path template {template!r} makes {name!r} whose part {longest[:60]!r}... is "
                f"{len(longest.encode())} bytes; {where} takes at most {segment_max} bytes per "
                "path segment (a manifest adds " f"{len(MANIFEST_SUFFIX)}): shorten the template "
                "or the field values it uses. Nothing was written."
            )
        if path_max is not None and len(name.encode()) > path_max:
            raise SinkError(
                f"path template {template!r} makes {name[:60]!r}... of {len(name.encode())} "
                f"bytes; {where} takes at most {path_max} bytes per path (a manifest adds "
                f"{len(MANIFEST_SUFFIX)}): shorten the template. Nothing was written."
            )


def ensure_relative(path: str) -> str:
    """Final check of a rendered path: relative, normalised, never above the root."""
    normalised = posixpath.normpath(path.replace("\\", "/"))
    if normalised.startswith("/") or normalised == ".." or normalised.startswith("../"):
        raise SinkError(f"refusing object path {path!r}: it would leave the sink's root")
    if normalised in ("", "."):
        raise SinkError(f"object path {path!r} is empty")
    return normalised
