#!/usr/bin/env bash
# Builds, once per machine, the `tool` packages of a Go module of deploy/k8s and prints the directory
# holding them (bin/NAME). deploy/k8s/controlplane: kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kubelet, kube-proxy and kwok (plus kwok-stages.yaml, kwok's own Stage
# configs); deploy/k8s/addons: coredns and kube-network-policies; deploy/k8s/tools: kustomize and
# kubeconform.
#
#   go_tools.sh GO_MOD GO_SUM
#
# Why the go command and not rules_go: k8s.io/kubernetes needs ~180 modules; go_deps would add them
# all to the repo's module graph (go.work unifies versions with the services' modules) and Bazel
# would compile them in every cold output base. Here the go.mod/go.sum pin every module (checked
# against the sums), the go command is the one GOTOOLCHAIN names, modules come from the machine's
# GOPROXY, and the result is kept under a key of (go.mod, go.sum, Go version): a change of any of
# them builds again, nothing else does. Cold, on 2 cores: the control plane ~5-6 min and ~3 GB RAM,
# the tools ~1 min; warm: a directory lookup.
#
# Where: $K8S_GO_TOOLS_CACHE, else $CACHE_PLATFORM_CACHE_DIR/output/k8s-go-tools (that
# directory is visible both on the host and inside tools/bazel's chroot), else
# ~/.cache/cache-platform-k8s-go-tools. The Go build cache is GOCACHE when set, else one beside the binaries.
set -euo pipefail

die() { echo "go_tools.sh: $*" >&2; exit 1; }
[[ $# == 2 ]] || die "usage: go_tools.sh GO_MOD GO_SUM"
go_mod="$(readlink -f "$1")" go_sum="$(readlink -f "$2")"
command -v go >/dev/null || die "no go command on PATH (it builds the Kubernetes binaries once per machine)"
# GOWORK=off: the repo's go.work must not pull these modules into the services' build list.
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}" CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off

if [[ -n "${K8S_GO_TOOLS_CACHE:-}" ]]; then
  root="$K8S_GO_TOOLS_CACHE"
elif [[ -n "${CACHE_PLATFORM_CACHE_DIR:-}" ]]; then
  root="$CACHE_PLATFORM_CACHE_DIR/output/k8s-go-tools"
else
  root="$HOME/.cache/cache-platform-k8s-go-tools"
fi
go_version="$(go env GOVERSION)" || die "go env failed (GOTOOLCHAIN=$GOTOOLCHAIN through GOPROXY=$(go env GOPROXY))"
key="$( (cat "$go_mod" "$go_sum"; echo "$go_version") | sha256sum | cut -c1-16)"
out="$root/$key"
export GOCACHE="${GOCACHE:-$root/gocache}"
[[ -f "$out/.complete" ]] && { echo "$out"; exit 0; }

mkdir -p "$root"
# One build per module and machine: a second caller of the same module waits, then finds it done.
# Other modules build beside it (the Go build cache takes concurrent builds): a lock on the whole
# root made the static test's one-minute tools build wait for the control plane's.
exec 9>"$out.lock"
flock 9
[[ -f "$out/.complete" ]] && { echo "$out"; exit 0; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$go_mod" "$work/go.mod" && cp "$go_sum" "$work/go.sum"
cd "$work"
k8s_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes 2>/dev/null || true)"
ldflags="-s -w"
if [[ -n "$k8s_version" ]]; then
  IFS=. read -r major minor _ <<<"${k8s_version#v}"
  # Without these the binaries report v0.0.0 and kubectl warns about version skew.
  ldflags+=" -X k8s.io/component-base/version.gitVersion=$k8s_version"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
fi
rm -rf "$out.tmp" && mkdir -p "$out.tmp/bin"
echo "go_tools.sh: building the tools of $go_mod with $go_version into $out (once per machine)" >&2
start=$SECONDS
go build -trimpath -ldflags "$ldflags" -o "$out.tmp/bin/" tool
# go build names a binary after its package's last element: a tool package named cmd
# (sigs.k8s.io/kube-network-policies/cmd) is named after its parent instead.
for pkg in $(go list tool); do
  [[ "$pkg" == */cmd ]] || continue
  parent="${pkg%/cmd}"
  mv "$out.tmp/bin/cmd" "$out.tmp/bin/${parent##*/}"
done
if kwok="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok 2>/dev/null)"; then
  # kwok does nothing without Stage configs; its module ships the standard ones (nodes become
  # Ready and keep a Lease; pods become Ready, complete and are deleted).
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ -f "$kwok/kustomize/stage/$f" ]] || die "kwok's stage $f is not in its module ($kwok)"
    echo "---"
    cat "$kwok/kustomize/stage/$f"
  done >"$out.tmp/kwok-stages.yaml"
fi
touch "$out.tmp/.complete"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "go_tools.sh: built in $((SECONDS - start)) s" >&2
echo "$out"
