"""`export --metrics-file` / `--pushgateway`: Prometheus text format, parsed with
prometheus_client's own parser, through the real CLI."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from logarchive_testsupport.archives import write_config
from logarchive_testsupport.workspace import base_config, write_logs

LOGS = {"m/r1.log": b"line one\nline two\n", "m/r2.log": b"only line\n"}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of a Prometheus text document."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def runs(parsed: dict, status: str) -> float:
    key = ("logarchive_runs", (("pipeline", "logs"), ("sink", "archive"), ("status", status)))
    return parsed[key]


LAST_SUCCESS = ("logarchive_last_success_timestamp_seconds", (("pipeline", "logs"),))


def test_metrics_file_counts_runs_bytes_lines_and_keeps_last_success(tmp_path, run_cli):
    write_logs(tmp_path / "logs", LOGS)
    config = write_config(tmp_path / "config.toml", base_config(tmp_path))
    metrics = tmp_path / "textfile" / "logarchive.prom"

    first = run_cli("export", "-c", str(config), "--metrics-file", str(metrics))
    assert first.returncode == 0, first.stdout + first.stderr
    parsed = samples(metrics.read_text())
    assert runs(parsed, "exported") == 2 and runs(parsed, "failed") == 0
    assert runs(parsed, "skipped") == 0 and runs(parsed, "not_ready") == 0
    assert parsed[("logarchive_exported_bytes", (("pipeline", "logs"),))] == sum(
        len(v) for v in LOGS.values())
    assert parsed[("logarchive_exported_lines", (("pipeline", "logs"),))] == 3
    assert parsed[("logarchive_export_exit_code", ())] == 0
    assert ("logarchive_export_duration_seconds", ()) in parsed
    success = parsed[LAST_SUCCESS]
    assert success > 0
    assert [p.name for p in metrics.parent.iterdir()] == ["logarchive.prom"]  # no temp left

    second = run_cli("export", "-c", str(config), "--metrics-file", str(metrics))
    assert second.returncode == 0
    parsed = samples(metrics.read_text())
    assert runs(parsed, "skipped") == 2 and runs(parsed, "exported") == 0
    assert parsed[LAST_SUCCESS] >= success
    success = parsed[LAST_SUCCESS]

    # a failing export keeps the last success of the runs before it
    write_logs(tmp_path / "logs", {"m/r3.log": b"new\n"})
    # the object's path is taken by a folder: the fs sink cannot rename onto it
    (tmp_path / "archive" / "logs" / "m" / "r3.txt").mkdir(parents=True)
    third = run_cli("export", "-c", str(config), "--metrics-file", str(metrics))
    assert third.returncode == 1
    parsed = samples(metrics.read_text())
    assert runs(parsed, "failed") == 1 and runs(parsed, "skipped") == 2
    assert parsed[("logarchive_export_exit_code", ())] == 1
    assert parsed[LAST_SUCCESS] == success


def test_pushgateway_receives_the_same_metrics(tmp_path, run_cli, loopback):
    pushed = []

    def gateway(request):
        pushed.append((request.method, request.path, request.body.decode()))
        request.send(200, b"")

    loopback.handler = gateway
    write_logs(tmp_path / "logs", LOGS)
    config = write_config(tmp_path / "config.toml", base_config(tmp_path))
    result = run_cli("export", "-c", str(config), "--pushgateway", loopback.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(m, p) for m, p, _ in pushed] == [("PUT", "/metrics/job/logarchive")]
    parsed = samples(pushed[0][2])
    assert runs(parsed, "exported") == 2
    assert parsed[LAST_SUCCESS] > 0


def test_unreachable_pushgateway_is_one_clear_error(tmp_path, run_cli, loopback):
    loopback.handler = lambda request: request.send(500, b"down")
    write_logs(tmp_path / "logs", LOGS)
    config = write_config(tmp_path / "config.toml", base_config(tmp_path))
    result = run_cli("export", "-c", str(config), "--pushgateway", loopback.url)
    assert result.returncode == 1
    assert "pushgateway" in result.stderr and "Traceback" not in result.stderr
