"""SQL over an archive with DuckDB (the ``[query]`` extra, imported only here).

Two relations, built from one byte sink's manifests:

- ``runs``: one row per archived object (its manifest): ``run_key``, ``source``, ``status``,
  ``started``, ``completed``, ``exported_at``, ``object``, ``format``, ``compression``,
  ``records``, ``lines``, ``size``, ``sha256``, then one VARCHAR column per run field (NULL for
  a run without it);
- ``logs``: one row per record of the ``ndjson`` and ``json`` objects (gzip, zstd or plain)
  and of ``parquet`` objects (their record columns, whatever their compression):
  ``run_key``, ``seq``, ``timestamp`` (the archived ISO text), ``time`` (the same as a
  TIMESTAMPTZ, UTC), ``level``, ``message``, ``part``, ``partial``, ``continuation``,
  ``source`` and the run fields. ``txt`` objects hold no records: ``logarchive search`` reads
  them through the line codec.

Only the objects whose runs match ``where`` (globs on run fields, as ``search --where``) are
listed in ``runs`` and scanned for ``logs``. Objects on object storage are read through the
sink's own fsspec filesystem (DuckDB's ``register_filesystem``); the httpfs extension is never
needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logarchive.archive import Archived
from logarchive.base import ByteSink
from logarchive.errors import ConfigError, LogarchiveError
from logarchive.search import matching_entries
from logarchive.storage import LOCAL_PROTOCOLS, resolve

RUN_COLUMNS = ("run_key", "source", "status", "started", "completed", "exported_at", "object",
               "format", "compression", "records", "lines", "size", "sha256")
RECORD_COLUMNS = {"seq": "BIGINT", "timestamp": "VARCHAR", "level": "VARCHAR",
                  "message": "VARCHAR", "part": "BIGINT", "partial": "BOOLEAN",
                  "continuation": "BOOLEAN", "source": "VARCHAR"}
COMPRESSION = {"none": "none", "gzip": "gzip", "zstd": "zstd"}
JSON_LAYOUT = {"ndjson": "newline_delimited", "json": "array"}


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def duckdb_module() -> Any:
    """DuckDB, or one clear error naming the extra to install."""
    try:
        import duckdb
    except ImportError:
        raise ConfigError("logarchive query needs DuckDB: pip install 'logarchive[query]'"
                          ) from None
    return duckdb


def query(sink: ByteSink, sql: str, *, where: dict[str, str] | None = None,
          base_dir: Path | None = None) -> QueryResult:
    """Run ``sql`` over ``sink``'s archive (see the module docstring)."""
    duckdb = duckdb_module()
    read_only(duckdb, sql)
    entries = matching_entries(sink, where or {})
    with _connection(duckdb, sink, base_dir) as (con, locate):
        _create_runs(con, sink, entries)
        _confine(con, _create_logs(con, entries, locate))
        try:
            cursor = con.execute(sql)
        except duckdb.Error as exc:
            raise LogarchiveError(f"query failed: {exc}") from None
        columns = [d[0] for d in cursor.description or []]
        return QueryResult(columns, cursor.fetchall() if columns else [])


