"""Core list-endpoint helpers (logarchive.listing) used by the rest source."""

from __future__ import annotations

import pytest

from logarchive.plugin_api import (
    ListEndpoint, fill_template, json_pointer, normalise_status, parse_link_header,
)
from logarchive.plugin_api import ConfigError
from logarchive.listing import map_item


def test_json_pointer() -> None:
    doc = {"data": {"runs": [{"id": "r1", "a/b": 1, "m~n": 2}]}}
    assert json_pointer(doc, "/data/runs/0/id") == "r1"
    assert json_pointer(doc, "/data/runs/0/a~1b") == 1
    assert json_pointer(doc, "/data/runs/0/m~0n") == 2
    assert json_pointer(doc, "") is doc
    assert json_pointer({"id": 3}, "id") == 3
    assert json_pointer(doc, "/data/none", None) is None
    with pytest.raises(KeyError):
        json_pointer(doc, "/data/runs/5")


def test_link_header() -> None:
    value = ('<https://api.example.com/runs?page=3>; rel="next", '
             '<https://api.example.com/runs?page=1>; rel="prev first"')
    assert parse_link_header(value) == {"next": "https://api.example.com/runs?page=3",
                                        "prev": "https://api.example.com/runs?page=1",
                                        "first": "https://api.example.com/runs?page=1"}
    assert parse_link_header(None) == {}


def test_fill_template_quotes_values() -> None:
    assert fill_template("/m/{model_id}/x", {"model_id": "../../admin"}) == "/m/..%2F..%2Fadmin/x"
    with pytest.raises(ConfigError, match="run_id"):
        fill_template("/r/{run_id}", {"model_id": "m"})


def test_status_mapping_and_item_mapping() -> None:
    assert normalise_status("SUCCEEDED") == "completed"
    assert normalise_status("Cancelled") == "killed"
    assert normalise_status("DONE_OK", {"DONE_OK": "completed"}) == "completed"
    assert normalise_status("??") == "unknown"
    endpoint = ListEndpoint(url="/runs", fields={"model_id": "/model/id", "run_id": "/id"},
                            status="/state", completed="/ended", metadata={"owner": "/by"})
    listed = map_item(endpoint, {"model": {"id": "m"}, "id": 7, "state": "FAILED",
                                 "ended": 1773396000000, "by": "ana"})
    assert listed is not None and listed.fields == {"model_id": "m", "run_id": "7"}
    assert listed.status == "failed" and listed.completed.year == 2026
    assert listed.metadata == {"owner": "ana"}
    assert map_item(endpoint, {"id": "x"}) is None  # no model id: skipped
