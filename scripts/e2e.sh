#!/usr/bin/env bash
# End-to-end stage of scripts/test-all.sh: the local Kubernetes (testenv) with the process
# kubelet, then the ignored e2e tests, then `testenv down` and a check that nothing is left.
# Needs root (network namespaces, bridge, mounts), as CI and the developers' machines have.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

step "packages for testenv (iproute2, openssl, curl, procps, util-linux)"
missing=()
for c in ip openssl curl pgrep nsenter unshare flock ss; do
  command -v "$c" >/dev/null || missing+=("$c")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing for: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 openssl curl procps util-linux >/dev/null
fi

step "pinned Kubernetes, etcd and Helm binaries (built from Go modules once, then cached)"
testenv/build-bins.sh >/dev/null

step "sealkeep and the process kubelet"
cargo build --locked -p sealkeep -p sealkeep-pkubelet --bins

step "testenv up (after a down, so leftovers of an earlier run cannot leak in)"
testenv/testenv down >/dev/null
trap 'testenv/testenv down >/dev/null 2>&1 || true' EXIT
testenv/testenv up

step "end-to-end tests on testenv"
cargo test --locked --test e2e_testenv -- --ignored --test-threads=1

step "operator end-to-end tests on testenv (operator with the chart's RBAC, moto for KMS and STS)"
cargo test --locked --test e2e_operator -- --ignored --test-threads=1

step "operator benchmark on testenv (figures printed, never asserted)"
cargo bench --locked --bench operator -- --quick

step "testenv down leaves nothing behind"
cargo test --locked --test e2e_teardown -- --ignored
