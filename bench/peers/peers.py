#!/usr/bin/env python3
"""What users would pick instead of promcast, on exactly the origins `promcast backtest` used.

Reads a backtest's output directory (run with `--write-series`): `series.csv` (the series as
the backtest bucketed them, with each one's MASE scale) and `forecasts.csv` (promcast's
forecasts). For every (series, origin) there, fits each peer on the `--window` of data up to
and including the origin and forecasts the same horizons. Writes `peers_forecasts.csv`
(forecasts.csv's columns) and `peers_metrics.csv`, and prints one Markdown table with the
peers and promcast's models side by side: MASE (each series' MAE over its scale, averaged over
series, as `promcast backtest` computes it), 0.1-0.9 band coverage where the tool has a band,
and seconds per fit.

Peers, at their documented defaults unless said:
- last_value: the value at the origin (what every user has for free).
- seasonal_naive_1d: the value one day before the target (promcast's `seasonal_naive`
  picks among its configured seasons; this one is the plain daily rule).
- holt_winters: statsmodels ExponentialSmoothing(trend="add", seasonal="add",
  seasonal_periods=one day) as predictive-horizontal-pod-autoscaler configures it; fitted with
  initialization_method="heuristic" (statsmodels' documented option for long seasons; the
  default "estimated" optimises one initial state per season step, 1,440 at a 1-minute step,
  and took 4x longer for the same forecasts' quality here). No band.
- prophet: Prophet() with its defaults except interval_width=0.8 (the 0.1-0.9 band), as
  prometheus-anomaly-detector and Kedify use it. Seeded (numpy), MAP fit.
"""
import argparse
import csv
import logging
import math
import multiprocessing
import sys
import time
from collections import defaultdict
from contextlib import nullcontext

import numpy as np
import pandas as pd

logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
logging.getLogger("prophet").setLevel(logging.WARNING)

PEERS = ["last_value", "seasonal_naive_1d", "holt_winters", "prophet"]


def read_series(path):
    values, scales = defaultdict(dict), {}
    with open(path) as f:
        for r in csv.DictReader(f):
            v = float(r["value"]) if r["value"] else math.nan
            values[r["series"]][float(r["time"])] = v
            scales[r["series"]] = float(r["scale"])
    return values, scales


