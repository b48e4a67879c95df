"""KDD's hot path before and after it went through its dataset schema (issue 26 item 1).

Decodes and encodes the first 50,000 rows of ``corrected`` as a worker does (Kafka messages holding
the JSON values a replay writes, keyed, with the ``label`` header; batches of the worker's default
size) with the code of commit ``BEFORE`` (``decode_kdd`` and ``KddEncoder``, read from git into
temporary modules) and with this checkout's (``decoder_for`` and the kdd99 schema's encoder), in one
process, alternating batch by batch, and prints the throughput of each and the ratio new / old (the
issue asks for at least 0.98). It also checks that both give the same matrices. Time is the process's
CPU time (one thread does the work), so other load on the machine does not tilt the ratio.

    ANOMSTREAM_DATA_DIR=/path/to/data PYTHONPATH=. python scripts/hot-path-ratio.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from confluent_kafka import Message

from consumers.decoding import decoder_for
from models.features import RecordsRaw, protocol_encoder
from producers.kdd import encode_rows
from stream.datasets import find_kdd_file, is_attack, read_kdd
from stream.datasets.schema import builtin_schema
from stream.settings import load_settings

BEFORE = "c9b5abe"  # the last commit with decode_kdd and KddEncoder
ROWS = 50_000
ROOT = Path(__file__).resolve().parents[1]


def _module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"<{BEFORE}:{name}>"
    sys.modules[name] = module  # dataclasses look their module up while the class body runs
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def old_code() -> tuple[types.ModuleType, types.ModuleType]:
    """models/features.py and consumers/decoding.py as they were at ``BEFORE``."""

    def show(path: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:{path}"], check=True,
                              capture_output=True, text=True).stdout  # fmt: skip

    features = _module("_old_features", show("models/features.py"))
    decoding = show("consumers/decoding.py").replace(
        "from models.features import", "from _old_features import"
    )
    return features, _module("_old_decoding", decoding)


def messages(frame) -> list[Message]:
    values, labels = encode_rows(frame), frame["label"].astype(str).tolist()
    return [
        Message(
            topic="kdd.connections",
            partition=0,
            offset=i,
            key=f"corrected-0-{i:07d}".encode(),
            value=value,
            headers=[("label", label.encode())],
        )  # fmt: skip
        for i, (value, label) in enumerate(zip(values, labels, strict=True))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    settings = load_settings()
    batch = settings.batch_size
    frame = read_kdd(find_kdd_file(settings.data_dir, "test"), limit=ROWS)
    batches = [(m := messages(frame))[i : i + batch] for i in range(0, len(frame), batch)]
    normal = np.flatnonzero(~np.asarray(is_attack(frame["label"])))

    old_features, old_decoding = old_code()
    old_encoder = old_features.KddEncoder("full").fit(old_features.KddRaw.from_frame(frame.iloc[normal]))
    schema = builtin_schema("kdd99")
    new_encoder = protocol_encoder(schema).fit(RecordsRaw.from_frame(frame.iloc[normal], schema))
    new_decode = decoder_for("kdd", new_encoder)

    def old(part: list[Message]) -> np.ndarray:
        return old_encoder.transform(old_decoding.decode_kdd(part).raw)

    def new(part: list[Message]) -> np.ndarray:
        return new_encoder.transform(new_decode(part).raw)

    for run in (old, new):  # warm both, and check they agree
        out = np.vstack([run(part) for part in batches])
        assert out.shape[0] == len(m), f"{run.__name__}: {out.shape[0]} rows decoded of {len(m)}"
    same = np.vstack([old(p) for p in batches]).tobytes() == np.vstack([new(p) for p in batches]).tobytes()

    # Alternating batch by batch (who goes first alternating too): a change in the machine's load hits
    # both alike.
    seconds: dict[str, list[float]] = {"old": [], "new": []}
    for repeat in range(args.repeats):
        spent = {"old": 0.0, "new": 0.0}
        for i, part in enumerate(batches):
            for run in (old, new) if (repeat + i) % 2 == 0 else (new, old):
                started = time.process_time()
                run(part)
                spent[run.__name__] += time.process_time() - started
        for name, total in spent.items():
            seconds[name].append(total)
    eps = {name: ROWS / statistics.median(times) for name, times in seconds.items()}
    print(
        f"{ROWS:,} corrected rows as messages, batches of {batch:,}, {args.repeats} alternating repetitions"
    )
    print(f"old ({BEFORE}: decode_kdd + KddEncoder): {eps['old']:,.0f} rows per CPU second (median)")
    print(f"new (decoder_for + kdd99 schema encoder): {eps['new']:,.0f} rows per CPU second (median)")
    print(f"identical matrices: {same}")
    print(f"ratio new/old: {eps['new'] / eps['old']:.3f}")
    # The fastest repetition of each: what the code costs when no other process took the cache or core.
    print(f"ratio new/old, fastest repetitions: {min(seconds['old']) / min(seconds['new']):.3f}")


if __name__ == "__main__":
    main()
