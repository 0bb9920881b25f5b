"""``logarchive serve`` against clients written from the seed documents (httpx), over a real
``logarchive serve`` subprocess on 127.0.0.1.

The archive is made the way production makes it: the ``rest`` source exports from loopback
servers that follow seed 000 and seed 002 (``logarchive_rest.testing``) into a txt fs sink. Every
answer of ``serve`` is then compared with what the original server answers to the same request:
status, ``Content-Type``, ``Content-Disposition`` and body, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from logarchive_rest.testing import SESSION, TOKEN as SOURCE_TOKEN, TrainingAPI, WorkflowAPI
from logarchive_testsupport.archives import write_config

from logarchive.cli import main
from logarchive.manifest import build_manifest
from logarchive.runs import RunRef
from logarchive.serve.testing import serving
from logarchive.testing.servers import LoopbackServer

SERVE_TOKEN = "serve-test-token-7c1d9e2f4a6b"
EXE = str(Path(sys.executable).parent / "logarchive")
TRAINING = "/api/v1/models/{}/training-metrics/logs/download"
ALIAS = "/api/v1/models/{}/training/metrics/logs/download"
SEED_HEADERS = ("content-type", "content-disposition")


def training_log(run: str, lines: int) -> bytes:
    levels = ["INFO", "INFO", "WARN", "INFO", "ERROR"]
    return "".join(f"2026-03-13T10:{i // 60:02d}:{i % 60:02d}.{i % 1000:03d}Z "
                   f"[{levels[i % 5]}] {run} step {i} loss {1 / (i + 1):.4f}\n"
                   for i in range(lines)).encode()


@pytest.fixture(scope="module")
def sources() -> Any:
    """The original systems: seed 000 and seed 002 on one loopback server."""
    training, workflows = TrainingAPI(), WorkflowAPI()
    training.add("mdl-a", "run-1", training_log("run-1", 40))
    training.add("mdl-a", "run-2", training_log("run-2", 25))
    training.add("mdl-a", "run-3", training_log("run-3", 5), completed=False)
    training.add("mdl-b", "run-9", b"no newline at the end\r\nwindows line\r\nlast")
    training.add("mdl-t", "run-t", training_log("run-t", 30))  # tampered with below
    workflows.add("wf-1", "job-ok")
    workflows.add("wf-1", "job-failed", status="FAILED",
                  lines=["Starting job execution...", "Job failed: exit code 3"])
    workflows.add("wf-1", "job-t")  # tampered with below
    server = LoopbackServer(lambda req: (training if req.path.startswith("/api/")
                                         else workflows)(req)).start()
    yield server, training, workflows
    server.stop()


@pytest.fixture(scope="module")
def archive(sources: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive exported from the original systems by the rest source, plus a workflow job
    archived as killed (written with logarchive's own manifest builder)."""
    server, _, _ = sources
    root = tmp_path_factory.mktemp("serve")
    config = write_config(root / "c.toml", {
        "logarchive": {"state_dir": str(root / "state")},
        "serve": {"sink": "archive", "listen": "127.0.0.1:0", "refresh_seconds": 1,
                  "tokens": ["${SERVE_TOKEN}"]},
        "sources": {
            "training": {"type": "rest", "preset": "training-metrics", "base_url": server.url,
                         "auth": {"bearer": SOURCE_TOKEN}, "models": ["mdl-a", "mdl-b", "mdl-t"],
                         "runs": [{"model_id": "mdl-a", "run_id": "run-1"}]},
            "jobs": {"type": "rest", "preset": "workflow-jobs", "base_url": server.url,
                     "auth": {"cookie": {"session": SESSION}},
                     "jobs": [{"workflow_id": "wf-1", "job_id": j}
                              for j in ("job-ok", "job-failed", "job-t")]}},
        "sinks": {"archive": {"type": "fs", "url": str(root / "archive"), "format": "txt",
                              "path": "{source}/{run_path}.{ext}"}},
    })
    done = subprocess.run([EXE, "-q", "export", "-c", str(config)], capture_output=True,
                          text=True, env={**os.environ, "SERVE_TOKEN": SERVE_TOKEN}, timeout=120)
    assert done.returncode == 0, done.stderr
    put_run(root / "archive", RunRef("jobs", {"workflow_id": "wf-1", "job_id": "job-killed"},
                                     status="killed"), b"cancelled by user\n")
    return config


