"""``logarchive query`` (DuckDB SQL) and ``logarchive search`` over real archives, through the
CLI: outputs asserted against what the logs hold."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from logarchive.cli import main
from logarchive_testsupport.processes import toml_value

pytest.importorskip("duckdb")
FIELDS = r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$"
LEVELS = ["INFO", "WARN", "ERROR", "DEBUG", "INFO", "CRITICAL"]


def _line(model: str, run: str, i: int) -> str:
    if i % 10 == 0:
        return f"epoch {i // 10} done for {run}"  # no timestamp, no level
    return (f"2024-05-01T12:{i // 60:02d}:{i % 60:02d}.000Z [{LEVELS[i % 6]}] {model}/{run} "
            f"step {i}" + (" NaN loss" if i % 17 == 0 else ""))


RUNS = {("mdl-a", "r1"): 130, ("mdl-a", "r2"): 40, ("mdl-b", "r3"): 75}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    for (model, run), count in RUNS.items():
        path = root / "logs" / model / f"{run}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(_line(model, run, i) + "\n" for i in range(1, count + 1)))
    sinks = {"records": {"format": "ndjson", "compression": "gzip"},
             "zst": {"format": "ndjson", "compression": "zstd"},
             "arrays": {"format": "json"}, "text": {"compression": "zstd"},
             "columns": {"format": "parquet"}}
    lines = ["[logarchive]", f"state_dir = {json.dumps(str(root / 'state'))}", "",
             "[sources.logs]", 'type = "files"', f"url = {json.dumps(str(root / 'logs'))}",
             f"fields = {toml_value(FIELDS)}", ""]
    for name, table in sinks.items():
        lines += [f"[sinks.{name}]", 'type = "fs"', f"url = {json.dumps(str(root / name))}"]
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()] + [""]
    config = root / "logarchive.toml"
    config.write_text("\n".join(lines))
    assert CliRunner().invoke(main, ["export", "-c", str(config)]).exit_code == 0
    return config


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def expected_levels(models=("mdl-a", "mdl-b")) -> Counter:
    names = {"INFO": "info", "WARN": "warning", "ERROR": "error", "DEBUG": "debug",
             "CRITICAL": "critical"}
    return Counter(names[LEVELS[i % 6]] if i % 10 else None
                   for (model, _), count in RUNS.items() if model in models
                   for i in range(1, count + 1))


@pytest.mark.parametrize("sink", ["records", "zst", "arrays"])
def test_query_counts_levels_of_every_record(archive, sink):
    result = run("query", "-c", str(archive), "--sink", sink, "--json",
                 "SELECT level, count(*) AS n FROM logs GROUP BY 1")
    assert result.exit_code == 0, result.output
    assert {r["level"]: r["n"] for r in json.loads(result.stdout)} == expected_levels()


def test_query_where_scans_only_matching_runs_and_csv(archive):
    result = run("query", "-c", str(archive), "--sink", "records", "--csv",
                 "--where", "model_id=mdl-a",
                 "SELECT run_key, run_id, count(*) AS n, min(seq) AS first, max(time) AS last "
                 "FROM logs GROUP BY ALL ORDER BY run_key")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["run_key"], r["run_id"], int(r["n"]), r["first"]) for r in rows] == [
        ("logs/model_id=mdl-a/run_id=r1", "r1", 130, "1"),
        ("logs/model_id=mdl-a/run_id=r2", "r2", 40, "1")]
    assert rows[0]["last"].startswith("2024-05-01 12:02:09")


def test_query_runs_has_one_row_per_manifest_and_a_table_on_a_terminal(archive):
    result = run("query", "-c", str(archive), "--sink", "text",
                 "SELECT model_id, run_id, format, lines FROM runs ORDER BY run_id")
    assert result.exit_code == 0, result.output
    for model, run_id, count in (("mdl-a", "r1", 130), ("mdl-a", "r2", 40), ("mdl-b", "r3", 75)):
        assert any(model in line and run_id in line and "txt" in line and str(count) in line
                   for line in result.output.splitlines())
    empty = run("query", "-c", str(archive), "--sink", "text", "--json",
                "SELECT count(*) AS n FROM logs")
    assert json.loads(empty.stdout) == [{"n": 0}]  # txt objects hold no records


def test_query_errors_are_one_clear_line(archive):
    bad = run("query", "-c", str(archive), "--sink", "records", "SELECT nope FROM logs")
    assert bad.exit_code == 1 and "query failed" in bad.output and "nope" in bad.output
    assert "Traceback" not in bad.output
    unnamed = run("query", "-c", str(archive), "SELECT 1")
    assert unnamed.exit_code == 2 and "--sink" in unnamed.output


def _hits(output: str) -> list[tuple[str, int]]:
    return [(line.split("\t")[0], int(line.split("\t")[1])) for line in output.splitlines()]


@pytest.mark.parametrize("sink", ["records", "text", "columns"])
def test_search_finds_the_lines_of_a_pattern_in_any_format(archive, sink):
    result = run("search", "-c", str(archive), "--sink", sink, r"NaN\s+loss")
    assert result.exit_code == 0, result.output
    expected = [(f"logs/model_id={m}/run_id={r}", i) for (m, r), count in RUNS.items()
                for i in range(1, count + 1) if i % 17 == 0 and i % 10]
    assert _hits(result.stdout) == expected
    first = result.stdout.splitlines()[0].split("\t")
    assert first[2] == "2024-05-01T12:00:17.000Z" and first[3].endswith("step 17 NaN loss")


def test_search_level_where_and_time_filters(archive):
    result = run("search", "-c", str(archive), "--sink", "zst", "--level", "error",
                 "--where", "run_id=r[13]", "--since", "2024-05-01T12:01:00Z",
                 "--until", "2024-05-01T12:02:00Z", "--json", ".")
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [(r, i) for (_, r), count in RUNS.items() if r in ("r1", "r3")
                for i in range(60, min(count + 1, 120)) if i % 10 and i % 6 in (2, 5)]
    assert [(h["run_id"], h["seq"]) for h in hits] == expected
    assert {h["level"] for h in hits} == {"error", "critical"}


def test_search_records_without_timestamp_use_the_run_completion(archive):
    # The runs completed (file mtime) today: untimed records are after 2025, timed ones not.
    result = run("search", "-c", str(archive), "--sink", "records", "--since", "2025-01-01",
                 "--where", "run_id=r2", "done")
    assert _hits(result.stdout) == [("logs/model_id=mdl-a/run_id=r2", i) for i in (10, 20, 30, 40)]


def test_search_bad_input_and_no_match(archive):
    bad = run("search", "-c", str(archive), "--sink", "records", "(unclosed")
    assert bad.exit_code == 2 and "PATTERN" in bad.output and "Traceback" not in bad.output
    level = run("search", "-c", str(archive), "--sink", "records", "--level", "loud", "x")
    assert level.exit_code == 2 and "critical" in level.output
    none = run("search", "-c", str(archive), "--sink", "records", "no such text")
    assert none.exit_code == 1 and none.output == ""


def test_query_reads_an_s3_archive_through_fsspec(tmp_path, s3_bucket):
    logs = tmp_path / "logs" / "mdl-s" / "r9.log"
    logs.parent.mkdir(parents=True)
    logs.write_text("".join(_line("mdl-s", "r9", i) + "\n" for i in range(1, 51)))
    options = toml_value(s3_bucket.storage_options)
    config = tmp_path / "s3.toml"
    config.write_text(
        f'[logarchive]\nstate_dir = {json.dumps(str(tmp_path / "state"))}\n'
        f'[sources.logs]\ntype = "files"\nurl = {json.dumps(str(tmp_path / "logs"))}\n'
        f"fields = {toml_value(FIELDS)}\n"
        f'[sinks.s3]\ntype = "fs"\nurl = "{s3_bucket.url}/archive"\nformat = "ndjson"\n'
        f'compression = "gzip"\nstorage_options = {options}\n')
    assert run("export", "-c", str(config)).exit_code == 0
    result = run("query", "-c", str(config), "--json",
                 "SELECT run_id, count(*) AS n, count(level) AS leveled FROM logs GROUP BY 1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"run_id": "r9", "n": 50, "leveled": 45}]
    found = run("search", "-c", str(config), "NaN")
    assert _hits(found.stdout) == [("logs/model_id=mdl-s/run_id=r9", 17),
                                   ("logs/model_id=mdl-s/run_id=r9", 34)]


def test_query_without_duckdb_names_the_extra(archive, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # injected fault: the extra is missing
    result = run("query", "-c", str(archive), "--sink", "records", "SELECT 1")
    assert result.exit_code == 2 and "pip install 'logarchive[query]'" in result.output
    assert "Traceback" not in result.output


def test_the_cli_does_not_import_duckdb_until_a_query_runs():
    code = "import sys, logarchive.cli; print('duckdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_query_reads_parquet_objects_by_their_manifests(archive, tmp_path):
    """Parquet objects (written here by DuckDB from the ndjson archive, with manifests naming
    the format) join the ndjson ones in `logs`, their missing run fields NULL."""
    import hashlib

    import duckdb

    root = archive.parent
    config = tmp_path / "parquet.toml"
    config.write_text(archive.read_text()
                      + f'\n[sinks.pq]\ntype = "fs"\nurl = "{tmp_path / "pq"}"\n')
    for manifest in (root / "records").rglob("*.manifest.json"):
        doc = json.loads(manifest.read_text())
        target = tmp_path / "pq" / doc["object"]["path"].replace(".ndjson.gz", ".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        source = str(manifest).removesuffix(".manifest.json")
        duckdb.sql(f"COPY (SELECT seq, timestamp, level, message, source, run_id FROM "
                   f"read_json('{source}')) TO '{target}' (FORMAT parquet)")
        data = target.read_bytes()
        doc.update(sink="pq", format="parquet", compression="none")
        doc["object"] = {"path": str(target.relative_to(tmp_path / "pq")),
                         "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        Path(f"{target}.manifest.json").write_text(json.dumps(doc))
    result = run("query", "-c", str(config), "--sink", "pq", "--json",
                 "SELECT level, count(*) AS n, count(model_id) AS with_model FROM logs GROUP BY 1")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["level"]: r["n"] for r in rows} == expected_levels()
    assert all(r["with_model"] == 0 for r in rows)  # not a column of these Parquet objects


TRICKY = ['say "hi" to loss', 'C:\\\\temp\\\\loss.txt', "tab\there loss", "ünïcödé loss ✓",
          "loss", "   leading loss", "x" * 150 + " long loss line", 'quote" at loss end"',
          "\\", "plain line", "2024-05-01T12:00:00Z [ERROR] loss at the end"]


@pytest.mark.parametrize("pattern", [r'"hi"', r"\\", r"\\temp", r"\s+loss", r"loss$", r"^loss",
                                     r"\bloss\b", r"(?<!\w)loss", r"ü.*✓", r".", r"loss|",
                                     r"\t", r'end"$', r"s\sl", r"(?s)loss.line"])
def test_search_fast_path_finds_what_decoding_every_record_finds(tmp_path, pattern):
    import re

    from logarchive.pipeline import open_sink
    from logarchive.search import candidate_records, matching_entries, search

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "r1.log").write_text("\n".join(TRICKY * 40) + "\n")
    config_path = tmp_path / "c.toml"
    config_path.write_text(
        f'[logarchive]\nstate_dir = "{tmp_path / "state"}"\n[sources.logs]\ntype = "files"\n'
        f'url = "{tmp_path / "logs"}"\n[sinks.a]\ntype = "fs"\nurl = "{tmp_path / "a"}"\n'
        'format = "json"\nmax_line_bytes = 64\n')
    assert run("export", "-c", str(config_path)).exit_code == 0
    from logarchive.config import load_config

    sink = open_sink(load_config(config_path), "a")
    compiled = re.compile(pattern)
    [entry] = matching_entries(sink, {})
    with sink.read(entry.path) as chunks:
        slow = [r["seq"] * 10 + (r.get("part") or 0)
                for rows in candidate_records(entry, chunks, compiled, fast=False)
                for r in rows if compiled.search(r["message"])]
    fast = [h.seq * 10 + (h.record.get("part") or 0) for h in search(sink, pattern)]
    assert fast == slow and slow


def test_query_json_writes_values_json_has_no_type_for_as_text(archive):
    result = run("query", "-c", str(archive), "--sink", "records", "--json",
                 "SELECT CAST(sum(seq) AS DECIMAL(18, 2)) AS total, INTERVAL 1 DAY AS span "
                 "FROM logs WHERE run_id = 'r2'")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"total": "820.00", "span": "1 day, 0:00:00"}]


def test_a_record_line_without_end_is_refused_not_held() -> None:
    """An ndjson object that is one endless line (no newline): refused once the line passes
    MAX_RECORD_LINE, naming the object and line; the long record before it is still read."""
    from logarchive.search import MAX_RECORD_LINE, BadRecord, archived_records

    long = b'{"seq": 0, "message": "' + b"x" * (1 << 20) + b'"}\n'

    def chunks():
        yield long[:1000]
        yield long[1000:]
        block = b"y" * (1 << 16)
        for _ in range(MAX_RECORD_LINE // len(block) + 2):
            yield block

    batches = archived_records("ndjson", "none", chunks(), {}, "obj.ndjson")
    assert [len(r["message"]) for r in next(batches)] == [1 << 20]
    with pytest.raises(BadRecord, match=r"obj\.ndjson, line 2: longer than"):
        next(batches)
