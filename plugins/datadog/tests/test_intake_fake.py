"""The loopback Datadog intake refuses what the real intake documents it refuses, status and
body, so a payload Datadog would refuse fails our tests too. Each case sends the payload raw."""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import pytest

from logarchive_datadog.testing import API_KEY, IntakeReceiver

PATH = "/api/v2/logs"


@pytest.fixture
def intake():
    server = IntakeReceiver().start()
    yield server
    server.stop()


def post(intake, body, *, key=API_KEY, encoding=None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["DD-API-KEY"] = key
    if encoding:
        headers["Content-Encoding"] = encoding
    return httpx.post(intake.url + PATH, content=body, headers=headers)


def errors(status, title, detail):
    return {"errors": [{"status": str(status), "title": title, "detail": detail}]}


def entries(n, message="m"):
    return json.dumps([{"message": message, "seq": i} for i in range(n)]).encode()


def test_success_is_202_with_an_empty_object(intake):
    response = post(intake, entries(3))
    assert response.status_code == 202
    assert response.content == b"{}"
    assert [e.seq for e in intake.events()] == [0, 1, 2]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_decoded(intake, encoding):
    packed = gzip.compress(entries(2)) if encoding == "gzip" else zlib.compress(entries(2))
    response = post(intake, packed, encoding=encoding)
    assert (response.status_code, response.content) == (202, b"{}")
    assert [e.seq for e in intake.events()] == [0, 1]


@pytest.mark.parametrize(("key", "status", "title", "detail"), [
    (None, 401, "Unauthorized", "API key is missing"),
    ("f" * 32, 403, "Forbidden", "Invalid API key"),
])
def test_api_key_refusals(intake, key, status, title, detail):
    response = post(intake, entries(1), key=key)
    assert (response.status_code, response.json()) == (status, errors(status, title, detail))
    assert intake.events() == []


def test_over_5_mb_uncompressed_is_413_even_when_gzip_is_small(intake):
    body = json.dumps([{"message": "x" * 900_000} for _ in range(6)]).encode()
    assert len(body) > 5_000_000
    response = post(intake, gzip.compress(body), encoding="gzip")
    assert (response.status_code, response.json()) == (
        413, errors(413, "Payload Too Large", "over 5MB"))
    assert intake.events() == []


def test_exactly_1000_entries_pass_and_1001_are_refused(intake):
    assert post(intake, entries(1000)).status_code == 202
    response = post(intake, entries(1001))
    assert (response.status_code, response.json()) == (
        400, errors(400, "Bad Request", "too many entries"))
    assert len(intake.events()) == 1000


@pytest.mark.parametrize(("body", "encoding", "detail"), [
    (b'[{"message": "a"}', None, "invalid JSON"),
    (b"", None, "invalid JSON"),
    (b'[{"message": "a"}, "b"]', None, "an entry is not an object"),
    (b"not gzip at all", "gzip", "invalid compressed body"),
])
def test_bad_payloads_are_400(intake, body, encoding, detail):
    response = post(intake, body, encoding=encoding)
    assert (response.status_code, response.json()) == (400, errors(400, "Bad Request", detail))
    assert intake.events() == []