def put_run(archive: Path, run: RunRef, data: bytes, sink: str = "archive") -> Path:
    """Archive ``data`` as ``run`` the way the fs sink lays it out: object + manifest."""
    path = archive / run.source / ("/".join(f"{k}={v}" for k, v in run.fields.items()) + ".txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    manifest = build_manifest(
        run=run, sink=sink, object_path=str(path), object_sha256=digest, object_size=len(data),
        source_sha256=digest, source_size=len(data), lines=data.count(b"\n"), invalid_utf8=0,
        records=None, fmt="txt", compression="none", exported=datetime.now(timezone.utc),
        version="test")
    Path(str(path) + ".manifest.json").write_bytes(manifest)
    return path


@pytest.fixture(scope="module")
def serve(archive: Path) -> Any:
    with serving(archive, {"SERVE_TOKEN": SERVE_TOKEN}) as server:
        yield server


@pytest.fixture(scope="module")
def client(serve: Any) -> httpx.Client:
    with httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {SERVE_TOKEN}"},
                      timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def original(sources: Any) -> httpx.Client:
    server, _, _ = sources
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def same_answer(served: httpx.Response, source: httpx.Response) -> None:
    assert served.status_code == source.status_code
    for header in SEED_HEADERS:
        assert served.headers.get(header) == source.headers.get(header), header
    assert served.content == source.content


# --- seed 000 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [TRAINING, ALIAS])
@pytest.mark.parametrize("params", [{}, {"run_id": "run-1"}, {"run_id": "run-2"},
                                    {"run_id": "run-2", "format": "txt"}, {"format": "xml"},
                                    {"run_id": "run-404"}, {"format": "yaml", "run_id": "x"}])
def test_training_download_is_the_original_answer(client: httpx.Client, original: httpx.Client,
                                                  path: str, params: dict[str, str]) -> None:
    served = client.get(path.format("mdl-a"), params=params)
    source = original.get(path.format("mdl-a"), params=params,
                          headers={"Authorization": f"Bearer {SOURCE_TOKEN}"})
    same_answer(served, source)


def test_default_run_is_the_latest_completed_and_txt(client: httpx.Client,
                                                     sources: Any) -> None:
    _, training, _ = sources
    answer = client.get(TRAINING.format("mdl-a"))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain"
    assert answer.headers["content-disposition"] == \
        'attachment; filename="training-log-run-2.txt"'
    assert answer.content == training.models["mdl-a"][1].text  # run-3 never completed


def test_txt_is_byte_exact_even_without_a_last_newline(client: httpx.Client,
                                                        sources: Any) -> None:
    _, training, _ = sources
    answer = client.get(TRAINING.format("mdl-b"), params={"run_id": "run-9"})
    assert answer.content == b"no newline at the end\r\nwindows line\r\nlast"
    assert answer.headers["x-logarchive-origin"] == "archived"


def test_unknown_model_is_the_seed_404(client: httpx.Client, original: httpx.Client) -> None:
    for model in ("mdl-zzz", "..", "mdl-a%2F..", "%00"):
        same_answer(client.get(TRAINING.format(model)),
                    original.get(TRAINING.format(model),
                                 headers={"Authorization": f"Bearer {SOURCE_TOKEN}"}))


def test_json_is_the_seed_array_of_line_objects(client: httpx.Client,
                                                original: httpx.Client) -> None:
    served = client.get(ALIAS.format("mdl-a"), params={"run_id": "run-1", "format": "json"})
    source = original.get(ALIAS.format("mdl-a"), params={"run_id": "run-1", "format": "json"},
                          headers={"Authorization": f"Bearer {SOURCE_TOKEN}"})
    for header in SEED_HEADERS:
        assert served.headers[header] == source.headers[header]
    keys = ("seq", "timestamp", "level", "message")
    ours = [{k: item[k] for k in keys} for item in served.json()]
    assert ours == source.json()
    assert {item["run_id"] for item in served.json()} == {"run-1"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-0000000000"},
                                     {"Authorization": "Basic " + SERVE_TOKEN},
                                     {"Cookie": "session=nope"}])
