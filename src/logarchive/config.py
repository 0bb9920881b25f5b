"""Load, interpolate and validate a logarchive TOML config, before any network call.

Every error names the file, the key path (``sinks.archive.compression``) and what was expected.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import orjson
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from logarchive.base import ByteSink, ByteSinkConfig, PluginConfig
from logarchive.codec import extension
from logarchive.errors import ConfigError
from logarchive.plugins import PluginType, Registry, default_registry
from logarchive.parse import DEFAULT as DEFAULT_PARSE, ParseSettings, zone_of
from logarchive.paths import PATH_BUILTINS
from logarchive.secrets import LedgerUrl, encode_in_url, register_secret
from logarchive.serve.settings import ServeConfig
from logarchive.templates import template_fields

log = structlog.get_logger("logarchive.config")
CONFIG_ENV = "LOGARCHIVE_CONFIG"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ExecutorSettings(BaseModel):
    """The ``[logarchive.executor]`` table: where runs are exported (docs/scaling.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["threads", "dask"] = Field(
        default="threads", description="threads: this process, `workers` threads; dask: one "
        "Dask task per run (needs `pip install 'logarchive[dask]'`).", examples=["dask"])
    address: str | None = Field(
        default=None, description="Dask scheduler to submit to (dask only); omitted: start a "
        "LocalCluster on this machine.", examples=["tcp://scheduler:8786"])
    processes: int | None = Field(
        default=None, ge=1, le=1024, description="LocalCluster worker processes (dask without "
        "address only; default: the CPU count).", examples=[2])


class ParseConfig(BaseModel):
    """The ``[logarchive.parse]`` table: how timestamps and levels are found (docs/parsing.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(default="UTC", description="Zone of timestamps without an offset "
                          "(an IANA name).", examples=["Europe/Berlin"])
    timestamp_fields: list[str] = Field(
        default=list(DEFAULT_PARSE.timestamp_fields), examples=[["ts", "time"]],
        description="JSON-line fields holding the timestamp, first present wins.")
    level_fields: list[str] = Field(
        default=list(DEFAULT_PARSE.level_fields), examples=[["level", "severity"]],
        description="JSON-line fields holding the level, first present wins.")
    message_fields: list[str] = Field(
        default=list(DEFAULT_PARSE.message_fields), examples=[["msg", "message"]],
        description="JSON-line fields whose text is searched for what the others lack.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_of(value)
        return value

    def settings(self) -> ParseSettings:
        return ParseSettings(self.timezone, tuple(self.timestamp_fields), tuple(self.level_fields),
                             tuple(self.message_fields))


class Settings(BaseModel):
    """The ``[logarchive]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: str = Field(
        default=".logarchive",
        description="Ledger and locks. Relative paths are relative to the config file's folder.",
        examples=[".logarchive"],
    )
    workers: int = Field(default=4, ge=1, le=256, description="Runs exported in parallel.",
                         examples=[4])
    chunk_size: int = Field(
        default=1024 * 1024, ge=4096, le=64 * 1024 * 1024,
        description="Bytes read from a source at a time.", examples=[1048576],
    )
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings,
                                       description="Where runs are exported.")
    parse: ParseConfig = Field(default_factory=ParseConfig,
                               description="Timestamp and level detection.")
    ledger: LedgerUrl | None = Field(
        default=None,
        description="A PostgreSQL database shared by every host that exports these sources "
        "(docs/scaling.md; needs the postgres extra). Default: SQLite in state_dir. A secret: "
        "its password is masked everywhere; use ${ENV_VAR}.",
        examples=["postgresql://logarchive:${LEDGER_PASSWORD}@db.internal/logarchive"],
    )
    lease_seconds: int = Field(
        default=60, ge=1, le=3600,
        description="PostgreSQL ledger: how long a run claimed by an export stays claimed "
        "without being renewed (renewed every third of it while the export lives); a dead "
        "export's runs are taken over after it.", examples=[60],
    )


