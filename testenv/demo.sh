#!/usr/bin/env bash
# `testenv/testenv demo`: Sealkeep end to end on the local Kubernetes, in one command.
# Builds everything, starts testenv (control plane, process kubelet, moto as KMS and STS),
# installs the operator with Helm, applies examples/local-kms.yaml, waits until the server is
# Ready, writes and reads a secret through it, deletes its pod to show auto-unseal, and prints
# `kubectl get secretservers` at each step. Root only (the testenv needs it). Leaves the
# environment running; `testenv/testenv down` removes it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
cd "$REPO"
NS=demo
RELEASE=sealkeep
OPNS=sealkeep-system

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ kubectl get secretservers -n %s -o wide\n' "$NS"; kubectl get secretservers -n "$NS" -o wide; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (the local Kubernetes uses network namespaces and mounts)"

step "build the Kubernetes, etcd and Helm binaries (cached), sealkeep and the process kubelet"
"$HERE/build-bins.sh" >/dev/null
cargo build --locked -p sealkeep -p sealkeep-pkubelet --bins

step "start the local Kubernetes (testenv) and moto"
"$HERE/testenv" up
eval "$("$HERE/testenv" env)"
# The host's own AWS variables from `testenv env` are for host tools; the demo needs none.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

# A namespace left Terminating by an earlier run must be gone before it is created again.
for _ in $(seq 1 240); do
  [ "$(kubectl get namespace "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)" = Terminating ] || break
  sleep 0.5
done
[ "$(kubectl get namespace "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)" != Terminating ] \
  || die "namespace $NS is still terminating after 120 s; check: kubectl get namespace $NS -o yaml"
kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS"

step "helm install the operator (chart charts/sealkeep, CRD included), watching namespace $NS"
# Least privilege: Roles (and Secrets) only in $NS. The operator's own AWS identity (IRSA through
# moto's STS) gets the data key that encrypts the init Secret.
helm upgrade --install "$RELEASE" charts/sealkeep -n "$OPNS" --create-namespace --wait --timeout 3m \
  --set "watchNamespaces={$NS}" \
  --set aws.roleArn=arn:aws:iam::123456789012:role/sealkeep-operator --set aws.region=us-east-1 \
  --set "extraEnv[0].name=AWS_ENDPOINT_URL_STS" --set "extraEnv[0].value=$SEALKEEP_TESTENV_MOTO_URL"
kubectl -n "$OPNS" get deploy,pods -o wide

step "apply examples/local-kms.yaml (awskms seal, IRSA web identity, moto as KMS and STS)"
kubectl apply -f examples/local-kms.yaml
sleep 1
show

step "wait until Ready (the operator auto-initializes; the server auto-unseals through KMS)"
kubectl -n "$NS" wait --for=condition=Ready secretserver/vault --timeout=180s
show

pod_ip() { kubectl -n "$NS" get pod vault-0 -o jsonpath='{.status.podIP}'; }
# The init Secret is encrypted with a data key of the KMS key: reading it needs kms:Decrypt
# (moto's test credentials here).
token=$(AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_ENDPOINT_URL_KMS="$SEALKEEP_TESTENV_MOTO_URL" \
  target/debug/sealkeep init-secret show vault -n "$NS" --field root-token)
addr="http://$(pod_ip):8200"

step "write and read a secret through the server's Vault API (root token: sealkeep init-secret show vault)"
curl -fsS -X POST -H "X-Vault-Token: $token" -d '{"data":{"greeting":"hello from sealkeep"}}' \
  "$addr/v1/secret/data/demo" >/dev/null
printf 'read back: '
curl -fsS -H "X-Vault-Token: $token" "$addr/v1/secret/data/demo" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["data"])'

step "delete the pod: the StatefulSet recreates it and it auto-unseals by itself"
old_uid=$(kubectl -n "$NS" get pod vault-0 -o jsonpath='{.metadata.uid}')
kubectl -n "$NS" delete pod vault-0 --wait=false
for _ in $(seq 1 120); do
  uid=$(kubectl -n "$NS" get pod vault-0 -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
  [ -n "$uid" ] && [ "$uid" != "$old_uid" ] && break
  sleep 0.5
done
[ "$uid" != "$old_uid" ] || die "the StatefulSet did not recreate vault-0 within 60 s"
sleep 1
show
kubectl -n "$NS" wait --for=condition=Ready secretserver/vault --timeout=180s
show
addr="http://$(pod_ip):8200"
printf 'read after the restart: '
curl -fsS -H "X-Vault-Token: $token" "$addr/v1/secret/data/demo" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["data"])'

step "done"
cat <<EOT
The operator runs in namespace $OPNS; the server 'vault' in namespace $NS.
  eval "\$(testenv/testenv env)"; kubectl get secretservers -A -o wide
  kubectl -n $NS describe secretserver vault       # conditions and events
  testenv/testenv down                              # remove everything
EOT