def read_forecasts(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            rows.append(r)
    return rows


def fit_predict(peer, times, y, ahead, step_s, day, seed):
    """Forecasts `ahead` steps (list of ints) from the window (times, y); (yhat, lo, hi) each."""
    if peer == "last_value":
        # The newest observed value (as a PromQL query returns it within its lookback).
        seen = y[~np.isnan(y)]
        last = seen[-1] if len(seen) else math.nan
        return [(last, math.nan, math.nan) for _ in ahead]
    if peer == "seasonal_naive_1d":
        out = []
        for h in ahead:
            k = len(y) - 1 + h - day
            out.append((y[k] if 0 <= k < len(y) else math.nan, math.nan, math.nan))
        return out
    ok = ~np.isnan(y)
    # Holt-Winters needs two full seasons; Prophet fits what there is (without a daily
    # season under two days of data, its default).
    if ok.sum() < (2 * day + 2 if peer == "holt_winters" else 3):
        return [(math.nan, math.nan, math.nan) for _ in ahead]
    if peer == "holt_winters":
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        filled = pd.Series(y).interpolate(limit_direction="both").values
        fit = ExponentialSmoothing(
            filled, trend="add", seasonal="add", seasonal_periods=day,
            initialization_method="heuristic",
        ).fit()
        f = fit.forecast(max(ahead))
        return [(float(f[h - 1]), math.nan, math.nan) for h in ahead]
    if peer == "prophet":
        from prophet import Prophet

        np.random.seed(seed)
        ds = pd.to_datetime(times[ok], unit="s")
        m = Prophet(interval_width=0.8)
        m.fit(pd.DataFrame({"ds": ds, "y": y[ok]}))
        fut = pd.DataFrame({"ds": pd.to_datetime([times[-1] + h * step_s for h in ahead], unit="s")})
        p = m.predict(fut)
        return list(zip(p.yhat.values, p.yhat_lower.values, p.yhat_upper.values))
    raise ValueError(peer)


class Fits:
    """Fits every peer at one (series, origin): picklable, so `--jobs` can spread the origins
    over processes. Each fit is seeded by itself, so the forecasts do not depend on --jobs."""

    def __init__(self, peers, ahead, step_s, day, seed, per_time):
        self.peers, self.ahead, self.step_s, self.day, self.seed = peers, ahead, step_s, day, seed
        self.per_time = per_time

    def __call__(self, task):
        s, o, times, y = task
        times = times * self.per_time
        out, secs = [], {}
        for peer in self.peers:
            t0 = time.perf_counter()
            try:
                preds = fit_predict(peer, times, y, self.ahead, self.step_s, self.day, self.seed)
            except Exception as e:  # a fit that fails is a missing forecast, counted
                print(f"{peer} {s} {o}: {e}", file=sys.stderr)
                preds = [(math.nan, math.nan, math.nan)] * len(self.ahead)
            secs[peer] = time.perf_counter() - t0
            out.append(preds)
        return out, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("backtest_dir")
    ap.add_argument("--step", type=float, required=True, help="seconds per bucket (the backtest's --step)")
    ap.add_argument("--calendar", action="store_true", help="series.csv times are unix seconds (else bucket indices)")
    ap.add_argument("--window", type=float, default=3.0, help="days of history each peer is fitted on")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1,
                    help="processes fitting in parallel (the forecasts are the same for any value)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the fitted peers' rows of an earlier peers_forecasts.csv; recompute the rest")
    a = ap.parse_args()
    d = a.backtest_dir
    values, scales = read_series(f"{d}/series.csv")
    rows = read_forecasts(f"{d}/forecasts.csv")
    day = int(round(86400 / a.step))
    window = int(round(a.window * 86400 / a.step))
    per_time = 1.0 if a.calendar else a.step  # series.csv time units per bucket, in seconds
    unit = a.step if a.calendar else 1.0  # series.csv time units per bucket

    # Origins and horizons, from promcast's own rows.
    horizons = {}  # label -> steps
    origins = defaultdict(set)
    actual = {}
    for r in rows:
        o, t = float(r["origin"]), float(r["target"])
        horizons[r["horizon"]] = int(round((t - o) / unit))
        origins[r["series"]].add(o)
        actual[(r["series"], t)] = float(r["actual"]) if r["actual"] not in ("", "NaN") else math.nan
    labels = sorted(horizons, key=horizons.get)
    ahead = [horizons[h] for h in labels]

    out_rows, seconds = [], defaultdict(float)
    fits = defaultdict(int)
    peers = a.peers.split(",")
    if a.reuse:
        kept = {"holt_winters", "prophet"} & set(peers)
        with open(f"{d}/peers_forecasts.csv") as f:
            for r in csv.DictReader(f):
                if r["model"] in kept:
                    out_rows.append([r["model"], r["horizon"], float(r["origin"]), float(r["target"]),
                                     fl(r["yhat"]), fl(r["lower"]), fl(r["upper"]), fl(r["actual"]), r["series"]])
        with open(f"{d}/peers_metrics.csv") as f:
            for r in csv.DictReader(f):
                if r["model"] in kept and r["horizon"] == "5m":
                    fits[r["model"]] = 1
                    seconds[r["model"]] = float(r["seconds_per_fit"])
        peers = [p for p in peers if p not in kept]
    tasks = []  # (series, origin, window times, window values): one fit per peer each
    for s in sorted(origins):
        ts = np.array(sorted(values[s]))
        ys = np.array([values[s][t] for t in ts])
        index = {t: i for i, t in enumerate(ts)}
        for o in sorted(origins[s]):
            i = index[o]
            lo = max(0, i + 1 - window)
            tasks.append((s, o, ts[lo : i + 1], ys[lo : i + 1]))  # views
    job = Fits(peers, ahead, a.step, day, a.seed, per_time)
    with multiprocessing.Pool(a.jobs) if a.jobs > 1 else nullcontext() as pool:
        done = pool.imap(job, tasks, chunksize=8) if pool else map(job, tasks)
        for (s, o, _, _), (preds_by_peer, secs) in zip(tasks, done):
            for peer, preds in zip(peers, preds_by_peer):
                seconds[peer] += secs[peer]
                fits[peer] += 1
                for h, (yhat, lo_, hi_) in zip(labels, preds):
                    t = o + horizons[h] * unit
                    out_rows.append([peer, h, o, t, yhat, lo_, hi_, actual.get((s, t), math.nan), s])
    print(f"{len(origins)} series, {len(tasks)} origins", file=sys.stderr)

    with open(f"{d}/peers_forecasts.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "horizon", "origin", "target", "yhat", "lower", "upper", "actual", "series", "used"])
        for r in out_rows:
            w.writerow([r[0], r[1], fmt_time(r[2]), fmt_time(r[3]), r[4], r[5], r[6], r[7], r[8], r[0]])

    # Metrics over the same points for every model: promcast's rows and the peers'. Only the
    # points every model forecast count (a model with no forecast anywhere, e.g. Holt-Winters
    # on traces shorter than two days, is shown as "–" and does not thin the others).
    allrows = [(r["model"], r["horizon"], r["series"], float(r["target"]), float(r["yhat"]),
                fl(r["lower"]), fl(r["upper"]), fl(r["actual"])) for r in rows]
    allrows += [(r[0], r[1], r[8], r[3], r[4], r[5], r[6], r[7]) for r in out_rows]
    models = list(dict.fromkeys([r[0] for r in allrows]))
    finite = defaultdict(set)
    for m, h, s, t, yhat, lo_, hi_, act in allrows:
        if not (math.isnan(act) or math.isnan(yhat)):
            finite[m].add((s, h, t))
    present = [m for m in models if finite[m]]
    common = set.intersection(*(finite[m] for m in present)) if present else set()
    err = defaultdict(lambda: defaultdict(list))
    cover = defaultdict(list)
    for m, h, s, t, yhat, lo_, hi_, act in allrows:
        if (s, h, t) not in common or math.isnan(yhat):
            continue
        err[(m, h)][s].append(abs(yhat - act))
        if not (math.isnan(lo_) or math.isnan(hi_)):
            cover[(m, h)].append(lo_ <= act <= hi_)
    with open(f"{d}/peers_metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "horizon", "n", "mase", "coverage", "seconds_per_fit"])
        table = {}
        for m in models:
            for h in labels:
                per = err[(m, h)]
                if not per:
                    continue
                mase = sum(np.mean(v) / scales[s] for s, v in per.items()) / len(per)
                n = sum(len(v) for v in per.values())
                cov = np.mean(cover[(m, h)]) if cover[(m, h)] else math.nan
                spf = seconds[m] / fits[m] if fits.get(m) else math.nan
                table[(m, h)] = (mase, cov, n)
                w.writerow([m, h, n, f"{mase:.4f}", f"{cov:.3f}", f"{spf:.4f}"])
    n_points = " / ".join(str(table[(present[0], h)][2]) if (present and (present[0], h) in table) else "0" for h in labels)
    print(f"Points scored (every model forecast them) per horizon: {n_points}")
    print()
    print("| model | " + " | ".join(f"MASE {h}" for h in labels) + " | coverage " + " / ".join(labels) + " | s per fit |")
    print("|---|" + "---|" * (len(labels) + 2))
    for m in models:
        cells = [f"{table[(m, h)][0]:.3f}" if (m, h) in table else "–" for h in labels]
        cov = " / ".join(f"{table[(m, h)][1]:.2f}" if (m, h) in table and not math.isnan(table[(m, h)][1]) else "–" for h in labels)
        spf = f"{seconds[m] / fits[m]:.3f}" if fits.get(m) else "(in the backtest)"
        who = "peer" if m in PEERS else "promcast"
        print(f"| {m} ({who}) | " + " | ".join(cells) + f" | {cov} | {spf} |")


def fl(v):
    return float(v) if v not in ("", "NaN") else math.nan


def fmt_time(t):
    return str(int(t)) if float(t).is_integer() else f"{t:.3f}"


if __name__ == "__main__":
    main()
