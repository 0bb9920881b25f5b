"""Config validation: every error names the file, the key path and what was expected; exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from logarchive import ConfigError, load_config, parse_config
from logarchive.secrets import redact
from logarchive_testsupport.workspace import FILES_TO_FS_TOML

REPO = Path(__file__).resolve().parents[1]

GOOD = FILES_TO_FS_TOML + """format = "ndjson"
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


SPLUNK = """
[sources.training]
type = "files"
url = "logs"

[sinks.hec]
type = "splunk"
url = "https://splunk.example.com:8088"
token = "t0ken"
"""
FLAT = {"timeout": ("read_timeout", 12.0), "connect_timeout": ("connect_timeout", 3.0),
        "verify": ("verify", False), "max_retries": ("retry.max_retries", 2),
        "backoff_initial": ("retry.backoff_initial", 0.25),
        "backoff_max": ("retry.backoff_max", 4.0), "retry_after_max": ("retry.retry_after_max", 60.0)}


def _toml(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _http_value(config: object, nested: str) -> object:
    value = config.http  # type: ignore[attr-defined]
    for part in nested.split("."):
        value = getattr(value, part)
    return value


def test_sink_http_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(SPLUNK)
    config = load_config(tmp_path / "c.toml")
    http = config.sinks["hec"].config.http
    # Sinks retry a batch 8 times and wait 30 s for an answer; sources retry 5 times.
    assert (http.read_timeout, http.retry.max_retries, http.connect_timeout) == (30.0, 8, 10.0)
    assert config.warnings == []


def test_flat_sink_http_keys_load_as_deprecated_aliases(tmp_path: Path, run_cli) -> None:
    flat = "\n".join(f"{key} = {_toml(value)}" for key, (_, value) in FLAT.items())
    nested_http = "\n".join(f"{n} = {_toml(v)}" for n, v in FLAT.values() if "." not in n)
    nested_retry = "\n".join(f"{n[6:]} = {_toml(v)}" for n, v in FLAT.values() if "." in n)
    (tmp_path / "flat.toml").write_text(SPLUNK + flat + "\n")
    (tmp_path / "nested.toml").write_text(
        SPLUNK + f"[sinks.hec.http]\n{nested_http}\n[sinks.hec.http.retry]\n{nested_retry}\n")
    old, new = load_config(tmp_path / "flat.toml"), load_config(tmp_path / "nested.toml")
    assert old.sinks["hec"].config == new.sinks["hec"].config
    for key, (nested, value) in FLAT.items():
        assert _http_value(old.sinks["hec"].config, nested) == value
        assert f"sinks.hec.{key} is deprecated: use sinks.hec.http.{nested}" in old.warnings
    assert new.warnings == []
    # The warning reaches stderr (structlog) through `config check`, which still succeeds.
    result = run_cli("config", "check", "-c", "flat.toml")
    assert result.returncode == 0, result.stderr
    assert "sinks.hec.timeout is deprecated: use sinks.hec.http.read_timeout" in result.stderr
    assert "config_key_deprecated" in result.stderr
    clean = run_cli("config", "check", "-c", "nested.toml")
    assert clean.returncode == 0 and "deprecated" not in clean.stderr


@pytest.mark.parametrize("flat,nested", [
    ("timeout = 5", "[sinks.hec.http]\nread_timeout = 5"),
    ("max_retries = 2", "[sinks.hec.http.retry]\nmax_retries = 3"),
])
def test_flat_and_nested_sink_key_together_is_an_error(tmp_path: Path, flat: str,
                                                       nested: str) -> None:
    error = check(tmp_path, SPLUNK + flat + "\n" + nested + "\n")
    new = "http.read_timeout" if "timeout" in flat else "http.retry.max_retries"
    assert error.key == "sinks.hec"
    assert f"both {flat.split()[0]} (deprecated) and {new} are set" in str(error)


def test_flat_sink_key_without_the_loader_warns_in_python() -> None:
    from logarchive_datadog import DatadogConfig

    with pytest.warns(DeprecationWarning, match="max_retries is deprecated: use "
                      "http.retry.max_retries"):
        config = DatadogConfig(api_key="k", max_retries=1)
    assert config.http.retry.max_retries == 1 and config.http.read_timeout == 30.0


# Interpolation as in shells and Compose, secret files, strict literals, every error at once.

def _load(tmp_path: Path, text: str, environ: dict[str, str], **kwargs: object):
    (tmp_path / "c.toml").write_text(text)
    return load_config(tmp_path / "c.toml", environ=environ, **kwargs)


@pytest.mark.parametrize("expr,environ,expected", [
    ("${STATE:-.state}", {}, ".state"),
    ("${STATE:-.state}", {"STATE": ""}, ".state"),  # ':-' also replaces an empty value
    ("${STATE-.state}", {"STATE": ""}, ""),  # '-' only an unset one
    ("${STATE:-.state}", {"STATE": "st"}, "st"),
    ("${STATE:?set STATE}", {"STATE": "st"}, "st"),
    ("pre-${STATE:-a}-${OTHER:-b}", {"OTHER": "o"}, "pre-a-o"),
])
def test_shell_style_defaults(tmp_path: Path, expr: str, environ: dict[str, str],
                              expected: str) -> None:
    config = _load(tmp_path, GOOD.replace('state_dir = "state"', f'state_dir = "{expr}"'), environ)
    assert config.settings.state_dir == expected


def test_required_variable_message(tmp_path: Path) -> None:
    error = check(tmp_path, GOOD.replace('url = "logs"', 'url = "${LOG_DIR:?mount the logs}"'))
    assert "sources.training.url: environment variable ${LOG_DIR} is not set: mount the logs" \
        in str(error)


def test_malformed_interpolation_is_an_error(tmp_path: Path) -> None:
    error = check(tmp_path, GOOD.replace('url = "logs"', 'url = "${1BAD}"'))
    assert "sources.training.url" in str(error) and "not a valid interpolation" in str(error)


def test_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-from-file\n")
    text = GOOD + f'\n[sinks.hec]\ntype = "splunk"\nurl = "http://127.0.0.1:9"\n' \
        f'token = "${{file:{secret}}}"\n'
    config = _load(tmp_path, text.replace('sinks = ["archive"]', 'sinks = ["archive", "hec"]'), {})
    token = config.sinks["hec"].config.token
    assert token.get_secret_value() == "s3cr3t-from-file"  # trailing newline stripped
    assert "s3cr3t-from-file" not in repr(config.sinks["hec"].config)
    assert redact("token s3cr3t-from-file") == "token ***"  # masked like every secret
    secret.unlink()
    error = check(tmp_path, text)
    assert "sinks.hec.token" in str(error) and "cannot read the secret file" in str(error)
    assert str(secret) in str(error)


@pytest.mark.parametrize("old,new,key", [
    ('state_dir = "state"', 'state_dir = "state"\nworkers = "4"', "logarchive.workers"),
    ('compression = "gzip"', 'compression = "gzip"\nimmutable = "yes"', "sinks.archive.immutable"),
])
def test_literal_values_are_not_coerced(tmp_path: Path, old: str, new: str, key: str) -> None:
    error = check(tmp_path, GOOD.replace(old, new))
    assert f"{key}: " in str(error) and "literal TOML value is not converted" in str(error)


def test_interpolated_values_are_parsed_for_the_key_type(tmp_path: Path) -> None:
    text = GOOD.replace('state_dir = "state"', 'state_dir = "state"\nworkers = "${WORKERS}"')
    text = text.replace('compression = "gzip"', 'compression = "gzip"\nimmutable = "${IMM}"')
    config = _load(tmp_path, text, {"WORKERS": "7", "IMM": "true"})
    assert config.settings.workers == 7 and config.sinks["archive"].config.immutable is True


def test_every_error_is_reported_at_once(tmp_path: Path, run_cli) -> None:
    text = (GOOD.replace('state_dir = "state"', 'state_dir = "state"\nworkers = "4"')
            .replace('url = "logs"', 'url = "${NOPE}"')
            .replace('format = "ndjson"', 'format = "ndjsn"')
            .replace('source = "training"', 'source = "trainin"'))
    (tmp_path / "bad.toml").write_text(text)
    result = run_cli("config", "check", "-c", "bad.toml", )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for key in ("logarchive.workers", "sources.training.url", "sinks.archive.format",
                "pipelines[0].source"):
        assert f"{key}: " in result.stderr, (key, result.stderr)
    assert "4 errors" in result.stderr


def test_config_check_no_env_accepts_placeholders(tmp_path: Path, run_cli) -> None:
    text = (GOOD.replace('url = "logs"', 'url = "${LOG_DIR}"')
            .replace('state_dir = "state"', 'state_dir = "state"\nworkers = "${WORKERS}"'))
    (tmp_path / "c.toml").write_text(text)
    assert run_cli("config", "check", "-c", "c.toml").returncode == 2
    ok = run_cli("config", "check", "--no-env", "-c", "c.toml")
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "c.toml").write_text(text.replace('format = "ndjson"', 'format = "ndjsn"'))
    bad = run_cli("config", "check", "--no-env", "-c", "c.toml")
    assert bad.returncode == 2 and "sinks.archive.format" in bad.stderr
    assert "sources.training.url" not in bad.stderr


