"""`logarchive check` against raw-socket receivers: every byte of the answer is the test's.

A check never sends a log line (the bodies that arrive are empty or the empty ack list), accepts
a token only on the receiver's own "no data" / "valid" answer, and never shows the secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logarchive.testing.rawsocket import RawResponder, http_response
from logarchive_testsupport.archives import write_config
from logarchive_testsupport.workspace import base_config, write_logs

TOKEN = "0f0f0f0f-1111-2222-3333-444444444444"
API_KEY = "abcdefabcdefabcdefabcdefabcdef12"
NO_DATA = http_response("400 Bad Request", b'{"text":"No data","code":5}',
                        {"Content-Type": "application/json"})
PORTAL = http_response("200 OK", b"<html><body>Sign in to continue</body></html>",
                       {"Content-Type": "text/html"})
VALID = http_response("200 OK", b'{"valid":true}', {"Content-Type": "application/json"})


def check(tmp_path: Path, run_cli, sinks: dict) -> tuple[int, dict, str]:
    write_logs(tmp_path / "logs", {"m/r1.log": b"a line that must never be sent\n"})
    document = base_config(tmp_path, sinks=sinks)
    config = write_config(tmp_path / "config.toml", document)
    result = run_cli("check", "-c", str(config), "--json")
    output = result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return result.returncode, checks, output


@pytest.mark.scenario(
    "health check of an aggregator sends no log line",
    "`logarchive check` asks HEC with an empty request (accepted only on code 5 'No data') and "
    "Datadog's key validation endpoint; a login portal answering 200 HTML fails the check; no "
    "request carries a log line and the token or key is never printed",
)
def test_check_accepts_only_the_receivers_own_answer_and_sends_no_line(tmp_path, run_cli):
    with RawResponder([NO_DATA]) as hec, RawResponder([PORTAL]) as portal, \
            RawResponder([VALID]) as datadog, RawResponder([PORTAL]) as fake_dd:
        code, checks, output = check(tmp_path, run_cli, {
            "hec": {"type": "splunk", "url": hec.url, "token": TOKEN},
            "portal": {"type": "splunk", "url": portal.url, "token": TOKEN},
            "dd": {"type": "datadog", "url": datadog.url, "api_key": API_KEY},
            "dd_portal": {"type": "datadog", "url": fake_dd.url, "api_key": API_KEY},
        })
        received = [*hec.requests, *portal.requests, *datadog.requests, *fake_dd.requests]
    assert code == 1
    assert checks["hec"]["status"] == "ok" and checks["dd"]["status"] == "ok"
    assert checks["portal"]["status"] == "failed" and checks["dd_portal"]["status"] == "failed"
    assert [r.request_line for r in hec.requests] == ["POST /services/collector/event HTTP/1.1"]
    assert [r.request_line for r in datadog.requests] == ["GET /api/v1/validate HTTP/1.1"]
    assert all(r.body == b"" for r in received)
    assert b"never be sent" not in b"".join(r.head + r.body for r in received)
    assert TOKEN not in output and API_KEY not in output
    assert "Traceback" not in output
