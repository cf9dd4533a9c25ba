#!/usr/bin/env bash
# Fuzz each target for RUNS executions in all (default 10 million), split over WORKERS processes,
# with seed corpora made from real inputs. Needs the nightly toolchain and cargo-fuzz:
#
#   rustup toolchain install nightly && cargo install cargo-fuzz
#   ./fuzz/run.sh                       # RUNS=10000000 WORKERS=2 TARGETS="ingest ingest_v2 remote_read"
#
# Built without a sanitizer (`-s none`): the code under test has no `unsafe`, the targets look
# for panics, and ASan runs them ten times slower. Corpora and crash artifacts go under
# $OUT (default target/fuzz). A crash leaves its input in $OUT/artifacts/<target>/ and exits
# non-zero.
set -euo pipefail
cd "$(dirname "$0")"

RUNS=${RUNS:-10000000}
WORKERS=${WORKERS:-2}
TARGETS=${TARGETS:-ingest ingest_v2 remote_read}
# Longest input libFuzzer makes. 16 KiB covers a remote-write body of a few hundred series; a
# remote-read request from Prometheus is one query of a few matchers (under 1 KiB), and at 16
# KiB the fuzzer spends its time compiling hundreds of regexes per input (4.3 ms an input on
# the grown corpus against 0.2 ms at 4 KiB), so the remote_read 100M run used MAX_LEN=4096.
MAX_LEN=${MAX_LEN:-16384}
OUT=${OUT:-../target/fuzz}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$OUT/build}

# Seeds: the captured Prometheus 2.42 bodies, as raw snappy (mode byte 1) and decompressed
# protobuf (mode byte 0); the same bodies converted to remote-write 2.0 requests for ingest_v2
# (cut into requests under -max_len, both forms, plus two written by hand); a few remote-read
# requests written by hand.
python3 - "$OUT/corpus" <<'PY'
import glob, os, struct, sys

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

def snappy(data):
    """Compresses into a snappy block (greedy, 4-byte hash matches, offsets under 64 KiB)."""
    out = bytearray(varint(len(data)))

    def literal(b):
        n = len(b) - 1
        if n < 60:
            out.append(n << 2)
        else:
            k = (n.bit_length() + 7) // 8
            out.append((59 + k) << 2)
            out.extend(n.to_bytes(k, "little"))
        out.extend(b)

    table, i, lit, n = {}, 0, 0, len(data)
    while i + 4 <= n:
        key = data[i:i + 4]
        cand = table.get(key)
        table[key] = i
        if cand is None or i - cand > 0xFFFF:
            i += 1
            continue
        m = 4
        while i + m < n and data[cand + m] == data[i + m]:
            m += 1
        if lit < i:
            literal(data[lit:i])
        off = i - cand
        left = m
        while left:
            ln = min(left, 64)
            out.append(((ln - 1) << 2) | 2)
            out.extend(off.to_bytes(2, "little"))
            left -= ln
        i += m
        lit = i
    if lit < n:
        literal(data[lit:])
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

def fields(b):
    """Walks one protobuf message: (field, wire type, int or bytes)."""
    i = 0
    while i < len(b):
        key, i = read_varint(b, i)
        n, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            ln, i = read_varint(b, i)
            v, i = b[i:i + ln], i + ln
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield n, wt, v

def read_varint(b, i):
    v, shift = 0, 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7F) << shift; shift += 7
        if c < 0x80:
            return v, i

def double(n, v):
    return varint((n << 3) | 1) + struct.pack("<d", v)

def sample(v, ts):
    return double(1, v) + field(2, 0, ts)

def v2_requests(rw1, limit):
    """Converts a 1.0 WriteRequest into 2.0 Requests (symbols first, "" at 0; labels_refs
    packed; samples copied; Metadata type counter for names ending in _total), each encoded
    under `limit` bytes, each with its own symbol table."""
    series = []
    for n, _, ts in fields(rw1):
        if n != 1:
            continue
        labels, samples = [], []
        for m, _, v in fields(ts):
            if m == 1:
                kv = dict((k, x) for k, _, x in fields(v))
                labels.append((kv.get(1, b""), kv.get(2, b"")))
            elif m == 2:
                samples.append(v)  # 1.0 Sample and 2.0 Sample share their fields
        series.append((labels, samples))
    out, syms, index, body = [], [], {}, []

    def flush():
        if body:
            out.append(b"".join(field(4, 2, s) for s in syms) + b"".join(body))
        syms.clear(); index.clear(); body.clear()
        intern(b"")

    def intern(s):
        if s not in index:
            index[s] = len(syms)
            syms.append(s)
        return index[s]

    def size():
        return sum(len(field(4, 2, s)) for s in syms) + sum(map(len, body))

    def encode(labels, samples):
        refs = b"".join(varint(intern(x)) for kv in labels for x in kv)
        ts = field(1, 2, refs) + b"".join(field(2, 2, s) for s in samples)
        if dict(labels).get(b"__name__", b"").endswith(b"_total"):
            ts += field(5, 2, field(1, 0, 1))
        return field(5, 2, ts)

    flush()
    for labels, samples in series:
        kept = len(syms)
        body.append(encode(labels, samples))
        if size() > limit and len(body) > 1:
            # Too big: take the series (and the symbols it added) back, start a new request.
            body.pop()
            for s in syms[kept:]:
                del index[s]
            del syms[kept:]
            flush()
            body.append(encode(labels, samples))
    flush()
    return out

