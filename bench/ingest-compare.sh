#!/usr/bin/env bash
# Side-by-side remote-write ingest: the same generated traffic (examples/loadgen.rs), in one
# run, into promcast (remote write 1.0; as `promcast-rw2`, the same traffic as remote write 2.0
# into a fresh promcast with the same config), vmagent, VictoriaMetrics (single node) and
# Prometheus' remote-write receiver, one receiver at a time. For each: accepted samples per
# CPU-second of the receiver process (utime + stime from /proc/PID/stat), peak RSS (VmHWM), and
# the request latency the generator saw (p50/p99). For promcast-rw2 the generator also checks
# every 2xx answer's X-Prometheus-Remote-Write-Samples-Written (printed after its row).
#
#   ./bench/ingest-compare.sh                     # defaults below
#   SERIES=100000 DURATION=30s CONCURRENCY=4 ./bench/ingest-compare.sh
#   RECEIVERS="promcast promcast-rw2" ./bench/ingest-compare.sh   # promcast, 1.0 against 2.0
#   PROMCAST=/path/to/other/promcast RECEIVERS=... ./bench/ingest-compare.sh  # another build
#   PAIRED=1 ./bench/ingest-compare.sh     # promcast 1.0 and 2.0 at the same time, RUNS times
#
# PAIRED: this VM's throughput drifts by up to 20% from one half-minute to the next (one
# receiver after the other gave 2.0/1.0 ratios from 0.81 to 1.07 for one build), so the 1.0
# and 2.0 receivers run side by side, each with its own generator, and the ratio is taken
# within each run: both see the same machine. RUNS (default 3) such runs.
#
# Needs: prometheus (Debian `prometheus`), victoria-metrics and vmagent (Debian
# `victoria-metrics`): `sudo apt-get install -y prometheus victoria-metrics`.
# vmagent forwards to a VictoriaMetrics sink whose CPU is not counted in vmagent's figure.
# Results go to $OUT (default target/ingest-compare) as results.csv and one log per receiver.
set -euo pipefail
cd "$(dirname "$0")/.."

SERIES=${SERIES:-100000}
LABELS=${LABELS:-8}
SPR=${SPR:-2000}
CONCURRENCY=${CONCURRENCY:-4}
DURATION=${DURATION:-30s}
RECEIVERS=${RECEIVERS:-promcast promcast-rw2 vmagent victoria-metrics prometheus}
OUT=${OUT:-target/ingest-compare}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

for p in prometheus victoria-metrics vmagent; do
    command -v "$p" >/dev/null || { echo "missing $p: sudo apt-get install -y prometheus victoria-metrics" >&2; exit 1; }
done
cargo build --release --bin promcast --example loadgen
PROMCAST=${PROMCAST:-$TARGET_DIR/release/promcast}
LOADGEN=$TARGET_DIR/release/examples/loadgen

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_ready() { # url
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "not ready: $1" >&2
    return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

cat > "$OUT/promcast.yml" <<EOF
storage: { step: 1m, retention: 24h }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5m, 15m, 30m]
    model: auto
limits: { max_series: 2000000 }
EOF
cat > "$OUT/prometheus.yml" <<EOF
global: { scrape_interval: 1h }
scrape_configs: []
EOF

TCK=$(getconf CLK_TCK)
if [ "${PAIRED:-0}" = 1 ]; then
    echo "run,protocol,accepted_samples,cpu_seconds,samples_per_cpu_second,non_2xx_requests" > "$OUT/paired.csv"
    for run in $(seq 1 "${RUNS:-3}"); do
        pids=(); c0=(); c1=()
        for i in 0 1; do
            "$PROMCAST" serve --config "$OUT/promcast.yml" --web.listen-address "127.0.0.1:1920$((i * 2 + 1))" \
                --grpc.listen-address "127.0.0.1:1920$((i * 2 + 2))" > "$OUT/paired-$run-$i.log" 2>&1 &
            pids+=("$!"); PIDS+=("$!")
        done
        for i in 0 1; do wait_ready "http://127.0.0.1:1920$((i * 2 + 1))/-/ready"; done
        for i in 0 1; do c0+=("$(cpu_ticks "${pids[$i]}")"); done
        gens=()
        for i in 0 1; do
            "$LOADGEN" --url "http://127.0.0.1:1920$((i * 2 + 1))/api/v1/write" --protocol "$((i + 1)).0" \
                --series "$SERIES" --labels "$LABELS" --samples-per-request "$SPR" \
                --concurrency "$CONCURRENCY" --duration "$DURATION" --json --progress 0s \
                > "$OUT/paired-$run-$i.json" &
            gens+=("$!")
        done
        wait "${gens[@]}"
        for i in 0 1; do c1+=("$(cpu_ticks "${pids[$i]}")"); kill "${pids[$i]}"; wait "${pids[$i]}" 2>/dev/null || true; done
        python3 - "$run" "$OUT" "${c0[0]}" "${c1[0]}" "${c0[1]}" "${c1[1]}" "$TCK" >> "$OUT/paired.csv" <<'PY'
