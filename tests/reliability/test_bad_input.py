"""Fuzzed configs and hostile run ids: a clear error with a key path, never a crash, never an
escape from a sink's root."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logarchive import ConfigError, load_config, parse_config
from logarchive_testsupport.processes import EXE

VALID: dict[str, Any] = {
    "logarchive": {"state_dir": "/tmp/never-used", "workers": 2, "chunk_size": 65536},
    "sources": {"logs": {"type": "files", "url": "/tmp/never-used-logs", "pattern": "**/*.log",
                         "min_age_seconds": 0}},
    "sinks": {"archive": {"type": "fs", "url": "/tmp/never-used-archive", "format": "ndjson",
                          "compression": "gzip", "max_line_bytes": 4096,
                          "path": "{source}/{run_id}.{ext}", "block_size": 8388608}},
    "pipelines": [{"name": "p", "source": "logs", "sinks": ["archive"]}],
}
KEYS = [
    ("logarchive", "workers"), ("logarchive", "chunk_size"), ("logarchive", "state_dir"),
    ("sources", "logs", "url"), ("sources", "logs", "pattern"), ("sources", "logs", "fields"),
    ("sources", "logs", "min_age_seconds"), ("sources", "logs", "type"),
    ("sinks", "archive", "format"), ("sinks", "archive", "compression"),
    ("sinks", "archive", "max_line_bytes"), ("sinks", "archive", "path"),
    ("sinks", "archive", "url"), ("sinks", "archive", "block_size"),
    ("sinks", "archive", "compression_level"), ("sinks", "archive", "type"),
    ("sinks", "archive", "immutable"),
]
VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63), st.floats(allow_nan=True),
    st.booleans(), st.text(max_size=40), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["lz4", "xml", "-1", "", "../../etc", "/abs/{run_id}", "{unknown",
                     "https://user:pass@host/x", "s3://AKIA:secret@bucket", "{run_id:%Y}",
                     "${UNSET_VARIABLE_X}", "gzip ", "NDJSON"]),
)


def dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


@pytest.mark.scenario(
    "fuzzed config values",
    "hypothesis replaces any known key with any value (negative sizes, zero workers, unknown "
    "compression, URLs with credentials, bad templates, unset ${VARS}) or adds unknown keys: "
    "either valid, or a ConfigError (exit 2) naming the key path; never another exception",
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3),
       extra=st.one_of(st.none(), st.tuples(st.sampled_from(["logarchive", "sinks.archive",
                                                             "sources.logs"]),
                                            st.from_regex(r"[a-z_]{1,12}", fullmatch=True))))
def test_fuzzed_config_values(changes: list[tuple[tuple[str, ...], Any]], extra: Any) -> None:
    data = copy.deepcopy(VALID)
    for path, value in changes:
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    if extra is not None:
        section, key = extra
        node = data
        for part in section.split("."):
            node = node[part]
        if key not in node:
            node[key] = 1
    try:
        parse_config(data, environ={})
    except ConfigError as error:
        message = str(error)
        assert error.exit_code == 2
        touched = [dotted(p[:2]) for p, _ in changes] + ([extra[0]] if extra else [])
        assert any(t in message for t in touched) or "pipelines" in message, message
        assert "pass" not in message.split("://")[-1] or "credentials" in message
        assert "secret@" not in message


@pytest.mark.scenario(
    "fuzzed TOML text",
    "arbitrary bytes as the config file: ConfigError (exit 2) naming the file, never a crash",
)
@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.binary(max_size=200),
                      st.text(alphabet="[]=\"'{}.,\n abc123#$", max_size=120).map(str.encode)))
def test_fuzzed_toml_text(tmp_path_factory: pytest.TempPathFactory, text: bytes) -> None:
    path = tmp_path_factory.mktemp("toml") / "c.toml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(path) in str(info.value) and info.value.exit_code == 2


@pytest.mark.scenario(
    "bad config through the CLI",
    "negative sizes, zero workers, unknown compression, credentials in a URL: `logarchive "
    "export` exits 2 with the key path on stderr and no traceback",
)
@pytest.mark.parametrize("line,key", [
    ('max_line_bytes = -1', "sinks.archive.max_line_bytes"),
    ('compression = "lz4"', "sinks.archive.compression"),
    ('url = "https://admin:hunter2@10.0.0.1/logs"', "sinks.archive.url"),
    ('block_size = 0', "sinks.archive.block_size"),
])
def test_bad_config_through_the_cli(tmp_path: Path, line: str, key: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'''
[logarchive]
workers = 2
[sources.logs]
type = "files"
url = "logs"
[sinks.archive]
type = "fs"
url = "archive"
{line}
''' if not line.startswith("url") else f'''
[sources.logs]
type = "files"
url = "logs"
[sinks.archive]
type = "fs"
{line}
''')
    result = subprocess.run([EXE, "export", "-c", str(config)], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert key in result.stderr and "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr
    zero = config.read_text().replace("workers = 2", "workers = 0")
    if "workers = 0" in zero:
        config.write_text(zero)
        result = subprocess.run([EXE, "export", "-c", str(config)], capture_output=True, text=True)
        assert result.returncode == 2 and "logarchive.workers" in result.stderr
