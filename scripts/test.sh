#!/usr/bin/env bash
# Run every test: unit, integration and the end-to-end test against a real Prometheus
# (tests/e2e_prometheus.rs), which needs /usr/bin/prometheus (Debian package `prometheus`).
# Plain `cargo test`: lib, binary, integration and doc tests (benches are built by clippy
# --all-targets in .ci/run). Extra arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then
    echo "+ prometheus not found: installing the Debian package prometheus"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    # The package's postinst may try to start a service; there is none to start in a
    # container, and the tests start Prometheus themselves.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
fi
prom=$(command -v prometheus || echo /usr/bin/prometheus)
echo "+ $prom: $("$prom" --version 2>&1 | head -1)"

echo "+ cargo test $*"
exec cargo test "$@"