def test_no_env_placeholders_of_any_type_leave_every_other_error_reported(
        tmp_path: Path, run_cli) -> None:
    """Placeholders in an int, a bool, a number, a list and a [[pipelines]] entry are accepted;
    every real error in the same file is still found, each on its own line."""
    text = (GOOD.replace('state_dir = "state"', 'state_dir = "state"\nworkers = "${WORKERS}"')
            .replace('url = "logs"', 'url = "logs"\nmax_log_bytes = "${MAX_BYTES}"')
            .replace('format = "ndjson"', 'format = "ndjson"\nimmutable = "${IMMUTABLE}"\n'
                     'path = "{model_id}/{run_id}.{ext}"')
            .replace('sinks = ["archive"]', 'sinks = ["archive", "nosuch"]')
            + '\n[[pipelines]]\nname = "p2"\nsource = "training"\nsinks = "${SINKS}"\n'
            '\n[sinks.other]\ntype = "fs"\nurl = "other"\ncompression = "zipx"\n'
            'retention = { max_age_days = "${DAYS}", keep_dayz = "${KEEP}" }\n')
    (tmp_path / "c.toml").write_text(text)
    result = run_cli("config", "check", "--no-env", "-c", "c.toml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].endswith("c.toml: 4 errors:"), result.stderr
    reported = sorted(line.strip().split(":")[0] for line in lines[1:])
    assert reported == ["pipelines[0].sinks[1]", "sinks.archive.path", "sinks.other.compression",
                        "sinks.other.retention.keep_dayz"], result.stderr


def test_path_template_fields_are_checked_against_the_source(tmp_path: Path) -> None:
    text = GOOD.replace('format = "ndjson"', 'format = "ndjson"\npath = "{model_id}/{run_id}.{ext}"')
    error = check(tmp_path, text)
    assert "sinks.archive.path: {model_id} is not a field of the runs of source 'training'" \
        in str(error)
    assert "run_id" in str(error)  # what the runs do have
    fields = r'fields = "(?P<model_id>[^/]+)/(?P<run_id>[^/.]+)"'
    config = _load(tmp_path, text.replace('url = "logs"', f"url = \"logs\"\n{fields}"), {})
    assert config.sinks["archive"].config.path == "{model_id}/{run_id}.{ext}"


def test_strftime_codes_are_validated(tmp_path: Path) -> None:
    text = GOOD.replace('format = "ndjson"', 'format = "ndjson"\npath = "{completed:%Y/%Q}/{run_id}"')
    error = check(tmp_path, text)
    assert "sinks.archive.path" in str(error) and "unknown strftime code %Q" in str(error)