class PipelineConfig(BaseModel):
    """One ``[[pipelines]]`` entry: a source and the sinks its runs go to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME, description="Pipeline name (--pipeline).",
                      examples=["training"])
    source: str = Field(description="Name of a [sources.NAME] table.", examples=["training"])
    sinks: list[str] = Field(min_length=1, description="Names of [sinks.NAME] tables.",
                             examples=[["archive", "splunk"]])

    @field_validator("sinks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a sink is listed twice")
        return value


class _RawConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    logarchive: Settings = Field(default_factory=Settings)
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sinks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pipelines: list[PipelineConfig] = Field(default_factory=list)
    serve: ServeConfig | None = None  # `logarchive serve` (docs/serve.md)


@dataclass(frozen=True)
class PluginInstanceConfig:
    name: str
    plugin: PluginType
    config: PluginConfig
    warnings: tuple[str, ...] = ()  # deprecated keys used, with what replaces them


@dataclass(frozen=True)
class Config:
    """A validated configuration. Build it with :func:`load_config` or :func:`parse_config`."""

    path: str
    base_dir: Path
    settings: Settings
    sources: dict[str, PluginInstanceConfig]
    sinks: dict[str, PluginInstanceConfig]
    pipelines: list[PipelineConfig]
    registry: Registry = field(repr=False)
    document: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The TOML document after interpolation (secrets included): what a Dask task rebuilds
    the config from on its worker (:mod:`logarchive.executor`)."""
    serve: ServeConfig | None = None

    @property
    def warnings(self) -> list[str]:
        """Deprecated keys this config uses, each with the key that replaces it (also logged as
        ``config_key_deprecated`` when the config is loaded)."""
        return [w for c in (*self.sources.values(), *self.sinks.values()) for w in c.warnings]

    @property
    def state_dir(self) -> Path:
        path = Path(self.settings.state_dir).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def pipeline(self, name: str) -> PipelineConfig:
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        raise ConfigError(
            f"no pipeline named {name!r}; expected one of: "
            + ", ".join(p.name for p in self.pipelines),
            file=self.path, key="pipelines",
        )


def load_config(path: str | os.PathLike[str] | None = None, *, registry: Registry | None = None,
                environ: Mapping[str, str] | None = None, no_env: bool = False) -> Config:
    """Read and validate a config file (``$LOGARCHIVE_CONFIG`` or ``logarchive.toml`` by default).

    ``environ`` replaces ``os.environ`` for ``${VAR}``; ``no_env``: see :func:`parse_config`."""
    path = os.fspath(path) if path is not None else os.environ.get(CONFIG_ENV, "logarchive.toml")
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            "config file not found (pass --config or set LOGARCHIVE_CONFIG)", file=path
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start}): TOML files are UTF-8",
                          file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
    return parse_config(data, path=path, registry=registry, environ=environ, no_env=no_env,
                        base_dir=Path(path).resolve().parent)


