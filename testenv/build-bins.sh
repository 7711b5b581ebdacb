#!/usr/bin/env bash
# Build (or reuse) the pinned test-environment binaries from Go modules:
#   kube-apiserver, kube-controller-manager, kubectl  (k8s.io/kubernetes, wrapper testenv/go/k8s)
#   etcd                                              (go.etcd.io/etcd/server/v3, wrapper testenv/go/etcd)
#   helm                                              (helm.sh/helm/v3, go install pkg@version)
# Versions come only from testenv/versions.env.
#
# Binaries go to a cache OUTSIDE the clone, one directory per component and version:
#   ${SEALKEEP_CACHE:-/var/cache/sealkeep}/bin/k8s-$KUBE_VERSION/{kube-apiserver,kube-controller-manager,kubectl}
#   ${SEALKEEP_CACHE:-/var/cache/sealkeep}/bin/etcd-$ETCD_VERSION/etcd
#   ${SEALKEEP_CACHE:-/var/cache/sealkeep}/bin/helm-$HELM_VERSION/helm
# (falls back to ${XDG_CACHE_HOME:-$HOME/.cache}/sealkeep when /var/cache is not writable).
# Each directory holds a .stamp (Go version, wrapper go.mod/go.sum hashes, flags); a directory
# whose binaries and stamp are present and match is reused, so a warm run builds nothing.
# A build goes to a temporary directory that is renamed into place only after the binaries
# report the pinned version: an interrupted build never leaves something that looks cached.
# GOMODCACHE and GOCACHE keep Go's defaults (outside the clone).
#
# Usage:
#   testenv/build-bins.sh            build what is missing; progress on stderr, and on stdout
#                                    lines K8S_BIN_DIR=... ETCD_BIN_DIR=... HELM_BIN_DIR=...
#                                    so that   eval "$(testenv/build-bins.sh)"   works.
#   testenv/build-bins.sh --force    rebuild even when cached.
#   testenv/build-bins.sh --regen    regenerate testenv/go/{k8s,etcd}/go.mod + go.sum from
#                                    versions.env (staging list derived from the go.mod that
#                                    the module proxy serves for k8s.io/kubernetes), then exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T0=$EPOCHREALTIME

log() { printf '[build-bins] %s\n' "$*" >&2; }
die() { printf '[build-bins] ERROR: %s\n' "$*" >&2; exit 1; }
# seconds since $1 (an $EPOCHREALTIME value), one decimal
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

MODE=build FORCE=0
for arg in "$@"; do
  case $arg in
    --regen) MODE=regen ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done

# ---------------------------------------------------------------- Go toolchain
if ! command -v go >/dev/null 2>&1; then
  [ -x /usr/local/go/bin/go ] || die "no 'go' on PATH nor /usr/local/go/bin/go"
  export PATH=/usr/local/go/bin:$PATH
fi
GO_VERSION=$(go env GOVERSION)

