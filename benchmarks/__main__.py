"""python -m benchmarks [--out DIR] [--smoke] [--only controlplane|dataplane] [--reps N]

Runs the control-plane and data-plane benchmarks, writes results.json, results.md and the
plots under --out, and prints the table. A half that cannot run (the data plane without its
module) is a note in the results; the exit status is non-zero only when a half crashed."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from benchmarks.common import Recorder, progress

HALVES = ("controlplane", "dataplane")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").split("\n\n")[-1]
    )
    parser.add_argument("--out", default="build/bench", help="output folder (default: build/bench)")
    parser.add_argument("--smoke", action="store_true", help="smallest sizes, one repetition")
    parser.add_argument("--only", choices=HALVES, help="run one half only")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 5; smoke 1)")
    args = parser.parse_args(argv)
    reps = args.reps if args.reps is not None else (1 if args.smoke else 5)
    if reps < 1:
        parser.error("--reps must be at least 1")
    record = Recorder()
    crashed = []
    for half in HALVES:
        if args.only and half != args.only:
            continue
        progress(f"{half}: starting ({'smoke' if args.smoke else 'full'}, {reps} rep(s))")
        try:
            module = importlib.import_module(f"benchmarks.{half}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.{half}":
                raise
            record.note(half, f"not measured: benchmarks/{half}.py is absent")
            progress(f"{half}: absent, skipped")
            continue
        try:
            module.run(record, smoke=args.smoke, reps=reps)
        except Exception as exc:
            crashed.append(half)
            record.note(half, f"crashed: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            progress(f"{half}: crashed ({type(exc).__name__}); going on")
        else:
            progress(f"{half}: done")
    written = record.write(args.out)
    print(record.markdown())
    progress("wrote " + ", ".join(str(p) for p in written))
    if crashed:
        progress(f"crashed: {', '.join(crashed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
