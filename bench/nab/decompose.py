#!/usr/bin/env python3
"""Where a detector's NAB score goes: what its false alarms, missed windows and late
detections cost, read from `promcast anomaly-eval`'s results layout.

Reads `OUT/results/<detector>/<category>/<detector>_<name>.csv` (header
`timestamp,value,anomaly_score,label`; a point with anomaly_score >= THRESHOLD is a detection)
and NAB's labels, scores every file with an independent transcription of NAB's sweeper
(docs/ANOMALY.md, "Metrics": scaled sigmoid, probation min(0.15 n, 750), the earliest
detection per window, each false-alarm point charged by its distance after the previous
window), and prints the normalised score per folder and profile:

- as is (reproduces `summary.csv`'s nab_standard / nab_low_fp for the same run);
- no false alarms: the detections outside windows removed;
- misses caught: every missed window detected at its first point, the rest as is;
- no lateness: every caught window detected at its first point, the rest as is.

The gap between "as is" and each row is what that kind of error costs. For `agent` use the
run's own threshold (its results hold the decisions it fired; held points are 0).

Usage: decompose.py OUT/results/agent THRESHOLD LABELS_JSON   (the Python standard library)
"""
import csv
import json
import math
import os
import sys
from collections import defaultdict

PROFILES = {"standard": (1.0, 0.11, 1.0), "low_fp": (1.0, 0.22, 1.0), "low_fn": (1.0, 0.11, 2.0)}


def scaled_sigmoid(x):
    return -1.0 if x > 3 else 2 / (1 + math.exp(5 * x)) - 1


def windows_of(ts, spans):
    """Window spans (NAB timestamps) as (first, last) point indices, those that end after the
    probation."""
    n = len(ts)
    probation = min(int(0.15 * n), 750)
    out = []
    for a, b in spans:
        a, b = a.split(".")[0], b.split(".")[0]
        inside = [i for i, t in enumerate(ts) if a <= t <= b]
        if inside and inside[-1] >= probation:
            out.append((inside[0], inside[-1]))
    return out, probation


def raw_score(detections, windows, probation, profile):
    tp, fp, fn = profile
    where = {i: k for k, (a, b) in enumerate(windows) for i in range(a, b + 1)}
    raw, caught = 0.0, set()
    for i in sorted(set(detections)):
        if i < probation:
            continue
        k = where.get(i)
        if k is not None:
            if k not in caught:
                caught.add(k)
                a, b = windows[k]
                raw += tp * scaled_sigmoid(-(b - i + 1) / (b - a + 1)) / scaled_sigmoid(-1)
            continue
        before = [w for w in windows if w[1] < i]
        if not before:
            raw -= fp
        else:
            a, b = before[-1]
            raw += fp * scaled_sigmoid((i - b) / max(b - a, 1))
    return raw - fn * (len(windows) - len(caught))


def normalised(raw, windows, profile):
    """NAB's normalised score of a raw score summed over files with `windows` scored windows
    (runner.py's normalize(): null = -FN and perfect = +TP per window); NaN without windows."""
    tp, _, fn = PROFILES[profile]
    return 100 * (raw + fn * windows) / ((tp + fn) * windows) if windows else float("nan")


def nab_score(files, profile):
    """Normalised NAB score of `files`, each (detections, windows, probation)."""
    raw = sum(raw_score(d, w, p, PROFILES[profile]) for d, w, p in files)
    return normalised(raw, sum(len(w) for _, w, _ in files), profile)


def print_optimised(score, folders):
    """NAB's optimiser over a threshold grid: per profile, the best `score(threshold, profile)`
    on all files and that threshold's `score(threshold, profile, folder + "/")` per folder, as
    a Markdown table."""
    grid = [0.9 + k * 0.005 for k in range(18)] + [0.99 + k * 0.0005 for k in range(21)]
    print("| profile | best on all files (threshold) | " + " | ".join(folders) + " |")
    print("|---|---|" + "---|" * len(folders))
    for profile in PROFILES:
        best, t = max((score(t, profile), t) for t in grid)
        cells = [score(t, profile, f + "/") for f in folders]
        print(f"| {profile} | {best:.1f} ({t:.4f}) | " + " | ".join(f"{c:.1f}" for c in cells)
              + " |", flush=True)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    res, threshold, labels = sys.argv[1], float(sys.argv[2]), json.load(open(sys.argv[3]))
    variants = ["as is", "no false alarms", "misses caught", "no lateness"]
    sums = defaultdict(float)  # (profile, scope, variant) -> raw score
    windows_in = defaultdict(int)  # scope -> scored windows
    scopes = ["ALL"]
    for cat in sorted(os.listdir(res)):
        scopes.append(cat)
        for f in sorted(os.listdir(f"{res}/{cat}")):
            rows = list(csv.DictReader(open(f"{res}/{cat}/{f}")))
            ts = [r["timestamp"] for r in rows]
            det = [i for i, r in enumerate(rows) if float(r["anomaly_score"]) >= threshold]
            windows, probation = windows_of(ts, labels[f"{cat}/{f.split('_', 1)[1]}"])
            inside = {i for a, b in windows for i in range(a, b + 1)}
            caught = [k for k, (a, b) in enumerate(windows) if any(a <= i <= b for i in det)]
            runs = {
                "as is": det,
                "no false alarms": [i for i in det if i in inside],
                "misses caught": det + [a for k, (a, _) in enumerate(windows) if k not in caught],
                "no lateness": [i for i in det if i not in inside] + [windows[k][0] for k in caught],
            }
            for scope in ("ALL", cat):
                windows_in[scope] += len(windows)
                for p, profile in PROFILES.items():
                    for v, d in runs.items():
                        sums[(p, scope, v)] += raw_score(d, windows, probation, profile)
    print("| profile | scope | " + " | ".join(variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for p in PROFILES:
        for scope in scopes:
            if windows_in[scope] == 0:
                continue  # no windows (artificialNoAnomaly): its false alarms count in ALL
            cells = [normalised(sums[(p, scope, v)], windows_in[scope], p) for v in variants]
            print(f"| {p} | {scope} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
