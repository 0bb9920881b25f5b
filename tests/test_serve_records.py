"""``logarchive serve`` over an archive of records (NDJSON, gzip): txt is rebuilt from the
records (and says so), json and ndjson are the records; memory stays flat while a large log
streams. One real ``logarchive serve`` subprocess for the module."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard
from logarchive_testsupport.archives import write_config

from logarchive.serve.logs import StoredLog, render
from logarchive.serve.testing import serving

TOKEN = "records-test-token-93be51a0c2"
EXE = str(Path(sys.executable).parent / "logarchive")
DOWNLOAD = "/api/v1/models/{}/training-metrics/logs/download"
CLEAN = "".join(f"2026-03-13T10:00:{i % 60:02d}.000Z [{'INFO' if i % 3 else 'WARN'}] step {i} "
                f"é ü {'x' * (i % 150)}\n" for i in range(300)).encode()
ROUGH = b"crlf line\r\nno newline at the end"
BIG_LINES = 150_000  # about 10.6 MB


def big_log(lines: int) -> bytes:
    return b"".join(b"2026-03-13T10:00:00.000Z [INFO] line %08d of a large log, streamed\n" % i
                    for i in range(lines))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("records")
    logs = {"mdl-a/run-clean.log": CLEAN, "mdl-a/run-rough.log": ROUGH,
            "mdl-big/run-big.log": big_log(BIG_LINES), "mdl-warm/run-warm.log": big_log(50_000)}
    for name, data in logs.items():
        (root / "logs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "logs" / name).write_bytes(data)
    os.utime(root / "logs" / "mdl-a/run-rough.log", (1_700_000_000, 1_700_000_000))
    with exported_and_served(root, {"format": "ndjson", "compression": "gzip"}) as (server,
                                                                                  client):
        yield root, server, client


@contextmanager
def exported_and_served(root: Path, sink: dict[str, str]) -> Iterator[tuple[Any, httpx.Client]]:
    """Export ``root/logs`` to an fs sink ``records`` (``sink``: its format, compression) with
    ``max_line_bytes = 64``, then serve it: the server and an authenticated client."""
    config = write_config(root / "c.toml", {
        "logarchive": {"state_dir": str(root / "state")},
        "serve": {"sink": "records", "listen": "127.0.0.1:0", "tokens": [TOKEN]},
        "sources": {"training": {"type": "files", "url": str(root / "logs"),
                                 "fields": r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$"}},
        "sinks": {"records": {"type": "fs", "url": str(root / "archive"), **sink,
                              "max_line_bytes": 64, "path": "{model_id}/{run_id}.{ext}"}},
    })
    done = subprocess.run([EXE, "-q", "export", "-c", str(config)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with serving(config, {}) as server, httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60) as client:
        yield server, client


def test_txt_is_rebuilt_from_the_records_and_says_so(world: Any) -> None:
    _, _, client = world
    answer = client.get(DOWNLOAD.format("mdl-a"), params={"run_id": "run-clean"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain"
    assert answer.headers["content-disposition"] == \
        'attachment; filename="training-log-run-clean.txt"'
    assert answer.headers["x-logarchive-origin"] == "rebuilt-from-records"
    assert answer.content == CLEAN  # lines longer than max_line_bytes (64) were split, and joined


def test_what_the_records_do_not_keep_is_not_restored(world: Any) -> None:
    _, _, client = world
    answer = client.get(DOWNLOAD.format("mdl-a"), params={"run_id": "run-rough"})
    assert answer.content == b"crlf line\nno newline at the end\n"


def test_json_and_ndjson_are_the_records(world: Any) -> None:
    root, _, client = world
    as_json = client.get(DOWNLOAD.format("mdl-a"), params={"run_id": "run-clean",
                                                           "format": "json"})
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["x-logarchive-origin"] == "converted-from-records"
    stored = gzip.decompress((root / "archive/mdl-a/run-clean.ndjson.gz").read_bytes())
    assert as_json.json() == [json.loads(line) for line in stored.splitlines()]
    run = client.get("/api/runs", params={"f.run_id": "run-clean"}).json()["runs"][0]
    ndjson = client.get(f"/api/runs/{run['id']}/log", params={"format": "ndjson"})
    assert ndjson.content == stored and ndjson.headers["x-logarchive-origin"] == "archived"
    assert ndjson.headers["content-disposition"] == \
        'attachment; filename="mdl-a-run-clean.ndjson"'


def test_default_run_is_the_latest_completed(world: Any) -> None:
    _, _, client = world
    answer = client.get(DOWNLOAD.format("mdl-a"))  # run-rough's file is from 2023
    assert answer.headers["content-disposition"] == \
        'attachment; filename="training-log-run-clean.txt"'


def test_a_json_zstd_archive_renders_the_same(world: Any) -> None:
    root, _, _ = world
    stored = gzip.decompress((root / "archive/mdl-a/run-clean.ndjson.gz").read_bytes())
    records = [line for line in stored.splitlines()]
    body = zstandard.ZstdCompressor().compress(b"[\n" + b",\n".join(records) + b"\n]\n")
    log = StoredLog("x", "json", "zstd", "-", len(body), {"model_id": "mdl-a"}, "training")
    assert b"".join(render(log, "txt", iter([body[:100], body[100:]]))) == CLEAN
    ndjson = b"".join(render(log, "ndjson", iter([body])))
    assert ndjson == stored


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_memory_stays_flat_while_a_large_log_streams(world: Any) -> None:
    _, server, client = world
    # Warm up with a 3.5 MB log: the first large response's buffers, threads and imports.
    assert len(client.get(DOWNLOAD.format("mdl-warm")).content) > 3_000_000
    before = peak_rss_kib(server.process.pid)
    size = 0
    with client.stream("GET", DOWNLOAD.format("mdl-big")) as answer:
        for chunk in answer.iter_bytes():
            size += len(chunk)
    assert size > 10_000_000
    grown = peak_rss_kib(server.process.pid) - before
    assert grown < 5_000, f"the server's peak memory grew by {grown} KiB for {size} bytes"


@pytest.fixture(scope="module")
def columns(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Parquet archive of CLEAN (lines over max_line_bytes split in parts), served."""
    pytest.importorskip("pyarrow")
    root = tmp_path_factory.mktemp("columns")
    (root / "logs" / "mdl-a").mkdir(parents=True)
    (root / "logs" / "mdl-a" / "run-clean.log").write_bytes(CLEAN)
    with exported_and_served(root, {"format": "parquet"}) as (_, client):
        yield client


