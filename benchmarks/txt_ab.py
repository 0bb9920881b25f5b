"""The txt archive (sha256 + line count) of this tree against a git ref and `cat + sha256sum`,
interleaved sample by sample, wall and CPU time, on both generators' logs (issue 15 item 3).

    python benchmarks/txt_ab.py --base main --sizes 128,1024 --runs 5

The base side is the same venv and plugins with ``git archive BASE src`` first on PYTHONPATH, so
only core differs. Also an empty export (a folder with no logs): start-up alone. Prints a
Markdown table; CPU is user+sys of the process and its children (``wait4``), which load on a
shared machine disturbs much less than wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402  (benchmarks/ is not a package)
    REPO, Series, export_cmd, fresh, interleave, make_log, measure, run_folder,
    write_config,
)


def base_tree(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    # Both sides start from bytecode, also under PYTHONDONTWRITEBYTECODE (which would make the
    # base compile every module on every run, and this tree each module changed since).
    for tree in (into / "src", REPO / "src", *REPO.glob("plugins/*/src")):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree)], check=True,
                       stdout=subprocess.DEVNULL)
    return into / "src"


def export_side(work: Path, name: str, folder: Path, env: dict[str, str]):
    base = work / "out" / name
    config = write_config(work / f"{name}.toml", state=base / "state",
                          source={"type": "files", "url": str(folder)},
                          sink={"type": "fs", "url": str(base / "archive"),
                                "path": "{run_id}.{ext}", "format": "txt"})
    return fresh(base), lambda: measure(export_cmd(config), env=env)


def cell(series: Series, nbytes: int) -> str:
    wall, cpu = series.median("seconds"), series.median("cpu")
    rate = f", {nbytes / 1e6 / wall:.0f} MB/s" if nbytes else ""
    return f"{wall:.2f} s wall{rate}, {cpu:.2f} s CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git ref to compare with")
    parser.add_argument("--sizes", default="128", help="MiB, comma-separated")
    parser.add_argument("--logs", default="fast,mixed")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", default="/tmp/logarchive-bench")
    args = parser.parse_args()
    work = Path(args.workdir)
    tmp = Path(tempfile.mkdtemp(prefix="txt-ab-"))
    base_env = {**os.environ, "PYTHONPATH": str(base_tree(args.base, tmp))}
    ours_env = dict(os.environ)
    empty = work / "src" / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    print(f"load before: {os.getloadavg()}")
    print(f"| log | cat + sha256sum | {args.base} | this tree | ratio {args.base} | "
          "ratio this tree | CPU ratio this tree |")
    print("|---|---|---|---|---|---|---|")
    starts = interleave(args.runs, [export_side(work, "ab-empty-base", empty, base_env),
                                    export_side(work, "ab-empty-ours", empty, ours_env)])
    print(f"| empty export (start-up) | | {cell(starts[0], 0)} | {cell(starts[1], 0)} | | | |")
    for size in (int(s) for s in args.sizes.split(",")):
        for kind in args.logs.split(","):
            log = make_log(work, size, kind)
            folder, nbytes = run_folder(work, log), log.stat().st_size
            dst = work / "out" / "ab-cat" / "copy.txt"
            cat = (fresh(dst.parent), lambda: measure(f"cat {log} > {dst} && sha256sum {dst}"))
            base, ours, baseline = interleave(args.runs, [
                export_side(work, "ab-base", folder, base_env),
                export_side(work, "ab-ours", folder, ours_env), cat])
            ratio = [baseline.median() / s.median() for s in (base, ours)]
            cpu_ratio = baseline.median("cpu") / ours.median("cpu")
            print(f"| {kind} {size} MiB | {cell(baseline, nbytes)} | {cell(base, nbytes)} | "
                  f"{cell(ours, nbytes)} | {ratio[0]:.2f}x | {ratio[1]:.2f}x | "
                  f"{cpu_ratio:.2f}x |", flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
