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
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from logarchive.base import ByteSink, ByteSinkConfig, PluginConfig
from logarchive.codec import extension
from logarchive.errors import ConfigError
from logarchive.plugins import PluginType, Registry, default_registry

log = structlog.get_logger("logarchive.config")
CONFIG_ENV = "LOGARCHIVE_CONFIG"
_VAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


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
                environ: dict[str, str] | None = None) -> Config:
    """Read and validate a config file (``$LOGARCHIVE_CONFIG`` or ``logarchive.toml`` by default)."""
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
    return parse_config(data, path=path, registry=registry, environ=environ,
                        base_dir=Path(path).resolve().parent)


def parse_config(data: dict[str, Any], *, path: str = "<config>", registry: Registry | None = None,
                 environ: dict[str, str] | None = None, base_dir: Path | None = None) -> Config:
    """Validate an already-parsed TOML document."""
    registry = registry or default_registry()
    env = os.environ if environ is None else environ
    data = _interpolate(data, env, path, ())
    try:
        raw = _RawConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, path, (), _RawConfig) from None

    sources = {
        name: _plugin_config(registry.sources, "sources", name, table, path, "source")
        for name, table in raw.sources.items()
    }
    sinks = {
        name: _plugin_config(registry.sinks, "sinks", name, table, path, "sink")
        for name, table in raw.sinks.items()
    }
    if not sources:
        raise ConfigError("no [sources.NAME] table: nothing to export", file=path, key="sources")
    if not sinks:
        raise ConfigError("no [sinks.NAME] table: nowhere to deliver", file=path, key="sinks")
    # Without [[pipelines]], every source goes to every sink.
    pipelines = raw.pipelines or [
        PipelineConfig(name=name, source=name, sinks=list(sinks)) for name in sources
    ]
    seen: set[str] = set()
    for index, pipeline in enumerate(pipelines):
        key = f"pipelines[{index}]"
        if pipeline.name in seen:
            raise ConfigError(f"pipeline name {pipeline.name!r} is used twice", file=path,
                              key=f"{key}.name")
        seen.add(pipeline.name)
        if pipeline.source not in sources:
            raise ConfigError(_unknown(pipeline.source, sources, "source"), file=path,
                              key=f"{key}.source")
        for position, sink in enumerate(pipeline.sinks):
            if sink not in sinks:
                raise ConfigError(_unknown(sink, sinks, "sink"), file=path,
                                  key=f"{key}.sinks[{position}]")
    for name in raw.sources:
        _check_name(name, path, f"sources.{name}")
    for name in raw.sinks:
        _check_name(name, path, f"sinks.{name}")
    config = Config(
        path=path, base_dir=base_dir or Path.cwd(), settings=raw.logarchive, sources=sources,
        sinks=sinks, pipelines=pipelines, registry=registry,
    )
    _check_colliding_paths(config)
    return config


def _check_name(name: str, path: str, key: str) -> None:
    if not re.match(_NAME, name):
        raise ConfigError("names may contain letters, digits, '_', '.', '-'", file=path, key=key)


def _unknown(value: str, known: dict[str, Any], what: str) -> str:
    choices = ", ".join(sorted(known)) or "(none)"
    close = difflib.get_close_matches(value, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {value!r}{hint}; expected one of: {choices}"


def _plugin_config(types: dict[str, PluginType], section: str, name: str, table: dict[str, Any],
                   path: str, what: str) -> PluginInstanceConfig:
    prefix = (section, name)
    type_name = table.get("type")
    if not isinstance(type_name, str):
        raise ConfigError(
            f"missing or not a string; expected one of the installed {what} types: "
            + ", ".join(sorted(types)), file=path, key=f"{section}.{name}.type",
        )
    plugin = types.get(type_name)
    if plugin is None:
        raise ConfigError(
            _unknown(type_name, types, f"{what} type") + " (see `logarchive plugins`)",
            file=path, key=f"{section}.{name}.type",
        )
    _refuse_url_credentials(table, path, prefix)
    deprecated: list[tuple[str, str]] = []
    try:
        config = plugin.cls.Config.model_validate(table, context={"deprecated": deprecated})
    except ValidationError as exc:
        raise _config_error(exc, path, prefix, plugin.cls.Config) from None
    _refuse_non_durable(plugin, config, path, prefix)
    notes = tuple(f"{section}.{name}.{old} is deprecated: use {section}.{name}.{new}"
                  for old, new in deprecated)
    for note in notes:
        log.warning("config_key_deprecated", file=path, message=note)
    return PluginInstanceConfig(name=name, plugin=plugin, config=config, warnings=notes)


def _refuse_non_durable(plugin: PluginType, config: Any, path: str,
                        prefix: tuple[str, str]) -> None:
    """A byte sink whose objects vanish with the process would have the ledger call runs
    archived that are not: refused unless the config says it is meant."""
    if not issubclass(plugin.cls, ByteSink) or not isinstance(config, ByteSinkConfig):
        return
    if not config.allow_non_durable and not plugin.cls.durable(config):
        raise ConfigError(
            "this sink keeps its objects in the memory of the process: they vanish when it "
            "exits, so nothing delivered to it is archived. Use a durable root, or set "
            "allow_non_durable = true (tests, trials): its deliveries are then recorded as "
            "volatile and delivered again by every export",
            file=path, key=".".join(prefix) + ".allow_non_durable",
        )


_URL_WITH_CREDENTIALS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*@")


def _refuse_url_credentials(value: Any, path: str, key: tuple[str | int, ...]) -> None:
    """Credentials inside a URL would travel into logs, errors and manifests as part of the URL:
    refuse them and point to the keys that are secrets."""
    if isinstance(value, str):
        if _URL_WITH_CREDENTIALS.match(value):
            raise ConfigError(
                "credentials inside a URL are not allowed (they would end up in logs and "
                "manifests); put them in the plugin's auth/token/api_key/storage_options keys, "
                "which are secrets, and use ${ENV_VAR}", file=path, key=_dotted(key),
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            _refuse_url_credentials(v, path, (*key, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_url_credentials(v, path, (*key, i))


def _interpolate(value: Any, env: Any, path: str, key: tuple[str | int, ...]) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            if match.group(1) == "$":
                return "$"
            var = match.group(2)
            if var not in env:
                raise ConfigError(f"environment variable ${{{var}}} is not set", file=path,
                                  key=_dotted(key))
            return env[var]

        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env, path, (*key, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, path, (*key, i)) for i, v in enumerate(value)]
    return value


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _config_error(exc: ValidationError, path: str, prefix: tuple[str, ...],
                  model: type[BaseModel]) -> ConfigError:
    lines = []
    first_key = None
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = _dotted((*prefix, *loc))
        first_key = first_key or key
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            known = _known_keys(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1) if known else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"unknown key{hint}; expected one of: {', '.join(known)}"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{key}: {message}")
    if len(lines) == 1:
        return ConfigError(lines[0].split(": ", 1)[1], file=path, key=first_key)
    return ConfigError("\n  " + "\n  ".join(lines), file=path, key=None)


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