def test_no_valid_token_is_the_seed_401(serve: Any, original: httpx.Client,
                                        headers: dict[str, str]) -> None:
    served = httpx.get(serve.url + TRAINING.format("mdl-a"), headers=headers)
    source = original.get(TRAINING.format("mdl-a"), headers=headers)
    same_answer(served, source)


def test_head_sends_the_headers_only(client: httpx.Client) -> None:
    answer = client.head(TRAINING.format("mdl-a"))
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == \
        'attachment; filename="training-log-run-2.txt"'
    assert answer.content == b""


# --- seed 002 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("job", ["job-ok", "job-failed", "job-none"])
def test_job_raw_logs_are_the_original_answer(serve: Any, original: httpx.Client,
                                              job: str) -> None:
    path = f"/workflows/wf-1/jobs/{job}/logs/raw"
    served = httpx.get(serve.url + path, headers={"Cookie": f"session={SERVE_TOKEN}"})
    same_answer(served, original.get(path, headers={"Cookie": f"session={SESSION}"}))


def test_job_not_completed_is_the_seed_400(serve: Any, sources: Any,
                                           original: httpx.Client) -> None:
    _, _, workflows = sources
    workflows.add("wf-1", "job-killed", status="RUNNING")
    path = "/workflows/wf-1/jobs/job-killed/logs/raw"
    served = httpx.get(serve.url + path, headers={"Cookie": f"session={SERVE_TOKEN}"})
    same_answer(served, original.get(path, headers={"Cookie": f"session={SESSION}"}))
    assert served.status_code == 400


def test_job_without_session_is_the_seed_401(serve: Any, original: httpx.Client) -> None:
    path = "/workflows/wf-1/jobs/job-ok/logs/raw"
    for cookie in ({}, {"Cookie": "session=expired"}):
        same_answer(httpx.get(serve.url + path, headers=cookie), original.get(path, headers=cookie))


# --- integrity: only what the manifest proves is served as complete --------------------------------

@pytest.fixture(scope="module")
def tampered(archive: Path, client: httpx.Client) -> dict[str, str]:
    """run-t and job-t with one byte of their archived objects changed (same size)."""
    ids = {}
    for key, name in (("mdl-t", "run-t"), ("wf-1", "job-t")):
        run = next(r for r in client.get("/api/runs", params={"q": name}).json()["runs"])
        ids[name] = run["id"]
    for path in archive.parent.glob("archive/**/*.txt"):
        if "run-t" in path.name or "job-t" in path.name:
            data = bytearray(path.read_bytes())
            data[10] ^= 1
            path.write_bytes(bytes(data))
    return ids


def test_a_tampered_object_breaks_the_seed_000_stream(client: httpx.Client,
                                                      tampered: dict[str, str]) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(TRAINING.format("mdl-t"), params={"run_id": "run-t"})
    verdict = client.get(f"/api/runs/{tampered['run-t']}").json()["run"]
    assert verdict["verified"] is False


def test_a_tampered_object_gets_the_seed_002_error_trailer(serve: Any,
                                                           tampered: dict[str, str]) -> None:
    answer = httpx.get(serve.url + "/workflows/wf-1/jobs/job-t/logs/raw",
                       headers={"Cookie": f"session={SERVE_TOKEN}"})
    assert answer.status_code == 200
    head, trailer, reason = answer.content.rpartition(b"--- ERROR: failed to fetch logs ---\n")
    assert trailer and b"does not match its manifest" in reason
    assert head.startswith(b"Starting job") is False or head  # the bytes sent before the check


