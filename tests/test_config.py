"""Config validation: every error names the file, the key path and what was expected; exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from logarchive import ConfigError, load_config, parse_config
from logarchive.secrets import redact

REPO = Path(__file__).resolve().parents[1]

GOOD = """
[logarchive]
state_dir = "state"

[sources.training]
type = "files"
url = "logs"

[sinks.archive]
type = "fs"
url = "archive"
format = "ndjson"
compression = "gzip"

[[pipelines]]
name = "training"
source = "training"
sinks = ["archive"]
"""


def check(tmp_path: Path, text: str, *, environ: dict[str, str] | None = None) -> ConfigError:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    assert info.value.exit_code == 2
    assert str(path) in str(info.value)
    return info.value


def test_example_config_validates() -> None:
    config = load_config(REPO / "config.example.toml")
    assert [p.name for p in config.pipelines] == ["examples"]
    assert config.sinks["records"].config.format == "ndjson"


def test_good_config(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(GOOD)
    config = load_config(tmp_path / "c.toml")
    assert config.state_dir == tmp_path / "state"  # relative to the config file's folder
    assert config.sinks["archive"].config.compression == "gzip"


@pytest.mark.parametrize("old,new,key,expected", [
    ('compression = "gzip"', 'compresion = "gzip"', "sinks.archive.compresion",
     "did you mean 'compression'"),
    ('compression = "gzip"', 'compression = "lz4"', "sinks.archive.compression",
     "'none', 'gzip' or 'zstd'"),
    ('state_dir = "state"', 'state_dir = "state"\nworkers = 0', "logarchive.workers",
     "greater than or equal to 1"),
    ('state_dir = "state"', 'state_dir = "state"\nworkers = "four"', "logarchive.workers",
     "valid integer"),
    ('type = "fs"', 'type = "ftp"', "sinks.archive.type", "unknown sink type 'ftp'"),
    ('sinks = ["archive"]', 'sinks = ["archiv"]', "pipelines[0].sinks[0]",
     "did you mean 'archive'"),
    ('url = "archive"', 'url = "archive"\nmax_line_bytes = -5', "sinks.archive.max_line_bytes",
     "greater than or equal to 64"),
    ('url = "logs"', 'url = "logs"\nfields = "(no named group)"', "sources.training.fields",
     "named group"),
    ('format = "ndjson"', 'format = "ndjson"\npath = "../{run_id}"', "sinks.archive.path",
     "relative path"),
    ('format = "ndjson"', 'format = "ndjson"\npath = "{run_id:%Y}"', "sinks.archive.path",
     "only the times"),
])
def test_config_errors_name_the_key_path(tmp_path: Path, old: str, new: str, key: str,
                                         expected: str) -> None:
    assert old in GOOD
    error = check(tmp_path, GOOD.replace(old, new, 1))
    assert key in str(error)
    assert expected in str(error)


def test_credentials_inside_a_url_are_refused(tmp_path: Path) -> None:
    error = check(tmp_path, GOOD.replace('url = "archive"', 'url = "s3://AKIAX:s3cr3t@bucket/x"'))
    assert "sinks.archive.url" in str(error) and "credentials inside a URL" in str(error)
    assert "s3cr3t" not in str(error)


def test_unset_environment_variable_is_an_error_not_empty(tmp_path: Path) -> None:
    text = GOOD.replace('url = "logs"', 'url = "${LOG_DIR}"')
    error = check(tmp_path, text)
    assert "sources.training.url" in str(error) and "${LOG_DIR} is not set" in str(error)
    (tmp_path / "ok.toml").write_text(text)
    config = load_config(tmp_path / "ok.toml", environ={"LOG_DIR": "elsewhere"})
    assert config.sources["training"].config.url == "elsewhere"


def test_dollar_dollar_escapes(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(GOOD.replace('url = "logs"', 'url = "logs$${X}"'))
    assert load_config(tmp_path / "c.toml", environ={}).sources["training"].config.url == "logs${X}"


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    error = check(tmp_path, "[sources.training\ntype=")
    assert "not valid TOML" in str(error)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_missing_required_key(tmp_path: Path) -> None:
    error = check(tmp_path, GOOD.replace('url = "archive"\n', ""))
    assert "sinks.archive.url: required key is missing" in str(error)


def test_secret_values_never_print() -> None:
    from pydantic import BaseModel

    from logarchive.secrets import Secret

    class M(BaseModel):
        token: Secret

    model = M(token="tok-very-secret-123")
    assert "tok-very-secret-123" not in repr(model) and "tok-very-secret-123" not in str(model)
    assert "tok-very-secret-123" not in model.model_dump_json()
    assert redact("header Bearer tok-very-secret-123 sent") == "header Bearer *** sent"
    assert redact("value tok-very-secret-123") == "value ***"


def test_redact_presigned_urls_and_userinfo() -> None:
    url = ("https://obs.example.com/b/k.log?AWSAccessKeyId=AKIAXYZ&Expires=1700&"
           "Signature=abc%2Fdef&x=1")
    text = redact(f"GET {url} failed; proxy http://user:pa55@proxy:3128")
    assert "AKIAXYZ" not in text and "abc%2Fdef" not in text and "pa55" not in text
    assert "x=1" in text and "Signature=***" in text


def test_config_check_cli_exit_codes(tmp_path: Path, run_cli) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    ok = run_cli("config", "check", "-c", "good.toml")
    assert ok.returncode == 0, ok.stderr
    assert "ok (1 source(s), 1 sink(s), 1 pipeline(s))" in ok.stdout
    (tmp_path / "bad.toml").write_text(GOOD.replace('type = "fs"', 'type = "fss"'))
    bad = run_cli("config", "check", "-c", "bad.toml")
    assert bad.returncode == 2
    assert "sinks.archive.type" in bad.stderr and "did you mean 'fs'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_config_from_environment_variable(tmp_path: Path, run_cli) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    result = run_cli("config", "check", env={"LOGARCHIVE_CONFIG": str(tmp_path / "good.toml")})
    assert result.returncode == 0, result.stderr


def test_config_errors_happen_before_any_network_call(tmp_path: Path, run_cli, loopback) -> None:
    """A config error exits 2 before the export touches a source or a sink."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    (tmp_path / "c.toml").write_text(
        GOOD.replace('url = "archive"', f'url = "{loopback.url}/bucket"')
        .replace('compression = "gzip"', 'compression = "gzip"\nbogus = 1')
    )
    result = run_cli("export", "-c", "c.toml")
    assert result.returncode == 2 and "sinks.archive.bogus" in result.stderr
    assert loopback.requests == []


def test_parse_config_api_accepts_dicts(tmp_path: Path) -> None:
    config = parse_config({
        "sources": {"s": {"type": "files", "url": str(tmp_path)}},
        "sinks": {"a": {"type": "fs", "url": str(tmp_path / "out")}},
    })
    # Without [[pipelines]], each source goes to every sink.
    assert [(p.name, p.source, p.sinks) for p in config.pipelines] == [("s", "s", ["a"])]


def test_config_schema_lists_every_plugin(run_cli) -> None:
    import json

    result = run_cli("config", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"files"} <= set(schema["sources"]) and {"fs"} <= set(schema["sinks"])
    assert "compression" in schema["sinks"]["fs"]["properties"]
