#!/usr/bin/env python3
"""Time two or more builds of a command in alternation and report their wall-time medians.

On a shared or virtual machine the speed drifts by several percent within minutes, so two
builds timed one after the other can differ by more than a change makes. Running them in
turn, A B A B ..., lets both see the same drift; the medians and ranges are what bench/README
records. Every build runs the same arguments; its output goes to /dev/null, and a failing
run stops the comparison with its exit status.

Usage: scripts/alternate.py [--runs 10] --build OLD --build NEW -- ARGS...
Example:
    cp target/release/dcnet /tmp/dcnet-old   # before the change
    scripts/alternate.py --build /tmp/dcnet-old --build target/release/dcnet -- \\
        aggregate --quiet --graph /tmp/dcbench/graph.csv --out /tmp/g.csv /tmp/empty.dclog
"""

import argparse
import statistics
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each build (default 10)")
    parser.add_argument("--build", action="append", required=True, help="a program to time")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the arguments")
    options = parser.parse_args()
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    times = {build: [] for build in options.build}
    for _ in range(options.runs):
        for build in options.build:
            start = time.perf_counter()
            done = subprocess.run(
                [build, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
            )
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"{build} exited with status {done.returncode}")
            times[build].append(elapsed)
    for build, runs in times.items():
        print(
            f"{build}: median {statistics.median(runs):.3f} s, "
            f"range {min(runs):.3f}-{max(runs):.3f} s over {len(runs)} runs"
        )


if __name__ == "__main__":
    main()
