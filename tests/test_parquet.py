"""Parquet archives (``format = "parquet"``): the objects read back with pyarrow and DuckDB as
the NDJSON records of the same log, Hive partitions from the path template, manifests, verify and
ledger rebuild, row groups written as they fill, and the config errors."""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import logarchive
from logarchive import parse_config
from logarchive.cli import main
from logarchive.codec import RecordBuilder, new_builder, timestamp_to_epoch
from logarchive.ledger import SQLiteLedger
from logarchive.parquet import ParquetEncoder
from logarchive.pipeline import open_sink
from logarchive.verify import verify
from logarchive_testsupport.archives import archive_config, write_config

DAY = 86400.0
LOGS = {
    "mdl-a/r01": (
        b"2026-03-15T09:30:00.120Z [INFO] step 1 loss=0.31\n"
        b"2026-03-15 10:30:00+01:00 [warn] \xc3\xa9t\xc3\xa9 caf\xc3\xa9 \xf0\x9f\x98\x80\r\n"
        b"no timestamp [ERROR] bad byte \xff here\n"
        b"\n"
        + b"x" * 150 + b"\n"  # longer than max_line_bytes: three parts
        + b'{"ts": "2026-03-15T09:30:01Z", "msg": "quote \\" tab \\t"}\n'
        b"2026-03-15T09:30:02.000 [DEBUG] naive time, no final newline"
    ),
    "mdl-a/r02": b"".join(b"2026-03-15T09:31:%02d.000Z [INFO] line %d\n" % (i % 60, i)
                          for i in range(300)),
    "mdl-b/r01": b"",  # an empty log: a Parquet file with the schema and no row
}
AGES = {"mdl-a/r01": 1, "mdl-a/r02": 2, "mdl-b/r01": 3}


def write_logs(root: Path) -> None:
    now = time.time()
    for name, data in LOGS.items():
        path = root / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (now - AGES[name] * DAY,) * 2)


def two_sinks(tmp_path: Path, **parquet: Any) -> dict[str, Any]:
    """Sink ``archive``: Parquet in Hive partitions; sink ``records``: NDJSON of the same logs."""
    write_logs(tmp_path / "logs")
    document = archive_config(tmp_path, str(tmp_path / "pq"), sink={
        "format": "parquet", "max_line_bytes": 64,
        "path": "dt={completed:%Y-%m-%d}/model={model_id}/{run_id}.{ext}", **parquet})
    document["sinks"]["records"] = {"type": "fs", "url": str(tmp_path / "nd"),
                                    "format": "ndjson", "max_line_bytes": 64,
                                    "path": "{model_id}/{run_id}.{ext}"}
    return document


def as_ndjson_record(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row in the NDJSON record's terms: null part flags absent, time as epoch."""
    out = {k: v for k, v in row.items() if v is not None or k in ("timestamp", "level")}
    stamp = out.pop("timestamp")
    out["epoch"] = None if stamp is None else stamp.timestamp()
    return out


def ndjson_records(path: Path) -> list[dict[str, Any]]:
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for record in records:
        record["epoch"] = timestamp_to_epoch(record.pop("timestamp"))
    return records


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, logarchive.Config]:
    tmp_path = tmp_path_factory.mktemp("parquet")
    config = parse_config(two_sinks(tmp_path), base_dir=tmp_path)
    result = logarchive.export(config)
    assert result.exported == 3, result
    return tmp_path, config


def test_pyarrow_reads_the_ndjson_records_of_the_same_log(exported: Any) -> None:
    tmp_path, _ = exported
    assert len(list((tmp_path / "pq").rglob("*.parquet"))) == 3
    for name in LOGS:
        model, run = name.split("/")
        (path,) = (tmp_path / "pq").glob(f"dt=*/model={model}/{run}.parquet")
        table = pq.read_table(path, partitioning=None)
        assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
        assert str(table.schema.field("level").type).startswith("dictionary<values=string")
        rows = [as_ndjson_record(row) for row in table.to_pylist()]
        assert rows == ndjson_records(tmp_path / "nd" / f"{name}.ndjson")
    (first,) = (tmp_path / "pq").glob("dt=*/model=mdl-a/r01.parquet")
    rows = pq.read_table(first, partitioning=None).to_pylist()
    assert [r["part"] for r in rows if r["part"]] == [1, 2, 3]  # the long line, as NDJSON has it
    assert "\ufffd" in rows[2]["message"] and rows[1]["message"].endswith("😀")
    assert rows[1]["level"] == "warning" and rows[-1]["message"].endswith("no final newline")