def test_a_parquet_archive_answers_txt_and_json_from_its_records(world: Any,
                                                                 columns: httpx.Client) -> None:
    root, _, _ = world
    text = columns.get(DOWNLOAD.format("mdl-a"), params={"run_id": "run-clean"})
    assert text.status_code == 200 and text.headers["content-type"] == "text/plain"
    assert text.headers["x-logarchive-origin"] == "rebuilt-from-records"
    assert text.content == CLEAN  # the parts of each long line joined again
    as_json = columns.get(DOWNLOAD.format("mdl-a"), params={"run_id": "run-clean",
                                                            "format": "json"})
    assert as_json.headers["x-logarchive-origin"] == "converted-from-records"
    stored = gzip.decompress((root / "archive/mdl-a/run-clean.ndjson.gz").read_bytes())
    assert as_json.json() == [json.loads(line) for line in stored.splitlines()]


def test_the_search_page_searches_a_parquet_archive(columns: httpx.Client) -> None:
    run = columns.get("/api/runs").json()["runs"][0]
    hits = columns.get("/api/search", params={"pattern": r"step 1[0-2]\d ",
                                              "level": "warning"}).json()
    assert [h["seq"] for h in hits["hits"]] == [i + 1 for i in range(100, 130) if i % 3 == 0]
    assert {h["run"] for h in hits["hits"]} == {run["id"]}
    assert hits["more"] is False
