"""``{field}`` templates: the one renderer behind object paths, list-endpoint URLs, Splunk's
``source`` and retention groups.

A template is ``str.format`` syntax with plain names only (``{model_id}``, ``{completed:%Y}``;
no attribute or index lookups). Each caller chooses how a value becomes text (``convert``:
sanitised path segments, URL-quoted, as is) and what an unknown name does (``default`` text, or
:class:`UnknownFields` naming them, which the caller turns into its own error).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any


class UnknownFields(KeyError):
    """A template names fields that ``values`` lacks."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names[0])
        self.names = names


def as_text(value: Any, spec: str) -> str:
    """``format(value, spec)``: the default conversion (a datetime takes a strftime spec)."""
    return format(value, spec)


class _Renderer(string.Formatter):
    def __init__(self, convert: Callable[[Any, str], str]) -> None:
        self.convert = convert

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        return kwargs[field_name], field_name  # plain names: no {a.b}, no {a[0]}

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, _Default):
            return str(value)  # as given, whatever the spec
        return self.convert(value, format_spec)


class _Default(str):
    """The text of a name ``values`` lacks."""


_PARSER = string.Formatter()


def template_fields(template: str) -> list[str]:
    """Names a template refers to; raises ValueError for a malformed template."""
    try:
        return [name for _, name, _, _ in _PARSER.parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"invalid template {template!r}: {exc}") from None


def render_template(template: str, values: Mapping[str, Any], *,
                    convert: Callable[[Any, str], str] = as_text,
                    default: str | None = None) -> str:
    """``template`` with each ``{name}`` replaced by ``convert(values[name], spec)``.

    A name ``values`` lacks renders as ``default``, or raises :class:`UnknownFields` when
    ``default`` is None. A malformed template raises ValueError.
    """
    unknown = [name for name in template_fields(template) if name not in values]
    if unknown:
        if default is None:
            raise UnknownFields(list(dict.fromkeys(unknown)))
        values = {**values, **dict.fromkeys(unknown, _Default(default))}
    return _Renderer(convert).vformat(template, (), values)


__all__ = ["UnknownFields", "as_text", "render_template", "template_fields"]
