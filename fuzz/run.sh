#!/usr/bin/env bash
# Fuzz both targets for RUNS executions each (default 10 million), on WORKERS processes, with
# seed corpora made from real inputs. Needs the nightly toolchain and cargo-fuzz:
#
#   rustup toolchain install nightly && cargo install cargo-fuzz
#   ./fuzz/run.sh                       # RUNS=10000000 WORKERS=2 TARGETS="ingest remote_read"
#
# Built without a sanitizer (`-s none`): the code under test has no `unsafe`, the targets look
# for panics, and ASan runs them ten times slower. Corpora and crash artifacts go under
# $OUT (default target/fuzz). A crash leaves its input in $OUT/artifacts/<target>/ and exits
# non-zero.
set -euo pipefail
cd "$(dirname "$0")"

RUNS=${RUNS:-10000000}
WORKERS=${WORKERS:-2}
TARGETS=${TARGETS:-ingest remote_read}
OUT=${OUT:-../target/fuzz}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$OUT/build}

# Seeds: the captured Prometheus 2.42 bodies, as raw snappy (mode byte 1) and decompressed
# protobuf (mode byte 0); a few remote-read requests written by hand.
python3 - "$OUT/corpus" <<'PY'
import glob, os, sys

def unsnappy(b):
    """Decompresses a snappy block (the format remote write uses)."""
    n, shift, i = 0, 0, 0
    while True:
        c = b[i]; i += 1
        n |= (c & 0x7f) << shift; shift += 7
        if c < 0x80:
            break
    out = bytearray()
    while i < len(b):
        tag = b[i]; i += 1
        kind = tag & 3
        if kind == 0:
            ln = tag >> 2
            if ln >= 60:
                extra = ln - 59
                ln = int.from_bytes(b[i:i + extra], "little"); i += extra
            ln += 1
            out += b[i:i + ln]; i += ln
            continue
        if kind == 1:
            ln = ((tag >> 2) & 7) + 4
            off = ((tag >> 5) << 8) | b[i]; i += 1
        elif kind == 2:
            ln = (tag >> 2) + 1
            off = int.from_bytes(b[i:i + 2], "little"); i += 2
        else:
            ln = (tag >> 2) + 1
            off = int.from_bytes(b[i:i + 4], "little"); i += 4
        for _ in range(ln):
            out.append(out[-off])
    assert len(out) == n
    return bytes(out)

def varint(v):
    out = b""
    while True:
        b, v = v & 0x7F, v >> 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(n, wt, payload):
    key = varint((n << 3) | wt)
    return key + (varint(payload) if wt == 0 else varint(len(payload)) + payload)

def matcher(t, name, value):
    return field(1, 0, t) + field(2, 2, name.encode()) + field(3, 2, value.encode())

def query(start, end, ms):
    return field(1, 0, start) + field(2, 0, end) + b"".join(field(3, 2, m) for m in ms)

root = sys.argv[1]
os.makedirs(f"{root}/ingest", exist_ok=True)
os.makedirs(f"{root}/remote_read", exist_ok=True)
for f in sorted(glob.glob("../benches/fixtures/prom242-*.bin"))[:10]:
    body = open(f, "rb").read()
    name = os.path.basename(f)
    open(f"{root}/ingest/{name}.snappy", "wb").write(b"\x01" + body)
    open(f"{root}/ingest/{name}.proto", "wb").write(b"\x00" + unsnappy(body))
reads = {
    "eq": [query(0, 3600000, [matcher(0, "__name__", "job:req:rate1m:forecast")])],
    "re": [query(0, 7200000, [matcher(2, "__name__", "job:.*:forecast"), matcher(0, "horizon", "")])],
    "hist": [query(1800000, 3600000, [matcher(0, "__name__", "job:req:rate1m:forecast"),
                                      matcher(0, "horizon", "3m"), matcher(3, "ml_forecast", "yhat_.*")])],
    "scaling": [query(0, 3600000, [matcher(0, "__name__", "promcast_desired_replicas")])],
    "multi": [query(0, 3600000, [matcher(1, "job", "api")]), query(0, 100, [matcher(2, "__name__", ".+")])],
}
for k, qs in reads.items():
    open(f"{root}/remote_read/{k}.pb", "wb").write(b"".join(field(1, 2, q) for q in qs) + field(2, 0, 0))
PY

per_worker=$(( (RUNS + WORKERS - 1) / WORKERS ))
for t in $TARGETS; do
    cargo +nightly fuzz build -O -s none "$t"
    bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$t"
    mkdir -p "$OUT/artifacts/$t" "$OUT/logs/$t"
    echo "+ $t: $WORKERS x $per_worker runs"
    (cd "$OUT/logs/$t" && "$bin" "$OUT/corpus/$t" -runs="$per_worker" -jobs="$WORKERS" \
        -workers="$WORKERS" -max_len=16384 -artifact_prefix="$OUT/artifacts/$t/" > run.log 2>&1)
    grep -h "DONE\|Done" "$OUT/logs/$t"/fuzz-*.log
done
