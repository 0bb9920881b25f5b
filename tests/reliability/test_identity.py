"""Run identity, object names and times through the real CLI: keys that never collide, ids that
look like credentials kept verbatim, object names that never clash with a manifest and never
exceed the store's limits, path times in UTC, upgrades from 0.1.0 that deliver nothing again."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("logarchive_rest")

from logarchive_testsupport.processes import EXE  # noqa: E402
from logarchive.testing.servers import LoopbackServer, Request  # noqa: E402

FAST = ('http = { connect_timeout = 2, read_timeout = 2, '
        'retry = { max_retries = 1, backoff_initial = 0.01, backoff_max = 0.02 } }')


class RunsAPI:
    """``GET /runs`` lists ``runs``; ``GET /log/<project>/<id>`` serves that run's log (each
    value URL-quoted, so every run has its own URL). Counts log downloads."""

    def __init__(self, runs: list[dict[str, str]]) -> None:
        self.runs = runs
        self.version = 1
        self.downloads: list[str] = []

    def body(self, run: dict[str, str]) -> bytes:
        return (f"2026-03-13T10:00:00 +0100 [INFO] {run['project']} {run['id']} "
                f"v{self.version}\n").encode()

    def path(self, run: dict[str, str]) -> str:
        return f"/log/{quote(run['project'], safe='')}/{quote(run['id'], safe='')}"

    def __call__(self, req: Request) -> None:
        if req.path == "/runs":
            req.send_json(200, {"runs": self.runs})
            return
        run = next((r for r in self.runs if self.path(r) == req.path), None)
        if run is None:
            req.send(404, b"no such run")
            return
        self.downloads.append(req.path)
        req.send(200, self.body(run), {"Content-Type": "text/plain"})


def write_config(tmp: Path, url: str, path: str, *, fmt: str = "txt", state: str = "state") -> Path:
    config = tmp / "c.toml"
    config.write_text(f"""
[logarchive]
state_dir = "{tmp / state}"
workers = 2

[sources.api]
type = "rest"
base_url = "{url}"
url = "/log/{{project}}/{{id}}"
discover = {{ url = "/runs", items = "/runs", fields = {{ project = "/project", id = "/id" }}, completed = "/completed" }}
{FAST}