def parse_config(data: dict[str, Any], *, path: str = "<config>", registry: Registry | None = None,
                 environ: Mapping[str, str] | None = None, base_dir: Path | None = None,
                 no_env: bool = False) -> Config:
    """Validate an already-parsed TOML document.

    Every error in the document is reported at once, in one :class:`ConfigError`. With
    ``no_env`` the environment is not read: each ``${...}`` without a default is a placeholder
    that satisfies any key (``logarchive config check --no-env``).
    """
    registry = registry or default_registry(**_types_named(data))
    errors = _Errors(path)
    interpolation = Interpolation(os.environ if environ is None else environ, errors,
                                  no_env=no_env, base_dir=base_dir or Path.cwd())
    data = interpolation.apply(data)
    raw = _validate(_RawConfig, data, errors, (), interpolation)
    sources = _plugin_configs(registry.sources, "sources", _tables(data, raw, "sources"), errors,
                              interpolation)
    sinks = _plugin_configs(registry.sinks, "sinks", _tables(data, raw, "sinks"), errors,
                            interpolation)
    if raw is None:
        raise errors.error()
    if not raw.sources:
        errors.add("sources", "no [sources.NAME] table: nothing to export")
    if not raw.sinks:
        errors.add("sinks", "no [sinks.NAME] table: nowhere to deliver")
    # Without [[pipelines]], every source goes to every sink.
    pipelines = raw.pipelines or [
        PipelineConfig(name=name, source=name, sinks=list(raw.sinks)) for name in raw.sources
    ]
    _check_pipelines(pipelines, raw, errors)
    _check_path_fields(pipelines, sources, sinks, errors)
    for section, tables in (("sources", raw.sources), ("sinks", raw.sinks)):
        for name in tables:
            if not re.match(_NAME, name):
                errors.add(f"{section}.{name}", "names may contain letters, digits, '_', '.', '-'")
    errors.raise_if_any()
    config = Config(
        path=path, base_dir=base_dir or Path.cwd(), settings=raw.logarchive, sources=sources,
        sinks=sinks, pipelines=pipelines, registry=registry, document=data, serve=raw.serve,
    )
    _check_colliding_paths(config)
    return config


def _tables(data: Any, raw: _RawConfig | None, section: str) -> dict[str, dict[str, Any]]:
    """The ``[sources.*]`` or ``[sinks.*]`` tables, also when the document as a whole is invalid
    (so their errors are reported with the others)."""
    if raw is not None:
        return dict(getattr(raw, section))
    tables = data.get(section) if isinstance(data, dict) else None
    if not isinstance(tables, dict):
        return {}
    return {k: v for k, v in tables.items() if isinstance(v, dict)}


def _types_named(data: Any) -> dict[str, set[str]]:
    """The source and sink types the document names, for loading only their plugins; none
    (every plugin is loaded) when a table has no type string, whose error lists them all."""
    named = {section: [t.get("type") for t in _tables(data, None, section).values()]
             for section in ("sources", "sinks")}
    if not all(isinstance(t, str) for types in named.values() for t in types):
        return {}  # also unhashable values (a list as `type`)
    return {section: set(types) for section, types in named.items()}


def _check_pipelines(pipelines: list[PipelineConfig], raw: _RawConfig, errors: _Errors) -> None:
    seen: set[str] = set()
    for index, pipeline in enumerate(pipelines):
        key = f"pipelines[{index}]"
        if pipeline.name in seen:
            errors.add(f"{key}.name", f"pipeline name {pipeline.name!r} is used twice")
        seen.add(pipeline.name)
        if pipeline.source not in raw.sources:
            errors.add(f"{key}.source", _unknown(pipeline.source, raw.sources, "source"))
        for position, sink in enumerate(pipeline.sinks):
            if sink not in raw.sinks:
                errors.add(f"{key}.sinks[{position}]", _unknown(sink, raw.sinks, "sink"))


def _check_path_fields(pipelines: list[PipelineConfig], sources: dict[str, PluginInstanceConfig],
                       sinks: dict[str, PluginInstanceConfig], errors: _Errors) -> None:
    """A byte sink's path template may name only fields its sources' runs have (when a source
    declares them: :meth:`Source.run_fields`)."""
    for pipeline in pipelines:
        source = sources.get(pipeline.source)
        fields = source.plugin.cls.run_fields(source.config) if source else None
        if fields is None:
            continue
        for name in pipeline.sinks:
            sink = sinks.get(name)
            if sink is None or not isinstance(sink.config, ByteSinkConfig):
                continue
            unknown = [f for f in template_fields(sink.config.path)
                       if f not in fields and f not in PATH_BUILTINS]
            if unknown:
                errors.add(f"sinks.{name}.path", f"{', '.join('{' + f + '}' for f in unknown)} "
                           f"is not a field of the runs of source {pipeline.source!r} (pipeline "
                           f"{pipeline.name!r}); they have: "
                           + ", ".join(sorted(fields | PATH_BUILTINS)))


