#!/usr/bin/env python3
"""Prints hyperfine JSON exports as a markdown table of medians (ms), with
each command's median relative to the first command's."""
import json
import statistics
import sys

for path in sys.argv[1:]:
    results = json.load(open(path))["results"]
    base = statistics.median(results[0]["times"])
    print("| command | median | mean | min | max | vs first |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        t = r["times"]
        med = statistics.median(t)
        print(
            f"| {r['command']} | {med*1e3:.2f} ms | {statistics.mean(t)*1e3:.2f} ms"
            f" | {min(t)*1e3:.2f} ms | {max(t)*1e3:.2f} ms | {med/base:.2f}x |"
        )
    print()
