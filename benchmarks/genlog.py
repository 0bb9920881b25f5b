"""Generate a realistic training log of a given size (ISO timestamps, levels, epochs, losses,
some long lines, some invalid UTF-8), fast and deterministic.

    python benchmarks/genlog.py OUT.log SIZE_MB
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone


def lines(seed: int = 7):
    rng = random.Random(seed)
    t = datetime(2026, 3, 13, 10, 0, tzinfo=timezone.utc)
    epoch = 0
    levels = ["INFO"] * 40 + ["DEBUG"] * 8 + ["WARN"] * 3 + ["ERROR"]
    while True:
        t += timedelta(milliseconds=rng.randint(1, 900))
        stamp = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
        roll = rng.random()
        level = rng.choice(levels)
        if roll < 0.0005:
            body = "Traceback payload " + "x" * rng.randint(2000, 200_000)
        elif roll < 0.001:
            yield f"{stamp} [WARN] sensor bytes ".encode() + bytes([0xFF, 0xFE, 0x80]) + b"\n"
            continue
        elif roll < 0.05:
            epoch += 1
            body = (f"Epoch {epoch}/100000 - Loss: {rng.random():.4f} - "
                    f"Val_Loss: {rng.random():.4f} - lr: {rng.random() / 100:.6f}")
        else:
            body = (f"step {rng.randint(0, 10**7)} worker-{rng.randint(0, 7)} "
                    f"throughput={rng.random() * 1000:.1f} samples/s grad_norm={rng.random():.3f}")
        yield f"{stamp} [{level}] {body}\n".encode()


def write_log(out: str, size_mb: float, entries: Iterator[bytes]) -> None:
    """Write ``size_mb`` MiB to ``out``: a 16 MiB block of ``entries`` built once and repeated
    (fast to produce gigabytes, still realistic)."""
    target = int(size_mb * 1024 * 1024)
    block, size = [], 0
    for entry in entries:
        block.append(entry)
        size += len(entry)
        if size >= 16 * 1024 * 1024:
            break
    data = b"".join(block)
    written = 0
    with open(out, "wb") as handle:
        while written < target:
            piece = data[: target - written]
            handle.write(piece)
            written += len(piece)


def main() -> None:
    write_log(sys.argv[1], float(sys.argv[2]), lines())


if __name__ == "__main__":
    main()
