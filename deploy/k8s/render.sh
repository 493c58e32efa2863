#!/usr/bin/env bash
# Renders a kustomize overlay of deploy/k8s, optionally with every image pinned by digest.
#
#   render.sh GO_TOOLS_SH GO_MOD GO_SUM OVERLAY_DIR [NAME=DIGEST_FILE]... [--out FILE]
#             [--secrets-out FILE [--secrets-from DIR]]
#
# With NAME=DIGEST_FILE pairs, the image cache-platform/NAME becomes
# $OCI_REGISTRY/cache-platform/NAME@<digest in the file> (kustomize's `images` field), and any image
# left unpinned is an error: what is deployed is byte for byte what Bazel built and the tests ran.
# OCI_REGISTRY is the user's (like registry.example:5000/team); no registry is ever in the repo.
# --out writes to FILE (relative to the workspace under `bazel run`), else stdout.
# The manifests hold no secret: --secrets-out writes the Secrets they name (deploy/k8s/secrets:
# Redis' ACL, the Go service's Redis password, Alertmanager's receiver URL) to FILE, mode 0600,
# with the password in DIR/go-service-redis-password (--secrets-from: yours) or generated, and the
# URL in DIR/alertmanager-webhook-url or Nginx's log receiver. Apply it before the manifests.
# kustomize runs with --load-restrictor LoadRestrictionsNone: the base's ConfigMaps are built from
# the Compose stack's own files under deploy/ (one source per file).
set -euo pipefail
die() { echo "render: $*" >&2; exit 2; }
(($# >= 4)) || die "usage: render.sh GO_TOOLS_SH GO_MOD GO_SUM OVERLAY_DIR [NAME=DIGEST_FILE]... [--out FILE] [--secrets-out FILE [--secrets-from DIR]]"
go_tools="$1" go_mod="$2" go_sum="$3" overlay="$4"
shift 4
pins=() out="" secrets_out="" secrets_from=""
# A path given to `bazel run` is the user's, relative to the workspace.
from_workspace() { if [[ "$1" == /* ]]; then echo "$1"; else echo "${BUILD_WORKSPACE_DIRECTORY:-.}/$1"; fi; }
while (($#)); do
  case "$1" in
  --out) out="${2:?--out needs a file}"; shift 2 ;;
  --secrets-out) secrets_out="$(from_workspace "${2:?--secrets-out needs a file}")"; shift 2 ;;
  --secrets-from) secrets_from="$(from_workspace "${2:?--secrets-from needs a directory}")"; shift 2 ;;
  *=*) pins+=("$1"); shift ;;
  *) die "unknown argument $1" ;;
  esac
done
[[ -z "$secrets_from" || -n "$secrets_out" ]] || die "--secrets-from needs --secrets-out"
[[ -f "$overlay/kustomization.yaml" ]] || die "$overlay: no kustomization.yaml"
if ((${#pins[@]})); then
  registry="${OCI_REGISTRY:-}"
  [[ -n "$registry" ]] || die "set OCI_REGISTRY to the registry the images were pushed to (like OCI_REGISTRY=registry.example:5000/team)"
  registry="${registry%/}"
  [[ "$registry" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$ ]] ||
    die "OCI_REGISTRY=$registry: want HOST[:PORT][/PATH], lower case, no scheme"
fi
tools="$("$go_tools" "$go_mod" "$go_sum")"

# A copy of deploy/ with the overlay's sources, and beside the overlay a kustomization that only
# adds the pins: the overlay itself stays as it is in the repo.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
deploy="$(cd "$overlay/../../.." && pwd)"
cp -rL "$deploy" "$work/deploy"
target="$work/deploy/k8s/overlays/$(basename "$overlay")"
if ((${#pins[@]})); then
  mkdir "$work/deploy/k8s/overlays/pinned"
  target="$work/deploy/k8s/overlays/pinned"
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources: [../$(basename "$overlay")]"
    echo "images:"
    for pin in "${pins[@]}"; do
      name="${pin%%=*}" file="${pin#*=}"
      digest="$(tr -d '[:space:]' <"$file")"
      [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "$file: not a sha256 digest: $digest"
      echo "  - name: cache-platform/$name"
      echo "    newName: $registry/cache-platform/$name"
      echo "    digest: $digest"
    done
  } >"$target/kustomization.yaml"
fi
"$tools/bin/kustomize" build --load-restrictor LoadRestrictionsNone "$target" >"$work/out.yaml"
if [[ -n "$secrets_out" ]]; then
  secrets="$work/deploy/k8s/secrets"
  if [[ -n "$secrets_from" ]]; then
    [[ -s "$secrets_from/go-service-redis-password" ]] ||
      die "--secrets-from $secrets_from: no go-service-redis-password in it"
    cp "$secrets_from/go-service-redis-password" "$secrets/"
  else
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$secrets/go-service-redis-password")
  fi
  if [[ -n "$secrets_from" && -e "$secrets_from/alertmanager-webhook-url" ]]; then
    cp "$secrets_from/alertmanager-webhook-url" "$secrets/"
  else
    echo "http://nginx:9145/alerts" >"$secrets/alertmanager-webhook-url"
  fi
  "$work/deploy/redis/users_acl.sh" go-service="$secrets/go-service-redis-password" >"$secrets/users.acl"
  mkdir -p "$(dirname "$secrets_out")"
  (umask 077 && "$tools/bin/kustomize" build "$secrets" >"$secrets_out")
  chmod 0600 "$secrets_out"
  echo "render: wrote the Secrets to $secrets_out (mode 0600; never commit it)" >&2
fi
if ((${#pins[@]})); then
  unpinned="$(grep -E '^\s*(- )?image: ' "$work/out.yaml" | grep -v '@sha256:' || true)"
  [[ -z "$unpinned" ]] || die "images not pinned by digest (add them to IMAGES in deploy/k8s/BUILD.bazel): $unpinned"
fi
if [[ -n "$out" ]]; then
  [[ "$out" == /* ]] || out="${BUILD_WORKSPACE_DIRECTORY:-.}/$out"
  mkdir -p "$(dirname "$out")"
  cp "$work/out.yaml" "$out"
  echo "render: wrote $out" >&2
else
  cat "$work/out.yaml"
fi