def test_duckdb_reads_the_hive_partitioned_archive(exported: Any) -> None:
    tmp_path, _ = exported
    glob = str(tmp_path / "pq" / "**" / "*.parquet")
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT dt, model, run_id, count(*) AS n, count(timestamp) AS stamped, "
        f"max(level) FILTER (WHERE level = 'error') AS err "
        f"FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY ALL ORDER BY run_id, model"
    ).fetchall()
    manifests = {}
    for path in (tmp_path / "pq").rglob("*.manifest.json"):
        manifest = json.loads(path.read_bytes())
        manifests[manifest["run"]["fields"]["model_id"], manifest["run"]["fields"]["run_id"]] = (
            manifest)
    assert [(model, run) for _, model, run, *_ in rows] == [("mdl-a", "r01"), ("mdl-a", "r02")]
    for dt, model, run, count, stamped, err in rows:
        manifest = manifests[model, run]
        assert str(dt) == manifest["run"]["completed"][:10]
        assert count == manifest["records"]
        records = ndjson_records(tmp_path / "nd" / model / f"{run}.ndjson")
        assert stamped == sum(1 for r in records if r["epoch"] is not None)
        assert err == ("error" if any(r["level"] == "error" for r in records) else None)
    assert rows[0][3] == 9 and rows[1][3:] == (300, 300, None)
    assert con.execute(
        f"SELECT count(*) FROM read_parquet('{glob}') WHERE message LIKE '%caf_ %'"
    ).fetchone() == (1,)