import json, sys
run, out, tck = sys.argv[1], sys.argv[2], int(sys.argv[7])
rates = []
for i in (0, 1):
    j = json.load(open(f"{out}/paired-{run}-{i}.json"))
    cpu = (int(sys.argv[4 + 2 * i]) - int(sys.argv[3 + 2 * i])) / tck
    non2xx = sum(v["requests"] for k, v in j["status"].items() if not k.startswith("2")) + j["errors"]
    rates.append(j["accepted_samples"] / max(cpu, 1e-9))
    if "written_mismatches" in j:
        print(f'run {run}: {j["written_mismatches"]} 2.0 answers not matching the samples sent', file=sys.stderr)
    print(f'{run},{i + 1}.0,{j["accepted_samples"]},{cpu:.2f},{rates[-1]:.0f},{non2xx}')
print(f"run {run}: 2.0 / 1.0 = {rates[1] / rates[0]:.3f}", file=sys.stderr)
PY
    done
    column -s, -t < "$OUT/paired.csv"
    exit 0
fi

echo "receiver,accepted_samples,seconds,cpu_seconds,samples_per_cpu_second,peak_rss_mib,p50_ms,p99_ms,non_2xx_requests" > "$OUT/results.csv"
for r in $RECEIVERS; do
    protocol=1.0
    case $r in
    promcast | promcast-rw2)
        if [ "$r" = promcast-rw2 ]; then protocol=2.0; fi
        "$PROMCAST" serve --config "$OUT/promcast.yml" --web.listen-address 127.0.0.1:19201 \
            --grpc.listen-address 127.0.0.1:19202 > "$OUT/$r.log" 2>&1 &
        pid=$!; url=http://127.0.0.1:19201/api/v1/write; ready=http://127.0.0.1:19201/-/ready ;;
    victoria-metrics)
        victoria-metrics -httpListenAddr=127.0.0.1:18428 -storageDataPath="$OUT/vm" \
            -retentionPeriod=1 > "$OUT/victoria-metrics.log" 2>&1 &
        pid=$!; url=http://127.0.0.1:18428/api/v1/write; ready=http://127.0.0.1:18428/health ;;
    vmagent)
        victoria-metrics -httpListenAddr=127.0.0.1:18528 -storageDataPath="$OUT/vm-sink" \
            -retentionPeriod=1 > "$OUT/vm-sink.log" 2>&1 &
        PIDS+=($!)
        wait_ready http://127.0.0.1:18528/health
        vmagent -httpListenAddr=127.0.0.1:18429 -remoteWrite.url=http://127.0.0.1:18528/api/v1/write \
            -remoteWrite.tmpDataPath="$OUT/vmagent" > "$OUT/vmagent.log" 2>&1 &
        pid=$!; url=http://127.0.0.1:18429/api/v1/write; ready=http://127.0.0.1:18429/health ;;
    prometheus)
        prometheus --config.file="$OUT/prometheus.yml" --storage.tsdb.path="$OUT/prom" \
            --web.listen-address=127.0.0.1:19090 --web.enable-remote-write-receiver \
            > "$OUT/prometheus.log" 2>&1 &
        pid=$!; url=http://127.0.0.1:19090/api/v1/write; ready=http://127.0.0.1:19090/-/ready ;;
    *) echo "unknown receiver $r" >&2; exit 1 ;;
    esac
    PIDS+=("$pid")
    wait_ready "$ready"
    c0=$(cpu_ticks "$pid")
    "$LOADGEN" --url "$url" --protocol "$protocol" --series "$SERIES" --labels "$LABELS" \
        --samples-per-request "$SPR" --concurrency "$CONCURRENCY" --duration "$DURATION" --json \
        --progress 0s > "$OUT/$r.json"
    c1=$(cpu_ticks "$pid")
    hwm=$(hwm_kib "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    if [ "$r" = vmagent ]; then kill "${PIDS[-2]}" 2>/dev/null || true; fi
    python3 - "$r" "$OUT/$r.json" "$c0" "$c1" "$TCK" "$hwm" >> "$OUT/results.csv" <<'PY'
import json, sys
r, path, c0, c1, tck, hwm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
j = json.load(open(path))
cpu = (c1 - c0) / tck
non2xx = sum(v["requests"] for k, v in j["status"].items() if not k.startswith("2")) + j["errors"]
if "written_mismatches" in j:  # remote write 2.0: the samples-written header check
    print(f'{r}: {j["samples_written"]} samples written by header, {j["written_mismatches"]} 2xx answers not matching the samples sent', file=sys.stderr)
print(f'{r},{j["accepted_samples"]},{j["seconds"]:.1f},{cpu:.2f},{j["accepted_samples"] / max(cpu, 1e-9):.0f},{hwm / 1024:.0f},{j["latency_ms"]["p50"]:.2f},{j["latency_ms"]["p99"]:.2f},{non2xx}')
PY
    tail -1 "$OUT/results.csv"
done
echo
column -s, -t < "$OUT/results.csv"
