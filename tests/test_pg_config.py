"""The ``ledger`` and ``lease_seconds`` keys through the real CLI: the URL's password comes from
the environment and is masked everywhere, ``logarchive check`` connects to the database, a bad
URL or a missing extra is one clear error, and nothing imports psycopg without a PostgreSQL
ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from logarchive import parse_config
from logarchive.errors import ConfigError
from logarchive.ledger import open_ledger
from logarchive_testsupport.archives import write_config
from logarchive_testsupport.workspace import base_config, write_logs

PASSWORD = "ledger-pw-7f3a9c"  # the server trusts local sockets: any password connects


def config_with(tmp_path: Path, ledger: str | None, **settings: object) -> Path:
    write_logs(tmp_path / "logs", {"m/r1.log": b"one\ntwo\n", "m/r2.log": b"three\n"})
    document = base_config(tmp_path)
    if ledger is not None:
        document["logarchive"]["ledger"] = ledger
    document["logarchive"].update(settings)
    return write_config(tmp_path / "c.toml", document)


def with_password(pg_url: str) -> str:
    """``postgresql://postgres:@/db?host=...`` with ``${LEDGER_PASSWORD}`` as its password."""
    return pg_url.replace("postgres:@", "postgres:${LEDGER_PASSWORD}@", 1)


def test_the_password_comes_from_the_environment_and_never_prints(
        tmp_path: Path, pg_url: str, run_cli) -> None:
    path = config_with(tmp_path, with_password(pg_url))
    env = {"LEDGER_PASSWORD": PASSWORD}
    outputs = []
    shown = run_cli("ledger", "show", "-c", str(path), env=env)
    assert shown.returncode == 0 and "no ledger at postgresql://***@/" in shown.stderr
    outputs.append(shown)
    exported = run_cli("-v", "export", "-c", str(path), env=env)
    assert exported.returncode == 0, exported.stderr
    assert "exported 2 run(s)" in exported.stdout
    outputs.append(exported)
    checked = run_cli("check", "-c", str(path), "--json", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [ledger] = [c for c in json.loads(checked.stdout)["checks"] if c["kind"] == "ledger"]
    assert ledger["status"] == "ok" and ledger["detail"].startswith("postgresql://***@/")
    outputs.append(checked)
    wrong = path.read_text().replace(pg_url.split("?")[0].rsplit("/", 1)[1], "no_such_db")
    (tmp_path / "wrong.toml").write_text(wrong)
    failed = run_cli("check", "-c", str(tmp_path / "wrong.toml"), env=env)
    assert failed.returncode == 1
    assert "failed  ledger ledger (postgresql)" in failed.stdout
    assert 'database "no_such_db" does not exist' in failed.stdout
    outputs.append(failed)
    for result in outputs:
        assert PASSWORD not in result.stdout + result.stderr


def test_a_ledger_that_is_not_a_postgresql_url_is_refused(tmp_path: Path, run_cli) -> None:
    path = config_with(tmp_path, "mysql://db.internal/logs")
    result = run_cli("export", "-c", str(path))
    assert result.returncode == 2
    assert "logarchive.ledger" in result.stderr and "expected a postgresql:// URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_lease_seconds_is_checked(tmp_path: Path) -> None:
    write_logs(tmp_path / "logs", {"m/r1.log": b"one\n"})
    document = base_config(tmp_path)
    document["logarchive"]["lease_seconds"] = 0
    with pytest.raises(ConfigError, match="logarchive.lease_seconds"):
        parse_config(document)


def test_without_the_postgres_extra_the_error_names_it(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    document = base_config(tmp_path)
    document["logarchive"]["ledger"] = "postgresql://logarchive@db.invalid/logs"
    config = parse_config(document)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # the extra is not installed
    monkeypatch.delitem(sys.modules, "logarchive.ledger_pg", raising=False)
    with pytest.raises(ConfigError) as caught:
        open_ledger(config)
    assert caught.value.exit_code == 2
    assert "pip install 'logarchive[postgres]'" in str(caught.value)


def test_a_sqlite_export_never_imports_psycopg(tmp_path: Path) -> None:
    path = config_with(tmp_path, None)
    code = ("import sys, logarchive\n"
            f"summary = logarchive.export(logarchive.load_config({str(path)!r}))\n"
            "assert summary.exported == 2, summary.text()\n"
            "print(sorted(m for m in sys.modules if m.startswith(('psycopg', "
            "'logarchive.ledger_pg'))))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def run_all(run_cli, path: Path, env: dict[str, str]) -> tuple[list[Any], str]:
    """export (-vv), ledger show (-vv), config show and check (-vv): results and all output."""
    runs = [run_cli("-vv", "export", "-c", str(path), env=env),
            run_cli("-vv", "ledger", "show", "-c", str(path), env=env),
            run_cli("config", "show", "-c", str(path), env=env),
            run_cli("-vv", "check", "-c", str(path), "--json", env=env)]
    return runs, "\n".join(r.stdout + r.stderr for r in runs)


def test_a_password_with_url_characters_is_the_password_and_never_prints(
        tmp_path: Path, pg_url: str, run_cli) -> None:
    # Pasted raw, '@' made part of it the host, '/' the database: the URL (with it) was printed.
    password = "Kx7q@Vb9/wQ#z:Zt4m &%2F"
    path = config_with(tmp_path, with_password(pg_url))
    runs, text = run_all(run_cli, path, {"LEDGER_PASSWORD": password})
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    assert "exported 2 run(s)" in runs[0].stdout
    database = pg_url.split("?")[0].rsplit("/", 1)[1]
    socket_dir = pg_url.split("host=")[1].split("&")[0]
    [ledger] = [c for c in json.loads(runs[3].stdout)["checks"] if c["kind"] == "ledger"]
    assert ledger["status"] == "ok"
    assert ledger["detail"].startswith(f"postgresql://***@/{database}?host={socket_dir}: ")
    pieces = [password, "Kx7q", "Vb9", "wQ#z", "Zt4m", "%2F", "Kx7q%40"]
    assert [p for p in pieces if p in text] == []


def test_password_like_query_parameters_never_print(tmp_path: Path, pg_url: str,
                                                    run_cli) -> None:
    url = f"{pg_url}&password=qpw%40secret1&sslpassword=sslpw-secret3"
    runs, text = run_all(run_cli, config_with(tmp_path, url), {})
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    for piece in ("qpw%40secret1", "qpw@secret1", "secret1", "sslpw-secret3"):
        assert piece not in text


@pytest.mark.parametrize("url,commands", [
    ("postgresql://u:topsecret-pw1@127.0.0.1:1/db", [("export",), ("ledger", "show")]),
    ("postgresql://u:topsecret-pw2@/db?host=/nonexistent-dir", [("ledger", "rebuild")]),
])
def test_an_unusable_database_at_start_is_one_line_and_exit_2(tmp_path: Path, run_cli, url,
                                                              commands) -> None:
    path = config_with(tmp_path, url)
    for args in commands:
        out = run_cli(*args, "-c", str(path))
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        [line] = out.stderr.strip().splitlines()
        assert line.startswith("error: ledger postgresql://***@") and "cannot be opened" in line
        assert "topsecret" not in out.stdout + out.stderr


def test_a_missing_database_at_start_is_exit_2(tmp_path: Path, pg_url: str, run_cli) -> None:
    url = pg_url.replace(pg_url.split("?")[0].rsplit("/", 1)[1], "no_such_db_x")
    out = run_cli("export", "-c", str(config_with(tmp_path, url)))
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert 'database "no_such_db_x" does not exist' in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
