#!/usr/bin/env python3
"""NAB's CAD-OSE detector (third on NAB's scoreboard, 69.9) with and without the look-ahead
NAB hands it: how much of its score comes from knowing each file's range in advance.

NAB gives every detector the minimum and maximum of the *whole* file before the first point
(nab/detectors/base.py: `inputMin = dataSet.data["value"].min()`). CAD-OSE quantises each
value into 3 bits of that range, Numenta HTM sizes its encoder from it and ARTime is
initialised with it (and with the file's length). A streaming agent cannot know either.
This harness runs NAB's own CAD-OSE code, taken from a NAB checkout, on the files of a NAB
data folder with the range it is given:

- `file`: the whole file's min and max (what NAB does; reproduces NAB's published results);
- `probation`: the min and max of the probation period (the first 15% of the file, which
  the scorer ignores: what the detector has seen when scoring starts), values outside it
  quantised beyond the 3 bits as CAD-OSE's own arithmetic does;
- `probation20`: that range widened by 20% of it on each side (as NAB's HTM detector pads
  the range it is given);

writes NAB results files for each (`OUT/results/cadose<range>/<category>/...`, the layout
`promcast anomaly-eval` writes, which NAB's scorer and bench/nab/decompose.py read), and
prints each variant's NAB score on these files at NAB's published threshold for CAD-OSE and
at the best threshold on these files (a 0.005 grid; this favours the variant, as NAB's own
optimiser does).

NAB's CAD-OSE is Python 2; it is run under Python 3 with four mechanical substitutions
(`itervalues`/`iteritems`, a `cmp=` sort as the equivalent key, and one integer division
made explicit), each checked to apply exactly once. None of NAB's code is copied here: point
--nab-repo at a clone of github.com/numenta/NAB (the files read are
nab/detectors/context_ose/{cad_ose,context_operator}.py).

Usage: cadose.py --nab-repo NAB --data DATA_DIR --labels LABELS_JSON --out OUT [--jobs N]
       [--ranges file,probation]
"""
import argparse
import csv
import functools
import json
import math
import os
import sys
import types
from multiprocessing import Pool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decompose import PROFILES, nab_score, windows_of  # noqa: E402

# NAB's published thresholds for contextOSE (results/contextOSE/*_scores.csv, NAB v1.1).
PUBLISHED = {"standard": 0.76552734375, "low_fp": 0.765637207031, "low_fn": 0.70478515625}

SUBSTITUTIONS = {
    "context_operator.py": [(".itervalues()", ".values()"), (".iteritems()", ".items()")],
    "cad_ose.py": [
        ("sorted(activeContexts, cmp=aContextsCMP)",
         "sorted(activeContexts, key=lambda c: (c[1], c[2], c[3]))"),
        ("2 ** ((fact-65536) / 2)", "2 ** ((fact-65536) // 2)"),
    ],
}


@functools.lru_cache(maxsize=None)
def load_cadose(repo):
    """NAB's ContextualAnomalyDetectorOSE class, its sources patched for Python 3 (loaded once
    per process)."""
    base = os.path.join(repo, "nab", "detectors", "context_ose")
    for pkg in ("nab", "nab.detectors", "nab.detectors.context_ose"):
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    cls = None
    for name in ("context_operator.py", "cad_ose.py"):
        path = os.path.join(base, name)
        src = open(path, encoding="utf-8").read()
        for old, new in SUBSTITUTIONS[name]:
            if src.count(old) != 1:
                sys.exit(f"{path}: expected `{old}` once, found it {src.count(old)} times "
                         "(not the NAB version this harness knows)")
            src = src.replace(old, new)
        mod = types.ModuleType("nab.detectors.context_ose." + name[:-3])
        exec(compile(src, path, "exec"), mod.__dict__)
        sys.modules[mod.__name__] = mod
        cls = getattr(mod, "ContextualAnomalyDetectorOSE", cls)
    return cls


def run_file(job):
    repo, path, rng = job
    rows = list(csv.DictReader(open(path)))
    values = [float(r["value"]) for r in rows]
    probation = math.floor(0.15 * len(values))  # what NAB's base.py gives a detector
    if rng == "file":
        lo, hi = min(values), max(values)
    else:
        lo, hi = min(values[:probation]), max(values[:probation])
        if rng == "probation20":  # padded by 20% of the range each side, as NAB's HTM pads
            lo, hi = lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo)
    det = load_cadose(repo)(minValue=lo, maxValue=hi, restPeriod=probation / 5.0)
    # Rounded as NAB's runner writes them (float_format="%.3f"): its scorer, and so its
    # published thresholds, see these.
    scores = [float(f'{det.getAnomalyScore({"timestamp": r["timestamp"], "value": v}):.3f}')
              for r, v in zip(rows, values)]
    return [r["timestamp"] for r in rows], [r["value"] for r in rows], scores


def score_at(files, threshold, profile):
    """Normalised NAB score of `files` [(windows, probation, scores)] at `threshold`."""
    return nab_score([([i for i, s in enumerate(scores) if s >= threshold], windows, probation)
                      for windows, probation, scores in files], profile)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nab-repo", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--ranges", default="file,probation")
    a = ap.parse_args()
    labels = json.load(open(a.labels))
    load_cadose(a.nab_repo)  # fail early on a wrong checkout
    names = sorted(n for n in labels if os.path.exists(os.path.join(a.data, n)))
    if len(names) != len(labels):
        print(f"{len(labels) - len(names)} labelled files are not in {a.data}; scoring "
              f"the {len(names)} that are", file=sys.stderr)
    print("| CAD-OSE's range | NAB standard / low FP / low FN at NAB's thresholds | "
          "optimised on these files (thresholds) |")
    print("|---|---|---|")
    for rng in a.ranges.split(","):
        jobs = [(a.nab_repo, os.path.join(a.data, n), rng) for n in names]
        with Pool(a.jobs) as pool:
            results = pool.map(run_file, jobs, chunksize=1)
        files = []
        det_name = "cadose" + rng
        for n, (ts, vals, scores) in zip(names, results):
            cat, fname = n.split("/")
            windows, probation = windows_of(ts, labels[n])
            files.append((windows, probation, scores))
            inside = {i for s, e in windows for i in range(s, e + 1)}
            d = os.path.join(a.out, "results", det_name, cat)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{det_name}_{fname}"), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["timestamp", "value", "anomaly_score", "label"])
                for i, (t, v, s) in enumerate(zip(ts, vals, scores)):
                    w.writerow([t, v, f"{s:.3f}", int(i in inside)])
        at_published = [score_at(files, PUBLISHED[p], p) for p in PROFILES]
        grid = [k / 200 for k in range(60, 201)]
        best = []
        for p in PROFILES:
            s, t = max((score_at(files, t, p), t) for t in grid)
            best.append(f"{s:.1f} ({t:.3f})")
        print(f"| {rng} | " + " / ".join(f"{s:.1f}" for s in at_published) + " | "
              + " / ".join(best) + " |", flush=True)


if __name__ == "__main__":
    main()
