#!/usr/bin/env bash
# Run every test: unit, integration, the end-to-end tests against a real Prometheus
# (tests/e2e_*.rs; they need /usr/bin/prometheus, Debian package `prometheus`), the web page
# and the reports in headless Chromium (tests/e2e_demo.rs, tests/report_html.rs; Debian
# package `chromium`), and the
# inference-backend conformance suite for tract and onnxruntime (tests/conformance.rs; the
# onnxruntime library comes from the PyPI wheel, installed below).
# Plain `cargo test`: lib, binary, integration and doc tests (benches are built by clippy
# --all-targets in .ci/run). Extra arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Debian package $1 when program $2 is neither on PATH nor in /usr/bin.
need() {
    if command -v "$2" >/dev/null 2>&1 || [ -x "/usr/bin/$2" ]; then return 0; fi
    echo "+ $2 not found: installing the Debian package $1"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    # A package's postinst may try to start a service (prometheus); there is none to start in
    # a container, and the tests start what they need themselves.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1"
}
need prometheus prometheus
# jemalloc (the binary's allocator) is built from C with make; a Rust toolchain brings a C
# compiler and linker, not always make.
need make make
# The web page (tests/e2e_demo.rs) and the offline tools' report.html pages
# (tests/report_html.rs) are loaded in headless Chromium (tests/common/browser.rs).
need chromium chromium
# The container image (tests/image.rs): built with Debian's podman from the release binary,
# offline (scripts/image.sh).
need podman podman
prom=$(command -v prometheus || echo /usr/bin/prometheus)
echo "+ $prom: $("$prom" --version 2>&1 | head -1)"

# onnxruntime for the `gpu` feature's backend (run on the CPU provider here): the shared
# library inside the PyPI wheel, installed into the target directory, never system-wide.
# The version ort 2.0.0-rc.15 was checked against.
ORT_VERSION=1.32.0
ort_dir="${CARGO_TARGET_DIR:-target}/onnxruntime-wheel-$ORT_VERSION"
ort_lib=$(ls "$ort_dir"/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -1 || true)
if [ -z "$ort_lib" ]; then
    echo "+ installing the onnxruntime wheel (PyPI) into $ort_dir"
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-pip
    fi
    python3 -m pip install --quiet --no-deps --target "$ort_dir" "onnxruntime==$ORT_VERSION" \
        || python3 -m pip install --quiet --no-deps --break-system-packages --target "$ort_dir" "onnxruntime==$ORT_VERSION"
    ort_lib=$(ls "$ort_dir"/onnxruntime/capi/libonnxruntime.so.* | head -1)
fi
export ORT_DYLIB_PATH="$(cd "$(dirname "$ort_lib")" && pwd)/$(basename "$ort_lib")"
echo "+ ORT_DYLIB_PATH=$ORT_DYLIB_PATH"

# The Kubernetes manifests (tests/deploy.rs): rendered with kubectl's built-in kustomize and
# validated offline by kubernetes-validate (PyPI, bundled schemas) and jsonschema against the
# CRDs in ../shared/data/k8s-crds; installed into the target directory like onnxruntime.
KV_VERSION=1.37.0
kv_dir="${CARGO_TARGET_DIR:-target}/kubernetes-validate-$KV_VERSION"
if [ ! -x "$kv_dir/bin/kubernetes-validate" ]; then
    echo "+ installing kubernetes-validate $KV_VERSION (PyPI) into $kv_dir"
    python3 -m pip install --quiet --target "$kv_dir" "kubernetes-validate==$KV_VERSION" jsonschema pyyaml \
        || python3 -m pip install --quiet --break-system-packages --target "$kv_dir" "kubernetes-validate==$KV_VERSION" jsonschema pyyaml
fi
export PROMCAST_PYTHONPATH="$(cd "$kv_dir" && pwd)"
echo "+ PROMCAST_PYTHONPATH=$PROMCAST_PYTHONPATH (kubernetes-validate)"
if ! command -v kubectl >/dev/null 2>&1; then
    echo "+ kubectl not found: tests/deploy.rs renders the manifests with kubectl's kustomize (kubectl >= 1.27)" >&2
fi

echo "+ cargo test --features gpu $*"
exec cargo test --features gpu "$@"