[sinks.archive]
type = "fs"
url = "{tmp / 'archive'}"
format = "{fmt}"
path = '{path}'
""")
    return config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([EXE, *args, "-c", str(config)], capture_output=True, text=True,
                            timeout=300)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def ok(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command that must succeed (exit 0)."""
    result = cli(config, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def ledger_rows(config: Path) -> list[dict[str, Any]]:
    result = cli(config, "ledger", "show", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def manifests(root: Path) -> dict[str, dict[str, Any]]:
    """Object path -> its manifest."""
    found = {}
    for path in root.rglob("*.manifest.json"):
        document = json.loads(path.read_bytes())
        found[document["object"]["path"]] = document
    return found


def objects(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(".manifest.json")
            and ".logarchive-tmp" not in p.parts}


def assert_next_export_downloads_nothing(config: Path, api: RunsAPI) -> None:
    downloads = len(api.downloads)
    result = cli(config, "export")
    assert result.returncode == 0 and len(api.downloads) == downloads, result.stdout
    assert "exported 0 run(s)" in result.stdout, result.stdout


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(project: str, id: str, **extra: str) -> dict[str, str]:
    return {"project": project, "id": id, **extra}


@pytest.mark.scenario(
    "run keys that used to collide",
    "runs {project: 'p/run_id=x', id: 'y'} and {project: 'p', id: 'x/run_id=y'}: both exported "
    "(two objects with the served bytes, two manifests, two ledger rows with distinct keys); the "
    "next export downloads nothing",
)
def test_ambiguous_runs_get_two_keys(tmp_path: Path, loopback: LoopbackServer) -> None:
    api = RunsAPI([run("p/run_id=x", "y"), run("p", "x/run_id=y")])
    loopback.handler = api
    config = write_config(tmp_path, loopback.url, "{project}/{id}.{ext}")
    ok(config, "export")
    archive = tmp_path / "archive"
    stored = objects(archive)
    assert sorted(stored) == ["p/x_run_id=y.txt", "p_run_id=x/y.txt"]
    assert sorted(stored.values()) == sorted(api.body(r) for r in api.runs)
    rows = ledger_rows(config)
    keys = sorted(r["run_key"] for r in rows)
    assert keys == sorted(["api/project=p/id==x%2Frun_id%3Dy", "api/project==p%2Frun_id%3Dx/id=y"])
    assert all(r["status"] == "delivered" for r in rows)
    found = manifests(archive)
    for path, document in found.items():
        assert document["object"]["sha256"] == sha(stored[path])
    assert sorted(d["run"]["key"] for d in found.values()) == keys
    assert sorted(json.dumps(d["run"]["fields"]) for d in found.values()) == sorted(
        json.dumps({"project": r["project"], "id": r["id"]}) for r in api.runs)
    assert_next_export_downloads_nothing(config, api)


@pytest.mark.scenario(
    "run ids that look like credentials",
    "run ids 'basic training', 'exp;code=7', 'x?token=abc': stored verbatim in manifests and the "
    "ledger; `export --force` replaces each object in place (new bytes, no second copy); after "
    "`ledger rebuild` into an empty state the next export downloads nothing",
)
def test_credential_looking_ids_stay_verbatim(tmp_path: Path, loopback: LoopbackServer) -> None:
    api = RunsAPI([run("p", "basic training"), run("p", "exp;code=7"), run("p", "x?token=abc")])
    loopback.handler = api
    config = write_config(tmp_path, loopback.url, "{project}/{id}.{ext}")
    assert cli(config, "export").returncode == 0
    archive = tmp_path / "archive"
    found = manifests(archive)
    assert sorted(d["run"]["fields"]["id"] for d in found.values()) == sorted(
        r["id"] for r in api.runs)
    keys = sorted(r["run_key"] for r in ledger_rows(config))
    assert keys == sorted(d["run"]["key"] for d in found.values())
    assert "api/project=p/id=basic training" in keys and "***" not in "".join(keys)
    api.version = 2
    ok(config, "export", "--force")
    stored = objects(archive)
    assert len(stored) == 3 and sorted(stored.values()) == sorted(api.body(r) for r in api.runs)
    # A lost state directory: the archive's manifests give the ledger back, nothing is resent.
    rebuilt = write_config(tmp_path, loopback.url, "{project}/{id}.{ext}", state="state2")
    assert cli(rebuilt, "ledger", "rebuild").returncode == 0
    assert sorted(r["run_key"] for r in ledger_rows(rebuilt)) == keys
    assert_next_export_downloads_nothing(rebuilt, api)


@pytest.mark.scenario(
    "an object named like a manifest",
    "format json, runs 'x' and 'x.json.manifest' under '{run_id}.{ext}': both archived, the "
    "second as x.json_manifest.json; every manifest names its own run; `verify` passes",
)
def test_object_never_overwrites_a_manifest(tmp_path: Path, loopback: LoopbackServer) -> None:
    api = RunsAPI([run("p", "x"), run("p", "x.json.manifest")])
    loopback.handler = api
    config = write_config(tmp_path, loopback.url, "{id}.{ext}", fmt="json")
    ok(config, "export")
    archive = tmp_path / "archive"
    assert sorted(objects(archive)) == ["x.json", "x.json_manifest.json"]
    found = manifests(archive)
    assert {p: d["run"]["fields"]["id"] for p, d in found.items()} == {
        "x.json": "x", "x.json_manifest.json": "x.json.manifest"}
    ok(config, "verify")


@pytest.mark.scenario(
    "object names too long for the store",
    "a 246-byte object name whose manifest name would be 260 bytes (local limit 255): the run "
    "fails before anything is written with an error naming the template and the limit (never "
    "'File name too long'), no object, no manifest, no temp file; the other run is archived",
)
def test_too_long_names_fail_before_anything_is_written(tmp_path: Path,
                                                         loopback: LoopbackServer) -> None:
    api = RunsAPI([run("p", "a" * 200), run("p", "short")])
    loopback.handler = api
    template = "{id}-" + "t" * 41 + ".{ext}"
    config = write_config(tmp_path, loopback.url, template)
    result = cli(config, "export")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert template in output and "255" in output and "too long" not in output.lower()
    archive = tmp_path / "archive"
    assert sorted(objects(archive)) == ["short-" + "t" * 41 + ".txt"]
    assert len(manifests(archive)) == 1
    assert not any((archive / ".logarchive-tmp").glob("*"))
    statuses = {r["fields"]["id"][:5]: r["status"] for r in ledger_rows(config)}
    assert statuses == {"aaaaa": "failed", "short": "delivered"}


@pytest.mark.scenario(
    "path times in UTC",
    "completion times '2026-03-01T00:30:00+02:00', naive '2026-03-01T00:30:00' and the leap "
    "second '2016-12-31T23:59:60Z' under '{completed:%Y/%m/%d}': 2026/02/28 (UTC), 2026/03/01 "
    "(naive is UTC), the export date with a warning; a log line '10:00:00 +0100' is archived "
    "as 09:00 UTC",
)
def test_path_times_are_utc(tmp_path: Path, loopback: LoopbackServer) -> None:
    api = RunsAPI([run("p", "offset", completed="2026-03-01T00:30:00+02:00"),
                   run("p", "naive", completed="2026-03-01T00:30:00"),
                   run("p", "leap", completed="2016-12-31T23:59:60Z")])
    loopback.handler = api
    config = write_config(tmp_path, loopback.url, "{completed:%Y/%m/%d}/{id}.{ext}", fmt="ndjson")
    before = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    result = cli(config, "export")
    after = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "leap_second_dropped" in result.stderr
    stored = objects(tmp_path / "archive")
    assert "2026/02/28/offset.ndjson" in stored and "2026/03/01/naive.ndjson" in stored
    assert {f"{before}/leap.ndjson", f"{after}/leap.ndjson"} & set(stored)
    found = manifests(tmp_path / "archive")
    assert found["2026/02/28/offset.ndjson"]["run"]["completed"] == "2026-02-28T22:30:00Z"
    record = json.loads(stored["2026/02/28/offset.ndjson"].splitlines()[0])
    assert record["timestamp"] == "2026-03-13T09:00:00.000Z"


@pytest.mark.scenario(
    "re-export of an object the template no longer renders",
    "a run archived where an older release or an edited template put it: `export --force` "
    "replaces it where the ledger records it (new bytes there), never a second copy, while a "
    "new run lands where the template says; `verify` passes",
)
def test_force_replaces_where_the_ledger_says(tmp_path: Path, loopback: LoopbackServer) -> None:
    api = RunsAPI([run("p", "r1", completed="2026-03-01T00:30:00+02:00")])
    loopback.handler = api
    config = write_config(tmp_path, loopback.url, "2026/03/01/{id}.{ext}")  # 0.1.0's path
    assert cli(config, "export").returncode == 0
    config = write_config(tmp_path, loopback.url, "{completed:%Y/%m/%d}/{id}.{ext}")
    api.version = 2
    api.runs.append(run("p", "r2", completed="2026-03-01T00:30:00+02:00"))
    ok(config, "export", "--force")
    assert objects(tmp_path / "archive") == {"2026/03/01/r1.txt": api.body(api.runs[0]),
                                             "2026/02/28/r2.txt": api.body(api.runs[1])}
    ok(config, "verify")


@pytest.mark.scenario(
    "upgrade from 0.1.0",
    "a ledger whose keys are 0.1.0's 'source/field=value' (written by hand here) and manifests "
    "0.1.0 wrote with credential-looking ids masked ('basic ***'): the next export downloads "
    "nothing, `export --force` replaces the masked run's object",
)
def test_upgrade_from_0_1_0(tmp_path: Path, loopback: LoopbackServer) -> None:
    api = RunsAPI([run("p", "basic training"), run("m", "50%"), run("m", "exp;code=7"),
                   run("m=1", "run 7"), run("m", "logs/train.log"), run("m/a", "b/")])
    loopback.handler = api
    config = write_config(tmp_path, loopback.url, "{project}/{id}.{ext}")
    assert cli(config, "export").returncode == 0
    # 0.1.0's key: source + "/" + "/".join(f"{k}={v}") (locks and event ids derive from it).
    old_keys = sorted(f"api/project={r['project']}/id={r['id']}" for r in api.runs)
    assert sorted(r["run_key"] for r in ledger_rows(config)) == old_keys
    # 0.1.0 masked credential-looking ids in manifests: rewrite one as it did.
    archive = tmp_path / "archive"
    masked = archive / "p" / "basic_training.txt.manifest.json"
    masked.write_text(masked.read_text().replace("basic training", "basic ***"))
    assert_next_export_downloads_nothing(config, api)
    api.version = 2
    ok(config, "export", "--force", "--run", "basic training")
    assert objects(archive)["p/basic_training.txt"] == api.body(api.runs[0])
    assert json.loads(masked.read_bytes())["run"]["fields"]["id"] == "basic training"


@pytest.mark.scenario(
    "unusable --since values",
    "`export --since` with 99999999999d (before year 1), ²d (a digit Python's int() takes but "
    "no one types), 7x, an invalid date: exit 2 naming --since and the value, no traceback",
)
@pytest.mark.parametrize("value", ["99999999999d", "²d", "7x", "2026-13-45", "d", "-5d"])
def test_unusable_since_is_a_usage_error(tmp_path: Path, value: str) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", "{id}.{ext}")
    result = cli(config, "export", "--since", value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--since" in result.stderr and value in result.stderr
    assert not (tmp_path / "archive").exists()
