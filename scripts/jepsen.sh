#!/usr/bin/env bash
# Long Jepsen-style soak of the raft cluster (tests/jepsen.rs `soak`, harness in tests/jepsen/):
# 8 clients (KV v2 and tokens) against real `sealkeep server` processes while a nemesis injects faults, then
# the porcupine linearizability check and the durability checks; prints a summary table
# (operations, ok/fail/info, faults, linearizable, durable) and the unavailability windows
# (fault to the first acknowledged write) p50/p99/max per nemesis.
#
#   scripts/jepsen.sh [--time SECONDS] [--seed N] [--nemesis NAME] [--nodes N]
#
# NAME: mixed (default), kill-leader, kill-random, pause-leader, step-down, partition,
# membership, wipe, none.
# Artifacts (history.jsonl, a <key>.html visualization for a violation, server logs) go to
# $SEALKEEP_JEPSEN_OUT (default target/tmp/jepsen/). Needs moto (scripts/test-all.sh installs it
# into $SEALKEEP_CACHE/venv) and Go (the checker is built once into $SEALKEEP_CACHE/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
TIME=600 SEED=1 NEMESIS=mixed NODES=3
while [ $# -gt 0 ]; do
  case "$1" in
    --time) TIME="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --nemesis) NEMESIS="$2"; shift 2 ;;
    --nodes) NODES="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
export SEALKEEP_CACHE="${SEALKEEP_CACHE:-/var/cache/sealkeep}"
PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
CHECKER_SRC=tests/jepsen/checker
CHECKER="$SEALKEEP_CACHE/bin/jepsen-checker-$(cat "$CHECKER_SRC/go.mod" "$CHECKER_SRC/go.sum" $(ls "$CHECKER_SRC"/*.go | sort) | sha256sum | cut -c1-12)"
if [ ! -x "$CHECKER" ]; then
  mkdir -p "$(dirname "$CHECKER")"
  (cd "$CHECKER_SRC" && CGO_ENABLED=0 go build -o "$CHECKER.tmp" . && mv "$CHECKER.tmp" "$CHECKER")
fi
export SEALKEEP_JEPSEN_CHECKER="$CHECKER"
SEALKEEP_JEPSEN_TIME="$TIME" SEALKEEP_JEPSEN_SEED="$SEED" SEALKEEP_JEPSEN_NEMESIS="$NEMESIS" \
SEALKEEP_JEPSEN_NODES="$NODES" \
  cargo test --workspace --test jepsen -- --ignored --exact soak --nocapture
