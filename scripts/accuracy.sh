#!/usr/bin/env bash
# Reproduces docs/ACCURACY.md: `promcast backtest` of naive, seasonal_naive, mstl, ets, lstm (the built-in
# model) and auto on the test split (last 20%) of each trace, with the agent's defaults
# (retention 24h, horizons 5m/15m/30m, seasons 1h/1d, refit every 15m).
# Then the peers side by side (bench/peers/run.sh; PEERS=0 skips them).
# Usage: scripts/accuracy.sh [OUT_DIR]   (default target/accuracy; ~2.5 hours on 2 cores, Azure most,
# plus ~60 minutes for the peers)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/accuracy}"
data=../shared/data
cargo build --release
bin="${CARGO_TARGET_DIR:-target}/release/promcast"
models=naive,seasonal_naive,mstl,ets,lstm,auto
run() { name=$1; shift; echo "== $name"; "$bin" backtest --models "$models" --out "$out/$name" "$@" | tee "$out/$name.md"; }
mkdir -p "$out"
run nasa --input $data/nasa_http_1995/nasa_requests_per_minute.csv --step 1m --zero-run-gap 60
run alibaba_qps --input $data/alibaba_gentd26/cluster-trace-v2026-GenAI/qps.csv.gz \
    --time-column timestamp_anon --column value --key container_ip,request_type --step 5m
run alibaba_memory --input $data/alibaba_gentd26/cluster-trace-v2026-GenAI/pod_memory_util_anon.csv.gz \
    --time-column timestamp_anon --column value --key container_ip --step 1m
run nab_aws --input $data/nab/data/realAWSCloudwatch --step 5m
run azure_cpu --input $data/azure_vm_v1_sample/microsoft_avg_100.csv.gz --column '*' --step 5m
# The gateway's total QPS per request type (sum over containers), as a recording rule
# `sum by (request_type)` would give it: not in the training data in this form.
run alibaba_qps_total --input $data/alibaba_gentd26/cluster-trace-v2026-GenAI/qps.csv.gz \
    --time-column timestamp_anon --column value --key request_type --sum-over container_ip --step 5m
# Peers (what users would pick instead) on the same origins: bench/peers/run.sh. PEERS=0 skips.
if [ "${PEERS:-1}" != 0 ]; then
    bench/peers/run.sh "$out/peers"
fi
