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


@pytest.mark.parametrize("value", [1e20, float("nan"), float("inf"), -1e15, -1e20])
def test_parse_time_refuses_numbers_that_are_no_time(value: float) -> None:
    from logarchive.runs import parse_time

    with pytest.raises(ValueError, match="time .*(out of range|not a number)"):
        parse_time(value)


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_parse_time_refuses_times_outside_utc_range(value: str) -> None:
    """Found by review: such a time overflowed when stored as UTC and aborted the export."""
    from logarchive.runs import iso, parse_time

    with pytest.raises(ValueError, match="out of range in UTC"):
        parse_time(value)
    assert iso(parse_time("9999-12-31T23:59:59+00:00")) == "9999-12-31T23:59:59Z"


def test_parse_time_reads_seconds_and_milliseconds() -> None:
    from logarchive.runs import parse_time

    assert parse_time(1700000000).isoformat() == "2023-11-14T22:13:20+00:00"
    assert parse_time(1700000000000) == parse_time(1700000000)
    assert parse_time("not a time") is None and parse_time(None) is None


def test_run_fields_refuse_lone_surrogates() -> None:
    from logarchive.plugin_api import RunRef

    with pytest.raises(ValueError, match=r"run field 'run_id'.*lone surrogate.*\\ud800"):
        RunRef("src", {"run_id": "a\ud800b"})
    assert RunRef("src", {"run_id": "a\nb"}).fields["run_id"] == "a\nb"  # stored verbatim


def test_pages_bound_a_listing_and_refuse_a_repeated_token() -> None:
    from logarchive.plugin_api import Pages, SourceError

    pages = Pages("list endpoint /runs", 2, "sources.api.discover.max_pages")
    assert pages.next() == 1 and pages.follow("t1") and pages.next() == 2
    with pytest.raises(SourceError, match=r"more than 2 pages.*`sources.api.discover.max_pages`"):
        pages.next()
    again = Pages("list endpoint /runs", 10)
    assert again.follow("t1") and not again.follow(None) and not again.follow("")
    with pytest.raises(SourceError, match="'t1' again"):
        again.follow("t1")


def test_human_escapes_control_characters_only() -> None:
    from logarchive.cli.common import human

    assert human("r1\nexported x\r\x1b[31mred\x85\u2028\ud800") == \
        "r1\\nexported x\\r\\x1b[31mred\\x85\\u2028\\ud800"
    assert human("plain ünïcode / tab\tkept", keep="\t") == "plain ünïcode / tab\tkept"
