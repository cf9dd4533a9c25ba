#!/usr/bin/env python3
"""How far below the best peer a forecaster can get: an oracle that knows the future.

For each trace directory of `bench/peers/run.sh` (series.csv, forecasts.csv and
peers_metrics.csv), scores on the same targets as `auto`'s forecasts:

- `auto`, promcast's default, as `peers_metrics.csv` has it (the points every model forecast);
- the best peer there and issue 17's bar (85% of the best peer's MASE);
- **neighbour oracles**: for each target, the median of the actual values at the `k` steps
  before and the `k` steps after it (the target itself excluded), for k = 1, 2, 3, 5, 7.
  Such a forecaster knows the series' local level around the target, which no forecast made
  15 or 30 minutes earlier knows; what is left of its error is the noise of the target point
  itself (plus a little of the neighbours' noise, and the level's change over +-k steps). It
  is not a strict lower bound (a model that knows a sharp pattern exactly could beat it at
  some points), but a forecast at a fixed lead that comes close to it is implausible.

MASE as `promcast backtest` computes it: per series the mean absolute error over the series'
in-sample scale (series.csv), averaged over series.

Usage: oracle.py OUT_DIR [TRACE...]   (the directory bench/peers/run.sh wrote; numpy)
"""
import csv
import math
import os
import sys
from collections import defaultdict

import numpy as np

HORIZONS = ["15m", "30m", "1h"]
KS = [1, 2, 3, 5, 7]
PROMCAST = {"naive", "seasonal_naive", "mstl", "lstm", "auto"}


def mase(errors, scales):
    """errors: {series: [abs error]} -> mean over series of mean error / scale."""
    per = [np.mean(v) / scales[s] for s, v in errors.items() if v]
    return float(np.mean(per)) if per else math.nan


def trace(d):
    values, scales = defaultdict(dict), {}
    for r in csv.DictReader(open(f"{d}/series.csv")):
        values[r["series"]][float(r["time"])] = float(r["value"]) if r["value"] else math.nan
        scales[r["series"]] = float(r["scale"])
    steps = {s: float(np.median(np.diff(sorted(v)))) for s, v in values.items() if len(v) > 1}
    metrics = {(r["model"], r["horizon"]): float(r["mase"])
               for r in csv.DictReader(open(f"{d}/peers_metrics.csv"))}
    oracle = {h: {k: defaultdict(list) for k in KS} for h in HORIZONS}
    for r in csv.DictReader(open(f"{d}/forecasts.csv")):
        h = r["horizon"]
        if r["model"] != "auto" or h not in oracle:
            continue
        s, t, actual = r["series"], float(r["target"]), float(r["actual"])
        if math.isnan(actual) or s not in steps:
            continue
        for k in KS:
            around = [values[s].get(t + j * steps[s], math.nan) for j in range(-k, k + 1) if j]
            around = [x for x in around if not math.isnan(x)]
            if around:
                oracle[h][k][s].append(abs(float(np.median(around)) - actual))
    rows = []
    for h in HORIZONS:
        peers = {m: v for (m, hh), v in metrics.items() if hh == h and m not in PROMCAST}
        if not peers:
            continue
        best = min(peers, key=peers.get)
        ors = {k: mase(oracle[h][k], scales) for k in KS}
        rows.append((h, metrics.get(("auto", h), math.nan), best, peers[best], ors))
    return rows


def traces(doc, every=True):
    """OUT_DIR from the command line and the trace directories to read under it: those named
    after it, else every one with a peers_metrics.csv (without the every-origin runs,
    `NAME.every`, unless `every`). Shared with bar.py."""
    if len(sys.argv) < 2:
        sys.exit(doc)
    out = sys.argv[1]
    names = sys.argv[2:] or sorted(n for n in os.listdir(out)
                                   if os.path.exists(f"{out}/{n}/peers_metrics.csv")
                                   and (every or not n.endswith(".every")))
    return out, names


def main():
    out, names = traces(__doc__)
    print("| trace | horizon | `auto` | best peer | bar (0.85 x best peer) | "
          + " | ".join(f"oracle k={k}" for k in KS) + " | best oracle vs bar |")
    print("|---|---|---|---|---|" + "---|" * len(KS) + "---|")
    for n in names:
        for h, auto, best, bv, ors in trace(f"{out}/{n}"):
            bar = 0.85 * bv
            lo = min(ors.values())
            print(f"| {n} | {h} | {auto:.3f} | {best} {bv:.3f} | {bar:.3f} | "
                  + " | ".join(f"{ors[k]:.3f}" for k in KS)
                  + f" | {100 * (bar / lo - 1):+.1f}% |")


if __name__ == "__main__":
    main()
