#!/usr/bin/env bash
# Soak: promcast under a steady 80% of its measured maximum remote-write rate for 10 minutes
# (the forecast loop running once a minute meanwhile), printing every 30 s the accepted
# rate, request latency p50/p99 and promcast's RSS and CPU.
#
#   ./bench/soak.sh                                  # SERIES=100000 SOAK=10m FRACTION=0.8
#   SERIES=20000 RATE=20000 SOAK=2h ./bench/soak.sh  # the overload test's rate, for two hours
#
# First a 20 s run as fast as promcast takes it measures the maximum; then the soak runs at
# FRACTION of it (or at RATE samples/s, when set, without measuring the maximum). Snapshots
# are on (every SNAPSHOT_EVERY, default 5m, under $OUT/data), as in a deployment that keeps its
# rings across restarts. Output: $OUT/max.json, $OUT/soak.log (the series of figures),
# $OUT/soak.json.
set -euo pipefail
cd "$(dirname "$0")/.."

SERIES=${SERIES:-100000}
CONCURRENCY=${CONCURRENCY:-4}
SOAK=${SOAK:-10m}
FRACTION=${FRACTION:-0.8}
RATE=${RATE:-}
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-5m}
OUT=${OUT:-target/soak}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --release --bin promcast --example loadgen
PROMCAST=$TARGET_DIR/release/promcast
LOADGEN=$TARGET_DIR/release/examples/loadgen
rm -rf "$OUT"
mkdir -p "$OUT"
cat > "$OUT/promcast.yml" <<EOF
storage: { step: 1m, retention: 24h, path: '$OUT/data', snapshot_every: $SNAPSHOT_EVERY }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5m, 15m, 30m]
    model: auto
limits: { max_series: 2000000 }
EOF
"$PROMCAST" serve --config "$OUT/promcast.yml" --web.listen-address 127.0.0.1:19211 \
    --grpc.listen-address 127.0.0.1:19212 > "$OUT/promcast.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -fsS -o /dev/null http://127.0.0.1:19211/-/ready 2>/dev/null && break; sleep 0.1; done

URL=http://127.0.0.1:19211/api/v1/write
if [ -z "$RATE" ]; then
    "$LOADGEN" --url $URL --series "$SERIES" --concurrency "$CONCURRENCY" --duration 20s \
        --json --progress 0s > "$OUT/max.json"
    MAX=$(python3 -c "import json; print(json.load(open('$OUT/max.json'))['accepted_per_second'])")
    RATE=$(python3 -c "print(round($MAX * $FRACTION))")
    echo "maximum: $MAX samples/s; soaking at $RATE samples/s for $SOAK" | tee "$OUT/soak.log"
else
    echo "soaking at $RATE samples/s for $SOAK ($SERIES series)" | tee "$OUT/soak.log"
fi
"$LOADGEN" --url $URL --series "$SERIES" --concurrency "$CONCURRENCY" --duration "$SOAK" \
    --rate "$RATE" --json --progress 30s --watch-pid $PID 2>> "$OUT/soak.log" > "$OUT/soak.json"
cat "$OUT/soak.log"
cat "$OUT/soak.json"
