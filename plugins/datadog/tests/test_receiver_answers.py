"""Only the receiver's own success delivers a batch. Answers a proxy or a login portal gives
(3xx, a 200 HTML page, a 200 with no body, HEC's busy code in a 200) come byte for byte from a
raw socket: the export fails (after retrying what is transient), the ledger does not say
delivered, no redirect is followed, and the next export to a good receiver delivers every line
exactly once."""

from __future__ import annotations

import pytest

import logarchive
from logarchive.ledger import SQLiteLedger
from logarchive.testing.rawsocket import RawResponder, http_response
from logarchive.testing.record_sinks import write_logs
from logarchive_datadog.testing import API_KEY, IntakeReceiver

splunk_testing = pytest.importorskip("logarchive_splunk.testing")
HecReceiver, TOKEN = splunk_testing.HecReceiver, splunk_testing.TOKEN

ELSEWHERE = "https://login.example.invalid/next"
HTML = {"Content-Type": "text/html"}
JSON = {"Content-Type": "application/json"}
ANSWERS = {
    "301": (http_response("301 Moved Permanently", b"", {"Location": ELSEWHERE}), 1),
    "302": (http_response("302 Found", b"<a>moved</a>", {"Location": ELSEWHERE, **HTML}), 1),
    "308": (http_response("308 Permanent Redirect", b"", {"Location": ELSEWHERE}), 1),
    "200 html": (http_response("200 OK", b"<html><body>Sign in</body></html>", HTML), 1),
    "200 empty": (http_response("200 OK", b"", JSON), 1),
    "200 not json": (http_response("200 OK", b"OK", {"Content-Type": "text/plain"}), 1),
}
SPLUNK_ANSWERS = {
    **ANSWERS,
    # HEC's busy code in a 200 is retried, then the run fails: 1 + max_retries requests.
    "200 code 9": (http_response("200 OK", b'{"text":"Server is busy","code":9}', JSON), 3),
    "200 other code": (http_response("200 OK", b'{"text":"Invalid data format","code":6}',
                                     JSON), 1),
    # Only the integer 0 is HEC's success: false, 0.0 and "0" compare equal to 0 in loose code.
    "200 code false": (http_response("200 OK", b'{"text":"Success","code":false}', JSON), 1),
    "200 code 0.0": (http_response("200 OK", b'{"text":"Success","code":0.0}', JSON), 1),
    "200 code string": (http_response("200 OK", b'{"text":"Success","code":"0"}', JSON), 1),
}
DATADOG_ANSWERS = {
    **ANSWERS,
    "200 {}": (http_response("200 OK", b"{}", JSON), 1),
    "202 html": (http_response("202 Accepted", b"<html>queued</html>", HTML), 1),
    # The intake's success body is {}: a 202 that carries errors is no acceptance.
    "202 errors": (http_response("202 Accepted", b'{"errors":[{"status":"400"}]}', JSON), 1),
    "202 status error": (http_response("202 Accepted", b'{"status":"error"}', JSON), 1),
}

SCENARIO = pytest.mark.scenario(
    "3xx, HTML or empty 200 from an aggregator",
    "raw-socket answers to Splunk (ack on and off) and Datadog data requests: 301/302/308 with "
    "Location, a 200 HTML page, an empty or non-JSON 200, HEC code 9 or 6 in a 200, a 200 {} or "
    "a 202 HTML from the intake: the export fails (code 9 after its retries), only POSTs arrive "
    "(no redirect followed), a redirect error names Location, the ledger never says delivered, "
    "no credential in the error; the next export to a good receiver delivers every line once",
)


def _config(tmp_path, sink):
    table = {"http": {"retry": {"backoff_initial": 0.01, "backoff_max": 0.02, "max_retries": 2}},
             "compression": "none", **sink}
    return logarchive.parse_config(
        {"logarchive": {"state_dir": str(tmp_path / "state"), "workers": 1},
         "sources": {"logs": {"type": "files", "url": str(tmp_path / "logs")}},
         "sinks": {"agg": table}},
        base_dir=tmp_path,
    )


def _ledger_states(tmp_path):
    ledger = SQLiteLedger(tmp_path / "state")
    try:
        return {(d.run_key.rsplit("=", 1)[-1], d.status, d.accepted)
                for d in ledger.deliveries("agg")}
    finally:
        ledger.close()


def _refused_then_delivered(tmp_path, answer, requests, sink, good_receiver, url_key="url"):
    write_logs(tmp_path / "logs", {"r1": 30})
    with RawResponder([answer]) as bad:
        summary = logarchive.export(_config(tmp_path, {**sink, url_key: bad.url}))
        assert summary.exit_code != 0, summary.to_json()
        assert [r.method for r in bad.requests] == ["POST"] * requests  # no GET, no follow
    error = summary.results[0].error or summary.results[0].sinks.get("agg", "")
    assert all(state[1] != "delivered" for state in _ledger_states(tmp_path))
    good = good_receiver().start()
    try:
        again = logarchive.export(_config(tmp_path, {**sink, url_key: good.url}))
        assert again.exit_code == 0, again.to_json()
        assert sorted(good.seqs()) == list(range(1, 31))  # every line, exactly once
    finally:
        good.stop()
    assert _ledger_states(tmp_path) == {("r1", "delivered", 30)}
    return error


@SCENARIO
@pytest.mark.parametrize("name", list(SPLUNK_ANSWERS))
@pytest.mark.parametrize("ack", [False, True])
def test_splunk_counts_only_hec_success(tmp_path, name, ack):
    answer, requests = SPLUNK_ANSWERS[name]
    sink = {"type": "splunk", "token": TOKEN, "ack": ack, "ack_poll_interval": 0.01}
    error = _refused_then_delivered(tmp_path, answer, requests, sink,
                                    lambda: HecReceiver(ack=ack))
    if name.startswith("3"):
        assert ELSEWHERE in error and name in error, error
    assert TOKEN not in error


@SCENARIO
@pytest.mark.parametrize("name", list(DATADOG_ANSWERS))
def test_datadog_counts_only_intake_202(tmp_path, name):
    answer, requests = DATADOG_ANSWERS[name]
    sink = {"type": "datadog", "api_key": API_KEY}
    error = _refused_then_delivered(tmp_path, answer, requests, sink, IntakeReceiver)
    if name.startswith("3"):
        assert ELSEWHERE in error and name in error, error
    assert API_KEY not in error


@SCENARIO
@pytest.mark.parametrize("poll_answer", ["200 html", "301"])
def test_splunk_ack_answer_that_is_not_hec_fails_the_run(tmp_path, poll_answer):
    # The data request succeeds, the acknowledgement poll gets a login page or a redirect.
    success = http_response("200 OK", b'{"text":"Success","code":0,"ackId":0}', JSON)
    write_logs(tmp_path / "logs", {"r1": 5})
    with RawResponder([success, ANSWERS[poll_answer][0]]) as bad:
        summary = logarchive.export(_config(tmp_path, {
            "type": "splunk", "token": TOKEN, "ack": True, "ack_poll_interval": 0.01,
            "url": bad.url}))
    assert summary.exit_code != 0
    assert [(r.method, r.request_line.split(" ")[1].split("?")[0]) for r in bad.requests] == [
        ("POST", "/services/collector/event"), ("POST", "/services/collector/ack")]
    assert all(state[1] != "delivered" for state in _ledger_states(tmp_path))
    if poll_answer == "301":
        assert ELSEWHERE in (summary.results[0].error or ""), summary.to_json()
