"""What ``logarchive.plugin_api`` gives plugins beyond re-exports: the http(s) base URL type."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from logarchive import ConfigError, load_config
from logarchive.plugin_api import HttpBaseUrl


class Service(BaseModel):
    url: HttpBaseUrl
    optional: HttpBaseUrl | None = None


@pytest.mark.parametrize("value,expected", [
    ("https://api.example.com", "https://api.example.com"),
    ("https://api.example.com/", "https://api.example.com"),
    ("http://127.0.0.1:8088//", "http://127.0.0.1:8088"),
    ("HTTPS://Api.Example.com/v1/prefix/", "HTTPS://Api.Example.com/v1/prefix"),
    ("http://[::1]:9000/x", "http://[::1]:9000/x"),
])
def test_valid_base_urls_lose_only_their_trailing_slash(value: str, expected: str) -> None:
    assert Service(url=value).url == expected
    assert Service(url=value, optional=value).optional == expected
    assert Service(url=value).optional is None


@pytest.mark.parametrize("value,message", [
    ("ftp://files.example.com", "must start with http:// or https://"),
    ("api.example.com", "must start with http:// or https://"),
    ("", "must start with http:// or https://"),
    ("https://", "must name a host"),
    ("http:///path/only", "must name a host"),
    ("http://host:port/", "is not a valid URL"),
    ("http://[::1/", "is not a valid URL"),
    (" https://api.example.com", "must not start or end with spaces"),
    ("https://svc:pa55w0rd@api.example.com", "must not contain credentials"),
    ("https://tok3n-only@api.example.com", "must not contain credentials"),
])
def test_bad_base_urls_are_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Service(url=value)
    errors = info.value.errors(include_input=False, include_url=False)
    assert [e["loc"] for e in errors] == [("url",)]
    assert message in errors[0]["msg"]
    if "@" in value:  # the error never repeats the credentials
        assert "pa55w0rd" not in errors[0]["msg"] and "tok3n" not in errors[0]["msg"]


CONFIG = """
[sources.logs]
type = "files"
url = "logs"

[sinks.hec]
type = "splunk"
url = "{url}"
token = "hec-token-value"

[[pipelines]]
name = "p"
source = "logs"
sinks = ["hec"]
"""


def test_a_plugin_url_key_uses_the_type_and_the_error_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace("{url}", "https://splunk.example.com:8088/"))
    assert load_config(path).sinks["hec"].config.url == "https://splunk.example.com:8088"
    path.write_text(CONFIG.replace("{url}", "splunk.example.com:8088"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "sinks.hec.url" in str(info.value)
    assert "must start with http:// or https://" in str(info.value)
