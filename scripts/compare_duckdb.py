#!/usr/bin/env python3
"""Times DuckDB and Polars on the frames `dcnet aggregate` reads, and prints the ratio to dcnet.

Usage (after `cargo build --release -p dcnet`):

    pip install duckdb polars pyarrow
    target/release/dcnet bench aggregate --frames 20000000 --dir /tmp/dcbench
    python3 scripts/compare_duckdb.py --dir /tmp/dcbench

The script exports the benchmark log to Parquet with `dcnet export` (once), then measures in
the same run, each `--repeat` times, on a page-cached file:

- dcnet: `dcnet aggregate` on the round log (the whole DESIGN §5 pipeline: CRC and field
  validation, rosters, duplicates, resends, wrapping sums), timed by dcnet itself from mapping
  the log to the settled rounds (the "in X s" of its final line; process start and reading
  graph.csv are not included);
- DuckDB: `group by dc_net_id, round` with a wrapping u64 sum of lane0
  (`(sum(lane0::HUGEINT) % 2^64)::UBIGINT`) over the exported Parquet file;
- Polars: the same group-by with a u64 sum over the same Parquet file (lazy scan, collect).

DuckDB and Polars do much less than dcnet (no validation, no rules): the comparison is the
plain group-by a user would otherwise write. All three use every core. Ratios > 1 mean dcnet
is faster.
"""

import argparse
import glob
import os
import re
import statistics
import subprocess
import sys
import time


def dcnet_seconds(dcnet, graph, log):
    out = subprocess.run(
        [dcnet, "aggregate", "--graph", graph, "--out", os.devnull, log],
        check=True,
        capture_output=True,
        text=True,
    )
    match = re.search(r"in ([0-9.]+) s:", out.stderr)
    if not match:
        sys.exit(f"cannot find the timing line in dcnet's output:\n{out.stderr}")
    return float(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True, help="directory of `dcnet bench aggregate --dir`")
    parser.add_argument("--dcnet", default="target/release/dcnet", help="the dcnet binary")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import duckdb
    import polars as pl

    logs = sorted(glob.glob(os.path.join(args.dir, "bench-*.dclog")))
    if not logs:
        sys.exit(f"no bench-*.dclog in {args.dir}: run `dcnet bench aggregate --dir {args.dir}`")
    log = logs[-1]
    graph = os.path.join(args.dir, "graph.csv")
    parquet = log[: -len(".dclog")] + ".parquet"
    if not os.path.exists(parquet):
        subprocess.run(
            [args.dcnet, "export", "--quiet", "--format", "parquet", "--out", parquet, log],
            check=True,
        )
    frames = duckdb.sql(f"select count(*) from '{parquet}'").fetchall()[0][0]
    print(f"{frames} frames; log {os.path.getsize(log)} bytes, parquet {os.path.getsize(parquet)} bytes")

    query = (
        "select dc_net_id, round, "
        "(sum(lane0::HUGEINT) % 18446744073709551616::HUGEINT)::UBIGINT as lane0 "
        f"from '{parquet}' group by dc_net_id, round"
    )
    con = duckdb.connect()

    def duck():
        started = time.perf_counter()
        con.sql(query).fetchall()
        return time.perf_counter() - started

    def polars():
        started = time.perf_counter()
        (
            pl.scan_parquet(parquet)
            .group_by(["dc_net_id", "round"])
            .agg(pl.col("lane0").sum())
            .collect()
        )
        return time.perf_counter() - started

    # Warm the page cache and each engine once.
    dcnet_seconds(args.dcnet, graph, log)
    duck()
    polars()
    times = {"dcnet": [], "duckdb": [], "polars": []}
    for _ in range(args.repeat):
        times["dcnet"].append(dcnet_seconds(args.dcnet, graph, log))
        times["duckdb"].append(duck())
        times["polars"].append(polars())
    best = {name: min(ts) for name, ts in times.items()}
    print(f"{'tool':<8} {'best s':>8} {'median s':>9} {'M frames/s':>11} {'dcnet speed-up':>15}")
    for name, ts in times.items():
        print(
            f"{name:<8} {best[name]:>8.3f} {statistics.median(ts):>9.3f} "
            f"{frames / best[name] / 1e6:>11.1f} {best[name] / best['dcnet']:>14.2f}x"
        )


if __name__ == "__main__":
    main()
