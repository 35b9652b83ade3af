#!/usr/bin/env python3
"""Regenerates data/h25.csv, the BDEW H25 standard household load profile.

Source: the PyPI package `demandlib` (MIT licence, oemof developer group), file
`demandlib/bdew/bdew_data/h25.csv`. The wheel is downloaded with pip (no install needed) and the
table is rewritten with plain ASCII column names: one row per quarter hour of the day, one column
per month and day type (SA = Saturday, FT = Sunday or public holiday, WT = working day). Values
are kWh per quarter hour for an annual consumption of 1,000,000 kWh, exactly as published.

Usage: python3 scripts/fetch_h25.py [--out data/h25.csv] [--version 0.2.2]
"""
import argparse
import csv
import io
import pathlib
import subprocess
import sys
import tempfile
import zipfile

MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
          "September", "Oktober", "November", "Dezember"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/h25.csv")
    parser.add_argument("--version", default="0.2.2", help="demandlib version to take it from")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        f"demandlib=={args.version}", "-d", tmp], check=True)
        wheel = next(pathlib.Path(tmp).glob("demandlib-*.whl"))
        raw = zipfile.ZipFile(wheel).read("demandlib/bdew/bdew_data/h25.csv").decode("utf-8")
    rows = list(csv.reader(io.StringIO(raw)))
    months, day_types, body = rows[0], rows[1], rows[2:]
    header = ["interval"]
    for month, day_type in zip(months[1:], day_types[1:]):
        header.append(f"{MONTHS.index(month) + 1:02d}-{day_type}")
    if len(body) != 96 or len(header) != 37:
        print(f"unexpected shape: {len(body)} rows, {len(header)} columns", file=sys.stderr)
        return 1
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    pathlib.Path(args.out).write_text(out.getvalue())
    print(f"wrote {args.out}: 96 quarter hours x 12 months x 3 day types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
