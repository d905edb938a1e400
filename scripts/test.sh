#!/usr/bin/env bash
# The test command: installs what a fresh Debian machine lacks, then runs every test.
#
#   scripts/test.sh
#
# Installing needs root (apt-get, pip); on a machine that has everything it installs nothing.
# The Redis engine's tests start their own redis-server from PATH; the deployment tests check the
# balancer config with nginx and run the local cluster script (curl, redis-cli); the Kubernetes
# tests render k8s/ with kubectl and validate it with the kubernetes-validate Python package; the
# JavaScript client's tests (when clients/js exists) drive the node from Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "scripts/test.sh: $*" >&2; }

apt_updated=false
apt_install() {
  if [[ $(id -u) -ne 0 ]]; then
    say "missing: $*; install them (as root: apt-get install $*) or run this as root"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [[ $apt_updated == false ]]; then
    apt-get update -qq
    apt_updated=true
  fi
  say "installing $*"
  apt-get install -y -qq "$@" >/dev/null
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
js_tests=false
if [[ -f clients/js/package.json ]]; then
  js_tests=true
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  apt_install "${missing[@]}"
  # Debian starts the services it installs; the tests run their own, on ports of their own.
  for service in nginx redis-server; do
    if [[ " ${missing[*]} " == *" $service "* ]]; then
      service "$service" stop >/dev/null 2>&1 || true
    fi
  done
fi

if ! python3 -c "import kubernetes_validate" >/dev/null 2>&1; then
  say "installing kubernetes-validate"
  python3 -m pip install -q kubernetes-validate
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# The binaries as `cargo run` and `cargo build -p rookery-bench` build them: the README test runs
# `cargo run`, and the bench tests build the load generator, so both are up to date beforehand
# rather than built inside a test's time limit.
cargo build --locked --workspace --bins
# The node, the load generator and the tests of both.
cargo nextest run --workspace --locked

if [[ $js_tests == true ]]; then
  # The JavaScript client's tests run against a real node: the debug build, by absolute path
  # (built again in case the tests' build, with the test-only features, replaced it).
  cargo build --locked --bin rookery
  target_dir="$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  export ROOKERY_BIN="$target_dir/debug/rookery"
  (cd clients/js && npm ci && npm test)
fi
