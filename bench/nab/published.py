#!/usr/bin/env python3
"""NAB's published detectors on the files you have: their own per-file scores, summed over
the files of a labels file and normalised the way NAB normalises its corpus.

NAB ships, for every detector D and profile P, `results/D/D_P_scores.csv` (a clone of
github.com/numenta/NAB; one row per data file: the file's raw score at the detector's
threshold, optimised over NAB's whole corpus, then a `Totals` row). A detector's NAB score
on a set of files is 100 * (S - S_null) / (S_perfect - S_null) with S the sum of its rows
over those files, S_null = -fn_weight x windows and S_perfect = tp_weight x windows
(runner.py's normalize()). Over all 58 files this reproduces NAB's scoreboard; over the
files of LABELS (../shared/data/nab has 44 of the 58) it places promcast's
`anomaly-eval` figures beside the published detectors on the same files, scored by NAB's
own scorer.

Usage: published.py NAB_RESULTS_DIR LABELS_JSON [SUMMARY_CSV]
  SUMMARY_CSV: an `anomaly-eval --optimize` summary.csv, whose detectors are printed in the
  same tables (their fixed-threshold and optimised scores).
The Python standard library only (and decompose.py beside it).
"""
import csv
import json
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decompose import normalised  # noqa: E402

# NAB's profile names (in its file names) -> decompose.py's, which summary.csv's columns
# carry (nab_<profile> at the fixed threshold, opt_<profile> optimised).
PROFILES = {"standard": "standard", "reward_low_FP_rate": "low_fp",
            "reward_low_FN_rate": "low_fn"}


def published(results, labels):
    """{detector: {scope: {profile: score}}} over the files of `labels`, scopes ALL and each
    folder; detectors missing a profile or a file are skipped with a note on stderr."""
    windows = {name: len(spans) for name, spans in labels.items()}
    folders = sorted({name.split("/")[0] for name in windows})
    out = {}
    for det in sorted(os.listdir(results)):
        scores = {}
        for profile, key in PROFILES.items():
            path = os.path.join(results, det, f"{det}_{profile}_scores.csv")
            if not os.path.exists(path):
                break
            rows = {r["File"]: float(r["Score"]) for r in csv.DictReader(open(path))}
            missing = [name for name in windows if name not in rows]
            if missing:
                print(f"{det}: {path} has no row for {missing[0]} (and {len(missing) - 1} more)",
                      file=sys.stderr)
                break
            for scope in ["ALL"] + folders:
                names = [n for n in windows if scope == "ALL" or n.startswith(scope + "/")]
                w = sum(windows[n] for n in names)
                if w == 0:
                    continue  # no windows (artificialNoAnomaly): its false alarms count in ALL
                s = sum(rows[n] for n in names)
                scores.setdefault(scope, {})[profile] = normalised(s, w, key)
        else:
            out[det] = scores
    return out, folders


def ours(summary):
    """{detector: {scope: (fixed {profile: score}, optimised {profile: score})}}."""
    out = defaultdict(dict)
    for r in csv.DictReader(open(summary)):
        fixed = {p: float(r[f"nab_{key}"]) for p, key in PROFILES.items()}
        opt = {p: float(r[f"opt_{key}"]) for p, key in PROFILES.items() if r.get(f"opt_{key}")}
        out[r["detector"]][r["scope"]] = (fixed, opt)
    return out


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    labels = json.load(open(sys.argv[2]))
    pub, folders = published(sys.argv[1], labels)
    mine = ours(sys.argv[3]) if len(sys.argv) == 4 else {}
    names = list(PROFILES)
    for scope in ["ALL"] + folders:
        rows = []
        for det, scores in pub.items():
            if scope in scores:
                rows.append((det + " (NAB's results)", [scores[scope][p] for p in names]))
        for det, scopes in mine.items():
            if scope in scopes and scope != "artificialNoAnomaly":
                fixed, opt = scopes[scope]
                rows.append((det + " (default threshold)", [fixed[p] for p in names]))
                if opt:
                    rows.append((det + " (optimised)", [opt[p] for p in names]))
        if not rows:
            continue
        files = sum(1 for n in labels if scope == "ALL" or n.startswith(scope + "/"))
        windows = sum(len(v) for n, v in labels.items() if scope == "ALL" or n.startswith(scope + "/"))
        print(f"\n{scope}: {files} files, {windows} windows\n")
        print("| detector | NAB standard | low FP | low FN |")
        print("|---|---|---|---|")
        for det, cells in sorted(rows, key=lambda r: -r[1][0]):
            print(f"| {det} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
