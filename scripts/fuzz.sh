#!/usr/bin/env bash
# Runs the coverage-guided fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) for a bounded time each
# and fails if any of them crashes (a panic, an assertion, a timeout or running out of memory).
#
#   scripts/fuzz.sh [--seconds N] [--minimize] [TARGET...]
#
#   --seconds N   time per target (default 30; CI uses 20, before resolving an issue use 600)
#   --minimize    afterwards, merge what the run found into fuzz/corpus/TARGET and minimize it
#                 (cargo fuzz cmin), ready to commit; without it the committed corpus is only read
#   TARGET...     some targets (default: all, as `cargo fuzz list` prints them)
#
# Installs the pinned cargo-fuzz into $SEALKEEP_CACHE/cargo-fuzz-VERSION (reused when present).
# The build is on stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags, and
# `--sanitizer none` needs no nightly-only sanitizer runtime (Rust is memory-safe here; the
# targets look for panics, wrong results, hangs and memory blow-ups). Crash inputs are left in
# fuzz/artifacts/TARGET/; reproduce one with `cargo fuzz run -s none TARGET FILE` in fuzz/.
# Logs: ${TMPDIR:-/tmp}/sealkeep-fuzz-TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARGO_FUZZ_VERSION=0.13.2
SECS=30
MINIMIZE=0
RSS_LIMIT_MB=2048
TIMEOUT_SECS=10
MAX_LEN=8192
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=${2:?--seconds needs a number}; shift 2 ;;
    --seconds=*) SECS=${1#--seconds=}; shift ;;
    --minimize) MINIMIZE=1; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$SECS" in '' | *[!0-9]*) echo "error: --seconds takes a whole number, got '$SECS'" >&2; exit 2 ;; esac

export SEALKEEP_CACHE="${SEALKEEP_CACHE:-/var/cache/sealkeep}"
PATH="$HOME/.cargo/bin:$PATH"
CF_ROOT="$SEALKEEP_CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
if [ ! -x "$CF_ROOT/bin/cargo-fuzz" ]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CF_ROOT"
  cargo install --quiet cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --root "$CF_ROOT"
fi
export PATH="$CF_ROOT/bin:$PATH"
export RUSTC_BOOTSTRAP=1
# The fuzz build (instrumented, its own profile) cannot share target/; keep it in the cache so
# a second run is warm.
export CARGO_TARGET_DIR="${SEALKEEP_FUZZ_TARGET_DIR:-$SEALKEEP_CACHE/fuzz-target}"

cd "$ROOT/fuzz"
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
echo "building the fuzz targets (cargo-fuzz $CARGO_FUZZ_VERSION, target dir $CARGO_TARGET_DIR)"
build_log="${TMPDIR:-/tmp}/sealkeep-fuzz-build.$$.log"
if ! cargo fuzz build -s none >"$build_log" 2>&1; then
  tail -60 "$build_log"
  echo "error: the fuzz build failed (log: $build_log)" >&2
  exit 1
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/sealkeep-fuzz.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
failed=()
for t in "${targets[@]}"; do
  log="${TMPDIR:-/tmp}/sealkeep-fuzz-$t.log"
  mkdir -p "corpus/$t" "$SCRATCH/$t"
  # New inputs go to the scratch directory (first); the committed corpus is read only.
  if cargo fuzz run -s none "$t" "$SCRATCH/$t" "corpus/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_SECS" \
    -max_len="$MAX_LEN" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "ok      $t: ${runs:-?} runs in ${SECS}s, $cov, corpus $(find "corpus/$t" "$SCRATCH/$t" -type f | wc -l) inputs"
  else
    echo "CRASH   $t (log: $log; inputs in fuzz/artifacts/$t/):"
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -20 || tail -40 "$log"
    failed+=("$t")
  fi
  if [ "$MINIMIZE" = 1 ]; then
    cp -n "$SCRATCH/$t"/* "corpus/$t/" 2>/dev/null || true
    cargo fuzz cmin -s none "$t" "corpus/$t" >>"$log" 2>&1
    echo "        corpus/$t minimized to $(find "corpus/$t" -type f | wc -l) inputs"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "error: fuzz targets crashed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${SECS}s each without a crash"
