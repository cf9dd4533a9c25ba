#!/usr/bin/env python3
"""Selection rules for `auto`, replayed on a dense backtest: every candidate's forecast at
every origin (forecasts.csv and series.csv of
`promcast backtest --models naive,seasonal_naive,mstl,lstm,auto --write-series`, stride 1).

At each hourly decision a rule scores the candidates on the forecasts whose targets are
already observed (within the test split: the agent also has the history before it), keeps
the incumbent unless another is `margin` better, and serves the choice until the next
decision. Prints MASE per horizon (as the backtest computes it), the change against the best
single candidate and the band's coverage, for the rules docs/ACCURACY.md compares.

Usage: auto_rules.py BACKTEST_DIR STEP_SECONDS   (numpy; bench/peers/run.sh's venv has it)
"""
import csv
import math
import sys
from collections import defaultdict

import numpy as np

CANDS = ["naive", "seasonal_naive", "mstl", "lstm"]
HS = ["5m", "15m", "30m"]
HOUR = 3600


def load(d):
    scales = {r["series"]: float(r["scale"]) for r in csv.DictReader(open(f"{d}/series.csv"))}
    rows = defaultdict(list)
    for r in csv.DictReader(open(f"{d}/forecasts.csv")):
        rows[r["series"]].append(r)
    out = {}
    for s, rs in rows.items():
        origins = sorted({int(r["origin"]) for r in rs})
        idx = {o: i for i, o in enumerate(origins)}
        n = len(origins)
        new = lambda: {m: np.full((3, n), np.nan) for m in CANDS + ["auto"]}
        d_ = dict(origins=np.array(origins), Y=new(), L=new(), U=new(),
                  A=np.full((3, n), np.nan), T=np.zeros((3, n), dtype=np.int64), scale=scales[s])
        for r in rs:
            h, i, m = HS.index(r["horizon"]), idx[int(r["origin"])], r["model"]
            d_["Y"][m][h, i], d_["L"][m][h, i], d_["U"][m][h, i] = (
                float(r["yhat"]), float(r["lower"]), float(r["upper"]))
            if r["actual"] not in ("", "NaN"):
                d_["A"][h, i] = float(r["actual"])
            d_["T"][h, i] = int(r["target"])
        out[s] = d_
    return out


def pinball(y, q, a):
    d = a - y
    return np.where(d >= 0, q * d, (q - 1) * d)


def losses(d, kind):
    A = d["A"]
    if kind == "abs":
        return {m: np.abs(d["Y"][m] - A) for m in CANDS}
    return {m: pinball(d["L"][m], 0.1, A) + pinball(d["Y"][m], 0.5, A) + pinball(d["U"][m], 0.9, A)
            for m in CANDS}