def v2_by_hand():
    """Two 2.0 requests: one with every TimeSeries field (created timestamp, help and unit
    references, a histogram, an exemplar, several samples); the same series with the symbols
    after them and labels_refs unpacked."""
    syms = [b"", b"__name__", b"http_requests_total", b"job", b"web", b"Requests served.",
            b"requests", b"job:req:rate1m", b"rpc_duration_seconds", b"trace_id", b"abc"]
    hist = field(1, 0, 3) + double(3, 1.5) + field(4, 0, 0) + double(5, 1e-128) + field(15, 0, 1700000000000)
    series = [
        ([1, 2, 3, 4], [sample(1.0, 1699999990000), sample(4.0, 1700000000000)],
         field(5, 2, field(1, 0, 1) + field(3, 0, 5) + field(4, 0, 6)) + field(6, 0, 1699999000000)),
        ([1, 7, 3, 4], [sample(0.25, 1700000000000)], field(5, 2, field(1, 0, 2))),
        ([1, 8, 3, 4], [], field(3, 2, hist) + field(4, 2, field(1, 2, bytes([9, 10])) + double(2, 0.3)
                                                         + field(3, 0, 1700000000000))
         + field(5, 2, field(1, 0, 3))),
    ]
    symbols = b"".join(field(4, 2, s) for s in syms)
    packed = b"".join(field(5, 2, field(1, 2, b"".join(map(varint, refs))) + b"".join(field(2, 2, s) for s in samples) + rest)
                      for refs, samples, rest in series)
    unpacked = b"".join(field(5, 2, b"".join(field(1, 0, r) for r in refs) + b"".join(field(2, 2, s) for s in samples) + rest)
                        for refs, samples, rest in series)
    return {"all-fields": symbols + packed, "symbols-last": unpacked + symbols}

def matcher(t, name, value):
    return field(1, 0, t) + field(2, 2, name.encode()) + field(3, 2, value.encode())

def query(start, end, ms):
    return field(1, 0, start) + field(2, 0, end) + b"".join(field(3, 2, m) for m in ms)

root = sys.argv[1]
os.makedirs(f"{root}/ingest", exist_ok=True)
os.makedirs(f"{root}/ingest_v2", exist_ok=True)
os.makedirs(f"{root}/remote_read", exist_ok=True)
for f in sorted(glob.glob("../benches/fixtures/prom242-*.bin"))[:10]:
    body = open(f, "rb").read()
    name = os.path.basename(f)
    open(f"{root}/ingest/{name}.snappy", "wb").write(b"\x01" + body)
    open(f"{root}/ingest/{name}.proto", "wb").write(b"\x00" + unsnappy(body))
    # Under -max_len (16384) with the mode byte: libFuzzer cuts longer seeds, and a cut 2.0
    # body is refused whole (its symbols are read first, to the end).
    for i, req in enumerate(v2_requests(unsnappy(body), 16000)):
        packed = snappy(req)
        assert unsnappy(packed) == req
        open(f"{root}/ingest_v2/{name}.{i}.snappy", "wb").write(b"\x01" + packed)
        open(f"{root}/ingest_v2/{name}.{i}.proto", "wb").write(b"\x00" + req)
for k, req in v2_by_hand().items():
    open(f"{root}/ingest_v2/{k}.snappy", "wb").write(b"\x01" + snappy(req))
    open(f"{root}/ingest_v2/{k}.proto", "wb").write(b"\x00" + req)
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
        -workers="$WORKERS" -max_len="$MAX_LEN" -artifact_prefix="$OUT/artifacts/$t/" > run.log 2>&1)
    grep -h "DONE\|Done" "$OUT/logs/$t"/fuzz-*.log
done
