#!/usr/bin/env python3
"""Issue 17's bar, read off bench/peers/run.sh's output: `auto` against every peer on that
peer's own points, and how far a strided sample can move the comparison.

run.sh writes two runs per trace:
- `OUT/NAME/`: origins strided (about an hour apart), every peer fitted there (Prophet and
  Holt-Winters cost a fit per origin);
- `OUT/NAME.every/`: every origin of the test split, with the peers that cost no fit (last
  value, the day-before value): the same points as the every-origin backtest.

For each trace and horizon this prints, per peer, the peer's MASE and `auto`'s on the same
points (the densest run that has the peer), `auto` against it, and the peer the bar binds on
(the one `auto` beats by the least). The bar: `auto` at least 15% below every peer.

Then the sampling spread of the strided run: its stride S keeps one origin in S; on the
every-origin run, `auto` against last value is computed on each of the S samples that stride
could have drawn (offsets 0..S-1). The range says how far the strided comparison with
Prophet or Holt-Winters can sit from the every-origin figure by the luck of the draw.

MASE as `promcast backtest` computes it: per series the mean absolute error over the
series' in-sample scale (series.csv), averaged over series.

Usage: bar.py OUT_DIR [TRACE...]   (pandas, numpy: run.sh's venv)
"""
import math
import os

import numpy as np
import pandas as pd
from oracle import traces

HORIZONS = ["15m", "30m", "1h"]
PEERS = ["last_value", "seasonal_naive_1d", "holt_winters", "prophet"]


def metrics(d):
    path = f"{d}/peers_metrics.csv"
    if not os.path.exists(path):
        return None
    m = pd.read_csv(path)
    return {(r.model, r.horizon): (r.mase, r.n) for r in m.itertuples()}


def errors(d, model_file, model):
    f = pd.read_csv(f"{d}/{model_file}", usecols=["model", "horizon", "origin", "series", "yhat", "actual"])
    f = f[(f.model == model) & f.horizon.isin(HORIZONS)].dropna()
    scale = pd.read_csv(f"{d}/series.csv", usecols=["series", "scale"]).drop_duplicates("series")
    f["e"] = (f.yhat - f.actual).abs() / f.series.map(scale.set_index("series")["scale"])
    return f[["horizon", "origin", "series", "e"]]


def mase(df):
    return df.groupby("series")["e"].mean().mean()


def origin_gap(d):
    """The smallest gap between two origins of one series in run `d` (time units of series.csv)."""
    o = pd.read_csv(f"{d}/forecasts.csv", usecols=["origin", "series"]).drop_duplicates()
    diffs = o.sort_values(["series", "origin"]).groupby("series").origin.diff().dropna()
    return float(diffs.min()) if len(diffs) else math.nan


def spread(every, stride, step):
    """auto vs last value on each of the `stride` strided samples of the every-origin run
    (`step`: one step in series.csv's time units, seconds where the times are calendar time)."""
    a = errors(every, "forecasts.csv", "auto")
    lv = errors(every, "peers_forecasts.csv", "last_value")
    m = a.merge(lv, on=["horizon", "origin", "series"], suffixes=("", "_lv"))
    m["k"] = ((m.origin - m.groupby("series").origin.transform("min")) / step).round().astype(int) % stride
    out = {}
    for h in HORIZONS:
        x = m[m.horizon == h]
        if x.empty:
            continue
        r = [mase(g) / mase(g.assign(e=g.e_lv)) - 1 for _, g in x.groupby("k")]
        out[h] = (100 * np.min(r), 100 * np.max(r), 100 * np.std(r), 100 * r[0])
    return out


def main():
    out, names = traces(__doc__, every=False)
    print("| trace | horizon | peer: its MASE / `auto`'s on its points (points) | binds on | `auto` vs it | bar (−15%) |")
    print("|---|---|---|---|---|---|")
    spreads = []
    for n in names:
        runs = [(f"{out}/{n}.every", metrics(f"{out}/{n}.every")), (f"{out}/{n}", metrics(f"{out}/{n}"))]
        runs = [(d, m) for d, m in runs if m]
        for h in HORIZONS:
            cells, worst = [], None
            for p in PEERS:
                # The densest run that has this peer (run.sh lists the every-origin run first).
                hit = next(((d, m) for d, m in runs if (p, h) in m and ("auto", h) in m), None)
                if not hit:
                    continue
                (pv, pn), (av, _) = hit[1][(p, h)], hit[1][("auto", h)]
                rel = 100 * (av / pv - 1)
                cells.append(f"{p} {pv:.3f} / {av:.3f} ({pn})")
                if worst is None or rel > worst[1]:
                    worst = (p, rel)
            if worst:
                ok = "met" if worst[1] <= -15 else "not met"
                print(f"| {n} | {h} | " + "; ".join(cells) + f" | {worst[0]} | {worst[1]:+.1f}% | {ok} |")
        every = f"{out}/{n}.every"
        if os.path.exists(f"{every}/peers_forecasts.csv"):
            gap, step = origin_gap(f"{out}/{n}"), origin_gap(every)
            s = int(round(gap / step)) if gap == gap and step == step else 1
            if s > 1:
                spreads.append((n, s, spread(every, s, step)))
    if spreads:
        print()
        print("Sampling spread of the strided run: `auto` vs last value on every origin, and on each "
              "of the S samples of one origin in S (offset 0 is the one run.sh's strided run draws):")
        print()
        print("| trace | stride S | horizon | every origin | offset 0 | min / max over offsets | sd |")
        print("|---|---|---|---|---|---|---|")
        for n, s, sp in spreads:
            m = metrics(f"{out}/{n}.every")
            for h in (h for h in HORIZONS if h in sp):
                lo, hi, sd, first = sp[h]
                full = 100 * (m[("auto", h)][0] / m[("last_value", h)][0] - 1)
                print(f"| {n} | {s} | {h} | {full:+.1f}% | {first:+.1f}% | {lo:+.1f}% / {hi:+.1f}% | {sd:.1f} |")


if __name__ == "__main__":
    main()
