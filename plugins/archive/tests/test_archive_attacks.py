"""Regression tests for the hostile review of issue 18 (branch ``revarchive``): the findings
fixed here, through the real CLI: a missing object reported, no unverified byte delivered (TOCTOU),
``query`` read-only and confined to the archive."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import logarchive_archive
from logarchive.cli import main
from logarchive_testsupport.processes import write_tables

splunk_testing = pytest.importorskip("logarchive_splunk.testing")
pytest.importorskip("duckdb")
HecReceiver, TOKEN = splunk_testing.HecReceiver, splunk_testing.TOKEN
FIELDS = r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$"
RUNS = {"mdl-a/r1": 10, "mdl-a/r2": 20, "mdl-b/r3": 30}


def write_config(path: Path, state: Path, sources: dict, sinks: dict) -> Path:
    return write_tables(path, state, sources, sinks, workers=1)


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def no_traceback(result) -> None:
    print(result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """Three runs exported to an ndjson archive and a txt archive (no compression)."""
    root = tmp_path_factory.mktemp("original")
    for name, count in RUNS.items():
        log = root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(f"2024-05-01T12:00:{i:02d}.000Z [INFO] {name} line {i}\n"
                               for i in range(count)))
    sinks = {"records": {"type": "fs", "url": str(root / "records"), "format": "ndjson"},
             "text": {"type": "fs", "url": str(root / "text")}}
    config = write_config(root / "export.toml", root / "state",
                          {"logs": {"type": "files", "url": str(root / "logs"),
                                    "fields": FIELDS}}, sinks)
    result = cli("export", "-c", str(config))
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def hec():
    receiver = HecReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def archive(tmp_path, original):
    """A private copy of the ndjson archive: {run name: object path}."""
    shutil.copytree(original / "records", tmp_path / "records")
    objects = {}
    for path in (tmp_path / "records").rglob("*"):
        if path.is_file() and not path.name.endswith(".manifest.json"):
            objects[f"{path.parent.name.split('=')[-1]}/{path.name.split('.')[0]}"] = path
    return tmp_path / "records", objects


def replay_to_hec(tmp_path: Path, root: Path, hec) -> tuple:
    hec.accepted.clear()
    sinks = {"splunk": {"type": "splunk", "url": hec.url, "token": TOKEN,
                        "http": {"retry": {"backoff_initial": 0.01, "max_retries": 0}}}}
    config = write_config(tmp_path / "replay.toml", tmp_path / "state",
                          {"old": {"type": "archive", "url": str(root)}}, sinks)
    result = cli("export", "-c", str(config))
    return result, [e.message for e in hec.events()]


def rewrite_manifest(obj: Path, **changes) -> None:
    """Make the manifest agree with the object (a writer that produced bad records), then
    apply ``changes`` to its ``object`` part."""
    mpath = obj.with_name(obj.name + ".manifest.json")
    doc = json.loads(mpath.read_text())
    data = obj.read_bytes()
    doc["object"].update({"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                          **changes})
    mpath.write_text(json.dumps(doc))


def runs_of(messages: list[str]) -> set[str]:
    return {name for name in RUNS for m in messages if name in m}


def test_a_manifest_whose_object_is_missing_is_reported(tmp_path, archive, hec):
    root, objects = archive
    objects["mdl-a/r2"].unlink()
    result, messages = replay_to_hec(tmp_path, root, hec)
    no_traceback(result)
    assert runs_of(messages) == {"mdl-a/r1", "mdl-b/r3"}
    assert "r2" in result.output and "missing" in result.output
    assert result.exit_code == 1, result.output


def test_an_object_replaced_after_verification_is_not_delivered(tmp_path, archive, hec,
                                                               monkeypatch):
    root, objects = archive
    target = objects["mdl-a/r2"]
    real = logarchive_archive._digest

    def digest_then_replace(opened, sink=None):  # injected fault: the file changes after hashing
        found = real(opened, sink)
        if found[1] == target.stat().st_size and "r2" in str(target):
            target.write_bytes(target.read_bytes().replace(b"mdl-a/r2 line", b"FORGED!! line"))
        return found

    monkeypatch.setattr(logarchive_archive, "_digest", digest_then_replace)
    result, messages = replay_to_hec(tmp_path, root, hec)
    no_traceback(result)
    assert not any("FORGED" in m for m in messages)



def test_a_symlink_out_of_the_root_is_refused(tmp_path, archive, hec):
    root, objects = archive
    target = objects["mdl-a/r2"]
    outside = tmp_path / "outside.ndjson"
    outside.write_bytes(target.read_bytes().replace(b"mdl-a/r2 line", b"OUTSIDE line"))
    target.unlink()
    target.symlink_to(outside)
    rewrite_manifest(target)
    result, messages = replay_to_hec(tmp_path, root, hec)
    no_traceback(result)
    assert result.exit_code == 1 and "symlink out of the archive root" in result.output
    assert runs_of(messages) == {"mdl-a/r1", "mdl-b/r3"}
    assert not any("OUTSIDE" in m for m in messages)


@pytest.mark.parametrize("body", [
    pytest.param(b'{"seq": 0, "message": "ok mdl-a/r2"}\n{"seq": 1, "message": \n',
                 id="not-json"),
    pytest.param(b'{"seq": 0, "message": "ok mdl-a/r2"}\n\xff\xfe{"seq": 1}\n',
                 id="bad-utf8"),
    pytest.param(b'{"seq": "one", "message": 5, "level": []}\n', id="wrong-types",
                 ),
    pytest.param(b'{"message": "no seq mdl-a/r2"}\n', id="missing-seq",
                 ),
    pytest.param(b'[1, 2]\n', id="not-object"),
])
def test_bad_records_with_a_matching_manifest_fail_cleanly(tmp_path, archive, hec, body):
    """An object whose manifest agrees but whose records are malformed: one clear error for
    that run, no traceback, the other runs delivered."""
    root, objects = archive
    objects["mdl-a/r2"].write_bytes(body)
    rewrite_manifest(objects["mdl-a/r2"])
    result, messages = replay_to_hec(tmp_path, root, hec)
    no_traceback(result)
    assert {"mdl-a/r1", "mdl-b/r3"} <= runs_of(messages)
    search = cli("search", "-c", str(_query_config(tmp_path, root)), "--sink", "records", ".")
    no_traceback(search)
    assert search.exit_code == 2, search.output
    assert "r2.ndjson" in result.output and "r2.ndjson" in search.output
    assert "line" in result.output and "error: " in search.output


# -- query ---------------------------------------------------------------------------------------

def _query_config(tmp_path: Path, root: Path, **extra) -> Path:
    return write_config(tmp_path / "query.toml", tmp_path / "qstate",
                        {"unused": {"type": "files", "url": str(tmp_path)}},
                        {"records": {"type": "fs", "url": str(root), "format": "ndjson",
                                     **extra}})


def query(tmp_path, root, sql, *args):
    return cli("query", "-c", str(_query_config(tmp_path, root)), "--sink", "records",
               "--json", *args, sql)


def test_query_cannot_write_files(tmp_path, archive):
    root, _ = archive
    out = tmp_path / "written.csv"
    result = query(tmp_path, root, f"COPY (SELECT 42 AS x) TO '{out}'")
    no_traceback(result)
    assert result.exit_code == 2 and not out.exists()
    two = query(tmp_path, root, f"SELECT 1; COPY (SELECT 42 AS x) TO '{out}'")
    assert two.exit_code == 2 and "one statement" in two.output and not out.exists()


def test_query_is_confined_to_the_archive(tmp_path, archive):
    root, _ = archive
    secret = tmp_path / "outside.csv"
    secret.write_text("password\nhunter2\n")
    result = query(tmp_path, root, f"SELECT * FROM read_csv('{secret}')")
    no_traceback(result)
    assert result.exit_code == 1 and "hunter2" not in result.output
    inside = query(tmp_path, root, "SELECT count(*) AS n FROM logs")
    assert json.loads(inside.stdout) == [{"n": sum(RUNS.values())}]


def test_query_cannot_attach_a_database(tmp_path, archive):
    root, _ = archive
    result = query(tmp_path, root, f"ATTACH '{tmp_path / 'new.duckdb'}' AS x")
    no_traceback(result)
    assert result.exit_code == 2 and not (tmp_path / "new.duckdb").exists()


def test_install_extension_is_refused_without_traceback(tmp_path, archive):
    root, _ = archive
    result = query(tmp_path, root, "INSTALL httpfs")
    no_traceback(result)
    assert result.exit_code == 2 and "only a query" in result.output