def read_only(duckdb: Any, sql: str) -> None:
    """Refuse (a usage error) anything but one query: SELECT (WITH, DESCRIBE, SHOW, SUMMARIZE
    and VALUES parse as SELECT) or EXPLAIN, judged by DuckDB's own parser."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ConfigError(f"not SQL: {exc}", key="SQL") from None
    if len(statements) != 1:
        raise ConfigError(f"one statement only, got {len(statements)}", key="SQL")
    kind = statements[0].type
    if kind not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
        raise ConfigError(f"only a query (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE) "
                          f"may run, not {kind.name}", key="SQL")


def _confine(con: Any, files: list[str]) -> None:
    """After the views exist: DuckDB may read the archive's objects and nothing else (no file
    written, read or attached, no extension), and the statement cannot undo that."""
    con.execute("SET allowed_paths = " + _listed(files))
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


@contextmanager
def _connection(duckdb: Any, sink: ByteSink, base_dir: Path | None) -> Iterator[Any]:
    """A DuckDB connection that can read the sink's objects, and ``locate(path)``: the name
    DuckDB reads a relative object path by."""
    cfg = sink.config
    if "url" not in type(cfg).model_fields:
        raise ConfigError(f"sink {sink.name!r} has no url: query reads fsspec archives (fs)",
                          key="--sink")
    options = cfg.storage_options if "storage_options" in type(cfg).model_fields else None
    fs, root, protocol = resolve(cfg.url, base_dir, options)
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        if protocol in LOCAL_PROTOCOLS:
            yield con, lambda path: f"{root}/{path}"
        else:
            con.register_filesystem(fs)
            yield con, lambda path: f"{protocol}://{root}/{path}"
    finally:
        con.close()


def _create_runs(con: Any, sink: ByteSink, entries: list[Archived]) -> None:
    fields = sorted({name for e in entries for name in e.fields} - set(RUN_COLUMNS))
    columns = [*RUN_COLUMNS, *fields]
    types = {"started": "TIMESTAMPTZ", "completed": "TIMESTAMPTZ", "exported_at": "TIMESTAMPTZ",
             "records": "BIGINT", "lines": "BIGINT", "size": "BIGINT"}
    con.execute("CREATE TABLE runs (" + ", ".join(
        f"{_quote(c)} {types.get(c, 'VARCHAR')}" for c in columns) + ")")
    rows = [_run_row(sink, e, fields) for e in entries]
    if rows:
        con.executemany(f"INSERT INTO runs VALUES ({', '.join('?' * len(columns))})", rows)


def _run_row(sink: ByteSink, entry: Archived, fields: list[str]) -> tuple[Any, ...]:
    manifest, run = entry.manifest, entry.run
    source_bytes = manifest.get("source_bytes") or {}
    return (entry.run_key, entry.source, run.get("status"), run.get("started"),
            entry.completed, manifest.get("exported_at"), sink.describe(entry.path),
            manifest.get("format"), manifest.get("compression"), manifest.get("records"),
            source_bytes.get("lines"), manifest["object"]["size"], manifest["object"]["sha256"],
            *(entry.fields.get(f) for f in fields))


def _create_logs(con: Any, entries: list[Archived], locate: Any) -> list[str]:
    """``logs``: a UNION ALL of one reader per format and compression, joined to the runs;
    returns the objects it reads."""
    fields = sorted({name for e in entries for name in e.fields} - set(RECORD_COLUMNS))
    columns = {**RECORD_COLUMNS, **{f: "VARCHAR" for f in fields}}
    groups: dict[tuple[str, str], list[str]] = {}
    objects = []
    for entry in entries:
        fmt = str(entry.manifest.get("format"))
        compression = COMPRESSION.get(str(entry.manifest.get("compression")))
        if (fmt in JSON_LAYOUT and compression) or fmt == "parquet":
            groups.setdefault((fmt, compression or "none"), []).append(locate(entry.path))
            objects.append((locate(entry.path), entry.run_key))
    con.execute("CREATE TABLE objects (filename VARCHAR, run_key VARCHAR)")
    if objects:
        con.executemany("INSERT INTO objects VALUES (?, ?)", objects)
    selects = [_read_parquet(con, files, columns) if fmt == "parquet"
               else _read_json(JSON_LAYOUT[fmt], compression, files, columns)
               for (fmt, compression), files in sorted(groups.items())]
    if not selects:
        empty = ", ".join(f"CAST(NULL AS {t}) AS {_quote(c)}" for c, t in columns.items())
        selects = [f"SELECT {empty}, '' AS filename WHERE false"]
    con.execute(
        "CREATE VIEW logs AS SELECT o.run_key, r.seq, r.timestamp, "
        "TRY_CAST(r.timestamp AS TIMESTAMPTZ) AS time, "
        + ", ".join(f"r.{_quote(c)}" for c in columns if c not in ("seq", "timestamp"))
        + f" FROM ({' UNION ALL '.join(selects)}) AS r JOIN objects AS o USING (filename)")
    return [name for name, _ in objects]


def _read_json(layout: str, compression: str, files: list[str], columns: dict[str, str]) -> str:
    spec = "{" + ", ".join(f"{_literal(c)}: {_literal(t)}" for c, t in columns.items()) + "}"
    return (f"SELECT {', '.join(_quote(c) for c in columns)}, filename FROM read_json("
            f"{_listed(files)}, format = {_literal(layout)}, compression = "
            f"{_literal(compression)}, columns = {spec}, filename = true)")


def _read_parquet(con: Any, files: list[str], columns: dict[str, str]) -> str:
    """Parquet objects: the record columns they have, cast to the view's types; NULL for the
    others (a run field another run has)."""
    source = f"read_parquet({_listed(files)}, union_by_name = true, filename = true)"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    picked = [f"CAST({_quote(c) if c in present else 'NULL'} AS {t}) AS {_quote(c)}"
              for c, t in columns.items()]
    return f"SELECT {', '.join(picked)}, filename FROM {source}"


def _listed(files: list[str]) -> str:
    return "[" + ", ".join(_literal(f) for f in files) + "]"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