class _Errors:
    """Every error found in one config file, each as (key path, message)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[tuple[str | None, str]] = []

    def add(self, key: str | None, message: str) -> None:
        if (key, message) not in self.items:
            self.items.append((key, message))

    def error(self) -> ConfigError:
        if len(self.items) == 1:
            key, message = self.items[0]
            return ConfigError(message, file=self.path, key=key)
        lines = [f"{key}: {message}" if key else message for key, message in self.items]
        return ConfigError(f"{len(lines)} errors:\n  " + "\n  ".join(lines), file=self.path)

    def raise_if_any(self) -> None:
        if self.items:
            raise self.error()


def _unknown(value: str, known: dict[str, Any], what: str) -> str:
    choices = ", ".join(sorted(known)) or "(none)"
    close = difflib.get_close_matches(value, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {value!r}{hint}; expected one of: {choices}"


def _plugin_configs(types: dict[str, PluginType], section: str, tables: dict[str, dict[str, Any]],
                    errors: _Errors, interpolation: Interpolation) -> dict[str, PluginInstanceConfig]:
    out = {}
    for name, table in tables.items():
        instance = _plugin_config(types, (section, name), table, errors, interpolation)
        if instance is not None:
            out[name] = instance
    return out


def _plugin_config(types: dict[str, PluginType], prefix: tuple[str, str], table: dict[str, Any],
                   errors: _Errors, interpolation: Interpolation) -> PluginInstanceConfig | None:
    section, name = prefix
    what = "source" if section == "sources" else "sink"
    type_name = table.get("type")
    if not isinstance(type_name, str):
        errors.add(f"{section}.{name}.type", "missing or not a string; expected one of the "
                   f"installed {what} types: " + ", ".join(sorted(types)))
        return None
    plugin = types.get(type_name)
    if plugin is None:
        errors.add(f"{section}.{name}.type",
                   _unknown(type_name, types, f"{what} type") + " (see `logarchive plugins`)")
        return None
    _refuse_url_credentials(table, errors, prefix)
    deprecated: list[tuple[str, str]] = []
    config = _validate(plugin.cls.Config, table, errors, prefix, interpolation,
                       context={"deprecated": deprecated})
    if config is None:
        return None
    _refuse_non_durable(plugin, config, errors, prefix)
    notes = tuple(f"{section}.{name}.{old} is deprecated: use {section}.{name}.{new}"
                  for old, new in deprecated)
    for note in notes:
        log.warning("config_key_deprecated", file=errors.path, message=note)
    return PluginInstanceConfig(name=name, plugin=plugin, config=config, warnings=notes)


def _refuse_non_durable(plugin: PluginType, config: Any, errors: _Errors,
                        prefix: tuple[str, str]) -> None:
    """A byte sink whose objects vanish with the process would have the ledger call runs
    archived that are not: refused unless the config says it is meant."""
    if not issubclass(plugin.cls, ByteSink) or not isinstance(config, ByteSinkConfig):
        return
    if not config.allow_non_durable and not plugin.cls.durable(config):
        errors.add(
            ".".join(prefix) + ".allow_non_durable",
            "this sink keeps its objects in the memory of the process: they vanish when it "
            "exits, so nothing delivered to it is archived. Use a durable root, or set "
            "allow_non_durable = true (tests, trials): its deliveries are then recorded as "
            "volatile and delivered again by every export",
        )


_URL_WITH_CREDENTIALS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*@")


def _refuse_url_credentials(value: Any, errors: _Errors, key: tuple[str | int, ...]) -> None:
    """Credentials inside a URL would travel into logs, errors and manifests as part of the URL:
    refuse them and point to the keys that are secrets."""
    if isinstance(value, str):
        if _URL_WITH_CREDENTIALS.match(value):
            errors.add(_dotted(key),
                       "credentials inside a URL are not allowed (they would end up in logs and "
                       "manifests); put them in the plugin's auth/token/api_key/storage_options "
                       "keys, which are secrets, and use ${ENV_VAR}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _refuse_url_credentials(v, errors, (*key, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_url_credentials(v, errors, (*key, i))


M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], data: Any, errors: _Errors, prefix: tuple[str, ...],
              interpolation: Interpolation, context: dict[str, Any] | None = None) -> M | None:
    """``model`` from ``data`` (None if it cannot be built), each error added to ``errors``.

    Two passes: the lax one builds the model (a value from ``${...}`` is text, parsed for its
    key's type); the strict one refuses a literal TOML value of the wrong type (``workers = "4"``,
    ``immutable = "yes"``) instead of converting it.
    """
    reported: set[tuple[Any, ...]] = set()
    result: M | None = None
    try:
        result = model.model_validate(data, context=context)
    except ValidationError as exc:
        for loc, message, kind in _messages(exc, model, data):
            # A placeholder (--no-env) fits any type; a key that does not exist is still wrong.
            if kind == "extra_forbidden" or not interpolation.is_placeholder((*prefix, *loc)):
                errors.add(_dotted((*prefix, *loc)), message)
                reported.add(loc)
    try:
        model.model_validate_json(orjson.dumps(data, default=str), strict=True,
                                  context={**(context or {}), "deprecated": []})
    except (ValidationError, orjson.JSONEncodeError) as exc:
        if isinstance(exc, ValidationError):
            _strict_errors(exc, model, data, prefix, errors, interpolation, reported)
    if result is None and not reported and interpolation.no_env:
        return _without_placeholders(model, data, prefix, interpolation, context)
    return result  # also when only the strict pass failed: its errors are in ``errors``


def _without_placeholders(model: type[M], data: Any, prefix: tuple[str, ...],
                          interpolation: Interpolation, context: dict[str, Any] | None) -> M | None:
    """``--no-env``: the model validated with each placeholder that fits no type
    (``workers = "${WORKERS}"``, in a table or a list) left out, so its key takes its default
    and everything else is still checked. A required key left out drops the list item that
    holds it (a ``[[pipelines]]`` entry); when nothing holds it, None (nothing else to check)."""
    dropped: set[tuple[Any, ...]] = set()
    for _ in range(100):  # each round leaves out at least one more value
        try:
            return model.model_validate(data, context=context)
        except ValidationError as exc:
            locs = [loc for loc, _, _ in _messages(exc, model, data)]
        drop = [loc for loc in locs if loc not in dropped
                and interpolation.is_placeholder((*prefix, *loc))]
        drop += [item for item in map(_list_item, (loc for loc in locs if loc in dropped))
                 if item]
        if not drop:
            return None
        dropped.update(drop)
        data = _leave_out(data, drop)
    return None


def _list_item(loc: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The location of the innermost list item that holds ``loc`` (None: no list holds it)."""
    positions = [n for n, part in enumerate(loc) if isinstance(part, int)]
    return loc[:positions[-1] + 1] if positions else None


