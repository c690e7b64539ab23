#!/usr/bin/env python3
"""One table from several atman-eval runs (docs/quality.md), recomputed from
their per-question values, over the questions every selected row has.

Each argument is RUN[:METHOD,METHOD...]: an atman-eval JSON (atman.eval/1) and
the methods to take from it (default: all). A row is named after its method,
with the run's AtMan factor appended when it is not 0.1, so runs with
different --factor values can share a table. --lines A-B keeps only the
questions on those lines (0-based, inclusive).

  benchmarks/atman-eval-table.py eval.json eval-factor0.3.json:atman-multiplicative --lines 0-9

The metrics are atman-eval's: mAP, mAR, their interquartile means (the mean
of the values v with q25 <= v <= q75, q25 = v_floor((n-1)/4) and
q75 = v_ceil(3(n-1)/4) of the sorted values), the mean deletion rises, and
the paired count of questions on which each row's AP beats the first row's.
Standard library only.
"""
import argparse
import json
import math
import sys


def fail(message):
    sys.exit(f"atman-eval-table: {message}")


def interquartile_mean(values):
    v = sorted(values)
    n = len(v)
    low, high = v[(n - 1) // 4], v[math.ceil(3 * (n - 1) / 4)]
    kept = [x for x in v if low <= x <= high]
    return sum(kept) / len(kept)


def mean(values):
    return sum(values) / len(values)


def rows_of(argument):
    path, _, names = argument.partition(":")
    try:
        with open(path, encoding="utf-8") as f:
            run = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    if run.get("schema") != "atman.eval/1":
        fail(f"{path}: not atman.eval/1")
    methods = run["methods"]
    chosen = names.split(",") if names else list(methods)
    rows = []
    for name in chosen:
        if name not in methods:
            fail(f"{path}: no method {name} (has: {', '.join(methods)})")
        if "questions" not in methods[name]:
            fail(f"{path}: method {name} has no per-question values (an atman-eval older than --factor)")
        factor = run["protocol"]["factor"]
        label = name if not name.startswith("atman") or factor == 0.1 else f"{name} (factor {factor:g})"
        rows.append((label, methods[name]))
    return rows


def table(rows, lines):
    common = set.intersection(*(set(m["questions"]) for _, m in rows))
    if lines is not None:
        common &= {str(k) for k in range(lines[0], lines[1] + 1)}
    if not common:
        fail("the rows have no question in common")
    keys = sorted(common, key=int)
    first_ap = [rows[0][1]["questions"][k]["AP"] for k in keys]
    percents = list(rows[0][1]["questions"][keys[0]]["deletion"])
    out = [f"N = {len(keys)} questions (lines {keys[0]}-{keys[-1]})", "",
           "| method | mAP | mAR | mAP_IQ | mAR_IQ | " + " | ".join(f"deletion {p}%" for p in percents) +
           f" | AP above {rows[0][0]}'s |",
           "|---|" + "---:|" * (5 + len(percents))]
    for label, m in rows:
        q = [m["questions"][k] for k in keys]
        ap, ar = [x["AP"] for x in q], [x["AR"] for x in q]
        wins = sum(a > b for a, b in zip(ap, first_ap))
        losses = sum(a < b for a, b in zip(ap, first_ap))
        cells = [mean(ap), mean(ar), interquartile_mean(ap), interquartile_mean(ar)]
        cells += [mean([x["deletion"][p] for x in q]) for p in percents]
        out.append(f"| {label} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {wins} of {len(keys)}"
                   + (f" ({losses} below)" if label != rows[0][0] else "") + " |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN[:METHODS]", help="atman-eval JSON and its methods")
    parser.add_argument("--lines", help="A-B: only the questions on lines A to B")
    args = parser.parse_args()
    lines = None
    if args.lines:
        try:
            lines = tuple(int(x) for x in args.lines.split("-"))
        except ValueError:
            lines = ()
        if len(lines) != 2 or lines[0] < 0 or lines[1] < lines[0]:
            fail(f"--lines: expected A-B with 0 <= A <= B, got {args.lines}")
    rows = [row for argument in args.runs for row in rows_of(argument)]
    print(table(rows, lines))


if __name__ == "__main__":
    main()
