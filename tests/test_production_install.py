"""A production install in a fresh venv: core and the chosen plugins from the local paths, no
test tools, no storage backend that was not asked for.

Core + files + fs + splunk installs without s3fs or gcsfs (nor their Google / AWS libraries);
`logarchive plugins` lists them; a local export works; an s3:// sink is one clear error naming the
extra; `pip install './plugins/fs[s3]'` then exports to S3 (moto). Also: importing the package
and opening a gs:// URL change no environment variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from logarchive.testing.fixtures import s3_storage_options
from logarchive_testsupport.archives import write_config
from logarchive_testsupport.workspace import base_config, write_logs

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)


def installed(python: Path) -> set[str]:
    result = run([str(python), "-c", "import importlib.metadata as m, json; "
                  "print(json.dumps([d.metadata['Name'].lower() for d in m.distributions()]))"])
    return set(json.loads(result.stdout))


@pytest.mark.slow
def test_production_install_of_core_fs_and_splunk(tmp_path, s3_bucket):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, cli = env_dir / "bin" / "python", env_dir / "bin" / "logarchive"
    pip = [str(python), "-m", "pip", "install", "-q"]
    done = run([*pip, str(ROOT), str(ROOT / "plugins/files"), str(ROOT / "plugins/fs"),
                str(ROOT / "plugins/splunk")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    names = installed(python)
    assert {"logarchive", "logarchive-fs", "logarchive-files", "logarchive-splunk"} <= names
    for heavy in ("s3fs", "gcsfs", "boto3", "botocore", "aiobotocore", "google-cloud-storage",
                  "google-auth", "moto", "pytest", "prometheus-client"):
        assert heavy not in names, heavy

    listed = run([str(cli), "plugins", "--json"], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {"files", "fs", "splunk"} <= set(listed.stdout.replace('"', " ").split())

    write_logs(tmp_path / "logs", {"m/r1.log": b"hello\n"})
    local = write_config(tmp_path / "local.toml", base_config(tmp_path))
    exported = run([str(cli), "export", "-c", str(local)], cwd=tmp_path)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert (tmp_path / "archive" / "logs" / "m" / "r1.txt").read_bytes() == b"hello\n"

    remote = base_config(tmp_path, sinks={"s3": {
        "type": "fs", "url": f"{s3_bucket.url}/logs",
        "storage_options": s3_storage_options(s3_bucket.endpoint)}})
    remote["logarchive"]["state_dir"] = str(tmp_path / "state-s3")
    remote_config = write_config(tmp_path / "s3.toml", remote)
    refused = run([str(cli), "export", "-c", str(remote_config)], cwd=tmp_path)
    assert refused.returncode == 2
    assert "s3:// needs s3fs: pip install 'logarchive-fs[s3]'" in refused.stderr
    assert "Traceback" not in refused.stderr

    metrics = run([str(cli), "export", "-c", str(local), "--metrics-file",
                   str(tmp_path / "m.prom")], cwd=tmp_path)
    assert metrics.returncode == 2
    assert "pip install 'logarchive[metrics]'" in metrics.stderr

    extra = run([*pip, f"{ROOT / 'plugins/fs'}[s3]"], cwd=tmp_path)
    assert extra.returncode == 0, extra.stderr
    names = installed(python)
    assert "s3fs" in names and "gcsfs" not in names and "google-cloud-storage" not in names
    to_s3 = run([str(cli), "export", "-c", str(remote_config)], cwd=tmp_path)
    assert to_s3.returncode == 0, to_s3.stdout + to_s3.stderr
    assert s3_bucket.fs().cat(f"{s3_bucket.name}/logs/logs/m/r1.txt") == b"hello\n"


def test_importing_and_opening_gs_urls_changes_no_environment_variable(gcs_bucket):
    script = (
        "import os, json, sys\n"
        "before = dict(os.environ)\n"
        "import logarchive, logarchive.plugin_api, logarchive.cli\n"
        "import logarchive_fs, logarchive_files, logarchive_mlflow\n"
        "from logarchive.storage import resolve\n"
        "fs, root, protocol = resolve(sys.argv[1], storage_options=json.loads(sys.argv[2]))\n"
        "fs.ls(root)\n"
        "keys = set(before) | set(os.environ)\n"
        "changed = {k for k in keys if before.get(k) != os.environ.get(k)}\n"
        "print(json.dumps(sorted(changed)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCSFS_", "STORAGE_EMUL"))}
    result = run([sys.executable, "-c", script, gcs_bucket.url,
                  json.dumps(gcs_bucket.storage_options)], env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
