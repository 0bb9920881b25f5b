"""Hostile discovery: repeated page tokens, endless artifact trees, items with impossible ids
and times, JSON nested deeper than can be read, an error trailer that is not at the end. Each
goes through the real ``logarchive export`` and asserts what the user sees: the exit status,
what was archived (sha256), warnings naming the bad item, no traceback, and a bounded number of
requests."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from logarchive.testing.servers import LoopbackServer, Request
from logarchive_testsupport.archives import write_config
from logarchive_testsupport.processes import EXE
from logarchive_testsupport.workspace import archived

pytest.importorskip("logarchive_rest")
pytest.importorskip("logarchive_mlflow")

FAST = {"connect_timeout": 5, "read_timeout": 5,
        "retry": {"max_retries": 1, "backoff_initial": 0.01, "backoff_max": 0.02}}
GOOD_LOG = b"2026-03-13T10:00:00Z step 1 loss=0.5\n2026-03-13T10:00:01Z step 2 loss=0.4\n"
DEEP = 200_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_cli(tmp_path: Path, source: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    document = {
        "logarchive": {"state_dir": str(tmp_path / "state")},
        "sources": {"api": {"http": FAST, **source}},
        "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                              "path": "{source}/{run_id}.{ext}"}},
    }
    config = write_config(tmp_path / "config.toml", document)
    command = args or ("export",)
    return subprocess.run([EXE, *command, "-c", str(config)], capture_output=True, text=True,
                          timeout=120)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]


def requests_to(server: LoopbackServer, path: str) -> int:
    return sum(1 for r in server.requests if r.path == path)


# --- rest: list endpoint ------------------------------------------------------------------

def rest_source(server: LoopbackServer, **discover: Any) -> dict[str, Any]:
    return {"type": "rest", "base_url": server.url, "url": "/runs/{run_id}/log",
            "discover": {"url": "/runs", "items": "/runs", "fields": {"run_id": "/id"},
                         "status": "/state", **discover}}


def serve_log(req: Request, logs: dict[str, bytes]) -> None:
    run_id = req.path.split("/")[2]
    if run_id in logs:
        req.send(200, logs[run_id], {"Content-Type": "text/plain"})
    else:
        req.send(404, b"no such run")


@pytest.mark.scenario(
    "repeated page token or next URL",
    "a list endpoint (rest discover, MLflow runs/search) answers the same next_page_token on "
    "every page: the listing stops at the second page with an error saying the server sent it "
    "again (exit 1, nothing archived, no traceback); a list longer than max_pages fails naming "
    "the key to raise",
)
def test_rest_repeated_page_token(tmp_path: Path, loopback: LoopbackServer) -> None:
    def handler(req: Request) -> None:
        if req.path == "/runs":
            req.send_json(200, {"runs": [{"id": "r1", "state": "completed"}],
                                "next_page_token": "same"})
        else:
            serve_log(req, {"r1": GOOD_LOG})

    loopback.handler = handler
    result = run_cli(tmp_path, rest_source(loopback, next_token="/next_page_token"))
    assert result.returncode == 1, result.stderr
    assert "'token same' again" in result.stdout + result.stderr
    assert requests_to(loopback, "/runs") == 2
    assert archived(tmp_path) == {}
    no_traceback(result)


def test_rest_max_pages_names_the_key(tmp_path: Path, loopback: LoopbackServer) -> None:
    def handler(req: Request) -> None:
        page = int(req.query.get("page_token", "0"))
        req.send_json(200, {"runs": [{"id": f"r{page}", "state": "completed"}],
                            "next_page_token": str(page + 1)})

    loopback.handler = handler
    result = run_cli(tmp_path, rest_source(loopback, next_token="/next_page_token",
                                           max_pages=5))
    assert result.returncode == 1, result.stderr
    assert "sources.api.discover.max_pages" in result.stdout + result.stderr
    assert requests_to(loopback, "/runs") == 5
    no_traceback(result)


@pytest.mark.scenario(
    "hostile items in a listing",
    "a list endpoint returns, next to a good run, items with a lone surrogate in the id, a "
    "start time of 1e20, NaN and -1e15: each is skipped with a warning naming it (in the log "
    "and the summary), the good run is archived byte for byte, exit 0, no traceback",
)
def test_rest_hostile_items_are_skipped(tmp_path: Path, loopback: LoopbackServer) -> None:
    body = ('{"runs": [{"id": "good", "state": "completed", "t": 1700000000},'
            ' {"id": "bad\\ud800id", "state": "completed", "t": 1700000000},'
            ' {"id": "huge", "state": "completed", "t": 1e20},'
            ' {"id": "nan", "state": "completed", "t": NaN},'
            ' {"id": "negative", "state": "completed", "t": -1e15}]}').encode()

    def handler(req: Request) -> None:
        if req.path == "/runs":
            req.send(200, body, {"Content-Type": "application/json"})
        else:
            serve_log(req, {"good": GOOD_LOG, "huge": GOOD_LOG, "nan": GOOD_LOG,
                            "negative": GOOD_LOG})

    loopback.handler = handler
    result = run_cli(tmp_path, rest_source(loopback, started="/t"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {k: sha(v) for k, v in archived(tmp_path).items()} == {"api/good.txt": sha(GOOD_LOG)}
    warnings = [line for line in result.stderr.splitlines() if "item_skipped" in line]
    assert len(warnings) == 4, result.stderr
    for needle in ("bad\\\\ud800id", "'huge'", "'nan'", "'negative'", "1e+20", "nan",
                   "-1000000000000000"):
        assert any(needle in line for line in warnings), (needle, warnings)
    summary = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(summary) == 4 and all("skipped /runs item" in line for line in summary), summary
    no_traceback(result)


@pytest.mark.scenario(
    "JSON nested 200k deep",
    "a list endpoint answers a list nested 200,000 deep: the pipeline fails with one line "
    "saying the response nests deeper than can be read (exit 1, no traceback); a "
    "response = json-array log with an element nested 200,000 deep fails that run, the other "
    "run is archived byte for byte",
)
def test_rest_deeply_nested_listing(tmp_path: Path, loopback: LoopbackServer) -> None:
    body = b'{"runs": [{"id": "good", "state": "completed", "x": ' + b"[" * DEEP + b"]" * DEEP \
        + b"}]}"

    def handler(req: Request) -> None:
        if req.path == "/runs":
            req.send(200, body, {"Content-Type": "application/json"})
        else:
            serve_log(req, {"good": GOOD_LOG})

    loopback.handler = handler
    result = run_cli(tmp_path, rest_source(loopback))
    assert result.returncode == 1, result.stderr
    assert "nests JSON deeper than can be read" in result.stdout + result.stderr
    assert archived(tmp_path) == {}
    no_traceback(result)


def test_rest_deeply_nested_json_log(tmp_path: Path, loopback: LoopbackServer) -> None:
    good = json.dumps([{"message": "step 1"}, {"message": "step 2"}]).encode()
    deep = b'[{"message": "step 1"}, ' + b"[" * DEEP + b"]" * DEEP + b"]"

    def handler(req: Request) -> None:
        if req.path == "/runs":
            req.send_json(200, {"runs": [{"id": "good", "state": "completed"},
                                         {"id": "deep", "state": "completed"}]})
        else:
            serve_log(req, {"good": good, "deep": deep})

    loopback.handler = handler
    result = run_cli(tmp_path, {**rest_source(loopback), "response": "json-array"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "deep" in result.stdout and "nests deeper" in result.stdout + result.stderr
    assert {k: sha(v) for k, v in archived(tmp_path).items()} == {
        "api/good.txt": sha(b"step 1\nstep 2\n")}
    no_traceback(result)


# --- rest: error trailer -----------------------------------------------------------------

TRAILER = "--- ERROR: failed to fetch logs ---"


@pytest.mark.scenario(
    "error trailer only at the end of the stream",
    "seed 002's trailer marker at the end of a line in the middle of a log, followed by "
    "ordinary lines, is log text: archived byte for byte, exit 0; the same marker and a "
    "reason at the end of the stream fails that run and archives nothing of it",
)
def test_trailer_marker_mid_log_is_log_text(tmp_path: Path, loopback: LoopbackServer) -> None:
    ordinary = b"".join(f"2026-03-13T10:00:{i:02d}Z step {i}\n".encode() for i in range(10))
    mid = b"step 0 said: " + TRAILER.encode() + b"\n" + ordinary
    failed = ordinary + TRAILER.encode() + b"\ncontext deadline exceeded\n"

    def handler(req: Request) -> None:
        if req.path == "/runs":
            req.send_json(200, {"runs": [{"id": "mid", "state": "completed"},
                                         {"id": "failed", "state": "completed"}]})
        else:
            serve_log(req, {"mid": mid, "failed": failed})

    loopback.handler = handler
    result = run_cli(tmp_path, {**rest_source(loopback), "error_trailer": TRAILER})
    assert result.returncode == 1, result.stdout + result.stderr
    assert {k: sha(v) for k, v in archived(tmp_path).items()} == {"api/mid.txt": sha(mid)}
    assert "context deadline exceeded" in result.stdout + result.stderr
    no_traceback(result)

    loopback.handler = lambda req: (req.send_json(200, {"runs": [{"id": "mid",
                                                                  "state": "completed"}]})
                                    if req.path == "/runs" else serve_log(req, {"mid": mid}))
    again = run_cli(tmp_path, {**rest_source(loopback), "error_trailer": TRAILER})
    assert again.returncode == 0, again.stdout + again.stderr


# --- mlflow tracking ------------------------------------------------------------------------

API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"


def mlflow_run(run_id: str) -> dict[str, Any]:
    return {"info": {"run_id": run_id, "experiment_id": "1", "status": "FINISHED",
                     "start_time": 1700000000000, "end_time": 1700000100000,
                     "artifact_uri": f"mlflow-artifacts:/1/{run_id}/artifacts"},
            "data": {}}


def mlflow_handler(runs: list[dict[str, Any]], token: str | None = None) -> Any:
    def handler(req: Request) -> None:
        if req.path == f"{API}/experiments/get-by-name":
            req.send_json(200, {"experiment": {"experiment_id": "1", "name": "e"}})
        elif req.path == f"{API}/runs/search":
            wanted = json.loads(req.body)["filter"]
            page = runs if "FINISHED" in wanted else []
            req.send_json(200, {"runs": page, **({"next_page_token": token} if token else {})})
        elif req.path == f"{API}/artifacts/list":
            run_id, path = req.query["run_id"], req.query.get("path", "")
            if run_id == "endless":  # every directory holds one more directory
                below = f"{path}/d" if path else "d"
                req.send_json(200, {"files": [{"path": below, "is_dir": True}]})
            else:
                req.send_json(200, {"files": [{"path": "train.log", "is_dir": False,
                                               "file_size": len(GOOD_LOG)}]})
        elif req.path.startswith(PROXY):
            req.send(200, GOOD_LOG, {"Content-Type": "application/octet-stream"})
        else:
            req.send_json(404, {"error_code": "ENDPOINT_NOT_FOUND"})
    return handler


def mlflow_source(server: LoopbackServer, **extra: Any) -> dict[str, Any]:
    return {"type": "mlflow", "api": "mlflow", "tracking_uri": server.url,
            "experiments": ["e"], **extra}


def test_mlflow_repeated_page_token(tmp_path: Path, loopback: LoopbackServer) -> None:
    loopback.handler = mlflow_handler([mlflow_run("good")], token="same")
    result = run_cli(tmp_path, mlflow_source(loopback))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "again" in result.stdout + result.stderr
    assert requests_to(loopback, f"{API}/runs/search") == 2
    assert archived(tmp_path) == {}
    no_traceback(result)


@pytest.mark.scenario(
    "endless artifact tree",
    "an MLflow server whose artifact listing holds one more directory at every level: that run "
    "is skipped with a warning and an error naming it and the key max_depth, after at most "
    "max_depth + 1 listings; the other run is archived byte for byte, exit 1, no traceback",
)
def test_mlflow_endless_artifact_tree(tmp_path: Path, loopback: LoopbackServer) -> None:
    loopback.handler = mlflow_handler([mlflow_run("good"), mlflow_run("endless")])
    result = run_cli(tmp_path, mlflow_source(loopback, max_depth=8))
    assert result.returncode == 1, result.stdout + result.stderr
    assert {k: sha(v) for k, v in archived(tmp_path).items()} == {
        "api/good.txt": sha(GOOD_LOG)}
    warning = [line for line in result.stderr.splitlines() if "item_skipped" in line]
    assert len(warning) == 1 and "'endless'" in warning[0], result.stderr
    assert "sources.api.max_depth" in warning[0]
    assert "skipped run 'endless'" in result.stderr  # a diagnostic: stderr, not the data
    listings = [r for r in loopback.requests if r.path == f"{API}/artifacts/list"
                and r.query["run_id"] == "endless"]
    assert len(listings) <= 9
    no_traceback(result)


# --- control characters in run ids --------------------------------------------------------

FORGED = "r1\nexported    api/run_id=forged  (1 bytes, 1 lines)\r\x1b[31mred\x1b[0m"


@pytest.mark.scenario(
    "control characters in run ids",
    "a list endpoint returns a run id holding a newline, a carriage return and ANSI escapes: "
    "`logarchive runs` and `logarchive export` print it escaped (\\n, \\r, \\x1b) on its one "
    "line, no forged summary line and no escape byte reaches the terminal; `--json` has the id "
    "exact; the log is archived byte for byte, exit 0",
)
def test_control_characters_in_run_ids_are_escaped(tmp_path: Path,
                                                   loopback: LoopbackServer) -> None:
    def handler(req: Request) -> None:
        if req.path == "/runs":
            req.send_json(200, {"runs": [{"id": FORGED, "state": "completed"}]})
        else:
            req.send(200, GOOD_LOG, {"Content-Type": "text/plain"})

    loopback.handler = handler
    source = rest_source(loopback)
    listing = run_cli(tmp_path, source, "runs")
    exported = run_cli(tmp_path, source, "export")
    for result in (listing, exported):
        assert result.returncode == 0, result.stdout + result.stderr
        assert "\x1b" not in result.stdout + result.stderr and "\r" not in result.stdout
        assert not any(line.startswith("exported    api/run_id=forged")
                       for line in result.stdout.splitlines()), result.stdout
        assert "r1\\nexported" in result.stdout and "\\r\\x1b[31mred" in result.stdout
        no_traceback(result)
    assert len(listing.stdout.splitlines()) == 2  # the run, then "1 run(s)"
    as_json = run_cli(tmp_path, source, "runs", "--json")
    assert json.loads(as_json.stdout)[0]["fields"]["run_id"] == FORGED
    assert [sha(v) for v in archived(tmp_path).values()] == [sha(GOOD_LOG)]
