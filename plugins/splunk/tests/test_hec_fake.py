"""The loopback HEC refuses what the real HEC documents it refuses, status and body, so a payload
Splunk would refuse fails our tests too. Each case sends the bad payload raw (httpx)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from logarchive_splunk.testing import TOKEN, HecReceiver

EVENT = "/services/collector/event"
RAW = "/services/collector/raw"
ACK = "/services/collector/ack"


@pytest.fixture
def hec():
    server = HecReceiver(indexes={"main", "ml"}).start()
    yield server
    server.stop()


def post(hec, path, body, *, auth=f"Splunk {TOKEN}", channel=None, params=None):
    headers = {"Authorization": auth} if auth else {}
    if channel is not None:
        headers["X-Splunk-Request-Channel"] = channel
    return httpx.post(hec.url + path, content=body, headers=headers, params=params)


@pytest.mark.parametrize(("body", "code", "text", "event"), [
    (b"", 5, "No data", None),
    (b" \r\n\t", 5, "No data", None),
    (b'{"event": "a"', 6, "Invalid data format", 0),
    (b'["a", "b"]', 6, "Invalid data format", 0),
    (b'{"event": "a"} "not an object"', 6, "Invalid data format", 1),
    (b'{"event": "a"}, {"event": "b"}', 6, "Invalid data format", 1),
    (b'{"event": "\xff"}', 6, "Invalid data format", 0),
    (b'{"event": "a", "index": "secret"}', 7, "Incorrect index", 0),
    (b'{"event": "a"}{"time": 1}', 12, "Event field is required", 1),
    (b'{"event": "a"}{"event": ""}{"event": "c"}', 13, "Event field cannot be blank", 1),
    (b'{"event": " \\t "}', 13, "Event field cannot be blank", 0),
    (b'{"event": null}', 13, "Event field cannot be blank", 0),
    (b'{"event": "a", "fields": {"k": {"nested": "v"}}}', 15,
     "Error in handling indexed fields", 0),
    (b'{"event": "a", "fields": {"k": ["v", ["w"]]}}', 15, "Error in handling indexed fields", 0),
    (b'{"event": "a", "fields": {"seq": 1}}', 15, "Error in handling indexed fields", 0),
    (b'{"event": "a", "fields": ["k", "v"]}', 15, "Error in handling indexed fields", 0),
])
def test_event_endpoint_refuses_what_hec_refuses(hec, body, code, text, event):
    response = post(hec, EVENT, body)
    assert response.status_code == 400
    expected = {"text": text, "code": code}
    if event is not None:
        expected["invalid-event-number"] = event
    assert response.json() == expected
    assert hec.events() == []  # the whole request is refused, valid events included


def test_a_valid_batch_is_accepted_with_hec_success(hec):
    body = (b'{"event": "a", "index": "ml", "fields": {"k": "v", "m": ["x", "y"], "seq": "1"}}'
            b'\n{"event": {"message": ""}}')
    response = post(hec, EVENT, body)
    assert (response.status_code, response.json()) == (200, {"text": "Success", "code": 0})
    assert [e.message for e in hec.events()] == ["a", ""]
    assert hec.events()[0].seq == 1


@pytest.mark.parametrize(("auth", "status", "code", "text"), [
    (None, 401, 2, "Token is required"),
    (f"Bearer {TOKEN}", 401, 3, "Invalid authorization"),
    ("Splunk", 401, 3, "Invalid authorization"),
    ("Splunk 00000000-0000-0000-0000-000000000000", 403, 4, "Invalid token"),
    ("Splunk disabled-token", 403, 1, "Token disabled"),
])
def test_authorisation_refusals(hec, auth, status, code, text):
    hec.disabled_tokens.add("disabled-token")
    response = post(hec, EVENT, b'{"event": "a"}', auth=auth)
    assert (response.status_code, response.json()) == (status, {"text": text, "code": code})
    assert hec.events() == []


def test_raw_needs_a_valid_channel(hec):
    missing = post(hec, RAW, b"a line\n")
    assert (missing.status_code, missing.json()) == (
        400, {"text": "Data channel is missing", "code": 10})
    invalid = post(hec, RAW, b"a line\n", params={"channel": "not-a-guid"})
    assert (invalid.status_code, invalid.json()) == (
        400, {"text": "Invalid data channel", "code": 11})
    empty = post(hec, RAW, b"\n \n", channel=str(uuid.uuid4()))
    assert (empty.status_code, empty.json()) == (400, {"text": "No data", "code": 5})
    index = post(hec, RAW, b"a line\n", channel=str(uuid.uuid4()), params={"index": "secret"})
    assert (index.status_code, index.json()) == (400, {"text": "Incorrect index", "code": 7})
    assert hec.events() == []
    good = post(hec, RAW, b"a line\n\nanother\n", channel=str(uuid.uuid4()))
    assert (good.status_code, good.json()) == (200, {"text": "Success", "code": 0})
    assert [e.message for e in hec.events()] == ["a line", "another"]


def test_ack_enabled_requires_a_channel_on_events(hec):
    hec.ack_enabled = True
    missing = post(hec, EVENT, b'{"event": "a"}')
    assert (missing.status_code, missing.json()) == (
        400, {"text": "Data channel is missing", "code": 10})
    invalid = post(hec, EVENT, b'{"event": "a"}', channel="x")
    assert (invalid.status_code, invalid.json()) == (
        400, {"text": "Invalid data channel", "code": 11})
    channel = str(uuid.uuid4())
    good = post(hec, EVENT, b'{"event": "a"}', channel=channel)
    assert (good.status_code, good.json()) == (200, {"text": "Success", "code": 0, "ackId": 0})
    bad_poll = post(hec, ACK, b'{"acks": [0]}', channel="x")
    assert (bad_poll.status_code, bad_poll.json()) == (
        400, {"text": "Invalid data channel", "code": 11})


def test_ack_request_while_ack_is_disabled(hec):
    response = post(hec, ACK, b'{"acks": [0]}', channel=str(uuid.uuid4()))
    assert (response.status_code, response.json()) == (
        400, {"text": "ACK is disabled", "code": 14})
