"""Where an aggregator export spends its time: py-spy on the real CLI, summed by what it does.

    python benchmarks/profile_records.py LOG {datadog,splunk} [--rate 200]

Starts benchmarks/count_receiver.py in its own process (it only decompresses and counts, as in
run.py's ``records``), records ``logarchive export`` with ``py-spy record --format raw`` (all
threads), and prints the share of samples whose innermost known frame is in each of: payload building
(``encode_columns`` / ``encode`` / the batching of events), the codec, gzip, HTTP, waiting for an
in-flight slot or an answer. Extra sink keys as ``--set max_in_flight=4``; the codec from the
environment (``LOGARCHIVE_CODEC=columnar``). py-spy comes from pip (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import LOGARCHIVE, count_receiver, received, run_folder, write_config  # noqa: E402

CATEGORIES = [
    ("waiting (in-flight slot, acknowledgements)", ("_dispatch", "Condition.wait",
                                                    "_wait_settled", "poll_until")),
    ("payload building", ("send_batch", "encode_column", "IntakeProtocol.", "HecProtocol.",
                          "BatchingDelivery.send ", "BatchingDelivery._add", "Packed",
                          "_packed", "EventIds", "epoch_seconds", "join_events")),
    ("codec", ("Builder.feed", "Builder.finish", "columnar.py", "parse.py", "LineBatch",
               "ColumnBatch", "codec.py")),
    ("gzip", ("gzip", "zlib")),
    ("http", ("httpx", "httpcore")),
    ("ledger", ("ledger.py", "ledger_pg.py")),
    ("source read / hash", ("sourcestream", "SourceStats", "read_chunks")),
]


def categorise(stack: str) -> str:
    """The category of the innermost frame that names one (``send_batch`` calls the codec's
    ``arrow()``: those samples are the codec's, not payload building)."""
    for frame in reversed(stack.split(";")):
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "other (start-up, imports, engine)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log")
    parser.add_argument("sink", choices=["datadog", "splunk"])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra sink key (an integer value), e.g. max_in_flight=4")
    args = parser.parse_args()
    extra = {k: int(v) for k, _, v in (item.partition("=") for item in args.set)}
    work = Path(tempfile.mkdtemp(prefix="logarchive-profile-"))
    with count_receiver() as url:
        key = "api_key" if args.sink == "datadog" else "token"
        config = write_config(work / "c.toml", state=work / "state",
                              source={"type": "files", "url": str(run_folder(work,
                                                                             Path(args.log)))},
                              sink={"type": args.sink, "url": url, key: "bench", **extra})
        raw = work / "profile.txt"
        subprocess.run(["py-spy", "record", "--format", "raw", "-r", str(args.rate), "-o",
                        str(raw), "--", LOGARCHIVE, "-q", "export", "-c", str(config)],
                       check=True, capture_output=True)
        seen = received(url)
    totals: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        totals[categorise(stack)] += int(count)
    whole = sum(totals.values())
    print(f"{args.sink}: {whole} samples, {seen} events received")
    for name, count in totals.most_common():
        print(f"  {name:42s} {100 * count / whole:5.1f}%")


if __name__ == "__main__":
    main()
