"""Run the fuzz targets of tests/fuzz/targets.py for a given time (scripts/fuzz).

    scripts/fuzz --seconds 60                 # every target, 60 s each
    scripts/fuzz --seconds 600 matcher config # some of them
    scripts/fuzz --list

Engine: atheris (libFuzzer, coverage-guided, on the pure-Python source: HEKAPY_PURE=1
is set so the compiled hot path is instrumented as Python) when it can be imported, from
the environment or from `--atheris-dir` (default /tmp/hekapy-atheris, where
`scripts/fuzz --install-atheris` puts it with pip's --target, outside the project's
venv); otherwise Hypothesis, in rounds of random and seed-mutated inputs until the time
is up. Each target starts from its seed corpus (the test data); atheris keeps what it
finds under `--work` (default /tmp/hekapy-fuzz/<target>/corpus) and writes a crashing
input to /tmp/hekapy-fuzz/<target>/crash-<sha1>. A crash is a finding: make it a
regression in tests/fuzz/test_fuzz.py, fix the plugin.

Prints one line per target (executions, result) and exits 1 if any target failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.paths import REPO

DEFAULT_WORK = Path("/tmp/hekapy-fuzz")
DEFAULT_ATHERIS = Path("/tmp/hekapy-atheris")


def atheris_available(extra: Path) -> bool:
    if extra.is_dir() and str(extra) not in sys.path:
        sys.path.append(str(extra))
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def run_hypothesis(name: str, seconds: float) -> tuple[int, str | None]:
    """Rounds of 500 examples (random seeds each round) until `seconds` pass: the
    executions and the first failure (None: none)."""
    from hypothesis import HealthCheck, given, settings

    from tests.fuzz.targets import all_targets, inputs
    target = all_targets()[name]
    runs = 0

    def counted(data: bytes) -> None:
        nonlocal runs
        runs += 1
        target.check(data)

    for seed in target.seeds():
        counted(seed)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        test = settings(max_examples=500, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))(given(inputs(target))(counted))
        try:
            test()
        except Exception as e:  # the finding: report it with its input
            return runs, f"{type(e).__name__}: {str(e)[:2000]}"
    return runs, None


def atheris_child(name: str, corpus: Path, artifacts: Path, seconds: float) -> None:
    """In its own process (libFuzzer exits the process): fuzz `name`."""
    import atheris

    from tests.fuzz.targets import all_targets
    target = all_targets()[name]
    for seed in target.seeds():  # imports every module the target reaches
        target.check(seed)
    atheris.instrument_all()
    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={int(seconds)}",
                   "-rss_limit_mb=4096", "-print_final_stats=1",
                   f"-artifact_prefix={artifacts}/"], target.check)
    atheris.Fuzz()


def run_atheris(name: str, seconds: float, work: Path, atheris_dir: Path
                ) -> tuple[int, str | None]:
    from tests.fuzz.targets import all_targets
    corpus = work / name / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(all_targets()[name].seeds()):
        (corpus / f"seed-{i}").write_bytes(seed)
    env = {**os.environ, "HEKAPY_PURE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO.parent), str(atheris_dir),
                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz.runner", "--atheris-child",
                           name, "--seconds", str(seconds), "--work", str(work)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (work / name / "libfuzzer.log").write_text(log)
    runs = 0
    for line in log.splitlines():
        if line.startswith("stat::number_of_executed_units:"):
            runs = int(line.split(":")[-1])
    if proc.returncode != 0:
        crashes = sorted((work / name).glob("crash-*"))
        where = f" (input: {crashes[-1]})" if crashes else ""
        tail = "\n".join(log.splitlines()[-25:])
        return runs, f"libFuzzer exited with {proc.returncode}{where}\n{tail}"
    return runs, None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help="target names (all by default; --list)")
    ap.add_argument("--seconds", type=float, default=60.0, help="per target")
    ap.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--atheris-dir", type=Path, default=DEFAULT_ATHERIS)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--atheris-child", metavar="TARGET", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.atheris_child:
        work = args.work / args.atheris_child
        atheris_child(args.atheris_child, work / "corpus", work, args.seconds)
        return 0
    from tests.fuzz.targets import all_targets
    targets = all_targets()
    if args.list:
        print("\n".join(targets))
        return 0
    unknown = set(args.targets) - set(targets)
    if unknown:
        ap.error(f"unknown target(s) {', '.join(sorted(unknown))}; --list shows them")
    if args.seconds <= 0:
        ap.error("--seconds must be positive")
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if atheris_available(args.atheris_dir) else "hypothesis"
    elif engine == "atheris" and not atheris_available(args.atheris_dir):
        ap.error(f"atheris cannot be imported (scripts/fuzz --install-atheris puts it in "
                 f"{args.atheris_dir})")
    os.environ.setdefault("HEKAPY_PURE", "1")
    failed = []
    total = 0
    for name in args.targets or list(targets):
        t0 = time.monotonic()
        if engine == "atheris":
            runs, error = run_atheris(name, args.seconds, args.work, args.atheris_dir)
        else:
            runs, error = run_hypothesis(name, args.seconds)
        total += runs
        took = time.monotonic() - t0
        print(f"{name:42} {engine:10} {runs:>10,} executions in {took:6.1f} s  "
              f"{'FAILED' if error else 'ok'}", flush=True)
        if error:
            failed.append(name)
            print(f"  {error}", flush=True)
    print(f"{len(args.targets or targets)} targets, {total:,} executions, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