# ---------------------------------------------------------------- versions
# shellcheck source=versions.env
. "$HERE/versions.env"
: "${KUBE_VERSION:?missing in versions.env}" "${ETCD_VERSION:?missing in versions.env}" "${HELM_VERSION:?missing in versions.env}"
[[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "KUBE_VERSION=$KUBE_VERSION is not v1.N.P"
KUBE_MINOR=${BASH_REMATCH[1]}
STAGING_VERSION=v0.${KUBE_VERSION#v1.}   # staging modules are tagged v0.N.P for v1.N.P

K8S_WRAP=$HERE/go/k8s
ETCD_WRAP=$HERE/go/etcd
K8S_CMDS=(kube-apiserver kube-controller-manager kubectl)

# Print a go.mod file as one "directive args" line per entry (blocks flattened, comments dropped).
modlines() {
  go mod edit -print "$1" | awk '
    { sub(/[ \t]*\/\/.*/, "") }
    /^[a-z]+ \($/ { blk = $1; next }
    /^\)$/        { blk = ""; next }
    NF == 0       { next }
    { sub(/^[ \t]+/, ""); print (blk != "" ? blk " " $0 : $0) }'
}

# Path of the .mod file the proxy serves for module@version (downloads only the .mod).
served_mod() {
  local j
  j=$(cd / && GOWORK=off GOFLAGS='' go mod download -json "$1" 2>&1) || die "go mod download $1 failed: $j"
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p' <<<"$j"
}

# ---------------------------------------------------------------- --regen
regen_wrapper() { # name dest upstream-module@version tool-packages...
  local name=$1 dest=$2 upstream=$3; shift 3
  local tmp upmod go_line
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/sealkeep-regen-$name.XXXXXX")
  upmod=$(served_mod "$upstream")
  log "$name: upstream go.mod $upmod"
  go_line=$(modlines "$upmod" | awk '$1 == "go" { print $2 }')
  (
    cd "$tmp"
    # shellcheck disable=SC2030  # deliberately local to this subshell
    export GOFLAGS=-mod=mod GOWORK=off
    go mod init "sealkeep/testenv/go/$name" 2>/dev/null
    # Same language version and godebug defaults as the upstream release (godebug is honoured
    # only in the main module, so it has to be copied here).
    go mod edit -go="$go_line" -toolchain=none
    modlines "$upmod" | awk '$1 == "godebug" { print $2 }' | while read -r kv; do
      go mod edit -godebug="$kv"
    done
    if [ "$name" = k8s ]; then
      # k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them to ./staging/...;
      # replace directives only work in the main module, so point each at its published tag.
      local staged required m n=0
      staged=$(modlines "$upmod" | awk '$1 == "replace" && $4 ~ /^\.\/staging\// { print $2 }' | sort -u)
      required=$(modlines "$upmod" | awk '$1 == "require" && $3 == "v0.0.0" { print $2 }' | sort -u)
      [ -n "$required" ] || die "no v0.0.0 requirements found in $upmod"
      for m in $required; do
        grep -qxF "$m" <<<"$staged" || die "$m is required at v0.0.0 but not replaced by ./staging in $upmod"
        go mod edit -replace="$m=$m@$STAGING_VERSION"
        n=$((n + 1))
      done
      log "$name: replaced $n staging modules with $STAGING_VERSION"
    fi
    log "$name: go get -tool $* (resolving the module graph)"
    go get -tool "$@"
    go mod edit -toolchain=none
    go mod tidy
    go mod edit -toolchain=none
    go mod verify >/dev/null
  ) || die "regenerating the $name wrapper failed (workdir $tmp)"
  {
    printf '// Generated by testenv/build-bins.sh --regen from testenv/versions.env; do not edit.\n'
    cat "$tmp/go.mod"
  } >"$tmp/go.mod.new"
  mkdir -p "$dest"
  mv "$tmp/go.mod.new" "$dest/go.mod"
  mv "$tmp/go.sum" "$dest/go.sum"
  rm -rf "$tmp"
  log "$name: wrote ${dest#"$HERE/"}/go.mod and go.sum"
}

if [ "$MODE" = regen ]; then
  log "regenerating wrappers with $GO_VERSION: kubernetes $KUBE_VERSION, etcd $ETCD_VERSION"
  t=$EPOCHREALTIME
  regen_wrapper k8s "$K8S_WRAP" "k8s.io/kubernetes@$KUBE_VERSION" \
    "${K8S_CMDS[@]/#/k8s.io/kubernetes/cmd/}"
  log "k8s wrapper done in $(since "$t")s"
  t=$EPOCHREALTIME
  regen_wrapper etcd "$ETCD_WRAP" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
    "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  log "etcd wrapper done in $(since "$t")s"
  log "regen finished in $(since "$T0")s; now run testenv/build-bins.sh"
  exit 0
fi

# ---------------------------------------------------------------- cache + lock
CACHE=${SEALKEEP_CACHE:-/var/cache/sealkeep}
if ! mkdir -p "$CACHE/bin" 2>/dev/null || [ ! -w "$CACHE/bin" ]; then
  [ -z "${SEALKEEP_CACHE:-}" ] || die "cache dir $CACHE/bin is not writable"
  CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sealkeep
  mkdir -p "$CACHE/bin"
fi
BIN=$CACHE/bin
if command -v flock >/dev/null 2>&1; then
  exec 9>"$BIN/.lock"
  flock -n 9 || { log "waiting for another build-bins.sh holding $BIN/.lock"; flock 9; }
  # Holding the lock, so leftovers of interrupted builds can go.
  rm -rf "$BIN"/.tmp-* "$BIN"/*.old.*
fi

# The wrapper must match versions.env (else someone bumped a version without --regen).
check_wrapper() { # dir module version
  if [ ! -f "$1/go.mod" ] || [ ! -f "$1/go.sum" ]; then
    die "missing $1/go.mod or go.sum; run testenv/build-bins.sh --regen"
  fi
  modlines "$1/go.mod" | grep -qxF "require $2 $3" ||
    die "$1/go.mod does not require $2 $3 (versions.env changed?); run testenv/build-bins.sh --regen"
}

sha() { sha256sum "$@" | awk '{ print $1 }'; }

# Run a (long) command as a waited-for child, so that INT/TERM sent to this script alone also
# stops the go command instead of leaving it orphaned.
CHILD=
run() {
  local rc=0
  "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=
  return "$rc"
}
on_signal() {
  # TERM, not INT: background children of a non-interactive bash ignore SIGINT.
  if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi
  log "interrupted"
  exit 130
}
trap on_signal INT TERM

# ensure <component> <dir-name> <stamp-text> <binaries...> -- <build-fn> : reuse or build.
# build-fn gets the temporary output dir as $1 and must leave the binaries there.
ensure() {
  local comp=$1 name=$2 dir=$BIN/$2 stamp=$3; shift 3
  local bins=() b ok=1
  while [ "$1" != -- ]; do bins+=("$1"); shift; done
  shift
  local buildfn=$1
  for b in "${bins[@]}"; do [ -x "$dir/$b" ] || ok=0; done
  if [ "$FORCE" = 0 ] && [ "$ok" = 1 ] && [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
    log "$comp: cached in $dir"
    return 0
  fi
  local t=$EPOCHREALTIME tmp
  tmp=$(mktemp -d "$BIN/.tmp-$name.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  # go's own work dir goes inside $tmp too, so an interrupted build leaves nothing behind.
  mkdir "$tmp/.gotmp"
  export GOTMPDIR=$tmp/.gotmp
  log "$comp: building into $dir (${bins[*]})"
  [ "$comp" != kubernetes ] || log "$comp: a cold build takes roughly 10-20 min on 2 cores; go build prints nothing meanwhile"
  "$buildfn" "$tmp"
  for b in "${bins[@]}"; do [ -x "$tmp/$b" ] || die "$comp: $b was not produced"; done
  rm -rf "$tmp/.gotmp"
  unset GOTMPDIR
  printf '%s\n' "$stamp" >"$tmp/.stamp"
  chmod 755 "$tmp"
  # Replace the directory: rename is atomic; an old stale dir is moved aside first.
  if [ -e "$dir" ]; then mv "$dir" "$dir.old.$$" && rm -rf "$dir.old.$$"; fi
  mv "$tmp" "$dir"
  trap - EXIT
  log "$comp: built in $(since "$t")s"
}

expect_in() { # what expected output
  grep -qF -- "$2" <<<"$3" || die "$1 does not report $2; it printed: $3"
  log "  $1: $(head -n1 <<<"$3")"
}

# ---------------------------------------------------------------- kubernetes
K8S_LDFLAGS="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$KUBE_MINOR -X $p.gitTreeState=clean"
done
build_k8s() {
  GOWORK=off CGO_ENABLED=0 run go -C "$K8S_WRAP" build -mod=readonly -trimpath -pgo=off \
    -ldflags "$K8S_LDFLAGS" -o "$1/" "${K8S_CMDS[@]/#/k8s.io/kubernetes/cmd/}"
  expect_in kube-apiserver "Kubernetes $KUBE_VERSION" "$("$1/kube-apiserver" --version)"
  expect_in kube-controller-manager "Kubernetes $KUBE_VERSION" "$("$1/kube-controller-manager" --version)"
  expect_in kubectl "Client Version: $KUBE_VERSION" "$("$1/kubectl" version --client)"
}

# ---------------------------------------------------------------- etcd
ETCD_LDFLAGS="-s -w"
build_etcd() {
  GOWORK=off CGO_ENABLED=0 run go -C "$ETCD_WRAP" build -mod=readonly -trimpath \
    -ldflags "$ETCD_LDFLAGS" -o "$1/etcd" go.etcd.io/etcd/server/v3
  expect_in etcd "etcd Version: ${ETCD_VERSION#v}" "$("$1/etcd" --version)"
}

# ---------------------------------------------------------------- helm
# internal/version.version is what `helm version` prints (checked in helm's source and Makefile);
# chartutil/lint k8sVersion* are the default .Capabilities.KubeVersion of `helm template`/lint,
# which helm's Makefile derives from its client-go version (v0.N -> 1.N) in the same way.
helm_ldflags() {
  local hmod cg
  hmod=$(served_mod "helm.sh/helm/v3@$HELM_VERSION")
  cg=$(modlines "$hmod" | awk '$1 == "require" && $2 == "k8s.io/client-go" { print $3 }')
  [[ $cg =~ ^v0\.([0-9]+)\. ]] || die "cannot read k8s.io/client-go version from $hmod"
  local v=helm.sh/helm/v3/internal/version l="-s -w"
  l+=" -X $v.version=$HELM_VERSION -X $v.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    l+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=${BASH_REMATCH[1]}"
  done
  printf '%s' "$l"
}
build_helm() {
  local l w gf=() words=()
  l=$(helm_ldflags)
  # go install pkg@version works for helm (its go.mod has no replace); run it outside any
  # module and without a -mod flag from GOFLAGS, which go install pkg@version does not take.
  # shellcheck disable=SC2031  # the regen subshell's GOFLAGS is not meant to be seen here
  read -ra words <<<"${GOFLAGS:-}"
  for w in "${words[@]}"; do [[ $w == -mod=* ]] || gf+=("$w"); done
  GOWORK=off GOFLAGS="${gf[*]}" GOBIN="$1" CGO_ENABLED=0 \
    run go -C "$1" install -trimpath -ldflags "$l" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  expect_in helm "$HELM_VERSION" "$("$1/helm" version --template '{{.Version}}')"
}

# ---------------------------------------------------------------- main
log "Go $GO_VERSION; cache $BIN"
check_wrapper "$K8S_WRAP" k8s.io/kubernetes "$KUBE_VERSION"
check_wrapper "$ETCD_WRAP" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"

ensure kubernetes "k8s-$KUBE_VERSION" \
  "$(printf 'go=%s\ngo.mod=%s\ngo.sum=%s\nflags=-trimpath -pgo=off CGO_ENABLED=0 %s' \
    "$GO_VERSION" "$(sha "$K8S_WRAP/go.mod")" "$(sha "$K8S_WRAP/go.sum")" "$K8S_LDFLAGS")" \
  "${K8S_CMDS[@]}" -- build_k8s
ensure etcd "etcd-$ETCD_VERSION" \
  "$(printf 'go=%s\ngo.mod=%s\ngo.sum=%s\nflags=-trimpath CGO_ENABLED=0 %s' \
    "$GO_VERSION" "$(sha "$ETCD_WRAP/go.mod")" "$(sha "$ETCD_WRAP/go.sum")" "$ETCD_LDFLAGS")" \
  etcd -- build_etcd
ensure helm "helm-$HELM_VERSION" \
  "$(printf 'go=%s\nhelm=%s\nflags=-trimpath CGO_ENABLED=0 (ldflags: see helm_ldflags)' "$GO_VERSION" "$HELM_VERSION")" \
  helm -- build_helm

log "done in $(since "$T0")s; binary directories:"
printf 'K8S_BIN_DIR=%s\nETCD_BIN_DIR=%s\nHELM_BIN_DIR=%s\n' \
  "$BIN/k8s-$KUBE_VERSION" "$BIN/etcd-$ETCD_VERSION" "$BIN/helm-$HELM_VERSION"
