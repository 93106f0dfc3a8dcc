"""The long fuzzing run, for a person: ``tox -e fuzz -- --minutes 30``.

Each target of ``targets.py`` runs under atheris (libFuzzer, coverage-guided)
in a process of its own, for an equal share of the minutes. Corpora live in
``.fuzz-corpus/<target>/`` (gitignored; pass ``--corpus DIR`` to keep them
elsewhere) and grow from run to run; they start from the targets' seeds.
Inputs that crash, hang (``--timeout`` seconds for one input) or push a
process past ``--rss-limit-mb`` are written to ``<corpus>/<target>-artifacts/``
and make the run fail. At the end it prints, per target: executions,
crashes, corpus size, and resident memory early in the run and at its peak
(growth between the two would mean something accumulates).

    python tests/fuzz/run.py --minutes 30 [--targets qmp,loader] [--corpus DIR]
    python tests/fuzz/run.py --replay DIR/qmp-artifacts/crash-...   # reproduce one input
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_CORPUS = ROOT / ".fuzz-corpus"
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")
_RSS = re.compile(r"rss: (\d+)Mb")


def _targets() -> dict[str, object]:
    sys.path.insert(0, str(HERE))
    import targets

    return dict(targets.TARGETS)


def worker(name: str, seconds: int, corpus: Path, rss_limit: int, timeout: int) -> None:
    """Run one target under libFuzzer in this process (never returns normally)."""
    import atheris

    logging.disable(logging.CRITICAL)  # guest errors are expected; keep the output readable
    sys.path.insert(0, str(HERE))
    import targets

    # Import what the targets import lazily, so instrument_all() covers it too.
    import vcpuhp_null.protocol  # noqa: F401

    atheris.instrument_all()
    target = targets.TARGETS[name]
    directory = corpus / name
    directory.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(targets.SEEDS[name]):
        (directory / f"seed-{index}").write_bytes(seed)
    if name == "loader":
        (directory / "seed-elf").write_bytes(targets.elf_seed())
    artifacts = corpus / f"{name}-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [sys.argv[0], str(directory), f"-max_total_time={seconds}",
            f"-rss_limit_mb={rss_limit}", f"-timeout={timeout}", "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/", "-max_len=4096", "-print_pcs=0"]
    atheris.Setup(argv, target)
    atheris.Fuzz()


def run(minutes: float, names: list[str], corpus: Path, rss_limit: int,
        timeout: int) -> int:
    """Fuzz each target for its share of ``minutes``; print and return the outcome."""
    share = max(int(minutes * 60 / len(names)), 1)
    results = []
    for name in names:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", name, "--seconds", str(share),
             "--corpus", str(corpus), "--rss-limit-mb", str(rss_limit),
             "--timeout", str(timeout)],
            capture_output=True, text=True, check=False)
        log = proc.stdout + proc.stderr
        (corpus / f"{name}.log").write_text(log)
        stats = {key: int(value) for key, value in _STAT.findall(log)}
        rss = [int(v) for v in _RSS.findall(log)]
        artifacts = sorted(p.name for p in (corpus / f"{name}-artifacts").glob("*"))
        results.append({
            "target": name, "seconds": round(time.monotonic() - started),
            "exit": proc.returncode, "execs": stats.get("number_of_executed_units", 0),
            "peak_rss_mb": stats.get("peak_rss_mb", max(rss, default=0)),
            "early_rss_mb": rss[min(2, len(rss) - 1)] if rss else 0,
            "corpus": len(list((corpus / name).glob("*"))), "crashes": artifacts,
        })
        print(json.dumps(results[-1]), flush=True)
    (corpus / "summary.json").write_text(json.dumps(results, indent=2))
    failed = [r["target"] for r in results if r["exit"] != 0 or r["crashes"]]
    total = sum(int(str(r["execs"])) for r in results)
    print(f"fuzz: {total} executions over {len(results)} targets; "
          f"{'failed: ' + ', '.join(failed) if failed else 'no crash, hang or OOM'}")
    return 1 if failed else 0


def replay(path: Path) -> int:
    """Run the target named by ``path`` (``<corpus>/<target>-artifacts/...``) on it once."""
    name = path.parent.name.removesuffix("-artifacts")
    _targets()[name](path.read_bytes())  # type: ignore[operator]
    print(f"{path}: no failure")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0, help="total fuzzing time")
    parser.add_argument("--targets", default=",".join(_targets()),
                        help="comma-separated targets (default: all)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rss-limit-mb", type=int, default=1024)
    parser.add_argument("--timeout", type=int, default=60, help="seconds for one input")
    parser.add_argument("--replay", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=int, default=60, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.replay)
    if args.worker is not None:
        worker(args.worker, args.seconds, args.corpus, args.rss_limit_mb, args.timeout)
        return 0
    names = [n for n in args.targets.split(",") if n]
    unknown = set(names) - set(_targets())
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}; "
                     f"valid: {', '.join(_targets())}")
    args.corpus.mkdir(parents=True, exist_ok=True)
    return run(args.minutes, names, args.corpus, args.rss_limit_mb, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
