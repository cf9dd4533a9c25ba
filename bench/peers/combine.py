#!/usr/bin/env python3
"""How far a better `auto` could go, measured on a backtest's own forecasts (forecasts.csv and
series.csv of `promcast backtest --write-series`): promcast's candidates combined or chosen
online (only errors whose targets are at or before the origin are known there), and the
oracle that picks each series' best candidate in hindsight (the bound for any per-series
choice). Prints MASE per horizon, computed as the backtest does.
Usage: combine.py BACKTEST_DIR
"""
import csv, math, sys
from collections import defaultdict
import numpy as np
d = sys.argv[1]
scales = {}
for r in csv.DictReader(open(f"{d}/series.csv")):
    scales[r["series"]] = float(r["scale"])
F = defaultdict(dict)  # (series,h,origin) -> model -> (yhat, act, target)
for r in csv.DictReader(open(f"{d}/forecasts.csv")):
    a = float(r["actual"]) if r["actual"] not in ("", "NaN") else math.nan
    F[(r["series"], r["horizon"], float(r["origin"]))][r["model"]] = (float(r["yhat"]), a, float(r["target"]))
cands = ["seasonal_naive", "mstl", "lstm"]
err = defaultdict(lambda: defaultdict(list))
groups = defaultdict(list)
for (s, h, o), ms in F.items():
    groups[(s, h)].append(o)
for (s, h), os_ in groups.items():
    os_.sort()
    hist = []  # (target, model -> abs err)
    for o in os_:
        ms = F[(s, h, o)]
        if not all(m in ms for m in cands + ["auto"]):
            continue
        act = ms["lstm"][1]
        if math.isnan(act): continue
        known = [e for (t, e) in hist if t <= o]
        preds = {m: ms[m][0] for m in cands + ["auto"]}
        preds["mean_lstm_mstl"] = (preds["lstm"] + preds["mstl"]) / 2
        preds["median3"] = float(np.median([preds[m] for m in cands]))
        for K, name in ((24, "invmae24"), (10**9, "invmae_all")):
            rec = known[-K:]
            if rec:
                mae = {m: np.mean([e[m] for e in rec]) + 1e-9 for m in cands}
                w = {m: 1 / mae[m] for m in cands}
                z = sum(w.values())
                preds[name] = sum(w[m] * preds[m] for m in cands) / z
                best = min(cands, key=lambda m: mae[m])
                preds["leader" + name[6:]] = preds[best]
            else:
                preds[name] = preds["lstm"]; preds["leader" + name[6:]] = preds["lstm"]
        for m, y in preds.items():
            err[(m, h)][s].append(abs(y - act))
        hist.append((ms["lstm"][2], {m: abs(ms[m][0] - act) for m in cands}))
# The hindsight oracle: per series and horizon, the candidate with the lowest test MAE.
for h in {h for (m, h) in err}:
    for s_ in err[("lstm", h)]:
        best = min(cands, key=lambda m: np.mean(err[(m, h)][s_]))
        err[("oracle_choice", h)][s_] = err[(best, h)][s_]
models = sorted({m for (m, h) in err})
hs = sorted({h for (m, h) in err}, key=lambda x: int(x[:-1]))
print("model", *hs)
for m in models:
    row = []
    for h in hs:
        per = err[(m, h)]
        row.append(f"{sum(np.mean(v)/scales[s] for s,v in per.items())/len(per):.3f}")
    print(m, *row)
