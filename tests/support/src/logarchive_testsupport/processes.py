"""Reliability-suite pieces: real `logarchive export` processes, archive invariants."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fsspec
import zstandard

EXE = str(Path(sys.executable).parent / "logarchive")


def make_logs(root: Path, runs: int, lines_per_run: int, blank_every: int = 0
              ) -> dict[str, bytes]:
    """Runs named m/run-N.log with realistic lines (every ``blank_every``-th one blank or
    whitespace only, alternately); returns {run_id: bytes}."""
    logs = {}
    for n in range(runs):
        body = b"".join(
            (b"\n" if i % (2 * blank_every) else b" \t \n") if blank_every and i % blank_every == 0
            else f"2026-03-13T10:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z [INFO] run {n} "
            f"step {i} loss={1 / (i + 1):.6f}\n".encode()
            for i in range(lines_per_run)
        )
        path = root / "m" / f"run-{n}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        logs[f"run-{n}"] = body
    return logs


def toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, dict) else (
        "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }")


def write_tables(path: Path, state: Path, sources: dict[str, dict[str, Any]],
                 sinks: dict[str, dict[str, Any]], **settings: Any) -> Path:
    """A config with ``[logarchive]`` (``state_dir`` and ``settings``), then one table per
    source and per sink."""
    lines = ["[logarchive]", f"state_dir = {json.dumps(str(state))}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()] + [""]
    for kind, tables in (("sources", sources), ("sinks", sinks)):
        for name, table in tables.items():
            lines.append(f"[{kind}.{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
            lines.append("")
    path.write_text("\n".join(lines))
    return path


def write_config(path: Path, state: Path, logs: Path, sinks: dict[str, dict[str, Any]],
                 workers: int = 2, chunk_size: int = 65536) -> Path:
    """:func:`write_tables` with one ``files`` source ``logs`` (``<model_id>/<run_id>.log``)."""
    source = {"type": "files", "url": str(logs),
              "fields": "(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\\.log$"}
    return write_tables(path, state, {"logs": source}, sinks, workers=workers,
                        chunk_size=chunk_size)


def start_export(config: Path, *args: str, env: dict[str, str] | None = None
                 ) -> subprocess.Popen[str]:
    return subprocess.Popen([EXE, "-q", "export", "-c", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def run_export(config: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "export", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def kill_after(process: subprocess.Popen[str], seconds: float, sig: int = signal.SIGKILL
               ) -> bool:
    """Send ``sig`` after ``seconds`` unless the process ended first; True if it was signalled."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    process.send_signal(sig)
    process.wait(timeout=60)
    return True


def ledger_statuses(state: Path) -> list[str]:
    """The status of every (run, sink) in the ledger under ``state``, read while an export may
    be writing it; none before the ledger exists."""
    if not (state / "ledger.sqlite3").exists():
        return []
    db = sqlite3.connect(f"file:{state / 'ledger.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        return sorted(row[0] for row in db.execute("SELECT status FROM deliveries"))
    except sqlite3.OperationalError:  # created, no table yet
        return []
    finally:
        db.close()


def decode_object(path: str, data: bytes) -> bytes:
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def check_archive(fs: fsspec.AbstractFileSystem, root: str, logs: dict[str, bytes],
                  fmt: str) -> list[str]:
    """Every run archived exactly once, bytes equal to the source, every object with its
    manifest, no manifest without object, nothing else under a final name. Returns problems."""
    problems: list[str] = []
    found = fs.find(root) if fs.exists(root) else []
    names = [p[len(root):].lstrip("/") for p in found]
    temps = [n for n in names if n.rsplit("/", 1)[-1].startswith(".")]
    finals = [n for n in names if n not in temps]
    objects = [n for n in finals if not n.endswith(".manifest.json")]
    manifests = [n for n in finals if n.endswith(".manifest.json")]
    for obj in objects:
        if f"{obj}.manifest.json" not in manifests:
            problems.append(f"object without manifest: {obj}")
    for man in manifests:
        if man[: -len(".manifest.json")] not in objects:
            problems.append(f"manifest without object: {man}")
    by_run: dict[str, list[str]] = {}
    for obj in objects:
        run_id = obj.rsplit("/", 1)[-1].split(".", 1)[0]
        by_run.setdefault(run_id, []).append(obj)
    for run_id, data in logs.items():
        copies = by_run.get(run_id, [])
        if len(copies) != 1:
            problems.append(f"{run_id}: {len(copies)} objects")
            continue
        stored = decode_object(copies[0], fs.cat(f"{root}/{copies[0]}"))
        if fmt == "txt":
            if stored != data:
                problems.append(f"{run_id}: archived bytes differ from the source")
        else:
            messages = [json.loads(line)["message"] for line in stored.splitlines()]
            if messages != data.decode().splitlines():
                problems.append(f"{run_id}: records differ from the source lines")
    extra = set(by_run) - set(logs)
    if extra:
        problems.append(f"unexpected objects for {sorted(extra)}")
    return problems
