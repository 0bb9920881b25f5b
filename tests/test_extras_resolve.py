"""What each storage extra pulls in, checked cheaply (the fresh-venv install is the slow test in
test_production_install.py, and it installs [s3] only).

The dependency closure of a requirement is walked over our own pyproject.toml files (so it is
the checkout's, not what was installed earlier) and, past them, over the declared dependencies
of the installed distributions (the development install has every extra). ``pip install
--dry-run --report`` gives the same answer from the index but takes over a minute here.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCAL = {canonicalize_name(tomllib.loads(p.read_text())["project"]["name"]): p
         for p in [ROOT / "pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml")]}
S3_STACK = {"s3fs", "aiobotocore", "botocore", "boto3"}
GCS_STACK = {"gcsfs", "google-cloud-storage"}


def declared(name: str, extras: frozenset[str]) -> list[Requirement]:
    """The requirements ``name[extras]`` declares that apply here."""
    if name in LOCAL:
        project = tomllib.loads(LOCAL[name].read_text())["project"]
        optional = project.get("optional-dependencies", {})
        for extra in extras:
            assert extra in optional, f"{name} has no extra [{extra}]"
        texts = [*project.get("dependencies", []), *(d for e in extras for d in optional[e])]
        return [Requirement(t) for t in texts]
    out = []
    for text in metadata.distribution(name).requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e})
                                     for e in (extras or {""})):
            out.append(req)
    return out


def closure(requirement: str) -> set[str]:
    """Every distribution installing ``requirement`` pulls in (normalised names)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(requirement)]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key not in seen:
            seen.add(key)
            todo.extend(declared(*key))
    return {name for name, _ in seen}


@pytest.mark.parametrize("plugin", ["logarchive-fs", "logarchive-files", "logarchive-mlflow",
                                    "logarchive-archive"])
def test_the_gcs_extra_pulls_gcsfs_and_nothing_of_s3(plugin: str) -> None:
    with_gcs = closure(f"{plugin}[gcs]")
    assert GCS_STACK <= with_gcs
    assert not S3_STACK & with_gcs, sorted(S3_STACK & with_gcs)
    with_s3 = closure(f"{plugin}[s3]")
    assert {"s3fs", "aiobotocore"} <= with_s3 and not GCS_STACK & with_s3


def test_core_and_plain_plugins_pull_neither_storage_backend() -> None:
    for requirement in ("logarchive", "logarchive-fs", "logarchive-files", "logarchive-mlflow",
                        "logarchive-archive", "logarchive[query]"):
        pulled = closure(requirement)
        assert not (S3_STACK | GCS_STACK) & pulled, (requirement, sorted(pulled))
