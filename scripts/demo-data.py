#!/usr/bin/env python3
"""Cut the real traces `promcast demo` ships (examples/demo/*.txt) from ../shared/data.

Each file: `#` header lines (source, licence, first timestamp, step, where the live replay
starts), then one value per line. Rerun to regenerate; the output is deterministic.
"""
import csv, datetime, os, sys

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "..", "shared", "data")
out = os.path.join(here, "..", "examples", "demo")


def write(name, header, values):
    with open(os.path.join(out, name), "w") as f:
        for k, v in header:
            f.write(f"# {k}: {v}\n")
        for v in values:
            f.write(f"{v:g}\n")


# NASA: 14 days from 1995-07-01 00:00 EDT (04:00 UTC); live from Monday 10 July 06:00 EDT.
with open(os.path.join(data, "nasa_http_1995", "nasa_requests_per_minute.csv")) as f:
    rows = list(csv.reader(f))[1:]
values = [float(r[1]) for r in rows[: 14 * 1440]]
write(
    "nasa_http.txt",
    [
        ("source", "shared/data/nasa_http_1995/nasa_requests_per_minute.csv rows 0..20160"),
        ("licence", "ITA NASA-HTTP logs (Jul 1995), freely redistributable"),
        ("value", "HTTP requests to the NASA Kennedy Space Center web server per minute"),
        ("start", 804571200),
        ("step", 60),
        ("live_from", 9 * 1440 + 360),
    ],
    values,
)


def nab(path, first, last, live_from):
    with open(os.path.join(data, "nab", "data", path)) as f:
        rows = list(csv.reader(f))[1:]
    rows = rows[first:last]
    ts = [
        int(datetime.datetime.strptime(r[0], "%Y-%m-%d %H:%M:%S")
            .replace(tzinfo=datetime.timezone.utc).timestamp())
        for r in rows
    ]
    steps = {b - a for a, b in zip(ts, ts[1:])}
    if steps != {300}:
        sys.exit(f"{path}: steps {sorted(steps)[:5]} are not all 5 minutes")
    name = os.path.basename(path).replace(".csv", "").lower() + ".txt"
    write(
        name,
        [
            ("source", f"shared/data/nab/data/{path} rows {first}..{last} (NAB @ ea702d75)"),
            ("licence", "MIT (Numenta Anomaly Benchmark)"),
            ("start", ts[0]),
            ("step", 300),
            ("live_from", live_from - first),
        ],
        [float(r[1]) for r in rows],
    )


# EC2 CPU with a labelled anomaly (peak at row 1271); live two hours before it.
nab("realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv", 0, 4032, 1247)
# Tweets about Amazon, with a labelled burst (peak at row 2008); live two hours before it.
nab("realTweets/Twitter_volume_AMZN.csv", 1400, 5400, 1984)
