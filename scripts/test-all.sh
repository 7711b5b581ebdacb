#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (moto in a venv, the Go build
# of Vault's Shamir reference), starts moto on a free loopback port, then runs fmt, clippy and
# the whole Rust suite, then the end-to-end stage on the local Kubernetes (scripts/e2e.sh: the
# pinned Go-built control plane, the process kubelet; needs root). Safe to re-run; expensive steps are cached under $SEALKEEP_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export SEALKEEP_CACHE="${SEALKEEP_CACHE:-/var/cache/sealkeep}"
MOTO_VERSION=5.2.5
HVAC_VERSION=2.4.0
PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
mkdir -p "$SEALKEEP_CACHE"
step() { printf '\n==> %s\n' "$*"; }

for tool in cargo go python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required but not on PATH" >&2; exit 1; }
done

step "moto[server]==$MOTO_VERSION and hvac==$HVAC_VERSION in $SEALKEEP_CACHE/venv"
VENV="$SEALKEEP_CACHE/venv"
if ! "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
# hvac, the Python Vault client, for tests/client_hvac.rs (tests/clients/test_hvac.py).
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('hvac') != '$HVAC_VERSION')" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "hvac==$HVAC_VERSION"
fi
export SEALKEEP_MOTO_SERVER="$VENV/bin/moto_server"
export SEALKEEP_HVAC_PYTHON="$VENV/bin/python"

step "Vault's Shamir reference (tests/vault_shamir, Go)"
VS="$SEALKEEP_CACHE/bin/vaultshamir-$(sha256sum tests/vault_shamir/go.sum | cut -c1-12)"
if [ ! -x "$VS" ]; then
  mkdir -p "$(dirname "$VS")"
  (cd tests/vault_shamir && CGO_ENABLED=0 go build -o "$VS.tmp" . && mv "$VS.tmp" "$VS")
fi
export SEALKEEP_VAULTSHAMIR="$VS"

step "the Jepsen harness's linearizability checker (tests/jepsen/checker, Go, porcupine)"
JC_SRC=tests/jepsen/checker
JC="$SEALKEEP_CACHE/bin/jepsen-checker-$(cat "$JC_SRC/go.mod" "$JC_SRC/go.sum" $(ls "$JC_SRC"/*.go | sort) | sha256sum | cut -c1-12)"
if [ ! -x "$JC" ]; then
  mkdir -p "$(dirname "$JC")"
  (cd "$JC_SRC" && CGO_ENABLED=0 go build -o "$JC.tmp" . && mv "$JC.tmp" "$JC")
fi
export SEALKEEP_JEPSEN_CHECKER="$JC"

step "moto on a free loopback port"
MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SEALKEEP_MOTO_SERVER" -H 127.0.0.1 -p "$MOTO_PORT" >"${TMPDIR:-/tmp}/sealkeep-moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true; wait $MOTO_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1',$MOTO_PORT),1)" 2>/dev/null; then break; fi
  sleep 0.2
done
export SEALKEEP_TEST_MOTO_URL="http://127.0.0.1:$MOTO_PORT"
echo "moto at $SEALKEEP_TEST_MOTO_URL (pid $MOTO_PID)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, router, integration against moto)"
cargo test --locked --workspace --lib --bins --tests

step "parser depth and size limits in release too (optimized frames differ from debug ones)"
cargo test --locked --workspace --release --lib -- depth_limit_ size_limit_

# Warm (cargo-fuzz and the instrumented build cached under $SEALKEEP_CACHE): about 2 minutes.
step "fuzz targets, 10 s each (scripts/fuzz.sh; a long run: scripts/fuzz.sh --seconds 600)"
bash scripts/fuzz.sh --seconds 10

bash scripts/e2e.sh

step "benchmarks, run once in release (figures are printed, never asserted)"
cargo bench --locked --workspace --bench barrier -- --quick
cargo bench --locked --workspace --bench unseal -- --runs 5
cargo bench --locked --workspace --bench kv -- --quick
cargo bench --locked --workspace --bench ha -- --quick
