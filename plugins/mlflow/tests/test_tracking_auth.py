"""api = "mlflow" auth (bearer as MLFLOW_TRACKING_TOKEN, basic) and paginated artifact listings,
against a loopback server that answers like an MLflow tracking server behind an auth proxy."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

import logarchive
from logarchive import parse_config
from logarchive.testing.servers import Request

RUN = "0123456789abcdef0123456789abcdef"
LOG = b"2026-03-13T10:00:00Z [INFO] hello\n" * 100


class TrackingStub:
    """experiments/get-by-name, runs/search, artifacts/list (two pages) and the proxy."""

    def __init__(self, authorization: str) -> None:
        self.authorization = authorization
        self.seen: list[tuple[str, str, str | None]] = []

    def __call__(self, request: Request) -> None:
        auth = request.headers.get("Authorization")
        self.seen.append((request.method, request.raw.path, auth))
        if auth != self.authorization:
            request.send(401, b"You are not authenticated. Please see "
                         b"https://www.mlflow.org/docs/latest/auth/index.html",
                         {"WWW-Authenticate": 'Basic realm="mlflow"'})
            return
        if request.path == "/api/2.0/mlflow/experiments/get-by-name":
            request.send_json(200, {"experiment": {"experiment_id": "3", "name": "churn"}})
        elif request.path == "/api/2.0/mlflow/runs/search":
            body = json.loads(request.body)
            assert request.headers["Content-Type"] == "application/json"
            runs = [{"info": {"run_id": RUN, "experiment_id": "3", "status": "FINISHED",
                              "start_time": 1773396000000, "end_time": 1773399600000,
                              "artifact_uri": f"mlflow-artifacts:/3/{RUN}/artifacts"},
                     "data": {"params": [{"key": "lr", "value": "0.1"}]}}]
            finished = body["filter"] == "attributes.status = 'FINISHED'"
            request.send_json(200, {"runs": runs} if finished else {})
        elif request.path == "/api/2.0/mlflow/artifacts/list":
            if request.query.get("page_token") == "p2":
                files = [{"path": "logs/b.log", "is_dir": False, "file_size": len(LOG)}]
                request.send_json(200, {"root_uri": "x", "files": files})
            else:
                files = [{"path": "logs/a.log", "is_dir": False, "file_size": len(LOG)}]
                request.send_json(200, {"root_uri": "x", "files": files,
                                        "next_page_token": "p2"})
        elif request.path.startswith(f"/api/2.0/mlflow-artifacts/artifacts/3/{RUN}/artifacts/"):
            request.send(200, LOG, {"Content-Type": "text/plain"})
        else:
            request.send_json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": "no"})


def make_config(tmp_path: Path, url: str, auth: dict[str, Any] | None) -> Any:
    source: dict[str, Any] = {"type": "mlflow", "api": "mlflow", "tracking_uri": url,
                              "experiments": ["churn"], "artifacts": ["logs/*.log"],
                              "http": {"retry": {"max_retries": 1, "backoff_initial": 0.01}}}
    if auth is not None:
        source["auth"] = auth
    return parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state")},
        "sources": {"tracking": source},
        "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                              "path": "{run_id}/{artifact_path:path}"}},
    }, environ={"MLFLOW_TRACKING_TOKEN": "tok-secret-1", "MLFLOW_TRACKING_PASSWORD": "pw-2"})


@pytest.mark.parametrize("auth, header", [
    ({"bearer": "${MLFLOW_TRACKING_TOKEN}"}, "Bearer tok-secret-1"),
    ({"basic": {"username": "svc", "password": "${MLFLOW_TRACKING_PASSWORD}"}},
     "Basic " + base64.b64encode(b"svc:pw-2").decode()),
])
def test_auth_is_sent_on_every_request(tmp_path: Path, loopback: Any, auth: dict[str, Any],
                                       header: str) -> None:
    stub = TrackingStub(header)
    loopback.handler = stub
    summary = logarchive.export(make_config(tmp_path, loopback.url, auth))
    assert summary.exported == 2 and summary.errors == [], summary.to_json()
    for name in ("a.log", "b.log"):
        assert (tmp_path / "archive" / RUN / "logs" / name).read_bytes() == LOG
    assert all(seen_auth == header for _, _, seen_auth in stub.seen)
    searches = [path for method, path, _ in stub.seen if method == "POST"]
    assert len(searches) == 3  # one runs/search per terminal status


def test_missing_auth_is_one_clear_error(tmp_path: Path, loopback: Any) -> None:
    loopback.handler = TrackingStub("Bearer tok-secret-1")
    summary = logarchive.export(make_config(tmp_path, loopback.url, None))
    assert summary.exit_code == 1 and len(summary.errors) == 1
    assert "HTTP 401" in summary.errors[0] and "MLFLOW_TRACKING_TOKEN" in summary.errors[0]