def select(d, step, kind, lookback, gap, margin=0.15, mstl=None, prefer="lstm", drop=(), gate=None):
    """The model served at each origin. `gap`: score every gap-th origin; `mstl`: MSTL's own
    (lookback, gap) when it is scored on fewer origins (then scores are means per point);
    `drop`: candidates left out; `gate` (a [decisions, passed] counter): MSTL competes only
    where seasonal naive scored better than naive, as `auto` does since 2026-12-02."""
    o, T, n = d["origins"], d["T"], len(d["origins"])
    ls = losses(d, kind)
    every = max(1, HOUR // step)
    choice, cur = [prefer] * n, prefer
    for i in range(0, n, every):
        t, sc = o[i], {}
        for m in CANDS:
            if m in drop:
                continue
            lb, g = mstl if (m == "mstl" and mstl) else (lookback, gap)
            tot, k, ok = 0.0, 0, True
            for h in range(3):
                sel = (T[h] <= t) & (o >= t - lb) & np.isfinite(d["A"][h]) & ((t - o) % (g * step) == 0)
                if not sel.any():
                    continue
                v = ls[m][h][sel]
                if not np.all(np.isfinite(v)):
                    ok = False
                    break
                tot, k = tot + v.sum(), k + sel.sum()
            if ok and k:
                sc[m] = tot / k if mstl else tot
        if gate is not None and "mstl" in sc:
            gate[0] += 1
            if sc.get("seasonal_naive", math.inf) < sc.get("naive", math.inf):
                gate[1] += 1
            else:
                del sc["mstl"]
        if sc:
            if cur not in sc:
                cur = prefer if prefer in sc else min(sc, key=sc.get)
            best = min(sc, key=sc.get)
            if sc[best] < sc[cur] * (1 - margin):
                cur = best
        choice[i:i + every] = [cur] * len(choice[i:i + every])
    return choice


def served(d, choice, what):
    out = np.full((3, len(choice)), np.nan)
    for j, m in enumerate(choice):
        out[:, j] = d[what][m][:, j]
    return out


def mase(S, pred):
    tot, cnt = np.zeros(3), np.zeros(3)
    for s, d in S.items():
        P = pred(s, d)
        for h in range(3):
            ok = np.isfinite(d["A"][h]) & np.isfinite(P[h])
            if ok.any():
                tot[h] += np.mean(np.abs(P[h][ok] - d["A"][h][ok])) / d["scale"]
                cnt[h] += 1
    return tot / cnt


def coverage(S, choices):
    inside, n = np.zeros(3), np.zeros(3)
    for s, d in S.items():
        lo, up = served(d, choices[s], "L"), served(d, choices[s], "U")
        for h in range(3):
            ok = np.isfinite(d["A"][h]) & np.isfinite(lo[h])
            a = d["A"][h][ok]
            inside[h] += np.sum((a >= lo[h][ok]) & (a <= up[h][ok]))
            n[h] += ok.sum()
    return inside / n


def main():
    d, step = sys.argv[1], int(sys.argv[2])
    S = load(d)
    base = {m: mase(S, lambda s, x, m=m: x["Y"][m]) for m in CANDS + ["auto"]}
    best = np.min([base[m] for m in CANDS], axis=0)
    pct = lambda v: " ".join(f"{x:+.1f}%" for x in (v / best - 1) * 100)
    fmt = lambda v: " / ".join(f"{x:.3f}" for x in v)
    for m in CANDS + ["auto"]:
        print(f"{m:56s} {fmt(base[m])}   {pct(base[m])}")
    g = max(1, 1800 // step)  # the longest horizon (30m) in steps
    rules = [
        ("one origin per longest horizon, 8h, abs, MSTL on 6", "abs", 8 * HOUR + 1800, g, (6 * g * step + g * step, g)),
        ("same, pinball", "pinball", 8 * HOUR + 1800, g, (6 * g * step + g * step, g)),
        ("every longest/6, 8h, pinball, MSTL on 6", "pinball", 8 * HOUR, max(1, g // 6), (6 * g * step + g * step, g)),
        ("every longest/6, 8h, abs, all on the same origins", "abs", 8 * HOUR, max(1, g // 6), None),
        ("every longest/6, 8h, pinball, all on the same origins", "pinball", 8 * HOUR, max(1, g // 6), None),
        ("every longest/6, 4h, pinball, all on the same origins", "pinball", 4 * HOUR, max(1, g // 6), None),
        ("every longest/6, 24h, pinball, all on the same origins", "pinball", 24 * HOUR, max(1, g // 6), None),
    ]
    for label, kind, lb, gap, mstl in rules:
        ch = {s: select(x, step, kind, lb, gap, mstl=mstl) for s, x in S.items()}
        v = mase(S, lambda s, x: served(x, ch[s], "Y"))
        print(f"{label:56s} {fmt(v)}   {pct(v)}   coverage {fmt(coverage(S, ch))}", flush=True)
    # The 4h rule without MSTL, and with MSTL gated on seasonal naive beating naive (today's).
    for label, kw in [("every longest/6, 4h, pinball, no MSTL", dict(drop=("mstl",))),
                      ("same, MSTL only where seasonal naive beat naive", dict(gate=[0, 0]))]:
        ch = {s: select(x, step, "pinball", 4 * HOUR, max(1, g // 6), **kw) for s, x in S.items()}
        v = mase(S, lambda s, x: served(x, ch[s], "Y"))
        extra = ""
        if "gate" in kw:
            extra = f"   MSTL competed in {kw['gate'][1]} of {kw['gate'][0]} decisions"
        print(f"{label:56s} {fmt(v)}   {pct(v)}   coverage {fmt(coverage(S, ch))}{extra}", flush=True)


if __name__ == "__main__":
    main()
