"""Every kind of secret configured at once, a full and a failed export at debug level: no secret
in stdout, stderr, the ledger or any manifest."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytest.importorskip("logarchive_rest")
pytest.importorskip("logarchive_obs")
pytest.importorskip("logarchive_splunk")
pytest.importorskip("logarchive_datadog")

from logarchive_testsupport.processes import EXE  # noqa: E402
from logarchive.testing.servers import LoopbackServer  # noqa: E402
from logarchive_datadog.testing import API_KEY, IntakeReceiver  # noqa: E402
from logarchive_obs.testing import ACCESS_KEY, ModelArtsAPI, OBSStorage  # noqa: E402
from logarchive_obs.testing import TOKEN as OBS_TOKEN  # noqa: E402
from logarchive_rest.testing import SESSION, TrainingAPI, WorkflowAPI  # noqa: E402
from logarchive_rest.testing import TOKEN as BEARER  # noqa: E402
from logarchive_splunk.testing import TOKEN as HEC_TOKEN  # noqa: E402
from logarchive_splunk.testing import HecReceiver  # noqa: E402

JOB = "2cd88daa-31a4-40a8-a58f-d186b0e93e4f"
FAST = "http = { read_timeout = 2, retry = { max_retries = 1, backoff_initial = 0.01 } }"


def config(tmp: Path, training: str, workflows: str, modelarts: str, hec: str, intake: str) -> str:
    return f"""
[logarchive]
state_dir = "{tmp / 'state'}"
workers = 2

[sources.training]
type = "rest"
preset = "training-metrics"
base_url = "{training}"
auth = {{ bearer = "${{TRAINING_API_TOKEN}}" }}
runs = [{{ model_id = "mdl-7f3a", run_id = "run-1" }}]
{FAST}

[sources.workflows]
type = "rest"
preset = "workflow-jobs"
base_url = "{workflows}"
auth = {{ cookie = {{ session = "${{WORKFLOW_SESSION}}" }} }}
jobs = [{{ workflow_id = "01JGXYZ", job_id = "01JGABC" }}]
{FAST}

[sources.modelarts]
type = "obs"
endpoint = "{modelarts}"
project_id = "0a1b2c"
token = "${{MODELARTS_TOKEN}}"
training_jobs = ["{JOB}"]
{FAST}

[sinks.archive]
type = "fs"
url = "{tmp / 'archive'}"
format = "ndjson"

[sinks.splunk]
type = "splunk"
url = "{hec}"
token = "${{SPLUNK_HEC_TOKEN}}"
ack = true
http = {{ retry = {{ max_retries = 1, backoff_initial = 0.01 }} }}

[sinks.datadog]
type = "datadog"
url = "{intake}"
api_key = "${{DD_API_KEY}}"
http = {{ retry = {{ max_retries = 1, backoff_initial = 0.01 }} }}
"""


@pytest.mark.scenario(
    "secrets in every output",
    "bearer token, session cookie, ModelArts token, presigned OBS signature and access key, HEC "
    "token, Datadog API key configured at once; a full and a failed export at -v (debug): zero "
    "occurrences in stdout, stderr, the ledger file and every manifest; credentials in a URL are "
    "refused without being printed",
)
def test_no_secret_in_any_output(tmp_path: Path, record) -> None:
    training, workflows = TrainingAPI(), WorkflowAPI()
    training.add("mdl-7f3a", "run-1", b"2026-03-13T10:00:00.123Z [INFO] training\n" * 500)
    workflows.add("01JGXYZ", "01JGABC")
    storage = OBSStorage()
    modelarts = ModelArtsAPI("0a1b2c", storage)
    issued: list[str] = []
    sign = storage.sign

    def remember(key: str) -> str:
        issued.append(sign(key))
        return issued[-1]

    storage.sign = remember  # type: ignore[method-assign]
    servers = [LoopbackServer(training), LoopbackServer(workflows), LoopbackServer(storage),
               LoopbackServer(modelarts)]
    for server in servers:
        server.start()
    storage.url, modelarts.url = servers[2].url, servers[3].url
    modelarts.add(JOB, {"worker-0": b"2026-03-13T10:00:00.000Z [INFO] task\n" * 500},
                  tasks=["worker-0"])
    hec, intake = HecReceiver(ack=True).start(), IntakeReceiver().start()
    env = {"TRAINING_API_TOKEN": BEARER, "WORKFLOW_SESSION": SESSION,
           "MODELARTS_TOKEN": OBS_TOKEN, "SPLUNK_HEC_TOKEN": HEC_TOKEN, "DD_API_KEY": API_KEY}
    path = tmp_path / "c.toml"
    path.write_text(config(tmp_path, servers[0].url, servers[1].url, servers[3].url,
                           hec.server.url, intake.server.url))
    outputs: dict[str, str] = {}
    try:
        full = subprocess.run([EXE, "-v", "export", "-c", str(path)], capture_output=True,
                              text=True, env={**_env(), **env}, timeout=300)
        assert full.returncode == 0, full.stdout + full.stderr
        assert "exported 3 run(s)" in full.stdout
        outputs["full stdout"], outputs["full stderr"] = full.stdout, full.stderr
        # Now everything fails: receivers answer 500, the storage and the APIs are gone.
        hec.always = intake.always = "server_error"
        for server in servers[2:]:
            server.stop()
        failed = subprocess.run([EXE, "-vv", "export", "-c", str(path), "--force"],
                                capture_output=True, text=True, env={**_env(), **env},
                                timeout=300)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        outputs["failed stdout"], outputs["failed stderr"] = failed.stdout, failed.stderr
    finally:
        hec.stop()
        intake.stop()
        for server in servers[:2]:
            server.stop()
    for extra in ("ledger.sqlite3", "ledger.sqlite3-wal"):
        file = tmp_path / "state" / extra
        if file.exists():
            outputs[extra] = file.read_bytes().decode("latin-1")
    manifests = list((tmp_path / "archive").rglob("*.manifest.json"))
    assert len(manifests) == 3
    for manifest in manifests:
        outputs[manifest.name] = manifest.read_text()
    url_creds = tmp_path / "creds.toml"
    url_creds.write_text(path.read_text().replace(f'url = "{hec.server.url}"',
                                                  'url = "https://admin:hunter2-pass@splunk:8088"'))
    refused = subprocess.run([EXE, "config", "check", "-c", str(url_creds)],
                             capture_output=True, text=True, env={**_env(), **env})
    assert refused.returncode == 2 and "sinks.splunk.url" in refused.stderr
    outputs["credentials-in-URL error"] = refused.stdout + refused.stderr
    signatures = {link.split("Signature=")[1].split("&")[0] for link in issued}
    assert signatures, "the OBS links were never issued"
    secrets = {"bearer token": BEARER, "session cookie": SESSION, "ModelArts token": OBS_TOKEN,
               "OBS access key": ACCESS_KEY, "HEC token": HEC_TOKEN, "Datadog key": API_KEY,
               "URL password": "hunter2-pass",
               **{f"signature {i}": s for i, s in enumerate(sorted(signatures))}}
    leaks = [f"{what} in {where}" for where, text in outputs.items()
             for what, secret in secrets.items() if secret in text]
    assert leaks == []
    record(f"{len(secrets)} secret values searched in {len(outputs)} outputs "
           f"({sum(len(t) for t in outputs.values())} characters): 0 found")


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
