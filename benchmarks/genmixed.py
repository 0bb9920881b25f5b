"""Generate a mixed real-world training log (issue 15's workload), fast and deterministic.

    python benchmarks/genmixed.py OUT.log SIZE_MB

Shares by entry (an entry is one line, or one multi-line traceback):

    30.0%  ISO 8601 ``<ts> [LEVEL] ...`` lines (canonical ``...T..:..:..mmmZ``, some ``+01:00``)
    25.0%  Python logging's default format ``2026-03-15 09:30:00,120 - INFO - trainer - ...``
    13.0%  Hugging Face Trainer dicts ``{'loss': 0.31, 'grad_norm': 2.1, ...}``
    10.0%  NCCL lines ``node-0:4002:4107 [0] NCCL INFO Channel 00/02 : 0 1``
    10.0%  JSON lines with their own ``ts``, ``level``, ``event``, escaped quotes, tabs, non-ASCII
     5.0%  multi-line Python tracebacks (4-12 lines)
     4.0%  tqdm progress lines ending in ``\\r`` (several per line, as tqdm writes them)
     1.5%  blank lines
     1.5%  lines with non-ASCII text and invalid UTF-8 bytes
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone

from genlog import write_log

SHARES = [
    ("iso", 30.0), ("pylog", 25.0), ("hf", 13.0), ("nccl", 10.0), ("json", 10.0),
    ("traceback", 5.0), ("tqdm", 4.0), ("blank", 1.5), ("invalid", 1.5),
]
LEVELS = ["INFO"] * 40 + ["DEBUG"] * 8 + ["WARNING"] * 3 + ["WARN"] + ["ERROR"]
PYLOG_LEVELS = ["INFO"] * 40 + ["DEBUG"] * 8 + ["WARNING"] * 4 + ["ERROR"]
WORDS = ["step", "worker", "throughput", "samples/s", "loader", "checkpoint", "saved", "eval",
         "shard", "optimizer", "scheduler", "warmup", "epoch", "batch", "tokens", "gpu"]
UNICODE = ["température", "模型训练", "обучение", "Ünïcödé", "😀 done", "naïve café"]


class Entries:
    def __init__(self, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.t = datetime(2026, 3, 15, 9, 30, tzinfo=timezone.utc)
        self.step = 0

    def tick(self) -> datetime:
        self.t += timedelta(milliseconds=self.rng.randint(1, 700))
        return self.t

    def words(self, n: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(n))

    def iso(self) -> bytes:
        t, rng = self.tick(), self.rng
        if rng.random() < 0.9:
            stamp = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
        else:
            stamp = (t + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+01:00"
        self.step += 1
        return (f"{stamp} [{rng.choice(LEVELS)}] step {self.step} {self.words(3)} "
                f"loss={rng.random():.4f} lr={rng.random() / 100:.6f}\n").encode()

    def pylog(self) -> bytes:
        t, rng = self.tick(), self.rng
        stamp = t.strftime("%Y-%m-%d %H:%M:%S,") + f"{t.microsecond // 1000:03d}"
        level = rng.choice(PYLOG_LEVELS)
        module = rng.choice(["trainer", "data.loader", "torch.distributed", "__main__"])
        return f"{stamp} - {level} - {module} - {self.words(6)} {rng.randint(0, 10**6)}\n".encode()

    def hf(self) -> bytes:
        rng = self.rng
        return (f"{{'loss': {rng.random() * 3:.4f}, 'grad_norm': {rng.random() * 5:.4f}, "
                f"'learning_rate': {rng.random() / 1e4:.4e}, 'epoch': {rng.random() * 10:.2f}}}\n"
                ).encode()

    def nccl(self) -> bytes:
        rng = self.rng
        node, pid = rng.randint(0, 7), rng.randint(1000, 9999)
        return (f"node-{node}:{pid}:{pid + rng.randint(1, 200)} [{rng.randint(0, 7)}] NCCL INFO "
                f"Channel {rng.randint(0, 31):02d}/{32:02d} : {rng.randint(0, 7)} "
                f"{rng.randint(0, 7)} via P2P/IPC\n").encode()

    def json(self) -> bytes:
        t, rng = self.tick(), self.rng
        event = (f'saved "{rng.choice(WORDS)}"\tshard {rng.randint(0, 99)} '
                 f"{rng.choice(UNICODE)} path C:\\ckpt\\{rng.randint(0, 9)}")
        doc = {"ts": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
               "level": rng.choice(["info", "debug", "warning", "error"]), "event": event,
               "step": self.step, "rank": rng.randint(0, 7)}
        return (json.dumps(doc, ensure_ascii=rng.random() < 0.3) + "\n").encode()

    def traceback(self) -> bytes:
        rng = self.rng
        lines = ["Traceback (most recent call last):"]
        for _ in range(rng.randint(1, 5)):
            lines += [f'  File "/opt/train/{rng.choice(WORDS)}.py", line {rng.randint(1, 900)}, '
                      f"in {rng.choice(WORDS)}", f"    {self.words(4)}()"]
        lines.append(f"RuntimeError: CUDA out of memory. Tried to allocate "
                     f"{rng.randint(1, 80)}.00 GiB")
        return ("\n".join(lines) + "\n").encode()

    def tqdm(self) -> bytes:
        rng = self.rng
        parts = []
        for _ in range(rng.randint(1, 4)):
            done = rng.randint(0, 1000)
            parts.append(f"{done / 10:3.0f}%|{'█' * (done // 100)}{' ' * (10 - done // 100)}| "
                         f"{done}/1000 [00:{rng.randint(10, 59)}<00:{rng.randint(10, 59)}, "
                         f"{rng.random() * 20:.2f}it/s]\r")
        return ("".join(parts) + "\n").encode()

    def blank(self) -> bytes:
        return b"\n"

    def invalid(self) -> bytes:
        rng = self.rng
        bad = rng.choice([b"\xff\xfe", b"\x80", b"\xc3", b"\xe6\xa8", b"\xed\xa0\x80"])
        return (f"sensor {rng.choice(UNICODE)} bytes ".encode() + bad
                + f" step {rng.randint(0, 10**5)}\n".encode())


def entries(seed: int = 11):
    gen = Entries(seed)
    names = [name for name, _ in SHARES]
    weights = [share for _, share in SHARES]
    makers = [getattr(gen, name) for name in names]
    rng = random.Random(seed + 1)
    while True:
        for maker in rng.choices(makers, weights, k=1024):
            yield maker()


def main() -> None:
    write_log(sys.argv[1], float(sys.argv[2]), entries())


if __name__ == "__main__":
    main()