def _leave_out(data: Any, locs: list[tuple[Any, ...]]) -> Any:
    """A copy of ``data`` without the values at ``locs`` (table keys or list items)."""
    def walk(value: Any, loc: tuple[Any, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*loc, k)) for k, v in value.items() if (*loc, k) not in gone}
        if isinstance(value, list):
            return [walk(v, (*loc, i)) for i, v in enumerate(value) if (*loc, i) not in gone]
        return value

    gone = set(locs)
    return walk(data, ())


def _strict_errors(exc: ValidationError, model: type[BaseModel], data: Any,
                   prefix: tuple[str, ...], errors: _Errors, interpolation: Interpolation,
                   reported: set[tuple[Any, ...]]) -> None:
    for loc, message, _ in _messages(exc, model, data):
        full = (*prefix, *loc)
        if loc in reported or interpolation.is_interpolated(full):
            continue
        errors.add(_dotted(full), f"{message} (a literal TOML value is not converted: write "
                   "it without quotes, or as the type the key takes)")
        reported.add(loc)


def _messages(exc: ValidationError, model: type[BaseModel],
              data: Any) -> list[tuple[tuple[Any, ...], str, str]]:
    """(location in ``data``, message, pydantic's error type) for each error; union member
    tags are dropped."""
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = _data_loc(error["loc"], data, keep_last=error["type"] in ("missing",
                                                                         "extra_forbidden"))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            known = _known_keys(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1) if known else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"unknown key{hint}; expected one of: {', '.join(known)}"
        elif error["type"] == "missing":
            message = "required key is missing"
        out.append((loc, message, error["type"]))
    return out


