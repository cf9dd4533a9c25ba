#!/usr/bin/env python3
"""Issue 32's bar, read off bench/peers/run.sh's output, per trace at 15m, 30m and 1h:

1. **Never worse than the simplest answer.** On the every-origin run (`OUT/NAME.every`, or
   `OUT/NAME` where the trace runs at stride 1): `auto`'s MASE against the best of its own
   candidates (naive, seasonal_naive, mstl, ets, lstm: those the run has) and of last value,
   on the same points. Bar: at most 1.02x.
2. **The oracle gap.** On the strided run (`OUT/NAME`, where Prophet and Holt-Winters are
   fitted): the best peer's MASE P, `auto`'s A and the best neighbour oracle's O
   (bench/peers/oracle.py) on the same points; the share of the gap closed is
   (P - A) / (P - O). Bar: at least 50%.
3. **The band.** `auto`'s 0.1-0.9 band coverage on the every-origin run, plain and read by a
   randomised PIT: where the band has collapsed onto the actual (lower = upper = actual: an
   atom of the forecast distribution, as for counters that repeat), the PIT is uniform over
   the atom, which covers [0.1, 0.9]; with the atom's mass p (the share of exact repeats at
   that horizon in the series' history before the test split), such a point counts 0.8 / p
   covered instead of 1. Bar: 0.75-0.85.

MASE as `promcast backtest` computes it: per series the mean absolute error over the series'
in-sample scale (series.csv), averaged over series.

Usage: hour_bar.py OUT_DIR [TRACE...]   (pandas, numpy: run.sh's venv)
"""
import math
import os
import sys

import numpy as np
import pandas as pd
from oracle import KS, mase as mase_of, trace as oracle_trace

HORIZONS = ["15m", "30m", "1h"]
CANDIDATES = ["naive", "seasonal_naive", "mstl", "ets", "lstm"]
PEERS = ["last_value", "seasonal_naive_1d", "holt_winters", "prophet"]


def load(d, name):
    path = f"{d}/{name}"
    if not os.path.exists(path):
        return None
    return pd.read_csv(path, usecols=["model", "horizon", "origin", "target", "yhat", "lower", "upper", "actual", "series"])


def series(d):
    s = pd.read_csv(f"{d}/series.csv")
    return s


def common(f, models, h):
    """Rows of `models` at horizon `h` on the (series, origin) points every one of them forecast."""
    x = f[(f.horizon == h) & f.model.isin(models)].dropna(subset=["actual", "yhat"])
    n = x.groupby(["series", "origin"]).model.nunique()
    keep = n[n == x.model.nunique()].index
    return x.set_index(["series", "origin"]).loc[keep].reset_index()


def mase(x, scale):
    e = (x.yhat - x.actual).abs() / x.series.map(scale)
    return e.groupby(x.series).mean().mean()


def repeat_mass(s, h_steps, test_fraction=0.2):
    """Per series, the share of exact repeats y[t + h] == y[t] in the part before the test split."""
    out = {}
    for name, g in s.groupby("series"):
        v = g.sort_values("time").value.to_numpy(dtype=float)
        v = v[: int(len(v) * (1 - test_fraction))]
        a, b = v[:-h_steps], v[h_steps:]
        ok = ~(np.isnan(a) | np.isnan(b))
        out[name] = float(np.mean(a[ok] == b[ok])) if ok.any() else 0.0
    return out


def coverage(x, mass):
    inside = (x.lower <= x.actual) & (x.actual <= x.upper)
    atom = (x.lower == x.upper) & (x.actual == x.lower)
    p = x.series.map(mass).clip(lower=0.8)
    w = np.where(atom, 0.8 / p, inside.astype(float))
    return float(inside.mean()), float(np.mean(w)), float(atom.mean())


def steps_of(f, h):
    x = f[f.horizon == h].head(1)
    return x.target.iloc[0] - x.origin.iloc[0] if len(x) else math.nan


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    names = sys.argv[2:] or sorted(n for n in os.listdir(out)
                                   if os.path.isdir(f"{out}/{n}") and not n.endswith(".every")
                                   and os.path.exists(f"{out}/{n}/forecasts.csv"))
    print("| trace | horizon | `auto` (dense) | best candidate or last value | `auto` / it (≤ 1.02) | "
          "best peer P (strided) | `auto` A there | oracle O | gap closed (≥ 50%) | "
          "coverage plain / PIT (0.75-0.85), atoms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in names:
        strided = f"{out}/{n}"
        dense = f"{out}/{n}.every" if os.path.exists(f"{out}/{n}.every/forecasts.csv") else strided
        s = series(dense)
        scale = s.drop_duplicates("series").set_index("series")["scale"]
        f = load(dense, "forecasts.csv")
        lv = load(dense, "peers_forecasts.csv")
        if lv is not None:
            f = pd.concat([f, lv[lv.model == "last_value"]])
        step = float(np.median(np.diff(np.sort(s[s.series == s.series.iloc[0]].time.unique()))))
        sf = load(strided, "forecasts.csv")
        sp = load(strided, "peers_forecasts.csv")
        orc = {h: (b, pv, a, ors) for h, a, b, pv, ors in oracle_trace(strided)} \
            if os.path.exists(f"{strided}/peers_metrics.csv") else {}
        for h in HORIZONS:
            if not (f.horizon == h).any():
                continue
            rivals = [m for m in CANDIDATES + ["last_value"] if ((f.model == m) & (f.horizon == h)).any()]
            x = common(f, rivals + ["auto"], h)
            scores = {m: mase(x[x.model == m], scale) for m in rivals + ["auto"]}
            best = min(rivals, key=scores.get)
            ratio = scores["auto"] / scores[best]
            a = x[x.model == "auto"]
            hs = int(round(steps_of(f, h) / step))
            plain, pit, atoms = coverage(a, repeat_mass(s, hs))
            gap = "–"
            pcell = acell = ocell = "–"
            if h in orc and sp is not None:
                b, pv, av, ors = orc[h]
                o = min(ors.values())
                closed = (pv - av) / (pv - o) if pv > o else math.nan
                pcell, acell, ocell = f"{b} {pv:.3f}", f"{av:.3f}", f"{o:.3f}"
                gap = f"{100 * closed:.0f}% {'met' if closed >= 0.5 else 'not met'}"
            print(f"| {n} | {h} | {scores['auto']:.3f} ({len(a)}) | {best} {scores[best]:.3f} | "
                  f"{ratio:.3f} {'met' if ratio <= 1.02 else 'not met'} | {pcell} | {acell} | {ocell} | {gap} | "
                  f"{plain:.3f} / {pit:.3f}{' met' if 0.75 <= pit <= 0.85 else ' not met'}, {100 * atoms:.0f}% |")


if __name__ == "__main__":
    main()
