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
cargo test --locked --workspace --test e2e_testenv -- --ignored --test-threads=1

step "operator end-to-end tests on testenv (operator with the chart's RBAC, moto for KMS and STS)"
cargo test --locked --workspace --test e2e_operator -- --ignored --test-threads=1

step "the operator's ServiceAccount binds nothing but its own auth-delegator bindings (RBAC + admission policy)"
cargo test --locked --workspace --test e2e_operator_rbac -- --ignored --test-threads=1

step "the init Secret: KMS envelope, foreign Secrets refused, root token revocation, init-secret show"
cargo test --locked --workspace --test e2e_init_secret -- --ignored --test-threads=1

step "Kubernetes auth on testenv (auth-delegator binding, pod login with its projected token)"
cargo test --locked --workspace --test e2e_k8s_auth -- --ignored --test-threads=1

step "operator benchmark on testenv (figures printed, never asserted)"
cargo bench --locked --workspace --bench operator -- --quick

step "Helm chart and examples on testenv (lint, dry-run, install, examples, upgrade, uninstall)"
cargo test --locked --workspace --test e2e_chart -- --ignored --test-threads=1

step "the demo (README's run command), start to finish"
demo_log=$(mktemp)
testenv/testenv demo 2>&1 | tee "$demo_log"
# The rows the demo must have printed: Ready before and after the pod restart, and the value
# written through the server read back after the restart.
[ "$(grep -cE '^vault +1/1 +false +true +awskms +vault-0 ' "$demo_log")" -ge 2 ] \
  || { echo "demo: expected two 'vault 1/1 false true awskms vault-0' rows" >&2; exit 1; }
grep -q "read after the restart: {'greeting': 'hello from sealkeep'}" "$demo_log" \
  || { echo "demo: the value did not survive the pod restart" >&2; exit 1; }
rm -f "$demo_log"

step "testenv down leaves nothing behind"
cargo test --locked --workspace --test e2e_teardown -- --ignored
