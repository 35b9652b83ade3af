#!/usr/bin/env python3
"""Run a command and report the peak of its anonymous memory (RssAnon), Linux only.

`/usr/bin/time -f %M` reports the peak resident set, which for `dcnet aggregate` includes the
memory-mapped round logs (page cache, shared with the kernel, not the process's own heap). The
issue's memory bound is about anonymous memory, so this samples `RssAnon` from
/proc/PID/status every few milliseconds (summed over the process's threads' shared address
space, i.e. once per process) and prints the largest value seen, with the peak resident set
for comparison.

Usage: scripts/peak_anon.py [--interval-ms 10] -- COMMAND [ARGS...]
"""

import argparse
import subprocess
import sys
import time


def read_status(pid):
    fields = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "VmHWM", "VmRSS"):
                    fields[key] = int(value.split()[0])  # kB
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    started = time.monotonic()
    child = subprocess.Popen(command)
    peak_anon = 0
    peak_rss = 0
    while child.poll() is None:
        fields = read_status(child.pid)
        if fields:
            peak_anon = max(peak_anon, fields.get("RssAnon", 0))
            peak_rss = max(peak_rss, fields.get("VmHWM", 0))
        time.sleep(args.interval_ms / 1000.0)
    elapsed = time.monotonic() - started
    print(
        f"peak RssAnon {peak_anon / 1024:.1f} MiB, peak RSS (incl. mapped logs) "
        f"{peak_rss / 1024:.1f} MiB, {elapsed:.1f} s, exit {child.returncode}",
        file=sys.stderr,
    )
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
