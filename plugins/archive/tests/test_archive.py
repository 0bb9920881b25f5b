"""The archive source through the real CLI: replay to Splunk and Datadog (exactly once, with the
original event ids), migration between formats and stores, and a corrupted object refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from logarchive.cli import main
from logarchive.codec import decompress_stream
from logarchive.plugins import default_registry
from logarchive_archive import ArchiveSource
from logarchive_datadog.testing import API_KEY, IntakeReceiver
from logarchive_testsupport.processes import write_tables

splunk_testing = pytest.importorskip("logarchive_splunk.testing")
HecReceiver, TOKEN = splunk_testing.HecReceiver, splunk_testing.TOKEN
FIELDS = r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$"
LEVELS = ["INFO", "WARNING", "ERROR", "DEBUG", "INFO"]
FAST = {"http": {"retry": {"backoff_initial": 0.01, "backoff_max": 0.05}},
        "max_line_bytes": 100}


def make_logs(root: Path) -> dict[str, bytes]:
    """Three runs of two models: levels, a line without a timestamp, a line over 100 bytes."""
    logs = {}
    for name, count in (("mdl-a/r1", 120), ("mdl-a/r2", 30), ("mdl-b/r3", 45)):
        lines = [f"2024-05-01T12:{i // 60:02d}:{i % 60:02d}.000Z [{LEVELS[i % 5]}] {name} "
                 f"step {i} loss {1 / i:.4f}" for i in range(1, count + 1)]
        lines[3] = f"no timestamp here, step 4 of {name}"
        lines[7] = f"2024-05-01T12:00:08.000Z [ERROR] CUDA out of memory {'x' * 150}"
        body = ("\n".join(lines) + "\n").encode()
        (root / f"{name}.log").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{name}.log").write_bytes(body)
        logs[name] = body
    return logs


def write_config(path: Path, state: Path, sources: dict, sinks: dict) -> Path:
    return write_tables(path, state, sources, sinks, workers=1, chunk_size=4096)


def cli(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def aggregators(hec, intake) -> dict:
    return {"splunk": {"type": "splunk", "url": hec.url, "token": TOKEN, "ack": True,
                       "ack_poll_interval": 0.01, **FAST},
            "datadog": {"type": "datadog", "url": intake.url, "api_key": API_KEY, **FAST}}


@pytest.fixture(scope="module")
def receivers():
    hec, intake = HecReceiver(ack=True).start(), IntakeReceiver().start()
    yield hec, intake
    hec.stop()
    intake.stop()


@pytest.fixture(scope="module")
def archived(tmp_path_factory, receivers):
    """An export of three runs to a txt (gzip), an ndjson (zstd) and a Parquet archive and to both
    aggregators: what the replays are compared with."""
    root = tmp_path_factory.mktemp("original")
    logs = make_logs(root / "logs")
    hec, intake = receivers
    sinks = {"text": {"type": "fs", "url": str(root / "text"), "compression": "gzip"},
             "records": {"type": "fs", "url": str(root / "records"), "format": "ndjson",
                         "compression": "zstd", "max_line_bytes": 100},
             "columns": {"type": "fs", "url": str(root / "columns"), "format": "parquet",
                         "max_line_bytes": 100},
             **aggregators(hec, intake)}
    config = write_config(root / "export.toml", root / "state",
                          {"logs": {"type": "files", "url": str(root / "logs"), "fields": FIELDS}},
                          sinks)
    result = cli("export", "-c", str(config))
    assert result.exit_code == 0, result.output
    originals = {"splunk": _ids(hec), "datadog": _ids(intake),
                 "datadog_times": {e.event_id: e.raw.get("timestamp") for e in intake.events()}}
    hec.accepted.clear()
    intake.accepted.clear()
    return root, logs, originals


def _ids(receiver) -> list[str]:
    return sorted(e.event_id for e in receiver.events())


def replay_config(tmp_path: Path, archive: Path | str, sinks: dict, **source) -> Path:
    return write_config(tmp_path / "replay.toml", tmp_path / "state",
                        {"old": {"type": "archive", "url": str(archive), **source}}, sinks)


def test_discovered_through_its_entry_point() -> None:
    entry = default_registry().sources["archive"]
    assert entry.cls is ArchiveSource and entry.distribution == "logarchive-archive"


def test_replay_reaches_each_aggregator_once_with_the_original_event_ids(
        tmp_path, archived, receivers):
    root, _, originals = archived
    hec, intake = receivers
    config = replay_config(tmp_path, root / "records", aggregators(hec, intake))
    first = cli("export", "-c", str(config))
    assert first.exit_code == 0, first.output
    assert _ids(hec) == originals["splunk"] and _ids(intake) == originals["datadog"]
    assert len(set(_ids(hec))) == len(_ids(hec)) == 195 + 3 * 2  # a 3-part line per run
    replayed_times = {e.event_id: e.raw.get("timestamp") for e in intake.events()}
    assert replayed_times == originals["datadog_times"]  # time = "original"
    second = cli("export", "-c", str(config))
    assert second.exit_code == 0, second.output
    assert len(hec.events()) == len(intake.events()) == 201  # nothing delivered again
    shown = cli("ledger", "show", "-c", str(config), "--json")
    keys = {d["run_key"] for d in json.loads(shown.stdout)}
    assert "old/origin=logs/model_id=mdl-a/run_id=r1" in keys
    hec.accepted.clear()
    intake.accepted.clear()


def test_time_replay_gives_records_the_replay_time(tmp_path, archived, receivers):
    root, _, _ = archived
    _, intake = receivers
    sinks = {"datadog": aggregators(*receivers)["datadog"]}
    config = replay_config(tmp_path, root / "text", sinks, time="replay",
                           where={"run_id": "r2"})
    result = cli("export", "-c", str(config))
    assert result.exit_code == 0, result.output
    times = {e.raw.get("timestamp") for e in intake.events()}
    assert len(intake.events()) == 30 and len(times) == 1  # codec records: long lines whole
    assert times.pop() > 1_700_000_000_000 + 2 * 365 * 86400_000  # not 2024: the replay's
    intake.accepted.clear()


def test_txt_archive_replays_byte_exact_and_migrates_to_ndjson(tmp_path, archived):
    root, logs, _ = archived
    sinks = {"copy": {"type": "fs", "url": str(tmp_path / "copy"),
                      "path": "{origin}/{model_id}/{run_id}.{ext}"},
             "converted": {"type": "fs", "url": str(tmp_path / "converted"),
                           "format": "ndjson", "compression": "zstd", "max_line_bytes": 100,
                           "path": "{origin}/{model_id}/{run_id}.{ext}"}}
    result = cli("export", "-c", str(replay_config(tmp_path, root / "text", sinks)))
    assert result.exit_code == 0, result.output
    for name, body in logs.items():
        assert (tmp_path / "copy" / "logs" / f"{name}.txt").read_bytes() == body
        converted = tmp_path / "converted" / "logs" / f"{name}.ndjson.zst"
        assert _records(converted) == _original_records(root, name)


def _records(path: Path) -> list[dict]:
    data = b"".join(decompress_stream("zstd", [path.read_bytes()]))
    return [orjson.loads(line) for line in data.splitlines()]


def _original_records(root: Path, name: str) -> list[dict]:
    return _records(root / "records" / "logs" / f"{name}.ndjson.zst")


def test_ndjson_archive_replays_its_records_and_their_text(tmp_path, archived):
    root, logs, _ = archived
    sinks = {"text": {"type": "fs", "url": str(tmp_path / "text"),
                      "path": "{model_id}/{run_id}.{ext}"},
             "records": {"type": "fs", "url": str(tmp_path / "records"), "format": "json",
                         "path": "{model_id}/{run_id}.{ext}"}}
    config = replay_config(tmp_path, root / "records", sinks, where={"model_id": "mdl-a"})
    result = cli("export", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "text").rglob("*.txt")) == ["r1.txt", "r2.txt"]
    for name in ("mdl-a/r1", "mdl-a/r2"):
        assert (tmp_path / "text" / f"{name}.txt").read_bytes() == logs[name]
        replayed = orjson.loads((tmp_path / "records" / f"{name}.json").read_bytes())
        assert replayed == _original_records(root, name)


def test_parquet_archive_replays_its_records_to_splunk_and_as_text(tmp_path, archived,
                                                                    receivers):
    root, logs, originals = archived
    hec, intake = receivers
    sinks = {"splunk": aggregators(hec, intake)["splunk"],
             "text": {"type": "fs", "url": str(tmp_path / "text"),
                      "path": "{model_id}/{run_id}.{ext}"},
             "records": {"type": "fs", "url": str(tmp_path / "records"), "format": "ndjson",
                         "compression": "zstd", "path": "{model_id}/{run_id}.{ext}"}}
    result = cli("export", "-c", str(replay_config(tmp_path, root / "columns", sinks)))
    assert result.exit_code == 0, result.output
    assert _ids(hec) == originals["splunk"]  # the original event ids, each once
    for name, body in logs.items():
        assert (tmp_path / "text" / f"{name}.txt").read_bytes() == body
        assert _records(tmp_path / "records" / f"{name}.ndjson.zst") == _original_records(
            root, name)  # seq, parts, timestamps, levels and fields as the ndjson export's
    hec.accepted.clear()


def test_a_corrupted_object_is_refused_and_nothing_of_it_delivered(tmp_path, archived,
                                                                   receivers):
    root, _, _ = archived
    hec, intake = receivers
    shutil.copytree(root / "records", tmp_path / "archive")
    victim = next((tmp_path / "archive").rglob("r1.ndjson.zst"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    sinks = {"splunk": aggregators(hec, intake)["splunk"],
             "copy": {"type": "fs", "url": str(tmp_path / "copy"),
                      "path": "{model_id}/{run_id}.{ext}"}}
    result = CliRunner().invoke(main, ["export", "-c", str(replay_config(
        tmp_path, tmp_path / "archive", sinks))])
    assert result.exit_code == 1, result.output
    assert "does not match its manifest" in result.output and "r1.ndjson.zst" in result.output
    assert "Traceback" not in result.output
    assert {e.raw["fields"]["run_id"] for e in hec.events()} == {"r2", "r3"}
    assert not (tmp_path / "copy" / "mdl-a" / "r1.txt").exists()
    assert (tmp_path / "copy" / "mdl-a" / "r2.txt").exists()
    hec.accepted.clear()


def test_an_s3_archive_replays_to_a_local_one(tmp_path, archived, s3_bucket):
    root, logs, _ = archived
    options = s3_bucket.storage_options
    upload = write_config(tmp_path / "upload.toml", tmp_path / "state-up",
                          {"local": {"type": "archive", "url": str(root / "text")}},
                          {"s3": {"type": "fs", "url": f"{s3_bucket.url}/logs",
                                  "storage_options": options, "format": "ndjson",
                                  "compression": "gzip"}})
    assert cli("export", "-c", str(upload)).exit_code == 0
    sinks = {"back": {"type": "fs", "url": str(tmp_path / "back"),
                      "path": "{model_id}/{run_id}.{ext}"}}
    config = replay_config(tmp_path, f"{s3_bucket.url}/logs", sinks, storage_options=options)
    result = cli("export", "-c", str(config))
    assert result.exit_code == 0, result.output
    for name, body in logs.items():
        assert (tmp_path / "back" / f"{name}.txt").read_bytes() == body