def _data_loc(loc: tuple[Any, ...], data: Any, *, keep_last: bool) -> tuple[Any, ...]:
    """The longest prefix of ``loc`` that is a path in ``data`` (plus the missing key itself)."""
    out: list[Any] = []
    current = data
    for position, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            if keep_last and position == len(loc) - 1:
                out.append(part)
            break
        out.append(part)
    return tuple(out)


_URL_KEYS = {("logarchive", "ledger")}
"""Keys whose value is a URL: what ``${...}`` puts in its userinfo or query is percent-encoded."""
_VAR = re.compile(r"\$(\$|\{([^}]*)\})")
_EXPR = re.compile(r"^(?:file:(?P<file>.+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                   r"(?:(?P<colon>:?)(?P<op>[-?])(?P<arg>.*))?)$", re.DOTALL)


class Interpolation:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
    ``${VAR?message}`` (as in POSIX shells and Compose), ``${file:PATH}`` (a file's text without
    its trailing newline, registered as a secret) and ``$$`` (a literal ``$``).

    Remembers which keys took a value from outside the file (``interpolated``: parsed for their
    key's type) and which are placeholders (``--no-env``: accepted whatever the key's type).
    """

    def __init__(self, env: Mapping[str, str], errors: _Errors, *, no_env: bool = False,
                 base_dir: Path) -> None:
        self.env = env
        self.errors = errors
        self.no_env = no_env
        self.base_dir = base_dir
        self.interpolated: set[tuple[Any, ...]] = set()
        self.placeholders: set[tuple[Any, ...]] = set()

    def apply(self, value: Any, key: tuple[Any, ...] = ()) -> Any:
        if isinstance(value, dict):
            return {k: self.apply(v, (*key, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply(v, (*key, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "$" not in value:
            return value
        if key in _URL_KEYS:  # a password with '/' or '@' must stay the password
            return _VAR.sub(lambda match: encode_in_url(
                value, match.start(), match.end(), self._substitute(match, key)), value)
        return _VAR.sub(lambda match: self._substitute(match, key), value)

    def is_interpolated(self, loc: tuple[Any, ...]) -> bool:
        return any(loc[:len(k)] == k for k in self.interpolated)

    def is_placeholder(self, loc: tuple[Any, ...]) -> bool:
        return any(loc[:len(k)] == k for k in self.placeholders)

    def _substitute(self, match: re.Match[str], key: tuple[Any, ...]) -> str:
        if match.group(1) == "$":
            return "$"
        self.interpolated.add(key)
        expr = _EXPR.match(match.group(2))
        if expr is None:
            self.errors.add(_dotted(key), f"{match.group(0)} is not a valid interpolation; "
                            "expected ${VAR}, ${VAR:-default}, ${VAR:?message} or ${file:PATH} "
                            "(write $$ for a literal $)")
            return match.group(0)
        if expr["file"]:
            return self._file(expr["file"], key)
        return self._variable(expr, key)

    def _variable(self, expr: re.Match[str], key: tuple[Any, ...]) -> str:
        name, op, arg = expr["name"], expr["op"], expr["arg"]
        value = None if self.no_env else self.env.get(name)
        unset = value is None or (expr["colon"] == ":" and value == "")
        if not unset:
            return value or ""
        if op == "-":
            return arg
        if self.no_env:
            self.placeholders.add(key)
            return f"${{{name}}}"
        if op == "?":
            self.errors.add(_dotted(key), f"environment variable ${{{name}}} is not set"
                            + (f": {arg}" if arg else ""))
        else:
            self.errors.add(_dotted(key), f"environment variable ${{{name}}} is not set")
        self.placeholders.add(key)
        return ""

    def _file(self, name: str, key: tuple[Any, ...]) -> str:
        if self.no_env:
            self.placeholders.add(key)
            return f"${{file:{name}}}"
        path = Path(name).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            self.errors.add(_dotted(key), f"cannot read the secret file {str(path)!r}: {reason}")
            self.placeholders.add(key)
            return ""
        text = text.removesuffix("\n").removesuffix("\r")
        register_secret(text)
        return text


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return []
        annotation = info.annotation
        current = _model_in(annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def overlapping_roots(config: Config) -> list[str]:
    """Warnings for byte sinks whose archive roots (``url``) are the same or nested. That works (each
    sink manages only the objects whose manifest names it), but renaming one of them orphans
    its objects, and a tool other than logarchive sees one mixed archive. Sinks that would render
    the same object path are refused when the config is loaded (:func:`_check_colliding_paths`)."""
    return [f"sinks {first!r} and {second!r} have {how}: each manages only the objects whose "
            "manifest names it; see docs/retention.md"
            for first, second, how, _ in _overlaps(config)]


def _check_colliding_paths(config: Config) -> None:
    """Refuse two byte sinks whose roots are equal or nested and whose path templates (with the
    format's extension) render the same object path: one would replace the other's objects and
    manifests, and its retention would delete what the other keeps. Templates that are not
    equal once the nesting is accounted for are left to the overlapping-roots warning."""
    for first, second, how, same in _overlaps(config):
        if same:
            raise ConfigError(
                f"sinks {first!r} and {second!r} have {how} and path templates that render the "
                "same object path: give them different roots or path templates",
                file=config.path, key=f"sinks.{second}.path")


def _overlaps(config: Config) -> list[tuple[str, str, str, bool]]:
    """(first, second, how, same object paths) for byte sinks with equal or nested roots."""
    roots = {}
    for name, sink in sorted(config.sinks.items()):
        url = getattr(sink.config, "url", None)  # the fs sink's root (record sinks: no archive)
        if isinstance(sink.config, ByteSinkConfig) and isinstance(url, str):
            roots[name] = _normalised_root(url, config.base_dir)
    out = []
    names = list(roots)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a, b = roots[first], roots[second]
            if a == b or b.startswith(a + "/") or a.startswith(b + "/"):
                how = f"the same root ({a})" if a == b else f"nested roots ({a}, {b})"
                outer, inner = (first, second) if len(a) <= len(b) else (second, first)
                sub = roots[inner][len(roots[outer]):].lstrip("/")
                same = (_full_template(config, outer)
                        == "/".join(filter(None, [sub, _full_template(config, inner)])))
                out.append((first, second, how, same))
    return out


def _full_template(config: Config, name: str) -> str:
    """A sink's path template with its extension filled in, ``/`` runs collapsed."""
    cfg = config.sinks[name].config
    template = cfg.path.replace("{ext}", extension(cfg.format, cfg.compression))
    return re.sub("/+", "/", template).strip("/")


def _normalised_root(url: str, base_dir: Path) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() in ("file", "local"):
        path = Path(rest if sep else url).expanduser()
        return "file://" + str((path if path.is_absolute() else base_dir / path).resolve())
    return f"{scheme.lower()}://{re.sub('/+', '/', rest).strip('/')}"