def test_verify_reports_the_mismatch(client: httpx.Client, tampered: dict[str, str]) -> None:
    result = client.get(f"/api/runs/{tampered['job-t']}/verify").json()
    assert result["ok"] is False and "sha256" in result["detail"]
    good = client.get("/api/runs", params={"f.job_id": "job-ok"}).json()["runs"][0]
    assert client.get(f"/api/runs/{good['id']}/verify").json()["ok"] is True


# --- the JSON API ---------------------------------------------------------------------------------

def test_runs_filter_sort_and_page(client: httpx.Client) -> None:
    everything = client.get("/api/runs").json()
    assert everything["total"] == 8  # 4 training runs (run-3 never completed) + 4 jobs
    mdl_a = client.get("/api/runs", params={"f.model_id": "mdl-a", "sort": "run",
                                            "order": "asc"}).json()
    assert [r["fields"]["run_id"] for r in mdl_a["runs"]] == ["run-1", "run-2"]
    assert [r["status"] for r in mdl_a["runs"]] == ["unknown", "completed"]
    globbed = client.get("/api/runs", params={"f.job_id": "job-*", "status": "killed"}).json()
    assert [r["fields"]["job_id"] for r in globbed["runs"]] == ["job-killed"]
    seen, url = [], "/api/runs?sort=run&order=asc&limit=4"
    while url:
        page = client.get(url).json()
        seen += [r["run_key"] for r in page["runs"]]
        url = page["next"]
    assert seen == sorted(seen) and len(seen) == 8


@pytest.mark.parametrize("params, word", [({"sort": "sha"}, "sort"), ({"limit": "0"}, "limit"),
                                          ({"since": "yesterday"}, "since")])
def test_bad_parameters_are_400_naming_them(client: httpx.Client, params: dict[str, str],
                                            word: str) -> None:
    answer = client.get("/api/runs", params=params)
    assert answer.status_code == 400 and word in answer.json()["message"]


def test_a_run_manifest_and_its_log_in_every_format(client: httpx.Client, archive: Path,
                                                    sources: Any) -> None:
    _, training, _ = sources
    run = client.get("/api/runs", params={"f.run_id": "run-1"}).json()["runs"][0]
    detail = client.get(f"/api/runs/{run['id']}").json()
    stored = next(archive.parent.glob("archive/training/mdl-a/run-1.txt.manifest.json"))
    assert detail["manifest"] == json.loads(stored.read_bytes())
    original_text = training.models["mdl-a"][0].text
    txt = client.get(f"/api/runs/{run['id']}/log", params={"format": "txt"})
    assert txt.content == original_text
    ndjson = client.get(f"/api/runs/{run['id']}/log", params={"format": "ndjson"})
    records = [json.loads(line) for line in ndjson.text.splitlines()]
    assert [r["message"] for r in records] == original_text.decode().splitlines()
    assert ndjson.headers["x-logarchive-origin"] == "encoded-from-txt"
    lines = client.get(f"/api/runs/{run['id']}/lines", params={"q": "ERROR", "limit": 3}).json()
    assert [ln["level"] for ln in lines["lines"]] == ["error"] * 3 and lines["more"] is True
    chart = client.get(f"/api/runs/{run['id']}/levels").json()
    assert sum(map(sum, chart["levels"].values())) == 40
    assert set(chart["levels"]) == {"info", "warning", "error"}


def test_a_backtracking_pattern_is_answered_not_hung(client: httpx.Client) -> None:
    """A client's regular expression runs with a time limit (found by a hostile review: with
    Python's re this pattern kept a server thread busy for ever on an ordinary line)."""
    run = client.get("/api/runs", params={"f.run_id": "run-1"}).json()["runs"][0]
    for q, status in ((r"(\S*\s?)*!", 200), (r"(a+)+$", 200), ("(unclosed", 400)):
        answer = client.get(f"/api/runs/{run['id']}/lines", params={"q": q})
        assert answer.status_code == status, (q, answer.text)
    assert "not a regular expression" in answer.json()["message"]


def test_a_pattern_past_its_budget_is_refused() -> None:
    from logarchive.patterns import BoundedPattern, PatternTooSlow

    assert BoundedPattern("loss", budget=5).search("step 1 loss=0.5")
    with pytest.raises(PatternTooSlow, match="takes too long"):
        BoundedPattern("loss", budget=0).search("step 1 loss=0.5")