def test_manifest_verify_and_ledger_rebuild(exported: Any) -> None:
    tmp_path, config = exported
    for path in (tmp_path / "pq").rglob("*.parquet"):
        manifest = json.loads(Path(f"{path}.manifest.json").read_bytes())
        data = path.read_bytes()
        assert data[:4] == b"PAR1" and data[-4:] == b"PAR1"  # no outer stream
        assert (manifest["format"], manifest["compression"]) == ("parquet", "zstd")
        assert manifest["object"]["size"] == len(data)
        assert manifest["records"] == pq.ParquetFile(path).metadata.num_rows
        codecs = {pq.ParquetFile(path).metadata.row_group(0).column(i).compression
                  for i in range(9)} if manifest["records"] else {"ZSTD"}
        assert codecs == {"ZSTD"}
    sink = open_sink(config, "archive")
    ledger = SQLiteLedger(tmp_path / "state")
    report = verify(sink, ledger=ledger)
    assert report.passed and (report.objects, report.ok) == (3, 3)
    ledger.close()

    path = tmp_path / "config.toml"
    write_config(path, two_sinks(tmp_path))
    shutil.rmtree(tmp_path / "state")
    runner = CliRunner()
    rebuilt = runner.invoke(main, ["ledger", "rebuild", "-c", str(path)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "sink archive" in rebuilt.stdout and "restored 3" in rebuilt.stdout
    again = logarchive.export(logarchive.load_config(path))
    assert again.exported == 0  # nothing delivered twice

    (victim,) = (tmp_path / "pq").glob("dt=*/model=mdl-a/r02.parquet")
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    report = verify(open_sink(config, "archive"))
    assert [(f.kind, f.path.rsplit("/", 1)[-1]) for f in report.findings] == [
        ("corrupt", "r02.parquet")]


def encode(data: bytes, chunk: int, **options: Any) -> tuple[list[bytes], bytes]:
    """Run the encoder over ``data`` cut into chunks; the bytes each call returned, and all."""
    builder = RecordBuilder({"source": "s", "run_id": "r"})
    encoder = ParquetEncoder(options.pop("compression", "zstd"), None, {"source": "s",
                                                                        "run_id": "r"}, **options)
    out = [encoder.header()]
    for start in range(0, len(data), chunk):
        out.append(encoder.encode_batch(builder.feed(data[start:start + chunk])))
    out.append(encoder.encode_batch(builder.finish()))
    out.append(encoder.footer())
    return out, b"".join(out)


def test_row_groups_are_written_as_they_fill() -> None:
    data = b"".join(b"2026-03-15T09:31:00.000Z [INFO] line %d of the log\n" % i
                    for i in range(20_000))
    parts, whole = encode(data, 4096, row_group_bytes=64 * 1024)
    meta = pq.ParquetFile(io.BytesIO(whole)).metadata
    assert meta.num_rows == 20_000 and meta.num_row_groups > 5
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert max(sizes) * 30 < 64 * 1024 + 4096 * 2  # a row group holds about 64 KiB of text
    emitted = [len(p) for p in parts[:-1]]
    assert sum(1 for n in emitted if n) >= meta.num_row_groups - 1  # bytes leave as groups fill
    assert parts[-1] and len(parts[-1]) < len(whole) / 2  # the footer is not the whole file
    assert encode(data, 4096, row_group_bytes=64 * 1024)[1] == whole  # same log, same bytes


@pytest.mark.parametrize("compression,codec", [("gzip", "GZIP"), ("none", "UNCOMPRESSED")])
def test_compression_is_the_column_codec(compression: str, codec: str) -> None:
    _, whole = encode(b"2026-03-15T09:31:00.000Z [INFO] hello\n" * 50, 1000,
                      compression=compression)
    meta = pq.ParquetFile(io.BytesIO(whole)).metadata
    assert whole[:4] == b"PAR1" and meta.row_group(0).column(3).compression == codec


def config_error(tmp_path: Path, **sink: Any) -> str:
    path = write_config(tmp_path / "c.toml", archive_config(tmp_path, str(tmp_path / "a"),
                                                           sink={"format": "parquet", **sink}))
    result = CliRunner().invoke(main, ["config", "check", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def test_config_refuses_what_parquet_cannot_do(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert "compression_level needs compression 'zstd' or 'gzip'" in config_error(
        tmp_path, compression="none", compression_level=3)
    assert "over gzip's 9" in config_error(tmp_path, compression="gzip", compression_level=12)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # injected fault: the extra is missing
    assert "pip install 'logarchive[parquet]'" in config_error(tmp_path)


def test_parquet_defaults_to_zstd_and_the_extension_is_parquet(tmp_path: Path) -> None:
    config = parse_config(archive_config(tmp_path, str(tmp_path / "a"),
                                         sink={"format": "parquet"}), base_dir=tmp_path)
    assert open_sink(config, "archive").config.compression == "zstd"
    assert logarchive.codec.extension("parquet", "zstd") == "parquet"


# What a txt or NDJSON export to local files never needs: the extras, cloud filesystems, and rich
# (the progress bar, on a terminal only).
NOT_IMPORTED = ("pyarrow", "numpy", "duckdb", "dask", "distributed", "psycopg", "psycopg_pool",
                "pgserver", "starlette", "uvicorn", "jinja2", "s3fs", "gcsfs", "rich", "pygments")


@pytest.mark.parametrize("codec", ["per-line", "default"])
def test_txt_and_ndjson_exports_never_import_an_extra(tmp_path: Path, codec: str) -> None:
    """Per line nothing; by default (the columnar codec, as the extra is installed) the NDJSON
    of lines other than the fast shapes uses pyarrow and numpy, and nothing else."""
    write_logs(tmp_path / "logs")
    document = archive_config(tmp_path, str(tmp_path / "txt"))
    document["sinks"]["records"] = {"type": "fs", "url": str(tmp_path / "nd"), "format": "ndjson"}
    path = write_config(tmp_path / "c.toml", document)
    code = ("import sys\nfrom logarchive.cli import main\n"
            f"try:\n    main(['export', '-c', {str(path)!r}])\nexcept SystemExit as exc:\n"
            "    assert not exc.code, exc.code\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {NOT_IMPORTED!r}))")
    env = {k: v for k, v in os.environ.items() if k != "LOGARCHIVE_CODEC"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**env, "LOGARCHIVE_CODEC": "per-line"}
                          if codec == "per-line" else env)
    assert done.returncode == 0, done.stderr
    imported = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    allowed = set() if codec == "per-line" else {"pyarrow", "numpy"}
    assert {m.split(".")[0] for m in imported} <= allowed, imported
    assert len(list((tmp_path / "nd").rglob("*.ndjson"))) == 3


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.sampled_from([
    b"\n", b"\r\n", b"\xff", b"\xe2\x82", "é😀".encode(), b"\x00\t\"\\", b"x" * 70,
    b"2026-03-13T10:00:00.123Z [INFO] ", b"2026-03-13 10:00:00,5 +0100 [warn] ", b"plain ",
]), max_size=40).map(b"".join), chunk=st.integers(1, 300))
def test_rows_equal_the_records_on_any_input(data: bytes, chunk: int) -> None:
    """Under both builders (the delivery gives a Parquet target the columnar one), in row groups
    of a few rows each: every row group has the same level dictionary whatever levels it holds."""
    builder = RecordBuilder({"source": "s"}, 64)
    records = []
    for start in range(0, len(data), chunk):
        records += builder.feed(data[start:start + chunk]).records()
    records += builder.finish().records()
    for record in records:
        record["epoch"] = timestamp_to_epoch(record.pop("timestamp"))
    for columnar in (False, True):
        encoder = ParquetEncoder("zstd", None, {"source": "s"}, row_group_bytes=200)
        builder = new_builder({"source": "s"}, 64, columnar)
        out = [encoder.encode_batch(builder.feed(data[s:s + chunk]))
               for s in range(0, len(data), chunk)]
        out += [encoder.encode_batch(builder.finish()), encoder.footer()]
        rows = pq.read_table(io.BytesIO(b"".join(out))).to_pylist()
        assert [as_ndjson_record(row) for row in rows] == records, columnar
