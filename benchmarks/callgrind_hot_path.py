"""Instructions per line of the decode + encode hot path, counted by callgrind.

Wall-clock figures move ±30% between runs on shared machines; callgrind's instruction
counts do not. This runs OpenStackLogDecoder then ESJsonEncoder (LMA's index and id)
over N corpus lines, twice under `valgrind --tool=callgrind` with two line counts, and
prints the difference per line: start-up and corpus generation cancel out.

    python -m hekapy.benchmarks.callgrind_hot_path [--lines 4000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace


def run(nlines: int, path: str) -> None:
    """The measured body: decode and encode the first `nlines` lines of `path`."""
    from hekapy.benchmarks.openstack_config import es_output
    from hekapy.collector.catalog import load_all
    from hekapy.collector.engine.config import load_config
    from hekapy.collector.engine.message import new_record_message

    registry = load_all()
    state = Path(tempfile.mkdtemp())
    (state / "hekad.toml").write_text(f'[hekad]\nbase_dir = "{state}"\n'
                                      + es_output("http://127.0.0.1:1"))
    encoder = load_config(state / "hekad.toml").resolve("elasticsearch_encoder",
                                                         "Encoder").build()
    cls = registry["OpenStackLogDecoder"]
    options = {k: o.default_value() for k, o in cls.all_options().items()}
    decoder = cls("callgrind", SimpleNamespace(**{**options, "tz": "UTC"}))
    with open(path, "rb") as f:
        lines = [f.readline() for _ in range(nlines)]
    total = 0
    for raw in lines:
        msg = new_record_message(0, "", "nova", "node-1", raw.decode("utf-8", "replace"))
        out = decoder.decode(msg)
        for m in out if isinstance(out, list) else ([out] if out else []):
            total += len(encoder.encode(m))
    for m in decoder.flush():
        total += len(encoder.encode(m))
    print(total)


def write_corpus(path: Path, nlines: int) -> None:
    from hekapy.benchmarks.corpus import Corpus
    corpus = Corpus(seed=3)
    with path.open("w") as f:
        for _ in range(nlines):
            f.write(corpus.oslo_event("nova/nova-api.log"))


def count(nlines: int, path: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, "-m", "hekapy.benchmarks.callgrind_hot_path",
                        "--body", str(nlines), str(path)],
                       check=True, capture_output=True, env={**os.environ})
        m = re.search(r"^summary:\s+(\d+)", out.read_text(), re.M)
        if m is None:
            m = re.search(r"^totals:\s+(\d+)", out.read_text(), re.M)
        assert m is not None
        return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=4000)
    p.add_argument("--body", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.body is not None:
        run(int(args.body[0]), args.body[1])
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.log"
        write_corpus(path, args.lines)
        small, large = count(args.lines // 4, path), count(args.lines, path)
    per_line = (large - small) / (args.lines - args.lines // 4)
    print(f"{per_line / 1000:.1f}k instructions per line (decode + encode, "
          f"{sys.executable}, {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