def test_only_runs_in_manifests_are_reachable(client: httpx.Client, archive: Path) -> None:
    orphan = archive.parent / "archive" / "training" / "orphan.txt"
    orphan.write_bytes(b"not described by any manifest\n")
    for path in ("/api/runs/..%2F..%2Fc.toml/log", "/api/runs/training%2Forphan.txt/log",
                 "/api/runs/0000000000000000000/log", "/static/..%2F..%2Fconfig.py"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert b"not described" not in answer.content
    assert client.get("/api/runs").json()["total"] == 8


def test_new_and_deleted_runs_are_picked_up(client: httpx.Client, archive: Path) -> None:
    run = RunRef("training", {"model_id": "mdl-new", "run_id": "run-new"}, status="completed")
    path = put_run(archive.parent / "archive", run, b"fresh\n")
    assert wait_for(lambda: client.get(TRAINING.format("mdl-new")).status_code == 200)
    assert client.get(TRAINING.format("mdl-new")).content == b"fresh\n"
    path.unlink()
    Path(str(path) + ".manifest.json").unlink()
    assert wait_for(lambda: client.get(TRAINING.format("mdl-new")).status_code == 404)


def wait_for(check: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


# --- authentication and secrets -------------------------------------------------------------------

def test_logout_ends_the_session_on_the_server(serve: Any) -> None:
    """A session cookie copied before logout is refused after it (found by a hostile review:
    logout only deleted the browser's cookie)."""
    with httpx.Client(base_url=serve.url, timeout=30) as browser:
        stolen = browser.post("/login", data={"token": SERVE_TOKEN}).cookies["session"]
        assert browser.get("/api/facets", cookies={"session": stolen}).status_code == 200
        browser.post("/logout", cookies={"session": stolen})
        browser.cookies.clear()
        assert browser.get("/api/facets", cookies={"session": stolen}).status_code == 401
        fresh = browser.post("/login", data={"token": SERVE_TOKEN}).cookies["session"]
        assert browser.get("/api/facets", cookies={"session": fresh}).status_code == 200


def test_browser_login_sets_a_strict_httponly_session(serve: Any) -> None:
    with httpx.Client(base_url=serve.url) as browser:
        assert browser.get("/").status_code == 303
        assert browser.get("/static/app.js").status_code == 401
        refused = browser.post("/login", data={"token": "wrong-token-123456789"})
        assert refused.status_code == 401 and "session" not in refused.cookies
        answer = browser.post("/login", data={"token": SERVE_TOKEN, "next": "//evil.example/"})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert SERVE_TOKEN.lower() not in cookie
        assert browser.get("/api/runs").status_code == 200
        session = browser.cookies["session"]
        forged = session[:-4] + ("0000" if not session.endswith("0000") else "1111")
        assert httpx.get(serve.url + "/api/runs",
                         cookies={"session": forged}).status_code == 401


def test_secrets_are_never_rendered(client: httpx.Client, serve: Any) -> None:
    run = client.get("/api/runs", params={"f.run_id": "run-1"}).json()["runs"][0]
    pages = [client.get("/"), client.get(f"/runs/{run['id']}"), client.get("/search?pattern=x"),
             client.get(f"/api/runs/{run['id']}")]
    for page in pages:
        assert page.status_code == 200
        for secret in (SERVE_TOKEN, SOURCE_TOKEN, SESSION):
            assert secret not in page.text
    for secret in (SERVE_TOKEN, SOURCE_TOKEN, SESSION):
        assert secret not in serve.stderr


def test_search_finds_lines_across_runs(client: httpx.Client) -> None:
    hits = client.get("/api/search", params={"pattern": r"step 1[0-4] ", "level": "warning",
                                             "f.model_id": "mdl-a"}).json()
    found = {(h["run_key"].rsplit("=", 1)[-1], h["seq"]) for h in hits["hits"]}
    assert found == {("run-1", 13), ("run-2", 13), ("run-1", 15), ("run-2", 15)}


@pytest.mark.parametrize("params, word", [({"pattern": "step ("}, "pattern"),
                                          ({"pattern": "x", "level": "loud"}, "level")])
def test_bad_search_parameters_are_400_naming_them(client: httpx.Client,
                                                   params: dict[str, str], word: str) -> None:
    answer = client.get("/api/search", params=params)
    assert answer.status_code == 400 and answer.json()["message"].startswith(word + ": ")


# --- the command ----------------------------------------------------------------------------------

@pytest.mark.parametrize("serve_table, says", [
    ({"sink": "archive"}, "serve.tokens"),
    ({"sink": "archive", "tokens": ["${NO_SUCH_VAR:-}"]}, "no token configured"),
    ({"sink": "archive", "tokens": ["short"]}, "at least 16 characters"),
    ({"sink": "nope", "tokens": [SERVE_TOKEN]}, "serve.sink"),
    (None, "no [serve] table"),
])
def test_serve_refuses_to_start_without_what_it_needs(tmp_path: Path, serve_table: Any,
                                                      says: str) -> None:
    document: dict[str, Any] = {
        "logarchive": {"state_dir": str(tmp_path / "state")},
        "sources": {"logs": {"type": "files", "url": str(tmp_path)}},
        "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive")}}}
    if serve_table is not None:
        document["serve"] = serve_table
    config = write_config(tmp_path / "c.toml", document)
    done = CliRunner().invoke(main, ["serve", "-c", str(config)])
    assert done.exit_code == 2
    assert says in done.output and "Traceback" not in done.output


