"""The plugin is found through its entry point, and its config is checked before any call."""

from __future__ import annotations

import pytest

from logarchive import parse_config
from logarchive.errors import ConfigError
from logarchive.plugins import Registry


def test_discovered_through_entry_point() -> None:
    registry = Registry()
    registry.load_entry_points(only="mlflow")
    plugin = registry.sources["mlflow"]
    assert plugin.distribution == "logarchive-mlflow"
    assert plugin.kind == "source" and plugin.plugin == "mlflow"
    from logarchive_mlflow import MlflowSource

    assert plugin.cls is MlflowSource


def _config(source: dict) -> dict:
    return {"sources": {"lab": {"type": "mlflow", **source}},
            "sinks": {"a": {"type": "fs", "url": "/tmp/unused"}}}


@pytest.mark.parametrize("source, message", [
    ({"api": "modellab", "runs": [1], "api_key": "k"}, "application_key"),
    ({"api": "modellab", "api_key": "k", "application_key": "a"}, "runs (ids) or projects"),
    ({"api": "modellab", "runs": [1], "api_key": "k", "application_key": "a",
      "tracking_uri": "http://x"}, "tracking_uri only apply to api = \"mlflow\""),
    ({"api": "mlflow"}, "needs tracking_uri"),
    ({"api": "mlflow", "tracking_uri": "http://x", "runs": [1]}, "runs only apply"),
    ({"api": "mlflow", "tracking_uri": "ftp://x"}, "http:// or https://"),
    ({"api": "mlflow", "tracking_uri": "http://x", "artifacts": ["../*.log"]}, "'..'"),
    ({"api": "mlflow", "tracking_uri": "http://x", "statuses": ["DONE"]}, "statuses"),
    ({"api": "graphql"}, "api"),
])
def test_config_errors_name_the_key(source: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(source))
    assert message in str(caught.value)
    assert "sources.lab" in str(caught.value)


def test_secrets_never_print() -> None:
    config = parse_config(_config({"api": "modellab", "runs": [1], "api_key": "dd-key-123",
                                   "application_key": "dd-app-456"}))
    text = repr(config.sources["lab"].config)
    assert "dd-key-123" not in text and "dd-app-456" not in text


def test_readme_examples_validate() -> None:
    """Every TOML block of the README is a valid config (the lab block carries its sink)."""
    import re
    import tomllib
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 2
    env = {"DD_API_KEY": "k", "DD_APP_KEY": "a", "MLFLOW_TRACKING_TOKEN": "t"}
    for block in blocks:
        data = tomllib.loads(block)
        data.setdefault("sinks", {"archive": {"type": "fs", "url": "/tmp/unused"}})
        config = parse_config(data, environ=env)
        assert [s.plugin.type for s in config.sources.values()] == ["mlflow"]