def test_without_the_extra_serve_names_it(archive: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if `[serve]` were not installed
    monkeypatch.setenv("SERVE_TOKEN", SERVE_TOKEN)
    done = CliRunner().invoke(main, ["serve", "-c", str(archive)])
    assert done.exit_code == 2
    assert "pip install 'logarchive[serve]'" in done.output and "Traceback" not in done.output
    help_text = CliRunner().invoke(main, ["serve", "--help"])
    assert help_text.exit_code == 0 and "Example" in help_text.output


def test_logarchive_exports_from_serve_as_from_the_original(serve: Any, archive: Path) -> None:
    """logarchive's own rest source (a client of seeds 000 and 002) pointed at ``serve``
    archives the same bytes it archived from the original systems."""
    root = archive.parent / "again"
    config = write_config(archive.parent / "again.toml", {
        "logarchive": {"state_dir": str(root / "state")},
        "sources": {
            "training": {"type": "rest", "preset": "training-metrics", "base_url": serve.url,
                         "auth": {"bearer": SERVE_TOKEN}, "models": ["mdl-a", "mdl-b"],
                         "runs": [{"model_id": "mdl-a", "run_id": "run-1"}]},
            "jobs": {"type": "rest", "preset": "workflow-jobs", "base_url": serve.url,
                     "auth": {"cookie": {"session": SERVE_TOKEN}},
                     "jobs": [{"workflow_id": "wf-1", "job_id": j}
                              for j in ("job-ok", "job-failed")]}},
        "sinks": {"archive": {"type": "fs", "url": str(root / "archive"), "format": "txt",
                              "path": "{source}/{run_path}.{ext}"}},
    })
    done = subprocess.run([EXE, "-q", "export", "-c", str(config)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    again = {p.relative_to(root / "archive"): p.read_bytes()
             for p in (root / "archive").rglob("*.txt")}
    assert sorted(map(str, again)) == ["jobs/wf-1/job-failed.txt", "jobs/wf-1/job-ok.txt",
                                       "training/mdl-a/run-1.txt", "training/mdl-a/run-2.txt",
                                       "training/mdl-b/run-9.txt"]
    for path, data in again.items():
        assert data == (archive.parent / "archive" / path).read_bytes(), path


def test_the_cli_and_config_never_import_the_web_stack() -> None:
    probe = ("import sys; from logarchive import cli, config; from logarchive.cli import serve; "
             "print([m for m in ('starlette', 'uvicorn', 'jinja2') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
